"""Chart text in the window: the background reading-text pass, text matches in the details pane
(highlighted words, boxes on the preview), the search box's syntax help and the score badges.

OCR is real (RapidOCR, ~0.5 s per small chart), so these tests use one to three small charts
whose title is written large (tests/ocr_helpers.py).
"""

from __future__ import annotations

import copy
import os
import sys
import threading
import time

import pytest
from ocr_helpers import title_font, write_text_charts

from gui.helpers import ingest_and_wait, names
from vector_studio_gui.core.engine import Engine
from vector_studio_gui.core.types import Item, OcrProgress, OcrReport, SearchResult
from vector_studio_gui.gui.chart_text import join_runs, match_spans, query_terms, span_box
from vector_studio_gui.gui.details_pane import TEXT_OFF
from vector_studio_gui.gui.results_model import ResultsModel
from vector_studio_gui.gui.search_box import SYNTAX_TIP

#: the chart titles: file names say nothing, so only the text read in the picture can match
TITLED = {"chart-a": ("red", "GOLD PRICE 2024"), "chart-b": ("blue", "CLOUD COSTS")}
TITLE_AT = (12, 8)  # where ocr_helpers.text_chart writes the title


@pytest.fixture
def ocr_settings(settings):
    settings.ocr.enabled = True
    return settings


@pytest.fixture
def titled(tmp_path):
    return write_text_charts(tmp_path / "titled", TITLED)


def _title_box(word: str) -> tuple[float, float, float, float]:
    """Where ``word`` of the title is drawn (x0, y0, x1, y1 in the chart's pixels)."""
    title = TITLED["chart-a"][1]
    font = title_font()
    start = title.index(word)
    x0 = TITLE_AT[0] + font.getlength(title[:start])
    x1 = TITLE_AT[0] + font.getlength(title[:start + len(word)])
    _, top, _, bottom = font.getbbox(title)
    return x0, TITLE_AT[1] + top, x1, TITLE_AT[1] + bottom


def _bounds(box) -> tuple[float, float, float, float]:
    xs = [x for x, _ in box]
    ys = [y for _, y in box]
    return min(xs), min(ys), max(xs), max(ys)


def _overlap_x(a, b) -> float:
    """Intersection over union of two boxes' horizontal extents."""
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    union = max(a[2], b[2]) - min(a[0], b[0])
    return inter / union if union else 0.0


class GatedReader:
    """Wraps the real OCR reader: each read says it started, then waits for the gate."""

    def __init__(self, real, open_gate: bool = False) -> None:
        self.real = real
        self.entered = threading.Event()
        self.gate = threading.Event()
        if open_gate:
            self.gate.set()

    def read(self, image):
        self.entered.set()
        if not self.gate.wait(30):
            raise RuntimeError("the test never opened the gate")
        return self.real.read(image)


def _select_first(qtbot, w) -> None:
    w.view.setCurrentIndex(w.model.index(0, 0))
    qtbot.waitUntil(lambda: w.details.item is not None
                    and w.details.item.id == w.model.row(0).item.id)


