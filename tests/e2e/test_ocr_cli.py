"""Chart text from the command line: ingest reads it (or not, --no-ocr), search shows what
matched, ``vector-studio ocr PATH`` prints what was read. Real subprocesses, real OCR."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from cli_runner import run_cli
from ocr_helpers import write_text_charts


def run(env, *args, check_rc: int | None = 0) -> subprocess.CompletedProcess:
    return run_cli(env, *args, check_rc=check_rc, timeout=180)  # reading text takes longer


@pytest.fixture
def ocr_env(settings, cli_env):
    settings.ocr.enabled = True  # on by default for users; the shared test settings turn it off
    settings.save(Path(cli_env["VECTOR_STUDIO_CONFIG"]))
    return cli_env


@pytest.fixture
def text_charts(tmp_path):
    return write_text_charts(tmp_path / "charts", {
        "a": ("blue", "XAUUSD 4H Gold price 2024"),
        "b": ("red", "EURUSD Daily RSI"),
    })


def test_ingest_reads_the_text_and_search_shows_what_matched(ocr_env, text_charts):
    out = json.loads(run(ocr_env, "ingest", text_charts["a"].parent, "--json").stdout)
    assert out["added"] == 2
    assert out["ocr"]["read"] == 2 and out["ocr"]["with_text"] == 2 and out["ocr"]["pending"] == 0
    assert out["ocr"]["failed"] == [] and out["ocr"]["embedded"] == 2
    res = json.loads(run(ocr_env, "search", "XAUUSD", "--json").stdout)
    top = res["results"][0]
    assert Path(top["path"]).name == "a.png"
    assert top["signals"]["keyword"] > 0 and "image" in top["signals"]
    assert top["signals"]["matched"] == ["XAUUSD 4H Gold price 2024"]
    assert res["model"].endswith("toy-text")  # the OCR text's text-model signal took part
    # quoted phrase filter and -word exclusion
    res = json.loads(run(ocr_env, "search", '"EURUSD daily"', "--json").stdout)
    assert [Path(r["path"]).name for r in res["results"]] == ["b.png"]
    res = json.loads(run(ocr_env, "search", "daily price -rsi", "--json").stdout)
    assert [Path(r["path"]).name for r in res["results"]] == ["a.png"]
    text = run(ocr_env, "search", "gold price").stdout
    assert "a.png" in text.splitlines()[0] and '"XAUUSD 4H Gold price 2024"' in text
    info = json.loads(run(ocr_env, "library", "info", "--json").stdout)
    assert info["ocr"]["read"] == 2 and info["ocr"]["pending"] == 0


def test_no_ocr_skips_the_text_and_a_later_ingest_reads_it(ocr_env, text_charts):
    folder = text_charts["a"].parent
    out = json.loads(run(ocr_env, "ingest", folder, "--no-ocr", "--json").stdout)
    assert out["added"] == 2 and "ocr" not in out
    info = json.loads(run(ocr_env, "library", "info", "--json").stdout)
    assert info["ocr"]["pending"] == 2
    res = json.loads(run(ocr_env, "search", "XAUUSD", "--json").stdout)
    assert all("keyword" not in r["signals"] for r in res["results"])
    out = json.loads(run(ocr_env, "ingest", folder, "--json").stdout)  # nothing new: reads text
    assert out["unchanged"] == 2 and out["ocr"]["read"] == 2
    res = json.loads(run(ocr_env, "search", "XAUUSD", "--json").stdout)
    assert Path(res["results"][0]["path"]).name == "a.png"


def test_ocr_command_prints_lines_with_confidence(cli_env, text_charts, tmp_path):
    out = json.loads(run(cli_env, "ocr", text_charts["b"], "--json").stdout)
    (entry,) = out["files"]
    assert entry["path"] == str(text_charts["b"])
    (line,) = entry["lines"]
    assert line["text"] == "EURUSD Daily RSI" and line["confidence"] > 0.8 and len(line["box"]) == 4
    text = run(cli_env, "ocr", text_charts["b"]).stdout
    assert text.split(None, 1)[1].strip() == "EURUSD Daily RSI"
    float(text.split()[0])  # the confidence comes first
    (tmp_path / "bad.png").write_text("not an image")
    proc = run(cli_env, "ocr", tmp_path / "bad.png", check_rc=1)
    assert proc.stderr.startswith("error:") and "Traceback" not in proc.stderr
