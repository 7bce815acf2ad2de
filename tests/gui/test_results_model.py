"""The results model: Qt's model contract, stale generations, lazy thumbnails, drag data."""

from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QImage, QPixmap

from vector_studio_gui.core.types import Item, SearchResult
from vector_studio_gui.gui.results_model import BATCH, ResultsModel, Row, load_thumbnails


def item(i: int, name: str | None = None) -> Item:
    path = f"/charts/{name or f'chart-{i}.png'}"
    return Item(id=i, path=path, paths=(path,), content_hash=f"h{i}", size=2048 + i,
                width=640, height=360, added=1_700_000_000.0 + i, note="")


def results(*ids: int) -> list[SearchResult]:
    return [SearchResult(item(i), 0.9 - k * 0.1, {"image": 0.9 - k * 0.1})
            for k, i in enumerate(ids)]


def red_image() -> QImage:
    img = QImage(256, 144, QImage.Format.Format_RGB32)
    img.fill(Qt.GlobalColor.red)
    return img


def test_model_passes_qt_model_tester(qtbot, qtmodeltester):
    model = ResultsModel()
    qtmodeltester.check(model)  # empty
    g = model.begin_query()
    assert model.set_results(g, results(1, 2, 3))
    qtmodeltester.check(model)
    model.set_thumbnails({1: red_image(), 2: None})
    qtmodeltester.check(model)
    g = model.begin_query()
    model.set_items(g, [item(i) for i in range(10)], more=True)
    qtmodeltester.check(model)


def test_model_passes_the_python_model_tester_too(qtbot, qtmodeltester):
    """pytest-qt's Python tester also checks the types each role returns."""
    model = ResultsModel()
    g = model.begin_query()
    model.set_results(g, results(1, 2, 3))
    model.set_thumbnails({1: red_image(), 2: None})
    qtmodeltester.check(model, force_py=True)
    g = model.begin_query()
    model.set_items(g, [item(i) for i in range(5)], more=True)  # checked again on reset
    model.remove_ids([2])
    model.prepend_items([item(20)])


def test_roles_carry_what_the_grid_and_the_details_show(qtbot):
    model = ResultsModel()
    g = model.begin_query()
    model.set_results(g, [SearchResult(item(7, "gold-weekly.png"), 0.8125,
                                       {"image": 0.31, "note": 0.72})])
    idx = model.index(0, 0)
    assert model.data(idx, Qt.ItemDataRole.DisplayRole) == "gold-weekly.png"
    assert model.data(idx, ResultsModel.ScoreRole) == 0.8125
    assert model.data(idx, ResultsModel.SignalsRole) == {"image": 0.31, "note": 0.72}
    assert model.data(idx, ResultsModel.IdRole) == 7
    assert model.data(idx, ResultsModel.ItemRole).path == "/charts/gold-weekly.png"
    tip = model.data(idx, Qt.ItemDataRole.ToolTipRole)
    assert "/charts/gold-weekly.png" in tip and "640 × 360 px" in tip
    assert "score 0.812 (image 0.310, note 0.720)" in tip
    assert isinstance(model.data(idx, Qt.ItemDataRole.DecorationRole), QPixmap)


def test_results_of_an_older_query_are_dropped(qtbot):
    model = ResultsModel()
    slow = model.begin_query()  # "red chart" was typed ...
    fast = model.begin_query()  # ... then "blue chart"
    assert model.set_results(fast, results(4, 5))
    assert not model.set_results(slow, results(1, 2, 3))  # the late answer to "red chart"
    assert model.ids() == [4, 5]
    assert model.shown_generation == fast
    # appending a browse page that belongs to an older listing is dropped too
    assert not model.append_items(slow, [item(9)], more=False)
    assert model.ids() == [4, 5]


def test_thumbnails_are_requested_lazily_in_batches(qtbot):
    model = ResultsModel()
    g = model.begin_query()
    model.set_items(g, [item(i) for i in range(BATCH + 10)])
    wanted: list[list[int]] = []
    model.thumbnailsWanted.connect(wanted.append)
    assert wanted == []  # nothing is loaded before a tile is painted
    for r in range(model.rowCount()):
        pix = model.data(model.index(r, 0), Qt.ItemDataRole.DecorationRole)
        assert isinstance(pix, QPixmap)  # a placeholder meanwhile
    qtbot.waitUntil(lambda: sum(map(len, wanted)) == BATCH + 10)
    assert [len(b) for b in wanted] == [BATCH, 10]
    # asking again does not request again
    model.data(model.index(0, 0), Qt.ItemDataRole.DecorationRole)
    qtbot.wait(10)
    assert len(wanted) == 2
    with qtbot.waitSignal(model.dataChanged) as blocker:
        model.set_thumbnails({0: red_image()})
    assert blocker.args[0].row() == 0
    pix = model.data(model.index(0, 0), Qt.ItemDataRole.DecorationRole)
    assert pix.toImage().pixelColor(5, 5).name() == "#ff0000"
    assert model.data(model.index(0, 0), ResultsModel.ThumbnailLoadedRole)