# ----------------------------------------------------------------------------- the pass
def test_dropped_charts_have_their_text_read_and_a_title_word_finds_the_chart(
        qtbot, make_window, ocr_settings, titled):
    w = make_window(ocr_settings)
    seen: list[tuple[OcrProgress, str, bool]] = []
    w.text_pass.progressed.connect(lambda p: seen.append(
        (p, w.text_pass.progress_widget.label.text(), w.text_pass.progress_widget.isVisible())))
    with qtbot.waitSignal(w.text_pass.finished, timeout=60000) as done:
        report = ingest_and_wait(qtbot, w, [titled["chart-a"].parent])
        assert report.added == 2
    ocr = done.args[0]
    assert isinstance(ocr, OcrReport)
    assert ocr.read == 2 and not ocr.failed and not ocr.cancelled and ocr.with_text >= 1
    # progress in the status bar: "Reading chart text: 1/2", with a Cancel button
    assert [(p.done, p.total) for p, _, _ in seen][-2:] == [(1, 2), (2, 2)]
    assert any(text.startswith("Reading chart text: 1/2") and shown for _, text, shown in seen)
    assert w.text_pass.progress_widget.cancel_button.text() == "Cancel"
    qtbot.waitUntil(lambda: w.text_pass.progress_widget.isHidden())
    assert "read the text of 2 charts" in w.statusBar().currentMessage().lower()

    # a word of the title puts its chart first
    with qtbot.waitSignal(w.searchShown, timeout=10000) as shown:
        w.search.setText("gold")
        w.search.search_now()
    assert names(w)[0] == "chart-a.png"
    first = shown.args[0].results[0]
    assert first.matched and "GOLD PRICE 2024" in first.matched
    assert w.model.data(w.model.index(0, 0), ResultsModel.BadgeRole) is not None

    # the details pane shows the text read, the query's word highlighted ...
    _select_first(qtbot, w)
    d = w.details
    qtbot.waitUntil(lambda: "GOLD PRICE 2024" in d.text_view.toPlainText())
    assert d.text_view.isReadOnly()
    assert d.highlighted_text() == ["GOLD"]
    assert d.text_status.text().endswith("1 match")
    # ... and the preview outlines where the word is on the chart
    qtbot.waitUntil(lambda: not d.preview.pixmap_size().isEmpty())
    qtbot.waitUntil(lambda: d.preview.pixmap_size().width() == 480)  # the file, full size
    boxes = d.preview.overlay_boxes()
    assert len(boxes) == 1
    got = _bounds(boxes[0])
    want = _title_box("GOLD")
    assert _overlap_x(got, want) > 0.6, (got, want)
    assert got[1] <= want[1] + 3 and got[3] >= want[3] - 3  # the letters' height is inside
    # boxes are scaled from the chart's pixels onto the shown picture
    rect = d.preview.image_rect()
    assert not rect.isEmpty() and rect.width() < 480  # shown smaller than the chart
    poly = d.preview.overlay_polygons()[0].boundingRect()
    sx, sy = rect.width() / 480, rect.height() / 300
    assert sx == pytest.approx(sy, rel=0.01)
    assert poly.left() == pytest.approx(rect.left() + got[0] * sx, abs=0.01)
    assert poly.top() == pytest.approx(rect.top() + got[1] * sy, abs=0.01)
    assert poly.width() == pytest.approx((got[2] - got[0]) * sx, abs=0.01)
    assert rect.contains(poly)
    assert not d.preview.grab().isNull() and not w.grab().isNull()  # painting the overlay

    # the whole title for a query naming it, one phrase for a quoted one
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        w.search.setText("gold price 2024")
        w.search.search_now()
    assert names(w)[0] == "chart-a.png"
    _select_first(qtbot, w)
    qtbot.waitUntil(lambda: d.highlighted_text() == ["GOLD PRICE 2024"])  # adjacent: one mark
    assert len(d.preview.overlay_boxes()) == 1
    title = (_title_box("GOLD")[0], 0, _title_box("2024")[2], 0)
    assert _overlap_x(_bounds(d.preview.overlay_boxes()[0]), title) > 0.85
    assert not d.form.isRowVisible(d.matched_label)  # the match is the chart text shown
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        w.search.setText("2024 gold")
        w.search.search_now()
    _select_first(qtbot, w)
    qtbot.waitUntil(lambda: d.highlighted_text() == ["GOLD", "2024"])
    boxes = [_bounds(b) for b in d.preview.overlay_boxes()]
    assert len(boxes) == 2
    for word, box in zip(("GOLD", "2024"), boxes, strict=True):
        assert _overlap_x(box, _title_box(word)) > 0.6, (word, box, _title_box(word))
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        w.search.setText('"price 2024" -cloud')
        w.search.search_now()
    assert names(w) == ["chart-a.png"]  # the phrase filters, -cloud excludes
    _select_first(qtbot, w)
    qtbot.waitUntil(lambda: d.highlighted_text() == ["PRICE 2024"])
    assert len(d.preview.overlay_boxes()) == 1
    # browsing the library: nothing highlighted, the text stays
    w.show_library()
    qtbot.waitUntil(lambda: w.model.is_browsing())
    _select_first(qtbot, w)
    qtbot.waitUntil(lambda: d.highlighted_text() == [] and d.text_view.toPlainText() != "")
    assert d.preview.overlay_boxes() == []


