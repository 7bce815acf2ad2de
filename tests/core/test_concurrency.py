"""Concurrency: searches during an ingest see only whole items; a cancel at any moment (of an
ingest or a re-encode) leaves a consistent library that the next run completes without
duplicates."""

from __future__ import annotations

import random
import threading
import time

import pytest

from vector_studio_gui.core.engine import Engine
from vector_studio_gui.core.errors import Cancelled
from vector_studio_gui.core.models import ModelStore
from vector_studio_gui.modelgen.toy import COLOURS, build_toy_clip, toy_chart_image

KINDS = ("bar", "line", "pie")
N = len(COLOURS) * len(KINDS) * 2  # 36 distinct charts


@pytest.fixture
def charts(tmp_path):
    folder = tmp_path / "charts"
    folder.mkdir()
    for colour in COLOURS:
        for kind in KINDS:
            for seed in (0, 1):
                toy_chart_image(colour, size=(160, 90), kind=kind, seed=seed).save(
                    folder / f"{colour}-{kind}-{seed}.png")
    return folder


@pytest.fixture
def small_batches(settings):
    settings.embedding.batch_size = 3
    return settings


def consistent(eng: Engine) -> None:
    rep = eng.check()
    assert rep.ok and rep.problems == [], rep
    space = eng.active_space()
    db_ids = set(eng.library.embedding_ids(space).tolist()) if space else set()
    idx = eng.index(space) if space else None
    assert (idx.ids() if idx is not None else set()) == db_ids
    assert not eng.library.ids_missing_space(space) if space else True


def test_searches_during_ingest_only_return_whole_committed_items(small_batches, charts):
    with Engine(small_batches) as eng:
        eng.ingest([charts / "red-bar-0.png"])
        seen: list[int] = []
        errors: list[BaseException] = []
        stop = threading.Event()

        def searcher() -> None:
            try:
                while not stop.is_set():
                    for r in eng.search_text("red chart", k=50).results:
                        # whole: a path, a thumbnail and an embedding, all committed together
                        assert r.item.path and r.item.content_hash
                        assert eng.library.has_embedding(r.item.id, eng.active_space())
                        assert eng.thumbnail(r.item.id)[:2] == b"\xff\xd8"
                        seen.append(r.item.id)
                    for it in eng.browse(0, 100):
                        assert eng.library.has_embedding(it.id, eng.active_space())
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=searcher) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            report = eng.ingest([charts])
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors[0]
        assert report.added == N - 1 and len(set(seen)) > 1
        consistent(eng)


@pytest.mark.parametrize("cancel_after", [0, 1, 2, 5, 9, 17, 30])
def test_cancel_after_n_files_leaves_a_consistent_library(small_batches, charts, cancel_after):
    cancel = threading.Event()
    committed: list[int] = []

    def progress(p) -> None:
        if p.done >= cancel_after:
            cancel.set()

    with Engine(small_batches) as eng:
        report = eng.ingest([charts], progress=progress, cancel=cancel,
                            on_batch=committed.extend)
        assert report.cancelled and report.added < N
        assert sorted(committed) == sorted(report.item_ids)
        consistent(eng)
    with Engine(small_batches) as eng:  # reopened: everything reported is there
        assert eng.library.count() == len(committed)
        consistent(eng)
        rest = eng.ingest([charts])
        assert rest.added == N - len(committed) and rest.unchanged == len(committed)
        assert eng.library.count() == N
        consistent(eng)


def test_cancel_from_another_thread_at_random_moments(small_batches, charts):
    rng = random.Random(7)
    with Engine(small_batches) as eng:
        for _ in range(6):
            # forget a random part so every round has work, then cancel it at a random moment
            eng.remove_paths([p for p, _ in eng.library.all_paths() if rng.random() < 0.7])
            cancel = threading.Event()
            timer = threading.Timer(rng.uniform(0.0, 0.15), cancel.set)
            timer.start()
            eng.ingest([charts], cancel=cancel)
            timer.cancel()
            consistent(eng)
        eng.ingest([charts])
        assert eng.library.count() == N and len(eng.index()) == N
        consistent(eng)


@pytest.mark.parametrize("cancel_after", [0, 1, 4, 11])
def test_cancelled_reencode_at_several_points(small_batches, charts, models_dir, tmp_path,
                                              cancel_after):
    ModelStore(models_dir).import_folder(build_toy_clip(tmp_path / "w", dim=24), "wide", "clip")
    cancel = threading.Event()

    def progress(p) -> None:
        if p.done >= cancel_after:
            cancel.set()

    with Engine(small_batches) as eng:
        eng.ingest([charts])
        with pytest.raises(Cancelled):
            eng.reencode("wide", progress=progress, cancel=cancel)
        assert eng.active_space() != "wide"  # the old model still answers
        consistent(eng)
        assert eng.search_text("red", k=1).results
        done = eng.reencode("wide")
        assert done["switched"] and eng.library.space_counts()["wide"] == N
        consistent(eng)


def test_cancel_is_prompt(small_batches, tmp_path):
    """A cancel during a long ingest returns within a second (the batch in flight is kept)."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(400):
        toy_chart_image(list(COLOURS)[i % 6], size=(160, 90), seed=i).save(folder / f"{i}.png")
    cancel = threading.Event()
    with Engine(small_batches) as eng:
        started = threading.Event()

        def on_batch(ids):
            started.set()

        result: dict = {}
        t = threading.Thread(target=lambda: result.update(r=eng.ingest(
            [folder], cancel=cancel, on_batch=on_batch)))
        t.start()
        assert started.wait(60)
        t0 = time.monotonic()
        cancel.set()
        t.join(30)
        assert time.monotonic() - t0 < 1.0
        assert result["r"].cancelled and 0 < result["r"].added < 400
        consistent(eng)
