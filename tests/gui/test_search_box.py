"""The search box: debounce, Enter, Esc, paste and drop of images."""

from __future__ import annotations

from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from gui.helpers import drop_urls
from vector_studio_gui.gui.search_box import DEBOUNCE_MS, PLACEHOLDER, SearchBox


def make(qtbot) -> tuple[SearchBox, list, list]:
    box = SearchBox()
    qtbot.addWidget(box)
    box.show()
    box.setFocus()
    texts: list[str] = []
    images: list[object] = []
    box.textQuery.connect(texts.append)
    box.imageQuery.connect(images.append)
    return box, texts, images


def test_placeholder_explains_what_to_type(qtbot):
    box, _, _ = make(qtbot)
    assert box.placeholderText() == PLACEHOLDER == "Describe a chart, or paste/drop an image"
    assert box.isClearButtonEnabled()


def test_typing_is_debounced_into_one_query(qtbot):
    box, texts, _ = make(qtbot)
    qtbot.keyClicks(box, "pie chart of market share")
    assert texts == []  # nothing while typing
    assert box.pending()
    with qtbot.waitSignal(box.textQuery, timeout=DEBOUNCE_MS * 8):
        pass
    assert texts == ["pie chart of market share"]  # one query, with the whole text


def test_enter_searches_at_once_and_again(qtbot):
    box, texts, _ = make(qtbot)
    qtbot.keyClicks(box, "red bars")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert texts == ["red bars"]  # no waiting
    assert not box.pending()
    qtbot.keyClick(box, Qt.Key.Key_Return)
    assert texts == ["red bars", "red bars"]  # Enter repeats the search on purpose
    qtbot.wait(DEBOUNCE_MS + 50)
    assert texts == ["red bars", "red bars"]  # and the debounce does not fire it a third time


def test_escape_clears_and_asks_for_the_library(qtbot):
    box, texts, _ = make(qtbot)
    qtbot.keyClicks(box, "line chart")
    qtbot.keyClick(box, Qt.Key.Key_Return)
    qtbot.keyClick(box, Qt.Key.Key_Escape)
    assert box.text() == ""
    assert texts == ["line chart", ""]


def test_ctrl_v_with_an_image_on_the_clipboard_is_an_image_query(qtbot):
    box, texts, images = make(qtbot)
    img = QImage(320, 200, QImage.Format.Format_RGB32)
    img.fill(Qt.GlobalColor.blue)
    QApplication.clipboard().setImage(img)
    qtbot.keyClick(box, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert len(images) == 1 and isinstance(images[0], QImage)
    assert images[0].size() == img.size()
    assert box.text() == "" and texts == []


def test_ctrl_v_with_text_pastes_text(qtbot):
    box, _, images = make(qtbot)
    QApplication.clipboard().setText("gold price")
    qtbot.keyClick(box, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert box.text() == "gold price"
    assert images == []


def test_ctrl_v_with_a_copied_image_file_searches_by_that_file(qtbot, chart_folder):
    box, _, images = make(qtbot)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(chart_folder / "green-bar.png"))])
    QApplication.clipboard().setMimeData(mime)
    try:
        qtbot.keyClick(box, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    finally:
        QApplication.clipboard().clear()  # the clipboard owns the mime data: free it now
    assert images == [str(chart_folder / "green-bar.png")]


def test_dropping_an_image_file_is_an_image_query_but_a_folder_is_not(qtbot, chart_folder):
    box, texts, images = make(qtbot)
    assert drop_urls(box, [chart_folder / "red-bar.png"]) == (True, True)
    assert images == [str(chart_folder / "red-bar.png")]
    assert drop_urls(box, [chart_folder]) == (False, False)  # left for the window to ingest
    assert drop_urls(box, [chart_folder / "red-bar.png", chart_folder / "blue-bar.png"]) == (
        False, False)
    assert len(images) == 1 and texts == []