def test_thumbnails_load_on_another_thread_as_qimages(qtbot, engine, chart_folder):
    engine.ingest([chart_folder])
    ids = {it.path.rsplit("/", 1)[-1]: it.id for it in engine.browse()}
    out: dict = {}

    def work():  # what the thumbnail lane does
        out.update(load_thumbnails(engine.thumbnail, list(ids.values()), QSize(208, 136), 1.0))

    t = threading.Thread(target=work)
    t.start()
    t.join()
    red = out[ids["red-bar.png"]]
    assert isinstance(red, QImage) and red.width() <= 208 and red.height() <= 136
    # the red chart's thumbnail has red bars in it
    colours = {red.pixelColor(x, y).name() for x in range(0, red.width(), 4)
               for y in range(0, red.height(), 4)}
    assert any(c.startswith("#d") or c.startswith("#e") for c in colours)
    assert all(isinstance(v, QImage) for v in out.values())


def test_browse_pages_and_new_items_and_removal(qtbot):
    model = ResultsModel()
    g = model.begin_query()
    model.set_items(g, [item(i) for i in (9, 8, 7)], more=True)
    assert model.canFetchMore(model.index(-1, 0))
    with qtbot.waitSignal(model.moreWanted):
        model.fetchMore(model.index(-1, 0))
    assert not model.canFetchMore(model.index(-1, 0))  # one page at a time
    assert model.append_items(g, [item(6), item(5)], more=False)
    assert model.ids() == [9, 8, 7, 6, 5]
    assert model.prepend_items([item(11), item(10), item(9)]) == 2  # 9 is already shown
    assert model.ids() == [11, 10, 9, 8, 7, 6, 5]
    assert model.remove_ids([10, 6, 99]) == 2
    assert model.ids() == [11, 9, 8, 7, 5]
    assert model.row_of(8) == 2
    model.update_item(Item(8, "/charts/chart-8.png", ("/charts/chart-8.png",), "h8", 1, 640, 360,
                           0.0, note="breakout"))
    assert "note: breakout" in model.data(model.index(2, 0), Qt.ItemDataRole.ToolTipRole)


def test_dragging_tiles_out_hands_over_file_urls(qtbot):
    model = ResultsModel()
    g = model.begin_query()
    model.set_rows(g, [Row(item(1, "a.png")), Row(item(2, "b.png"))])
    flags = model.flags(model.index(0, 0))
    assert flags & Qt.ItemFlag.ItemIsDragEnabled
    mime = model.mimeData([model.index(1, 0), model.index(0, 0)])
    assert [u.toLocalFile() for u in mime.urls()] == ["/charts/a.png", "/charts/b.png"]
    assert mime.text() == "/charts/a.png\n/charts/b.png"
    assert "text/uri-list" in model.mimeTypes()


def test_text_that_matched_the_query_is_shown(qtbot):
    if "matched" not in SearchResult.__dataclass_fields__:
        pytest.skip("this engine does not report matched text")
    from vector_studio_gui.gui.details_pane import DetailsPane

    model = ResultsModel()
    g = model.begin_query()
    model.set_results(g, [SearchResult(item(3, "gold.png"), 0.7, {"image": 0.3, "keyword": 0.9},
                                       matched=("Gold price breakout", "weekly"))])
    idx = model.index(0, 0)
    assert model.data(idx, ResultsModel.MatchedRole) == ["Gold price breakout", "weekly"]
    assert "matched: Gold price breakout · weekly" in model.data(idx, Qt.ItemDataRole.ToolTipRole)
    pane = DetailsPane()
    qtbot.addWidget(pane)
    row = model.row(0)
    pane.show_item(row.item, row.score, row.signals, None, row.matched)
    assert pane.form.isRowVisible(pane.matched_label)
    assert pane.matched_label.text() == "Gold price breakout\nweekly"
    pane.show_item(item(4), None)
    assert not pane.form.isRowVisible(pane.matched_label)  # browsing: no empty row
