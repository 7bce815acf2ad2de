"""The command line as a user (or a script) runs it: real subprocesses, real files, JSON out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_runner import run_cli as run
from conftest import TOY_CLIP, write_charts

from vector_studio_gui.modelgen.toy import COLOURS, build_broken_models, build_toy_clip


def test_ingest_then_search_gives_ranked_json(cli_env, tmp_path):
    write_charts(tmp_path / "charts", kinds=("bar", "line"))
    out = json.loads(run(cli_env, "ingest", tmp_path / "charts", "--json").stdout)
    assert out["added"] == 2 * len(COLOURS)
    assert set(out) >= {"added", "unchanged", "duplicates", "failed", "took_s", "images_per_s"}
    res = json.loads(run(cli_env, "search", "orange chart", "-k", "3", "--json").stdout)
    assert set(res) >= {"query", "model", "took_ms", "results"}
    assert res["model"] == TOY_CLIP and res["query"] == "orange chart"
    assert [Path(r["path"]).name.split("-")[0] for r in res["results"][:2]] == ["orange"] * 2
    first = res["results"][0]
    assert set(first) >= {"id", "path", "score", "signals"}
    scores = [r["score"] for r in res["results"]]
    assert scores == sorted(scores, reverse=True)


def test_search_by_image_and_similar(cli_env, tmp_path):
    charts = write_charts(tmp_path / "charts")
    run(cli_env, "ingest", tmp_path / "charts")
    res = json.loads(run(cli_env, "search", "--image", charts["blue-bar"], "--json").stdout)
    assert Path(res["results"][0]["path"]).name == "blue-bar.png"
    assert res["results"][0]["score"] == pytest.approx(1.0, abs=1e-4)
    sim = json.loads(run(cli_env, "search", "--similar", charts["blue-bar"], "--json").stdout)
    assert all(Path(r["path"]).name != "blue-bar.png" for r in sim["results"])


def test_reingest_reports_unchanged_and_skipped_files_keep_exit_zero(cli_env, tmp_path):
    write_charts(tmp_path / "charts")
    (tmp_path / "charts" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    first = json.loads(run(cli_env, "ingest", tmp_path / "charts", "--json").stdout)
    assert first["added"] == len(COLOURS)
    assert [Path(f["path"]).name for f in first["failed"]] == ["broken.png"]
    again = json.loads(run(cli_env, "ingest", tmp_path / "charts", "--json").stdout)
    assert again["added"] == 0 and again["unchanged"] == len(COLOURS)


def test_errors_are_one_line_without_traceback(cli_env, tmp_path):
    proc = run(cli_env, "ingest", tmp_path / "does-not-exist", check_rc=1)
    assert proc.stderr.strip().startswith("error:") and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run(cli_env, "ingest", tmp_path / "models", check_rc=1)
    assert "no images found" in proc.stderr
    write_charts(tmp_path / "c", colours=["red"])
    proc = run(cli_env, "--clip-model", "clip-vit-b32", "ingest", tmp_path / "c", check_rc=1)
    assert "models install clip-vit-b32" in proc.stderr and "Traceback" not in proc.stderr


def test_usage_errors_exit_2(cli_env):
    assert run(cli_env, "search", check_rc=2).stderr
    assert run(cli_env, "search", "   ", check_rc=2).stderr
    assert run(cli_env, "bogus-command", check_rc=2).stderr


def test_embed_prints_the_vector(cli_env, tmp_path):
    out = json.loads(run(cli_env, "embed", "--text", "red chart", "--json").stdout)
    assert out["model"] == TOY_CLIP and out["dim"] == len(out["vector"]) == 16
    assert sum(v * v for v in out["vector"]) == pytest.approx(1.0, abs=1e-4)
    img = write_charts(tmp_path / "c", colours=["red"])["red-bar"]
    img_vec = json.loads(run(cli_env, "embed", "--image", img, "--json").stdout)["vector"]
    cos = sum(a * b for a, b in zip(out["vector"], img_vec, strict=True))
    assert cos > 0.9  # the red query and the red chart share a direction
    text = json.loads(run(cli_env, "embed", "--text", "gold", "--model", "toy-text", "--json").stdout)
    assert text["dim"] == 32


def test_models_list_import_verify(cli_env, tmp_path):
    listing = json.loads(run(cli_env, "models", "list", "--json").stdout)
    by_name = {m["name"]: m for m in listing}
    assert by_name["clip-vit-b32"]["role"] == "clip" and not by_name["clip-vit-b32"]["installed"]
    assert by_name[TOY_CLIP]["installed"] and by_name["minilm-l6"]["role"] == "text"
    src = build_toy_clip(tmp_path / "mine", layout="flat")
    out = json.loads(run(cli_env, "models", "import", src, "--name", "mine", "--kind", "clip",
                         "--json").stdout)
    assert out["dim"] == 16
    assert json.loads(run(cli_env, "models", "verify", "mine", "--json").stdout)["ok"]


def test_import_of_a_bad_folder_is_refused_with_the_reason(cli_env, tmp_path):
    broken = build_broken_models(tmp_path / "broken")
    proc = run(cli_env, "models", "import", broken["mismatched_clip"], "--name", "bad",
               "--kind", "clip", check_rc=1)
    assert "16-d" in proc.stderr and "8-d" in proc.stderr
    proc = run(cli_env, "models", "import", tmp_path / "broken", "--name", "bad2", "--kind", "text",
               check_rc=1)
    assert "model.onnx" in proc.stderr
    listing = json.loads(run(cli_env, "models", "list", "--json").stdout)
    assert not {"bad", "bad2"} & {m["name"] for m in listing}


def test_install_without_network_fails_fast_with_a_clear_message(cli_env):
    proc = run(cli_env, "models", "install", "clip-vit-b32", check_rc=1)
    assert "hub" in proc.stderr.lower() and "import" in proc.stderr


def test_library_info_check_note_remove(cli_env, tmp_path):
    charts = write_charts(tmp_path / "charts")
    run(cli_env, "ingest", tmp_path / "charts")
    info = json.loads(run(cli_env, "library", "info", "--json").stdout)
    assert info["items"] == len(COLOURS) and info["models"][TOY_CLIP]["dim"] == 16
    check = json.loads(run(cli_env, "library", "check", "--json").stdout)
    assert check["ok"] and check["items"] == len(COLOURS) and check["problems"] == []
    run(cli_env, "note", charts["purple-bar"], "copper breakdown on the weekly")
    res = json.loads(run(cli_env, "search", "copper breakdown", "--json").stdout)
    assert Path(res["results"][0]["path"]).name == "purple-bar.png"
    assert "note" in res["results"][0]["signals"]
    run(cli_env, "library", "remove", charts["purple-bar"])
    info = json.loads(run(cli_env, "library", "info", "--json").stdout)
    assert info["items"] == len(COLOURS) - 1
    rebuilt = json.loads(run(cli_env, "library", "rebuild-index", "--json").stdout)
    assert rebuilt["items"] == len(COLOURS) - 1


def test_reencode_switches_the_library_and_config(cli_env, tmp_path):
    write_charts(tmp_path / "charts")
    run(cli_env, "ingest", tmp_path / "charts")
    src = build_toy_clip(tmp_path / "wide", dim=24)
    run(cli_env, "models", "import", src, "--name", "wide", "--kind", "clip")
    proc = run(cli_env, "--clip-model", "wide", "search", "red", check_rc=1)
    assert "reencode --model wide" in proc.stderr
    out = json.loads(run(cli_env, "library", "reencode", "--model", "wide", "--json").stdout)
    assert out["encoded"] == len(COLOURS)
    res = json.loads(run(cli_env, "search", "red", "--json").stdout)  # config now says "wide"
    assert res["model"] == "wide" and Path(res["results"][0]["path"]).name == "red-bar.png"


def test_bare_onnx_file_from_the_user_guide_workflow(cli_env, tmp_path, models_dir):
    from vector_studio_gui.modelgen.toy import build_custom_text_onnx

    build_custom_text_onnx(models_dir / "custom" / "my_model.onnx", dim=768)
    (models_dir / "custom" / "tokenizer.json").write_bytes(
        (models_dir / "toy-text" / "tokenizer.json").read_bytes())
    cfg = json.loads(Path(cli_env["VECTOR_STUDIO_CONFIG"]).read_text())
    cfg["embedding"].update({"text_model": "custom/my_model.onnx", "text_dim": 768,
                             "project_to": 512})
    Path(cli_env["VECTOR_STUDIO_CONFIG"]).write_text(json.dumps(cfg))
    out = json.loads(run(cli_env, "embed", "--text", "gold price", "--model",
                         "custom/my_model.onnx", "--json").stdout)
    assert out["dim"] == 512  # the configured projection applies to what is printed and stored
    write_charts(tmp_path / "charts")
    run(cli_env, "ingest", tmp_path / "charts")
    run(cli_env, "note", tmp_path / "charts" / "red-bar.png", "gold price")
    info = json.loads(run(cli_env, "library", "info", "--json").stdout)
    assert info["models"]["custom/my_model.onnx->512"]["dim"] == 512
