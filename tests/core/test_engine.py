"""End-to-end behaviour of the engine with tiny real ONNX models (toy CLIP, toy text model)."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import TOY_CLIP, write_charts
from PIL import Image

from vector_studio_gui.core.engine import Engine
from vector_studio_gui.core.errors import SpaceMismatchError, VectorStudioError
from vector_studio_gui.core.models import ModelStore
from vector_studio_gui.modelgen.toy import COLOURS, build_toy_clip, toy_chart_image


def _names(resp) -> list[str]:
    return [Path(r.item.path).name for r in resp.results]


def test_typed_colour_query_ranks_that_chart_first(engine, chart_folder):
    report = engine.ingest([chart_folder])
    assert report.added == len(COLOURS) and not report.failed
    for colour in COLOURS:
        resp = engine.search_text(f"a {colour} bar chart", k=3)
        assert _names(resp)[0] == f"{colour}-bar.png"
        assert resp.results[0].score > resp.results[1].score
        # the file name ("red-bar.png") matches too: image and keyword signals are fused
        assert resp.results[0].signals["image"] > resp.results[1].signals.get("image", 0)


def test_image_query_and_more_like_this(engine, tmp_path):
    charts = write_charts(tmp_path / "c", kinds=("bar", "line"))
    engine.ingest([tmp_path / "c"])
    query = tmp_path / "query.png"
    toy_chart_image("green", kind="pie").save(query)
    assert _names(engine.search_image(query, k=2))[0].startswith("green-")
    green_bar = engine.item_by_path(charts["green-bar"])
    similar = engine.search_similar(green_bar.id, k=3)
    assert green_bar.id not in [r.item.id for r in similar.results]
    assert _names(similar)[0] == "green-line.png"


def test_image_query_accepts_bytes_and_pil_images(engine, chart_folder):
    engine.ingest([chart_folder])
    img = toy_chart_image("purple")
    assert _names(engine.search_image(img, k=1)) == ["purple-bar.png"]
    data = (chart_folder / "orange-bar.png").read_bytes()
    assert _names(engine.search_image(data, k=1)) == ["orange-bar.png"]


def test_min_score_and_k(engine, chart_folder):
    engine.ingest([chart_folder])
    assert len(engine.search_text("red", k=2).results) == 2
    strict = engine.search_text("red", k=10, min_score=0.5)
    assert _names(strict) == ["red-bar.png"]


def test_results_survive_reopening(settings, chart_folder):
    with Engine(settings) as eng:
        eng.ingest([chart_folder])
    with Engine(settings) as eng:
        assert eng.library.count() == len(COLOURS)
        assert _names(eng.search_text("blue", k=1)) == ["blue-bar.png"]
        item = eng.item_by_path(chart_folder / "blue-bar.png")
        assert (item.width, item.height) == (640, 360)
        thumb = eng.thumbnail(item.id)
        assert thumb[:2] == b"\xff\xd8"  # a JPEG thumbnail made at ingest


def test_reingest_of_unchanged_files_loads_no_model(settings, chart_folder, monkeypatch):
    with Engine(settings) as eng:
        eng.ingest([chart_folder])
    with Engine(settings) as eng:
        monkeypatch.setattr(Engine, "image_encoder",
                            lambda self: pytest.fail("unchanged files must cost no inference"))
        report = eng.ingest([chart_folder])
    assert (report.added, report.unchanged, report.duplicates) == (0, len(COLOURS), 0)


def test_same_content_under_two_paths_is_stored_once(engine, chart_folder, tmp_path):
    copy = tmp_path / "elsewhere" / "copy of red.png"
    copy.parent.mkdir()
    shutil.copy(chart_folder / "red-bar.png", copy)
    report = engine.ingest([chart_folder, copy])
    assert report.added == len(COLOURS) and report.duplicates == 1
    item = engine.item_by_path(copy)
    assert set(item.paths) == {str(chart_folder / "red-bar.png"), str(copy)}
    assert engine.library.count() == len(COLOURS)


def test_duplicates_within_one_run_are_attached_after_commit(engine, tmp_path):
    folder = tmp_path / "dups"
    folder.mkdir()
    toy_chart_image("red").save(folder / "a.png")
    for name in ("b.png", "c.png"):
        shutil.copy(folder / "a.png", folder / name)
    report = engine.ingest([folder])
    assert (report.added, report.duplicates) == (1, 2)
    item = engine.item_by_path(folder / "c.png")
    assert len(item.paths) == 3


def test_changed_file_is_re_encoded_and_old_content_forgotten(engine, tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    path = folder / "chart.png"
    toy_chart_image("red").save(path)
    engine.ingest([folder])
    toy_chart_image("blue").save(path)
    os.utime(path, (1, 1))  # make sure size/mtime differ from what was recorded
    report = engine.ingest([folder])
    assert report.added == 1
    assert engine.library.count() == 1
    assert _names(engine.search_text("blue", k=1)) == ["chart.png"]
    assert engine.search_text("blue", k=1).results[0].score > 0.9


def test_bad_files_are_reported_and_do_not_stop_the_run(engine, chart_folder):
    (chart_folder / "empty.png").write_bytes(b"")
    (chart_folder / "notes.png").write_text("this is not an image")
    (chart_folder / "diagram.svg").write_text("<svg/>")
    report = engine.ingest([chart_folder, chart_folder / "missing.png"])
    assert report.added == len(COLOURS)
    reasons = {Path(f.path).name: f.error for f in report.failed}
    assert set(reasons) == {"empty.png", "notes.png", "diagram.svg", "missing.png"}
    assert "empty" in reasons["empty.png"]
    assert "SVG" in reasons["diagram.svg"]
    assert "no such file" in reasons["missing.png"]


def test_progress_reports_every_file_and_ends_complete(engine, tmp_path):
    write_charts(tmp_path / "c", kinds=("bar", "line", "pie"))
    seen = []
    engine.ingest([tmp_path / "c"], progress=seen.append)
    assert seen[-1].done == seen[-1].total == 18
    dones = [p.done for p in seen]
    assert dones == sorted(dones)
    assert seen[-1].added == 18 and seen[-1].eta_s == pytest.approx(0, abs=1e-6)


def test_cancel_keeps_committed_batches_and_resume_completes_without_duplicates(settings, tmp_path):
    write_charts(tmp_path / "c", kinds=("bar", "line", "pie"), size=(320, 180))
    cancel = threading.Event()
    committed: list[int] = []

    def on_batch(ids):
        committed.extend(ids)
        cancel.set()

    with Engine(settings) as eng:
        first = eng.ingest([tmp_path / "c"], cancel=cancel, on_batch=on_batch)
    assert first.cancelled and 0 < first.added < 18
    with Engine(settings) as eng:
        assert eng.library.count() == first.added
        assert set(eng.index().ids()) == set(committed)
        second = eng.ingest([tmp_path / "c"])
        assert second.added == 18 - first.added
        assert second.unchanged == first.added
        assert eng.library.count() == 18
        assert len(eng.index()) == 18


def test_notes_are_saved_embedded_and_fused_with_image_similarity(engine, chart_folder):
    engine.ingest([chart_folder])
    yellow = engine.item_by_path(chart_folder / "yellow-bar.png")
    engine.set_note(yellow.id, "gold breakout on the weekly")
    assert engine.item(yellow.id).note == "gold breakout on the weekly"
    resp = engine.search_text("gold breakout", k=3)
    top = resp.results[0]
    assert top.item.id == yellow.id
    assert "note" in top.signals
    assert "toy-text" in resp.model
    # an image-only query still ranks by colour; the note does not pollute it
    assert _names(engine.search_text("red", k=1)) == ["red-bar.png"]


def test_clearing_a_note_removes_its_signal(engine, chart_folder):
    engine.ingest([chart_folder])
    item = engine.item_by_path(chart_folder / "green-bar.png")
    engine.set_note(item.id, "gold breakout")
    engine.set_note(item.id, "")
    assert all("note" not in r.signals for r in engine.search_text("gold breakout").results)


def test_notes_fall_back_to_keywords_without_a_text_model(settings, chart_folder):
    settings.embedding.text_model = "minilm-l6"  # not installed in tests
    with Engine(settings) as eng:
        eng.ingest([chart_folder])
        item = eng.item_by_path(chart_folder / "blue-bar.png")
        eng.set_note(item.id, "gold breakout")
        assert any("keywords" in w for w in eng.warnings)
        resp = eng.search_text("gold", k=2)
    assert resp.results[0].item.id == item.id and "note" in resp.results[0].signals
    assert any("keywords" in w for w in resp.warnings)


def test_library_built_with_another_model_refuses_queries_and_reencode_fixes_it(
        settings, chart_folder, models_dir, tmp_path):
    with Engine(settings) as eng:
        eng.ingest([chart_folder])
    ModelStore(models_dir).import_folder(build_toy_clip(tmp_path / "other", dim=24),
                                         "toy-clip-24", "clip")
    settings.embedding.clip_model = "toy-clip-24"
    with Engine(settings) as eng:
        with pytest.raises(SpaceMismatchError, match="reencode --model toy-clip-24"):
            eng.search_text("red")
        with pytest.raises(SpaceMismatchError):
            eng.ingest([chart_folder])
        result = eng.reencode("toy-clip-24")
        assert result["encoded"] == len(COLOURS) and result["switched"]
        assert _names(eng.search_text("red", k=1)) == ["red-bar.png"]
        assert eng.info()["models"]["toy-clip-24"]["dim"] == 24


def test_cancelled_reencode_keeps_old_model_answering(settings, chart_folder, models_dir, tmp_path):
    with Engine(settings) as eng:
        eng.ingest([chart_folder])
        ModelStore(models_dir).import_folder(build_toy_clip(tmp_path / "o", dim=24), "t24", "clip")
        cancel = threading.Event()

        def progress(p):
            cancel.set()

        with pytest.raises(VectorStudioError, match="cancelled"):
            eng.reencode("t24", progress=progress, cancel=cancel)
        assert eng.active_space() == TOY_CLIP
        assert _names(eng.search_text("red", k=1)) == ["red-bar.png"]
        done = eng.reencode("t24")  # resumes
        assert done["encoded"] < len(COLOURS) and eng.active_space() == "t24"


def test_remove_forgets_items_everywhere(settings, chart_folder):
    with Engine(settings) as eng:
        eng.ingest([chart_folder])
        out = eng.remove_paths([chart_folder / "red-bar.png", chart_folder / "nope.png"])
        assert out["removed_items"] == 1 and out["unknown"] == [str(chart_folder / "nope.png")]
        assert "red-bar.png" not in _names(eng.search_text("red", k=10))
    with Engine(settings) as eng:  # and after reopening (index saved)
        assert "red-bar.png" not in _names(eng.search_text("red", k=10))
        assert eng.check().ok


def test_check_reports_missing_files_and_relocate_fixes_them(engine, chart_folder, tmp_path):
    engine.ingest([chart_folder])
    moved = tmp_path / "moved"
    chart_folder.rename(moved)
    report = engine.check()
    assert len(report.missing_files) == len(COLOURS)
    assert engine.relocate(str(chart_folder), str(moved)) == len(COLOURS)
    assert engine.check().missing_files == []
    assert Path(engine.search_text("red", k=1).results[0].item.path).parent == moved


def test_check_rebuilds_a_corrupt_index(settings, chart_folder):
    with Engine(settings) as eng:
        eng.ingest([chart_folder])
        path = eng.index().path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with Engine(settings) as eng:
        report = eng.check()
        assert report.ok
        assert any("corrupt" in r for r in report.repaired)
        assert _names(eng.search_text("red", k=1)) == ["red-bar.png"]


def test_empty_query_is_a_clear_error_and_empty_library_answers_nothing(engine):
    with pytest.raises(VectorStudioError, match="empty"):
        engine.search_text("   \x00 ")
    resp = engine.search_text("red chart")
    assert resp.results == [] and "empty" in resp.warnings[0]


def test_long_and_foreign_queries_work(engine, chart_folder):
    engine.ingest([chart_folder])
    long_query = "red " + "very " * 2000 + "chart"
    assert _names(engine.search_text(long_query, k=1)) == ["red-bar.png"]
    for q in ("黄金价格分析 red", "красный red", "red\tchart\x07"):
        assert engine.search_text(q, k=1).results


def test_a_model_that_is_not_installed_gives_a_clear_message(settings, chart_folder):
    settings.embedding.clip_model = "clip-vit-b32"
    with Engine(settings) as eng, pytest.raises(VectorStudioError, match="models install clip-vit-b32"):
        eng.ingest([chart_folder])


def test_concurrent_searches_during_ingest_only_see_committed_items(settings, tmp_path):
    write_charts(tmp_path / "c", kinds=("bar", "line", "pie"), size=(320, 180))
    with Engine(settings) as eng:
        eng.ingest([tmp_path / "c" / "red-bar.png"])
        errors: list[BaseException] = []
        stop = threading.Event()

        def searcher():
            try:
                while not stop.is_set():
                    for r in eng.search_text("red", k=20).results:
                        assert r.item.path and r.item.content_hash
            except BaseException as exc:  # noqa: BLE001 - surfaced below
                errors.append(exc)

        t = threading.Thread(target=searcher)
        t.start()
        try:
            eng.ingest([tmp_path / "c"])
        finally:
            stop.set()
            t.join()
        assert not errors
        assert eng.library.count() == 18


def test_projection_config_records_space_dim(settings, chart_folder):
    settings.embedding.project_to = 48
    with Engine(settings) as eng:
        eng.ingest([chart_folder])
        item = eng.item_by_path(chart_folder / "red-bar.png")
        eng.set_note(item.id, "gold")
        space = eng.library.space(eng.text_space())
        assert space.dim == 48 and space.info["project_to"] == 48
        vec = eng.library.vector(item.id, eng.text_space(), source="note")
        assert vec.shape == (48,) and np.isclose(np.linalg.norm(vec), 1.0, atol=1e-5)


def test_exif_rotated_chart_is_stored_upright(engine, tmp_path):
    img = Image.new("RGB", (200, 100), (220, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "rot.jpg"
    img.save(path, exif=exif)
    engine.ingest([path])
    item = engine.item_by_path(path)
    assert (item.width, item.height) == (100, 200)


def test_threads_that_end_do_not_leave_database_connections_open(engine, chart_folder):
    """Every ingest runs loader threads and the GUI runs tasks on short-lived threads."""
    engine.ingest([chart_folder])
    for _ in range(5):
        t = threading.Thread(target=lambda: engine.search_text("red", k=3))
        t.start()
        t.join()
        engine.ingest([chart_folder])
    engine.search_text("blue", k=1)  # a new connection prunes those of ended threads
    assert engine.library.open_connections() <= 3


def test_touched_but_unchanged_file_counts_as_unchanged(engine, chart_folder):
    engine.ingest([chart_folder])
    os.utime(chart_folder / "red-bar.png", (2, 2))
    report = engine.ingest([chart_folder])
    assert (report.added, report.duplicates, report.unchanged) == (0, 0, len(COLOURS))
    assert engine.library.lookup_path(str(chart_folder / "red-bar.png"))[2] == 2


def test_threads_unknown_to_python_keep_their_connection(engine, chart_folder):
    """A thread started outside Python (a QThread) is not in threading's registry while it runs;
    its connection must never be closed under it by another thread's pruning."""
    import _thread

    engine.ingest([chart_folder])
    ready, go, done = threading.Event(), threading.Event(), threading.Event()
    results: list = []

    def foreign():  # _thread.start_new_thread does not register in threading._active
        results.append(engine.search_text("red", k=1).results[0].item.path)
        ready.set()
        go.wait(10)
        results.append(engine.search_text("blue", k=1).results[0].item.path)
        done.set()

    _thread.start_new_thread(foreign, ())
    assert ready.wait(10)
    for _ in range(3):  # other threads come and go, each pruning on its first read
        t = threading.Thread(target=lambda: engine.search_text("green", k=1))
        t.start()
        t.join()
    go.set()
    assert done.wait(10)
    assert [Path(p).name for p in results] == ["red-bar.png", "blue-bar.png"]
