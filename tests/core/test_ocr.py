"""Reading chart text with RapidOCR (real PP-OCR models from the rapidocr wheel, offline)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from ocr_helpers import text_chart

from vector_studio_gui.core import ocr
from vector_studio_gui.core.errors import ImageError
from vector_studio_gui.core.ocr import OcrError, OcrLine, OcrReader, read_text
from vector_studio_gui.core.query import matched_lines, parse_query


@pytest.fixture(scope="session")
def title_chart():
    return text_chart("blue", "XAUUSD Gold price 2024")


@pytest.fixture(scope="session")
def read_title(title_chart):
    """The title chart read once for the session (the OCR engine loads once per process)."""
    return read_text(title_chart, threads=1)


def test_reads_a_generated_charts_title(read_title, title_chart):
    words = " ".join(ln.text for ln in read_title).lower().split()
    assert {"xauusd", "gold", "price", "2024"} <= set(words)
    title = next(ln for ln in read_title if "XAUUSD" in ln.text)
    assert title.confidence > 0.8
    assert len(title.box) == 4
    w, h = title_chart.size
    assert all(0 <= x <= w and 0 <= y <= h for x, y in title.box)
    assert title.box[0][1] < 50  # the title sits at the top


def test_accepts_paths_bytes_and_arrays(title_chart, read_title, tmp_path):
    buf = io.BytesIO()
    title_chart.save(buf, "PNG")
    (tmp_path / "title.png").write_bytes(buf.getvalue())
    want = [ln.text for ln in read_title]
    assert [ln.text for ln in read_text(str(tmp_path / "title.png"), threads=1)] == want
    assert [ln.text for ln in read_text(np.asarray(title_chart), threads=1)] == want


def test_unreadable_files_raise_image_errors(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(ImageError):
        read_text(bad, threads=1)
    with pytest.raises(ImageError):
        read_text(tmp_path / "missing.png", threads=1)


def test_an_engine_failure_is_an_ocr_error(monkeypatch):
    reader = OcrReader(threads=1)

    class Broken:
        def __call__(self, img):
            raise RuntimeError("onnx exploded")

    monkeypatch.setattr(reader, "_engine", Broken())
    with pytest.raises(OcrError, match="onnx exploded"):
        reader.read(np.zeros((50, 50, 3), np.uint8))


def test_text_for_embedding_puts_the_title_first_and_drops_numbers():
    def line(text, h):
        return OcrLine(text, ((0, 0), (100, 0), (100, h), (0, h)), 0.9)

    lines = [line("Jan", 10), line("1,850.00", 10), line("Gold price 2024", 30), line("RSI", 12),
             line("Jan", 10)]
    assert ocr.text_for_embedding(lines) == "Gold price 2024. RSI. Jan"
    assert ocr.search_aliases([line("XAU/USD 4H", 20), line("2024-01-05", 10)]) == ["XAUUSD"]


def test_ocr_line_json_round_trip():
    ln = OcrLine("EUR/USD", ((1.0, 2.0), (3.0, 2.0), (3.0, 4.0), (1.0, 4.0)), 0.98765)
    assert OcrLine.from_json(ln.to_json()) == OcrLine("EUR/USD", ln.box, 0.9877)


def test_query_syntax():
    q = parse_query('gold "XAUUSD 4H" -weekly -"head and shoulders" e-mini')
    assert q.words == ("gold", "e-mini")
    assert q.phrases == ("XAUUSD 4H",)
    assert q.excluded == ("weekly", "head and shoulders")
    assert q.semantic_text == "gold e-mini XAUUSD 4H"
    assert q.filter_match() == '"xauusd 4h"'
    assert q.exclude_match() == '"weekly" OR "head and shoulders"'
    assert '"gold"' in q.keyword_match() and '"e mini"' in q.keyword_match()
    assert parse_query('the "unclosed phrase').phrases == ("unclosed phrase",)
    assert parse_query("the of a").keyword_match() == ""  # stopwords only
    assert parse_query("XAU/USD").keyword_match() == '"xau usd" OR "xauusd"'
    assert not parse_query("-gold").positive


def test_matched_lines_are_whole_words_and_joined_tickers():
    lines = ["XAU/USD 4H", "Golden cross", "gold price"]
    assert matched_lines([["gold"]], lines) == ["gold price"]
    assert matched_lines([["xauusd"]], lines) == ["XAU/USD 4H"]
    assert matched_lines([["golden", "cross"]], lines) == ["Golden cross"]
