"""Keyword index, the reading-text pass and hybrid ranking (toy CLIP, toy text model)."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import write_charts
from ocr_helpers import write_text_charts

from vector_studio_gui.core.engine import Engine
from vector_studio_gui.core.errors import VectorStudioError
from vector_studio_gui.core.library import SCHEMA_VERSION, Library
from vector_studio_gui.core.ocr import OcrError, OcrLine
from vector_studio_gui.core.search import Ranked, fuse_hybrid

BOX = ((0.0, 0.0), (100.0, 0.0), (100.0, 20.0), (0.0, 20.0))


def _lines(*texts: str) -> list[OcrLine]:
    return [OcrLine(t, BOX, 0.95) for t in texts]


def _name(r) -> str:
    return Path(r.item.path).name


@pytest.fixture
def charts(engine, tmp_path):
    """Six colour charts, ingested, with OCR lines stored as if the pass had read them."""
    paths = write_charts(tmp_path / "c")
    engine.ingest([tmp_path / "c"])
    ids = {k: engine.item_by_path(p).id for k, p in paths.items()}
    engine.library.set_ocr([
        (ids["red-bar"], _lines("EUR/USD Daily", "RSI divergence", "2023"), ""),
        (ids["blue-bar"], _lines("XAUUSD 4H Gold price 2024", "EMA 50"), ""),
        (ids["green-bar"], _lines("Gold price 2023", "weekly breakout"), ""),
        (ids["yellow-bar"], _lines("BTCUSD weekly", "support and resistance"), ""),
    ], "test")
    return ids


# ----------------------------------------------------------------------------- keyword index
def test_fts_finds_a_ticker_year_and_indicator(engine, charts):
    lib = engine.library
    assert [i for i, _ in lib.keyword_search('"xauusd"')] == [charts["blue-bar"]]
    assert [i for i, _ in lib.keyword_search('"eurusd"')] == [charts["red-bar"]]  # joined alias
    assert {i for i, _ in lib.keyword_search('"2024" OR "2023"')} == {
        charts["blue-bar"], charts["green-bar"], charts["red-bar"]}
    assert lib.text_match_ids('"rsi"') == {charts["red-bar"]}
    assert lib.text_match_ids('"purple"') == {charts["purple-bar"]}  # the file name


def test_fts_follows_notes_removals_relocations_and_paths(engine, charts, tmp_path):
    lib = engine.library
    engine.set_note(charts["orange-bar"], "copper breakdown")
    assert lib.text_match_ids('"copper"') == {charts["orange-bar"]}
    engine.set_note(charts["orange-bar"], "")
    assert lib.text_match_ids('"copper"') == set()
    engine.remove_items([charts["blue-bar"]])
    assert lib.text_match_ids('"xauusd"') == set()
    assert lib.text_index_count() == lib.count()
    old = str(tmp_path / "c")
    engine.relocate(old, str(tmp_path / "moved"))
    assert lib.texts([charts["red-bar"]])[charts["red-bar"]][2] == "red-bar.png"
    lib.add_path(charts["red-bar"], str(tmp_path / "copies" / "eur chart.png"), 1, 0.0)
    assert lib.text_match_ids('"eur" AND "chart"') == {charts["red-bar"]}
    lib.remove_paths([str(tmp_path / "copies" / "eur chart.png")])
    assert lib.text_match_ids('"eur" AND "chart"') == set()


def test_check_repairs_a_keyword_index_out_of_sync(engine, charts):
    with engine.library.transaction() as db:
        db.execute("DELETE FROM text_fts WHERE rowid=?", (charts["blue-bar"],))
    rep = engine.check()
    assert rep.ok and any("keyword index" in r for r in rep.repaired)
    assert engine.library.text_match_ids('"xauusd"') == {charts["blue-bar"]}


def test_schema_upgrade_of_a_library_without_the_text_tables(settings, tmp_path):
    folder = tmp_path / "c"
    write_charts(folder, colours=["red", "blue"])
    with Engine(settings) as eng:
        eng.ingest([folder])
        eng.set_note(eng.item_by_path(folder / "red-bar.png").id, "gold breakout")
        db_path = eng.library.db_path
    db = sqlite3.connect(db_path)  # make it look like a library written before OCR existed
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'").fetchall():
        db.execute(f"DROP TRIGGER {name}")
    db.executescript("DROP TABLE text_fts; DROP TABLE ocr_lines; DROP TABLE ocr_done;"
                     "UPDATE meta SET value='1' WHERE key='schema';")
    db.commit()
    db.close()
    ro = Library(db_path.parent, read_only=True)  # read-only: not upgraded
    assert not ro.has_text_index() and not ro.has_ocr_text()
    assert ro.ocr_counts()["pending"] == 2
    ro.close()
    with Engine(settings, read_only=True) as eng:  # search degrades: no keywords, no filters
        resp = eng.search_text('"gold" red')
        assert [r.item.path for r in resp.results][0].endswith("red-bar.png")
        assert any("keyword index" in w for w in resp.warnings)
        assert "read-only" in eng.read_text_pass(force=True).skipped
    with Engine(settings) as eng:
        lib = eng.library
        assert lib.meta("schema") == str(SCHEMA_VERSION)
        assert lib.text_index_count() == 2
        red = eng.item_by_path(folder / "red-bar.png").id
        assert lib.text_match_ids('"gold"') == {red} == lib.text_match_ids('"red"')
        assert len(lib.ids_without_ocr()) == 2
        assert eng.search_text('"gold" breakout').results[0].item.id == red
    with Engine(settings) as eng:  # opening again changes nothing
        assert eng.library.text_index_count() == 2


def test_a_newer_schema_is_refused(settings, tmp_path):
    with Engine(settings) as eng:
        db_path = eng.library.db_path
    db = sqlite3.connect(db_path)
    db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    with pytest.raises(VectorStudioError, match="newer"):
        Engine(settings)


# ----------------------------------------------------------------------------- query syntax
def test_quoted_phrase_filters_and_minus_excludes(engine, charts):
    ids = [r.item.id for r in engine.search_text('"gold price"', k=10).results]
    assert set(ids) == {charts["blue-bar"], charts["green-bar"]}
    ids = [r.item.id for r in engine.search_text('"gold price" -2024', k=10).results]
    assert ids == [charts["green-bar"]]
    ids = [r.item.id for r in engine.search_text("gold -weekly", k=10).results]
    assert charts["green-bar"] not in ids and charts["yellow-bar"] not in ids
    assert charts["blue-bar"] in ids
    assert engine.search_text('"no such words here"').results == []
    with pytest.raises(VectorStudioError, match="only excludes"):
        engine.search_text("-gold")


def test_results_say_which_signals_and_text_matched(engine, charts):
    top = engine.search_text("XAUUSD gold", k=3).results[0]
    assert top.item.id == charts["blue-bar"]
    assert top.signals["keyword"] > 0 and "image" in top.signals
    assert top.matched == ("XAUUSD 4H Gold price 2024",)
    assert 0 < top.score <= 1


def test_the_text_wins_when_the_image_signal_points_elsewhere(engine, tmp_path):
    # the toy CLIP reads "red" as the colour: its best image is the red chart, but the
    # query is the title written on the blue one
    paths = write_text_charts(tmp_path / "t", {
        "c1": ("blue", "Red Sea freight rates 2024"),
        "c2": ("red", "Quarterly sales"),
        "c3": ("green", "Bitcoin weekly"),
    })
    engine.ingest([tmp_path / "t"])
    rep = engine.read_text_pass(force=True)
    assert rep.read == 3 and not rep.failed and rep.with_text == 3
    query = "red sea freight rates 2024"
    image_only = engine.search_text(query, k=3, signals=("image",)).results
    assert _name(image_only[0]) == "c2.png"
    for fusion in ("rrf", "weighted"):
        top = engine.search_text(query, k=3, fusion=fusion).results[0]
        assert top.item.id == engine.item_by_path(paths["c1"]).id, fusion
        assert {"keyword", "ocr"} <= set(top.signals)
        assert top.matched == ("Red Sea freight rates 2024",)


# ----------------------------------------------------------------------------- the OCR pass
class FakeReader:
    """Returns a line per chart named after its file; can cancel or fail on the way."""

    def __init__(self, cancel_after: int | None = None, fail_on: str = "") -> None:
        self.calls = 0
        self.cancel = threading.Event()
        self.cancel_after = cancel_after
        self.fail_on = fail_on

    def read(self, img):
        self.calls += 1
        if self.cancel_after is not None and self.calls >= self.cancel_after:
            self.cancel.set()
        colour = max(("red", (220, 30, 30)), ("blue", (30, 60, 220)), ("green", (30, 180, 60)),
                     ("yellow", (230, 210, 40)), ("purple", (140, 50, 170)),
                     ("orange", (240, 140, 20)), key=lambda c: _share(img, c[1]))[0]
        if colour == self.fail_on:
            raise OcrError("text recognition failed: boom")
        return _lines(f"{colour.upper()}USD weekly chart")


def _share(img, rgb) -> int:
    a = np.asarray(img.convert("RGB").resize((64, 36))).reshape(-1, 3).astype(int)
    return int((np.abs(a - np.array(rgb)).sum(axis=1) < 60).sum())


def test_the_pass_is_resumable_and_reports_progress(engine, tmp_path, monkeypatch):
    write_charts(tmp_path / "c")
    engine.ingest([tmp_path / "c"])
    first = FakeReader(cancel_after=2)
    monkeypatch.setattr(engine, "ocr_reader", lambda: first)
    seen = []
    rep = engine.read_text_pass(force=True, cancel=first.cancel, progress=seen.append)
    assert rep.cancelled and rep.read == 2 and rep.pending == 4
    assert seen[0].message == "Reading chart text: 0/6" and seen[-1].done == 2
    assert len(engine.library.ids_without_ocr()) == 4
    second = FakeReader()
    monkeypatch.setattr(engine, "ocr_reader", lambda: second)
    rep = engine.read_text_pass(force=True)
    assert second.calls == 4 and rep.read == 4 and rep.pending == 0 and not rep.cancelled
    assert rep.embedded == 4  # the OCR text is embedded with the text model (source 'ocr')
    assert len(engine.library.embedding_ids(engine.text_space(), source="ocr")) == 6
    assert engine.read_text_pass(force=True).read == 0  # nothing left to read
    top = engine.search_text("PURPLEUSD").results[0]
    assert _name(top) == "purple-bar.png" and top.matched == ("PURPLEUSD weekly chart",)


def test_an_ocr_error_on_one_chart_is_reported_and_the_pass_goes_on(engine, tmp_path,
                                                                     monkeypatch):
    paths = write_charts(tmp_path / "c", colours=["red", "blue", "green"])
    engine.ingest([tmp_path / "c"])
    paths["green-bar"].unlink()  # a file gone since ingest: reported, retried next time
    monkeypatch.setattr(engine, "ocr_reader", lambda: FakeReader(fail_on="blue"))
    rep = engine.read_text_pass(force=True)
    assert rep.read == 1 and len(rep.failed) == 2
    assert {Path(f.path).name for f in rep.failed} == {"blue-bar.png", "green-bar.png"}
    assert any("boom" in f.error for f in rep.failed)
    assert rep.pending == 1  # the missing file; the OCR failure is not retried forever
    assert engine.library.ocr_counts()["failed"] == 1


def test_the_pass_respects_the_setting_and_embeds_later(settings, tmp_path, monkeypatch):
    settings.embedding.text_model = "minilm-l6"  # not installed: keywords only
    write_charts(tmp_path / "c", colours=["red", "blue"])
    with Engine(settings) as eng:
        eng.ingest([tmp_path / "c"])
        assert eng.read_text_pass().skipped  # settings.ocr.enabled is off in tests
        monkeypatch.setattr(eng, "ocr_reader", lambda: FakeReader())
        rep = eng.read_text_pass(force=True)
        assert rep.read == 2 and rep.embedded == 0
        assert any("keywords only" in w for w in eng.warnings)
        assert _name(eng.search_text("BLUEUSD").results[0]) == "blue-bar.png"
    settings.embedding.text_model = "toy-text"
    with Engine(settings) as eng:  # the text model now works: the next pass embeds the text
        assert eng.read_text_pass(force=True).embedded == 2


# ----------------------------------------------------------------------------- fusion
def _r(ids, scores):
    return Ranked(np.array(ids, np.int64), np.array(scores, np.float32))


def test_fusion_degrades_gracefully_when_a_signal_is_missing():
    image = _r([1, 2, 3], [0.30, 0.25, 0.20])
    keyword = _r([3, 2], [6.0, 2.0])
    ocr = _r([3, 1], [0.6, 0.2])
    for method in ("rrf", "weighted"):
        full = fuse_hybrid({"image": image, "keyword": keyword, "ocr": ocr}, 3, method=method)
        assert full[0][0] == 3 and all(0 <= s <= 1 for _, s, _ in full)
        no_text = fuse_hybrid({"image": image, "keyword": keyword}, 3, method=method)
        assert no_text[0][0] == 3
        empty_kw = fuse_hybrid({"image": image, "keyword": _r([], [])}, 3, method=method)
        assert [i for i, _, _ in empty_kw] == [1, 2, 3]
    top = fuse_hybrid({"image": image, "keyword": keyword, "ocr": ocr}, 1, method="rrf")[0]
    assert top[2] == {"image": pytest.approx(0.2), "keyword": 6.0, "ocr": pytest.approx(0.6)}
