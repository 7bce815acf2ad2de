"""Background work (ingest, its image loaders) can run below the GUI thread's priority, so the
window keeps drawing while both cores encode; the CLI leaves priorities alone."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from vector_studio_gui.core import ingest as ingest_mod
from vector_studio_gui.core import priority

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="per-thread nice values are a Linux feature")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _in_thread(fn):
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_a_lowered_thread_runs_below_the_main_thread_which_is_untouched():
    main = _nice()

    def work():
        assert priority.lower_thread_priority()
        first = _nice()
        assert priority.lower_thread_priority()  # twice: still one step, not two
        return first, _nice(), priority.is_lowered()

    first, second, lowered = _in_thread(work)
    assert first == second == min(19, main + priority.STEP)
    assert lowered
    assert _nice() == main and not priority.is_lowered()


def _record_loader_nices(monkeypatch) -> list[int]:
    seen: list[int] = []
    real = ingest_mod.load_image

    def spy(*a, **kw):
        seen.append(_nice())
        return real(*a, **kw)

    monkeypatch.setattr(ingest_mod, "load_image", spy)
    return seen


def test_an_ingest_from_a_lowered_thread_runs_its_loaders_lowered(engine, chart_folder,
                                                                    monkeypatch):
    main = _nice()
    seen = _record_loader_nices(monkeypatch)

    def work():
        priority.lower_thread_priority()
        return engine.ingest([chart_folder])

    report = _in_thread(work)
    assert report.added > 0 and len(seen) == report.added
    assert set(seen) == {min(19, main + priority.STEP)}


def test_a_cli_style_ingest_leaves_priorities_alone(engine, chart_folder, monkeypatch):
    main = _nice()
    seen = _record_loader_nices(monkeypatch)
    report = engine.ingest([chart_folder])
    assert report.added > 0 and set(seen) == {main}