def test_searching_works_while_text_is_read_and_the_shown_search_then_shows_text_matches(
        qtbot, make_window, ocr_settings, titled):
    w = make_window(ocr_settings)
    gated = GatedReader(w.engine.ocr_reader())
    w.engine.ocr_reader = lambda: gated
    ingest_and_wait(qtbot, w, [titled["chart-a"].parent])
    qtbot.waitUntil(gated.entered.is_set, timeout=10000)  # the pass is inside an OCR read
    assert w.text_pass.running
    try:
        # a search runs and shows while the pass is busy (no lock shared with searching)
        with qtbot.waitSignal(w.searchShown, timeout=10000) as shown:
            w.search.setText("gold")
            w.search.search_now()
        assert not any(r.matched for r in shown.args[0].results)  # no text read yet
        _select_first(qtbot, w)
        qtbot.waitUntil(lambda: w.details.text_status.text() == "not read yet")
    finally:
        gated.gate.set()
    # when the pass ends the shown search runs again and the title's chart comes first
    with qtbot.waitSignal(w.searchShown, timeout=60000) as refreshed:
        qtbot.waitSignal(w.text_pass.finished, timeout=60000).wait()
    assert refreshed.args[0].results[0].item.path.endswith("chart-a.png")
    assert names(w)[0] == "chart-a.png"
    assert w.search.text() == "gold"
    # the details of the selected chart follow (its text was read meanwhile)
    sel = w.details.item.path
    qtbot.waitUntil(lambda: w.details.text_status.text() != "not read yet")
    if sel.endswith("chart-a.png"):
        qtbot.waitUntil(lambda: w.details.highlighted_text() == ["GOLD"])


def test_closing_while_text_is_read_cancels_and_exits_within_two_seconds(
        qtbot, make_window, ocr_settings, tmp_path):
    charts = write_text_charts(tmp_path / "three", {
        "c1": ("red", "GOLD PRICE 2024"), "c2": ("blue", "CLOUD COSTS"),
        "c3": ("green", "CHURN RATE")})
    w = make_window(ocr_settings)
    real = w.engine.ocr_reader()
    real.read(charts["c1"])  # the OCR models are loaded before the clock starts
    gated = GatedReader(real, open_gate=True)
    w.engine.ocr_reader = lambda: gated
    ingest_and_wait(qtbot, w, [charts["c1"].parent])
    qtbot.waitUntil(gated.entered.is_set, timeout=10000)  # a chart is being read now
    t0 = time.perf_counter()
    w.close()
    took = time.perf_counter() - t0
    assert took < 2.0, f"closing took {took:.2f} s"
    assert all(t.thread.isFinished() for t in w.runner._tasks)  # every thread joined
    # the library is intact: what was read is kept, the rest is read next time
    with Engine(ocr_settings) as eng:
        counts = eng.library.ocr_counts()
        assert counts["items"] == 3
        assert counts["read"] + counts["pending"] == 3 and counts["pending"] >= 1
        assert not list(eng.library.integrity_problems())


def test_no_pass_runs_while_switched_off_and_switching_it_on_reads_the_text(
        qtbot, make_window, settings, titled):
    assert settings.ocr.enabled is False
    w = make_window(settings)
    started: list[bool] = []
    w.text_pass.started.connect(lambda: started.append(True))
    assert not w._text_timer.isActive()
    ingest_and_wait(qtbot, w, [titled["chart-a"]])
    qtbot.waitUntil(lambda: not w.ingest.running)
    assert started == [] and not w.text_pass.running and w.runner.active("read-text") == []
    assert not w._text_timer.isActive()
    assert w.engine.library.ocr_counts()["read"] == 0
    _select_first(qtbot, w)
    qtbot.waitUntil(lambda: w.details.text_status.text() == "off")
    assert "switched off" in w.details.text_view.placeholderText()
    assert w.details._text_state == TEXT_OFF
    # switched on in the settings: the charts not read yet are read now
    new = copy.deepcopy(w.settings)
    new.ocr.enabled = True
    with qtbot.waitSignal(w.text_pass.finished, timeout=60000) as done:
        w.apply_settings(new)
    assert done.args[0].read == 1
    assert w.engine.settings.ocr.enabled
    qtbot.waitUntil(lambda: "GOLD PRICE 2024" in w.details.text_view.toPlainText())
    # and switched off again: nothing more is started
    off = copy.deepcopy(w.settings)
    off.ocr.enabled = False
    w.apply_settings(off)
    assert not w.read_chart_text() and not w.text_pass.running


