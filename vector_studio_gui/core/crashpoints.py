"""Test-only crash points: kill this process at a named point, to prove crash safety.

Inert unless the environment variable ``VECTOR_STUDIO_TEST_KILL_AT`` is set, e.g.
``VECTOR_STUDIO_TEST_KILL_AT=after_commit:3`` makes the process SIGKILL itself (no cleanup, no
``finally``, no atexit: as abrupt as a crash) the 3rd time it passes ``crashpoint("after_commit")``.
Without the variable a crash point costs one environment lookup. Used by
``tests/e2e/test_crash_safety.py``; never set it outside tests.

Named points: ``before_commit`` / ``after_commit`` (every library transaction),
``index_written`` (temp index file written, stamp not yet) and ``index_replaced`` (index file
renamed into place, its stamp not yet: a torn pair on disk).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

ENV = "VECTOR_STUDIO_TEST_KILL_AT"

_passes: dict[str, int] = {}


def crashpoint(name: str) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    target, _, nth = spec.rpartition(":")
    if target != name:
        return
    _passes[name] = _passes.get(name, 0) + 1
    if str(_passes[name]) == nth.strip():
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        if hasattr(signal, "SIGKILL"):
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(137)  # pragma: no cover - Windows has no SIGKILL
