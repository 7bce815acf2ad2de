"""The main window as a user drives it: drop charts, type, paste, cancel, close."""

from __future__ import annotations

import json
import os
import sys
import threading
import time

import pytest
from conftest import write_charts
from PySide6.QtCore import QPoint, Qt, QUrl
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication, QDialog, QFileDialog, QMessageBox

from gui.helpers import drop_urls, ingest_and_wait, names, slow_down_encoder
from vector_studio_gui.core.engine import Engine
from vector_studio_gui.core.settings import Settings
from vector_studio_gui.gui.results_model import ResultsModel
from vector_studio_gui.gui.results_view import DROP_HINT
from vector_studio_gui.gui.workers import Task

COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")


def test_window_opens_before_any_model_is_read_and_shows_the_drop_hint(window):
    assert window.windowTitle() == "Vector Studio"
    assert window.isVisible()
    assert window.view.hint_visible()
    assert window.view.hint_title == DROP_HINT == "Drop chart images or folders here"
    assert window.count_label.text() == "0 charts"
    assert "toy-clip" in window.models_label.text() and "CPU" in window.models_label.text()
    assert window.search.placeholderText() == "Describe a chart, or paste/drop an image"
    # the hint is really painted: the middle of the empty grid is not plain background
    img = window.view.viewport().grab().toImage()
    colours = {img.pixel(x, img.height() // 2) for x in range(0, img.width(), 3)}
    assert len(colours) > 2
    # no model was loaded to show the window
    assert window.engine._image_enc is None and window.engine._clip_text_enc is None


def test_dropping_a_folder_on_the_grid_adds_its_charts(qtbot, window, chart_folder):
    report = ingest_and_wait(qtbot, window, [chart_folder])
    assert report.added == 6
    qtbot.waitUntil(lambda: window.model.rowCount() == 6)
    assert sorted(names(window)) == sorted(f"{c}-bar.png" for c in COLOURS)
    assert not window.view.hint_visible()
    assert window.ingest.summary_widget.label.text() == "6 added, 0 skipped"
    assert window.ingest.summary_widget.isVisible()
    assert not window.ingest.progress_widget.isVisible()
    qtbot.waitUntil(lambda: window.count_label.text() == "6 charts")
    # the visible tiles' thumbnails arrive (loaded off the GUI thread) and are real pictures
    vp = window.view.viewport().rect()
    visible = [r for r in range(6)
               if window.view.visualRect(window.model.index(r, 0)).intersects(vp)]
    assert visible and visible[0] == 0
    qtbot.waitUntil(lambda: all(window.model.data(window.model.index(r, 0),
                                                  ResultsModel.ThumbnailLoadedRole)
                                for r in visible))
    pix = window.model.data(window.model.index(0, 0), Qt.ItemDataRole.DecorationRole)
    assert pix.width() > 100 and pix.height() > 50


def test_dropping_files_anywhere_on_the_window_adds_them(qtbot, window, tmp_path):
    files = write_charts(tmp_path / "loose", colours=["red", "blue"])
    # onto the details pane, which takes no drops itself: the event reaches the window
    with qtbot.waitSignal(window.ingest.finished, timeout=20000):
        assert drop_urls(window.details, list(files.values())) == (True, True)
    qtbot.waitUntil(lambda: sorted(names(window)) == ["blue-bar.png", "red-bar.png"])
    # a folder dropped on the search box is not a query: it is added too
    more = write_charts(tmp_path / "more", colours=["green"])
    with qtbot.waitSignal(window.ingest.finished, timeout=20000):
        assert drop_urls(window.search, [more["green-bar"].parent]) == (True, True)
    qtbot.waitUntil(lambda: "green-bar.png" in names(window))
    assert window.query_chip.isHidden()  # and no image query was started


def test_typing_a_description_and_enter_puts_the_matching_chart_first(qtbot, filled_window):
    w = filled_window
    w.search.setFocus()
    with qtbot.waitSignal(w.searchShown, timeout=10000) as blocker:
        qtbot.keyClicks(w.search, "red chart")
        qtbot.keyClick(w.search, Qt.Key.Key_Return)
    assert blocker.args[0].query == "red chart"
    assert names(w)[0] == "red-bar.png"
    first = w.model.index(0, 0)
    scores = [w.model.data(w.model.index(r, 0), ResultsModel.ScoreRole)
              for r in range(w.model.rowCount())]
    assert scores == sorted(scores, reverse=True)  # best first, each tile has its score
    assert isinstance(w.model.data(first, ResultsModel.ScoreRole), float)
    assert w.time_label.text().endswith(" ms")
    # the tile of the best match really shows a score badge: pixels differ from a browse tile
    assert "score" in w.model.data(first, Qt.ItemDataRole.ToolTipRole)


def test_typing_searches_after_a_pause_without_enter(qtbot, filled_window):
    w = filled_window
    with qtbot.waitSignal(w.searchShown, timeout=10000) as blocker:
        qtbot.keyClicks(w.search, "blue chart")
    assert blocker.args[0].query == "blue chart"
    assert names(w)[0] == "blue-bar.png"


def test_only_the_latest_query_is_shown(qtbot, filled_window):
    w = filled_window
    shown = []
    w.searchShown.connect(lambda resp: shown.append(resp.query))
    w.search_text("red chart")
    w.search_text("green chart")
    w.search_text("purple chart")
    qtbot.waitUntil(lambda: bool(shown) and shown[-1] == "purple chart", timeout=10000)
    qtbot.wait(50)  # let any straggler arrive: it must not replace the purple answer
    assert shown == ["purple chart"]
    assert names(w)[0] == "purple-bar.png"


def test_escape_clears_the_query_and_shows_the_library_newest_first(qtbot, filled_window):
    w = filled_window
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        w.search.setText("yellow chart")
        qtbot.keyClick(w.search, Qt.Key.Key_Return)
    with qtbot.waitSignal(w.browseShown, timeout=10000):
        qtbot.keyClick(w.search, Qt.Key.Key_Escape)
    assert w.search.text() == ""
    assert w.model.rowCount() == 6
    assert w.model.data(w.model.index(0, 0), ResultsModel.ScoreRole) is None  # no scores
    added = [w.model.data(w.model.index(r, 0), ResultsModel.ItemRole).added for r in range(6)]
    assert added == sorted(added, reverse=True)


def test_pasting_an_image_searches_by_it(qtbot, filled_window, tmp_path):
    w = filled_window
    blue = write_charts(tmp_path / "query", colours=["blue"], kinds=("line",))["blue-line"]
    QApplication.clipboard().setImage(QImage(str(blue)))
    w.search.setFocus()
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        qtbot.keyClick(w.search, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
    assert names(w)[0] == "blue-bar.png"
    assert w.query_chip.isVisible() and "pasted image" in w.query_chip.text()
    assert w.search.text() == ""  # the image is the query, not text


def test_ctrl_v_in_the_grid_also_searches_by_the_clipboard_image(qtbot, filled_window, tmp_path):
    w = filled_window
    green = write_charts(tmp_path / "query", colours=["green"], kinds=("pie",))["green-pie"]
    QApplication.clipboard().setImage(QImage(str(green)))
    w.view.setFocus()
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        w.act_paste.trigger()
    assert names(w)[0] == "green-bar.png"


def test_dropping_an_image_on_the_search_box_searches_by_it(qtbot, filled_window, tmp_path):
    w = filled_window
    orange = write_charts(tmp_path / "query", colours=["orange"], kinds=("pie",))["orange-pie"]
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        enter, dropped = drop_urls(w.search, [orange])
        assert enter and dropped
    assert names(w)[0] == "orange-bar.png"
    assert "orange-pie.png" in w.query_chip.text()
    assert w.engine.library.count() == 6  # a query image is not added to the library


def test_find_similar_from_the_details_pane(qtbot, filled_window):
    w = filled_window
    row = names(w).index("red-bar.png")
    w.view.setCurrentIndex(w.model.index(row, 0))
    assert w.details.title.text() == "red-bar.png"
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        qtbot.mouseClick(w.details.similar_button, Qt.MouseButton.LeftButton)
    assert "red-bar.png" not in names(w)  # the chart itself is not its own neighbour
    assert len(names(w)) == 5
    assert "Similar to red-bar.png" in w.query_chip.text()


def test_details_pane_shows_the_selected_chart(qtbot, filled_window, chart_folder):
    w = filled_window
    row = names(w).index("purple-bar.png")
    w.view.setCurrentIndex(w.model.index(row, 0))
    d = w.details
    assert d.title.text() == "purple-bar.png"
    assert d.path_label.text().startswith(str(chart_folder / "purple-bar.png"))
    assert d.dims_label.text() == "640 × 360 px"
    assert d.size_label.text().endswith("KB")
    qtbot.waitUntil(lambda: not d.preview.pixmap_size().isEmpty(), timeout=5000)


def test_cancelling_an_ingest_midway_keeps_what_was_encoded(qtbot, window, tmp_path):
    w = window
    folder = tmp_path / "many"
    for seed in range(10):
        for colour in COLOURS:  # 60 charts, batches of 4 (settings fixture)
            from vector_studio_gui.modelgen.toy import toy_chart_image

            folder.mkdir(exist_ok=True)
            toy_chart_image(colour, size=(160, 90), seed=seed).save(folder / f"{colour}-{seed}.png")
    slow_down_encoder(w.engine, 0.1)
    with qtbot.waitSignal(w.ingest.batchAdded, timeout=20000):
        assert drop_urls(w.view.viewport(), [folder]) == (True, True)
    assert w.ingest.progress_widget.isVisible()
    assert "Adding charts:" in w.ingest.progress_widget.label.text()
    with qtbot.waitSignal(w.ingest.finished, timeout=20000) as blocker:
        qtbot.mouseClick(w.ingest.progress_widget.cancel_button, Qt.MouseButton.LeftButton)
    report = blocker.args[0]
    assert report.cancelled
    assert 4 <= report.added < 60
    assert w.ingest.summary_widget.label.text().endswith("(cancelled)")
    kept = w.engine.library.count()
    assert kept == report.added
    qtbot.waitUntil(lambda: w.model.rowCount() == kept)  # the grid shows what was kept
    assert w.count_label.text() == f"{kept} charts"
    # what was kept is searchable
    with qtbot.waitSignal(w.searchShown, timeout=10000) as b2:
        w.search_text("red chart")
    assert len(b2.args[0].results) == min(kept, 100)


def test_closing_while_an_ingest_runs_exits_cleanly(qtbot, window, tmp_path, settings):
    w = window
    folder = tmp_path / "many"
    write_charts(folder, kinds=("bar", "line", "pie"))
    for seed in range(1, 4):
        from vector_studio_gui.modelgen.toy import toy_chart_image

        for colour in COLOURS:
            toy_chart_image(colour, size=(160, 90), seed=seed).save(folder / f"{colour}-s{seed}.png")
    slow_down_encoder(w.engine, 0.1)
    committed: list[int] = []
    w.ingest.batchAdded.connect(committed.extend)
    with qtbot.waitSignal(w.ingest.batchAdded, timeout=20000):
        drop_urls(w.view.viewport(), [folder])
    threads_before = threading.active_count()
    t0 = time.monotonic()
    w.close()
    took = time.monotonic() - t0
    assert took < 2.0
    assert not w.isVisible()
    tasks = w.runner.findChildren(Task)
    assert tasks and not any(t.thread.isRunning() for t in tasks)  # every thread was joined
    assert not w.search_lane.running and not w.thumb_lane.running
    assert threading.active_count() <= threads_before
    # the library was closed (lock released), is consistent and holds every committed batch
    with Engine(settings) as again:
        n = again.library.count()
        assert n >= len(committed) >= 4
        assert n < 36
        assert again.check(repair=False).ok
        report = again.ingest([folder])  # the rest can be added later
        assert report.unchanged == n and again.library.count() == 36


def test_a_note_is_saved_to_the_library_and_found_by_search(qtbot, filled_window):
    w = filled_window
    row = names(w).index("green-bar.png")
    w.view.setCurrentIndex(w.model.index(row, 0))
    item_id = w.model.data(w.model.index(row, 0), ResultsModel.IdRole)
    d = w.details
    assert not d.save_note_button.isEnabled()
    qtbot.mouseClick(d.note_edit.viewport(), Qt.MouseButton.LeftButton)
    qtbot.keyClicks(d.note_edit, "gold breakout weekly")
    assert d.save_note_button.isEnabled() and d.note_status.text() == "unsaved"
    with qtbot.waitSignal(w.noteSaved, timeout=20000):
        qtbot.mouseClick(d.save_note_button, Qt.MouseButton.LeftButton)
    assert d.note_status.text() == "saved"
    assert w.engine.item(item_id).note == "gold breakout weekly"
    assert "note: gold breakout weekly" in w.model.data(w.model.index(row, 0),
                                                      Qt.ItemDataRole.ToolTipRole)
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        w.search_text("gold breakout")
    assert names(w)[0] == "green-bar.png"


def test_delete_asks_then_removes_the_selected_chart(qtbot, filled_window, monkeypatch):
    w = filled_window
    asked = []

    def answer(parent, title, text, *args):
        asked.append(text)
        return QMessageBox.StandardButton.No if len(asked) == 1 else QMessageBox.StandardButton.Yes

    monkeypatch.setattr(QMessageBox, "question", answer)
    row = names(w).index("yellow-bar.png")
    w.view.setFocus()
    w.view.setCurrentIndex(w.model.index(row, 0))
    qtbot.keyClick(w.view, Qt.Key.Key_Delete)  # answered No: nothing happens
    assert "yellow-bar.png" in asked[0] and "not deleted" in asked[0]
    qtbot.wait(20)
    assert "yellow-bar.png" in names(w)
    with qtbot.waitSignal(w.itemsRemoved, timeout=10000):
        qtbot.keyClick(w.view, Qt.Key.Key_Delete)  # answered Yes
    assert "yellow-bar.png" not in names(w) and len(names(w)) == 5
    assert w.engine.library.count() == 5
    qtbot.waitUntil(lambda: w.count_label.text() == "5 charts")
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        w.search_text("yellow chart")
    assert "yellow-bar.png" not in names(w)


def test_enter_opens_the_selected_chart_and_arrows_move(qtbot, filled_window):
    w = filled_window
    opened: list[QUrl] = []
    w.open_url = opened.append
    w.view.setFocus()
    w.view.setCurrentIndex(w.model.index(0, 0))
    qtbot.keyClick(w.view, Qt.Key.Key_Right)
    assert w.view.currentIndex().row() == 1
    assert w.details.title.text() == names(w)[1]
    qtbot.keyClick(w.view, Qt.Key.Key_Return)
    assert [u.toLocalFile() for u in opened] == [w.model.data(w.model.index(1, 0),
                                                              ResultsModel.PathRole)]


def test_copy_path_and_copy_image_fill_the_clipboard(qtbot, filled_window):
    w = filled_window
    row = names(w).index("red-bar.png")
    w.view.setCurrentIndex(w.model.index(row, 0))
    w.act_copy_path.trigger()
    assert QApplication.clipboard().text().endswith("red-bar.png")
    w.act_copy_image.trigger()
    img = QApplication.clipboard().image()
    assert (img.width(), img.height()) == (640, 360)


def test_keyboard_shortcuts(qtbot, window, chart_folder, monkeypatch):
    w = window
    w.activateWindow()
    w.view.setFocus()
    qtbot.waitUntil(w.view.hasFocus)
    ctrl = Qt.KeyboardModifier.ControlModifier
    # Ctrl+O: add files (the file dialog answers with two charts)
    monkeypatch.setattr(QFileDialog, "getOpenFileNames", lambda *a, **k: (
        [str(chart_folder / "red-bar.png"), str(chart_folder / "blue-bar.png")], ""))
    with qtbot.waitSignal(w.ingest.finished, timeout=20000):
        qtbot.keyClick(w.view, Qt.Key.Key_O, ctrl)
    qtbot.waitUntil(lambda: sorted(names(w)) == ["blue-bar.png", "red-bar.png"])
    # Ctrl+F: to the search box
    qtbot.keyClick(w.view, Qt.Key.Key_F, ctrl)
    assert w.search.hasFocus()
    # Ctrl+V in the grid: search by the image on the clipboard
    QApplication.clipboard().setImage(QImage(str(chart_folder / "blue-bar.png")))
    w.view.setFocus()
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        qtbot.keyClick(w.view, Qt.Key.Key_V, ctrl)
    assert names(w)[0] == "blue-bar.png"
    # Ctrl+,: the settings dialog
    opened = []
    from vector_studio_gui.gui import settings_dialog

    monkeypatch.setattr(settings_dialog.SettingsDialog, "exec",
                        lambda dlg: opened.append(dlg) or QDialog.DialogCode.Rejected)
    qtbot.keyClick(w.view, Qt.Key.Key_Comma, ctrl)
    assert len(opened) == 1 and opened[0].windowTitle().startswith("Settings")
    assert w.act_remove.shortcut().toString() == "Del"


def test_context_menu_offers_the_item_actions(qtbot, filled_window):
    w = filled_window
    w.view.setCurrentIndex(w.model.index(0, 0))
    texts = [a.text() for a in (w.act_copy_path, w.act_copy_image, w.act_open, w.act_reveal,
                                w.act_similar, w.act_remove)]
    assert texts == ["Copy path", "Copy image", "Open", "Show in folder", "Find similar",
                     "Remove from library…"]
    rect = w.view.visualRect(w.model.index(0, 0))
    menu = w.build_context_menu(rect.center())
    assert [a.text() for a in menu.actions() if a.text()] == texts
    assert all(a.isEnabled() for a in menu.actions() if a.text())
    # on empty space with nothing selected it offers to add charts instead
    w.view.clearSelection()
    empty = w.build_context_menu(QPoint(w.view.viewport().width() - 2,
                                        w.view.viewport().height() - 2))
    assert [a.text() for a in empty.actions()][:2] == ["Add files…", "Add folder…"]


def test_dragging_tiles_out_gives_file_urls(filled_window, chart_folder):
    w = filled_window
    row = names(w).index("blue-bar.png")
    mime = w.model.mimeData([w.model.index(row, 0)])
    assert [u.toLocalFile() for u in mime.urls()] == [str(chart_folder / "blue-bar.png")]
    # and dragging them back onto the grid adds nothing
    assert w.view.dragDropMode() == w.view.DragDropMode.DragDrop


def test_skipped_files_are_listed_with_reasons(qtbot, window, chart_folder):
    (chart_folder / "broken.png").write_bytes(b"this is not an image")
    report = ingest_and_wait(qtbot, window, [chart_folder])
    assert report.added == 6 and len(report.failed) == 1
    s = window.ingest.summary_widget
    assert s.label.text() == "6 added, 1 skipped"
    assert s.details_button.isVisible()
    qtbot.mouseClick(s.details_button, Qt.MouseButton.LeftButton)
    dlg = window.ingest.dialog
    assert dlg is not None and dlg.isVisible()
    text = dlg.text.toPlainText()
    assert "broken.png" in text and len(text.splitlines()) == 2  # path, then the reason
    dlg.close()


def test_engine_errors_are_shown_not_raised(qtbot, make_window, settings, chart_folder):
    with Engine(settings) as eng:  # a library encoded with toy-clip ...
        eng.ingest([chart_folder])
    other = Settings.from_dict(settings.to_dict())
    other.embedding.clip_model = "not-a-model"  # ... opened with a model that is not there
    w = make_window(other)
    assert w.model.rowCount() == 6  # browsing needs no model
    with qtbot.waitSignal(w.queryFailed, timeout=10000) as blocker:
        w.search_text("red chart")
    assert "toy-clip" in blocker.args[0] and "not-a-model" in blocker.args[0]
    assert w.message_bar.isVisible() and "not-a-model" in w.message_bar.message()
    assert w.message_bar.action_button.text() == "Settings…"  # the way to fix it
    assert w.view.hint_visible() and w.view.hint_title == "No results"
    with qtbot.waitSignal(w.ingest.failed, timeout=10000):
        drop_urls(w.view.viewport(), [chart_folder / "red-bar.png"])
    assert w.isVisible() and "not-a-model" in w.message_bar.message()
    with qtbot.waitSignal(w.browseShown, timeout=10000):  # and the window keeps working
        w.show_library()
    assert w.model.rowCount() == 6


def test_a_missing_model_is_explained_before_anything_fails(make_window, settings):
    settings.embedding.clip_model = "not-a-model"
    w = make_window(settings)
    assert not w.check_models()
    assert "not-a-model is not installed" in w.message_bar.message()
    assert w.message_bar.level == "warning"


def test_geometry_and_splitter_are_remembered(qtbot, make_window, settings, config_path):
    w = make_window()
    w.resize(760, 520)  # the offscreen screen is 800 x 600
    w.splitter.setSizes([500, 380])
    sizes = w.splitter.sizes()
    w.close()
    saved = json.loads(config_path.read_text())
    assert saved["gui"]["geometry"] and saved["gui"]["splitter"]
    assert "library" not in saved or saved["library"].get("path") is None  # no CLI overrides
    again = Settings.load(config_path)
    settings.gui = again.gui
    w2 = make_window(settings)
    assert (w2.width(), w2.height()) == (760, 520)
    assert w2.splitter.sizes() == sizes


def test_new_charts_appear_in_a_shown_search_as_batches_land(qtbot, filled_window, tmp_path):
    w = filled_window
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        w.search_text("red chart")
    assert names(w).count("red-line.png") == 0
    more = write_charts(tmp_path / "more", colours=["red"], kinds=("line",))
    with qtbot.waitSignal(w.searchShown, timeout=20000):
        drop_urls(w.view.viewport(), [more["red-line"]])
    qtbot.waitUntil(lambda: "red-line.png" in names(w)[:2], timeout=10000)


def test_read_only_library_can_be_searched_but_not_changed(qtbot, make_window, settings,
                                                            chart_folder):
    with Engine(settings) as eng:
        eng.ingest([chart_folder])
    holder = Engine(settings)  # another process would hold the writer lock like this
    try:
        w = make_window(settings, read_only=True)
        assert "read-only" in w.windowTitle()
        assert not w.act_add_files.isEnabled()
        assert w.model.rowCount() == 6
        with qtbot.waitSignal(w.searchShown, timeout=10000):
            w.search_text("red chart")
        assert names(w)[0] == "red-bar.png"
        w.add_paths([str(chart_folder)])
        assert "read-only" in w.message_bar.message()
    finally:
        holder.close()


def test_grid_tiles_are_uniform_and_show_scores_only_for_searches(qtbot, filled_window):
    w = filled_window
    w.resize(1000, 700)
    qtbot.waitUntil(lambda: w.view.visualRect(w.model.index(1, 0)).top()
                    == w.view.visualRect(w.model.index(0, 0)).top())
    r0 = w.view.visualRect(w.model.index(0, 0))
    r1 = w.view.visualRect(w.model.index(1, 0))
    assert r0.size() == r1.size() and r1.left() > r0.right()  # side by side, same size
    assert w.view.indexAt(r1.center()).row() == 1

    def badge_pixels() -> int:  # on the second tile (the first one's badge is highlighted)
        img = w.view.viewport().grab(r1).toImage()
        # the badge sits at the top right of the thumbnail: dark, with white text
        dark = 0
        for x in range(img.width() - 70, img.width() - 10):
            for y in range(10, 26):
                c = img.pixelColor(x, y)
                dark += c.lightness() < 90
        return dark

    assert badge_pixels() < 20  # browsing: no score badge
    # a purely visual query (no word is a keyword): every tile has a CLIP score
    # (a text match leaves the badge off picture-only candidates: test_ocr_gui)
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        w.search_text("chart")
    assert badge_pixels() > 100  # searching: the score badge is drawn


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open files on Linux")
def test_searching_all_day_does_not_use_up_file_handles(qtbot, filled_window):
    """Each search runs on the same long-lived worker thread, so the library's per-thread
    database connections do not pile up (one per query would exhaust file handles)."""
    w = filled_window
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        w.search_text("red chart")
    before = len(os.listdir("/proc/self/fd"))
    for k in range(40):
        with qtbot.waitSignal(w.searchShown, timeout=10000):
            w.search_text(f"{COLOURS[k % 6]} chart {k}")
    assert len(os.listdir("/proc/self/fd")) - before < 4
    assert names(w)[0] == "yellow-bar.png"  # the last query: "yellow chart 39"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice: Linux")
def test_ingest_runs_below_the_gui_thread_so_the_window_keeps_drawing(qtbot, window, chart_folder,
                                                                    monkeypatch):
    from vector_studio_gui.core import ingest as ingest_mod

    seen: list[int] = []
    real = ingest_mod.load_image

    def spy(*a, **kw):
        seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real(*a, **kw)

    monkeypatch.setattr(ingest_mod, "load_image", spy)
    gui = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    report = ingest_and_wait(qtbot, window, [str(chart_folder)])
    assert report.added == len(seen) > 0
    assert min(seen) > gui
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == gui


def test_after_the_first_listing_full_garbage_collections_skip_start_up_objects(qtbot, window):
    import gc

    qtbot.waitUntil(lambda: gc.get_freeze_count() > 0, timeout=2000)
    # a full collection (which stops every thread, the GUI's included) walks only what was
    # made since start-up, not the tens of thousands of objects of modules, Qt and models
    assert gc.get_freeze_count() > 10_000


def test_thumbnails_are_loaded_at_the_tiles_size_again_after_a_resize(qtbot, filled_window):
    w = filled_window
    box = w.view.delegate.thumb

    def loaded_at(size) -> bool:
        pix = w.model.data(w.model.index(0, 0), Qt.ItemDataRole.DecorationRole)
        return (w.model.data(w.model.index(0, 0), ResultsModel.ThumbnailLoadedRole)
                and max(pix.width(), pix.height()) > 0
                and (pix.width() == size.width() or pix.height() == size.height()))

    # drawn as loaded: no rescaling of every thumbnail on every scroll frame
    qtbot.waitUntil(lambda: loaded_at(box), timeout=5000)
    w.resize(w.width() + 170, w.height())
    qtbot.waitUntil(lambda: w.view.delegate.thumb != box, timeout=2000)
    new = w.view.delegate.thumb
    qtbot.waitUntil(lambda: w.model.thumb_size == new and loaded_at(new), timeout=5000)


def test_replacing_the_engine_lets_the_collector_free_the_old_one(qtbot, window):
    import gc
    import weakref

    qtbot.waitUntil(lambda: gc.get_freeze_count() > 0, timeout=2000)
    window.engine.cycle = [window.engine]  # caught in a reference cycle, as objects can be
    old = weakref.ref(window.engine)
    window.replace_engine()
    qtbot.waitUntil(lambda: window.model.shown_generation == window.model.generation,
                    timeout=5000)
    gc.collect()
    assert old() is None  # its models and connections are not kept for the process's life