def test_charts_not_read_yet_are_read_at_start_up(qtbot, make_window, ocr_settings, titled):
    with Engine(ocr_settings) as eng:  # added without reading text (like `ingest --no-ocr`)
        eng.ingest([titled["chart-b"]])
        assert eng.library.ocr_counts()["pending"] == 1
    w = make_window(ocr_settings)
    assert w._text_timer.isActive()  # after the first listing, not before
    qtbot.waitUntil(lambda: w.text_pass.last_report is not None, timeout=60000)
    assert w.text_pass.last_report.read == 1
    assert w.engine.library.ocr_counts()["pending"] == 0


def test_start_up_with_nothing_to_read_loads_no_model_and_shows_no_progress(
        qtbot, make_window, ocr_settings):
    w = make_window(ocr_settings)
    shown: list = []
    w.text_pass.progressed.connect(shown.append)
    qtbot.waitUntil(lambda: w.text_pass.last_report is not None, timeout=30000)
    assert w.text_pass.last_report.read == 0 and shown == []
    assert w.text_pass.progress_widget.isHidden()
    assert w.engine._text_enc is None and w.engine._image_enc is None  # nothing was loaded


def test_cancel_stops_the_pass_and_keeps_what_was_read(qtbot, make_window, ocr_settings, titled):
    w = make_window(ocr_settings)
    gated = GatedReader(w.engine.ocr_reader())
    w.engine.ocr_reader = lambda: gated
    ingest_and_wait(qtbot, w, [titled["chart-a"].parent])
    qtbot.waitUntil(gated.entered.is_set, timeout=10000)
    qtbot.waitUntil(lambda: w.text_pass.progress_widget.isVisible())
    with qtbot.waitSignal(w.text_pass.finished, timeout=30000) as done:
        w.text_pass.progress_widget.cancel_button.click()
        assert w.text_pass.progress_widget.cancel_button.text() == "Cancelling…"
        gated.gate.set()
    report = done.args[0]
    assert report.cancelled and report.read == 1 and report.pending == 1
    qtbot.waitUntil(lambda: not w.text_pass.running)
    assert w.text_pass.progress_widget.isHidden()


def test_worker_threads_keep_their_library_connection_while_other_threads_start(qtbot, window):
    """The library closes the read connections of threads it believes have ended; Qt threads
    must count as alive while they run, or a new thread (the reading-text pass starting) closes
    a lane's connection under it (a crash when it happens mid-query)."""
    w = window
    lib = w.engine.library
    got: list = []
    w.search_lane.submit(lambda: (lib.count(), lib._read), on_result=got.append)
    qtbot.waitUntil(lambda: len(got) == 1)
    done: list = []
    w.runner.start("probe", lambda ctx: (threading.get_ident(), lib.count()),
                   on_result=done.append)  # a new thread opens its first connection
    qtbot.waitUntil(lambda: len(done) == 1)
    w.search_lane.submit(lambda: (lib.count(), lib._read), on_result=got.append)
    qtbot.waitUntil(lambda: len(got) == 2)
    assert got[1][1] is got[0][1]  # the lane's connection was kept open, not replaced
    qtbot.waitUntil(lambda: w.runner.active("probe") == [])
    assert done[0][0] not in threading._active  # an ended task no longer counts as alive


# ----------------------------------------------------------------------------- search box
def test_the_search_box_tooltip_documents_the_query_syntax(window):
    tip = window.search.toolTip()
    assert tip == SYNTAX_TIP
    assert "quoted phrase" in tip and "must appear in the chart's" in tip
    assert "-word" in tip and "excludes" in tip
    assert "plain words are semantic" in tip


# ----------------------------------------------------------------------------- badges
def _result(iid: int, score: float, signals: dict) -> SearchResult:
    item = Item(iid, f"/c/{iid}.png", (f"/c/{iid}.png",), "h", 1, 10, 10, 0.0)
    return SearchResult(item, score, signals)


def test_picture_only_candidates_of_a_text_match_show_no_score_badge(qtmodeltester):
    model = ResultsModel()
    hybrid = [_result(1, 0.93, {"image": 0.31, "keyword": 4.2}),
              _result(2, 0.41, {"ocr": 0.52}),
              _result(3, 0.0, {"image": 0.18})]
    assert model.set_results(model.begin_query(), hybrid)
    badges = [model.data(model.index(r, 0), ResultsModel.BadgeRole) for r in range(3)]
    assert badges == ["0.930", "0.410", None]
    assert model.data(model.index(2, 0), ResultsModel.ScoreRole) == 0.0  # still ranked
    assert "picture only" in model.data(model.index(2, 0), 3)  # ToolTipRole
    # a plain CLIP search: every tile shows its cosine
    assert model.set_results(model.begin_query(), [_result(1, 0.31, {"image": 0.31}),
                                                   _result(3, 0.18, {"image": 0.18})])
    assert [model.data(model.index(r, 0), ResultsModel.BadgeRole) for r in range(2)] == [
        "0.310", "0.180"]
    qtmodeltester.check(model)


# ----------------------------------------------------------------------------- matching
def test_query_words_are_found_in_chart_text_like_the_keyword_index_finds_them():
    assert query_terms("gold price -weekly") == [["gold"], ["price"]]
    assert query_terms('the "XAU/USD 4H" chart') == [["xau", "usd", "4h"]]
    assert query_terms("") == [] and query_terms(None) == []
    text = "XAU/USD 4H · Gold price 2024"
    assert match_spans([["xauusd"]], text) == [(0, 7)]  # a split ticker
    assert match_spans(query_terms('"gold price"'), text) == [(13, 23)]
    assert match_spans(query_terms("price gold"), text) == [(13, 17), (18, 23)]
    assert match_spans(query_terms("golden"), text) == []  # whole words only
    assert match_spans(query_terms("cafe"), "Café prices") == [(0, 4)]  # accents ignored
    assert match_spans([["xau"], ["xau", "usd"]], text) == [(0, 7)]  # overlaps merged
    # words next to each other make one mark; a word between keeps them apart
    assert join_runs([(13, 17), (18, 23)], text) == [(13, 23)]
    assert join_runs([(0, 7), (13, 17)], text) == [(0, 7), (13, 17)]


def test_a_words_box_is_cut_from_its_lines_box_also_when_rotated():
    flat = ((0.0, 0.0), (100.0, 0.0), (100.0, 20.0), (0.0, 20.0))
    assert span_box(flat, "abcd efgh", 0, 9) == flat
    (x0, y0), (x1, _), (x2, y2), (x3, _) = span_box(flat, "abcd efgh", 5, 9, pad=0)
    assert (x0, x1, x2, x3) == pytest.approx((500 / 9, 100, 100, 500 / 9)) and (y0, y2) == (0, 20)
    # a label rotated 90 degrees (reading downwards): the cut runs along y
    up = ((20.0, 0.0), (20.0, 100.0), (0.0, 100.0), (0.0, 0.0))
    box = span_box(up, "abcd", 2, 4, pad=0)
    assert box == ((20.0, 50.0), (20.0, 100.0), (0.0, 100.0), (0.0, 50.0))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread nice: Linux")
def test_the_text_pass_runs_lowered_but_builds_the_query_text_model_at_normal_priority(
        engine, chart_folder, monkeypatch):
    from vector_studio_gui.gui.text_pass import _read_text
    from vector_studio_gui.gui.workers import TaskContext

    engine.ingest([chart_folder])
    nice = {}
    real_encoder = engine.text_encoder

    def text_encoder():
        # typed queries reuse this model: threads ONNX Runtime starts now inherit this priority
        nice.setdefault("text_encoder", os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return real_encoder()

    def read_text_pass(**kw):
        nice["pass"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        return OcrReport()

    monkeypatch.setattr(engine, "text_encoder", text_encoder)
    monkeypatch.setattr(engine, "read_text_pass", read_text_pass)
    main = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    t = threading.Thread(target=_read_text, args=(TaskContext(lambda _v: None), engine))
    t.start()
    t.join()
    assert nice["text_encoder"] == main
    assert nice["pass"] > main
