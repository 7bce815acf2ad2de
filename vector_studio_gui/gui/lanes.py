"""A lane: one long-lived worker thread that runs short jobs in order (searches, thumbnails).

Why not one ``TaskRunner`` task per search: the library keeps one SQLite read connection per
thread (``threading.local``) and only closes them in ``Library.close()``, so a fresh thread per
query leaks a connection (two file descriptors) per keystroke-triggered search; a long session
would run out of descriptors. A lane reuses one thread - and one Python thread state, see
``_LaneThread`` - so each lane costs one connection for the whole session.

Jobs submitted with the same ``key`` supersede each other: a queued job that a newer one replaced
is skipped without running (typing fast never queues a backlog of stale searches). Results and
errors come back on the GUI thread through a slot of the GUI-thread ``Lane`` object, exactly like
``TaskRunner``; ``shutdown()`` skips what is queued, waits for the running job and joins the
thread.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from vector_studio_gui.core.errors import VectorStudioError
from vector_studio_gui.gui.workers import python_thread

log = logging.getLogger(__name__)

ResultFn = Callable[[object], None]
ErrorFn = Callable[[str, str, bool], None]


class Job:
    """One unit of work on a lane; ``cancelled`` is set when it was superseded or the lane stops."""

    def __init__(self, job_id: int, fn: Callable[..., Any], args: tuple, key: str | None,
                 on_result: ResultFn | None, on_error: ErrorFn | None) -> None:
        self.id = job_id
        self.fn = fn
        self.args = args
        self.key = key
        self.on_result = on_result
        self.on_error = on_error
        self.cancel = threading.Event()

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()


class _LaneWorker(QObject):
    # job id, ok, result-or-(message, details, user)
    finished = Signal(int, bool, object)

    @Slot(object)
    def run_job(self, job: Job) -> None:
        if job.cancelled:
            self.finished.emit(job.id, False, None)
            return
        try:
            result = job.fn(*job.args)
        except VectorStudioError as exc:
            self.finished.emit(job.id, False, (str(exc), "", True))
        except Exception as exc:  # a bug: report with details, never die silently
            details = traceback.format_exc()
            log.error("background job failed:\n%s", details)
            self.finished.emit(job.id, False, (f"{type(exc).__name__}: {exc}", details, False))
        else:
            self.finished.emit(job.id, True, result)


class _LaneThread(QThread):
    """A QThread whose event loop runs inside one Python call.

    With QThread's C++ ``run()``, every slot invocation enters Python with a fresh thread state
    (PyGILState_Ensure/Release), so ``threading.local`` data - the library's per-thread SQLite
    connection - would not survive from one job to the next. Running ``exec()`` from Python keeps
    one thread state for the thread's whole life.
    """

    def run(self) -> None:
        with python_thread():  # alive for ``threading`` (and so for the library) while it runs
            self.exec()


class Lane(QObject):
    """GUI-thread handle of one worker thread running jobs in submission order."""

    _dispatch = Signal(object)

    def __init__(self, name: str, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self._thread = _LaneThread()
        self._thread.setObjectName(f"vs-lane-{name}")
        self._worker = _LaneWorker()
        self._worker.moveToThread(self._thread)
        self._dispatch.connect(self._worker.run_job)
        self._worker.finished.connect(self._on_finished)
        self._jobs: dict[int, Job] = {}
        self._latest: dict[str, Job] = {}
        self._next_id = 0
        self._closed = False
        self._thread.start()

    def submit(self, fn: Callable[..., Any], *args: Any, key: str | None = None,
               on_result: ResultFn | None = None, on_error: ErrorFn | None = None) -> Job | None:
        """Queue ``fn(*args)``; callbacks run on the GUI thread. None once the lane is shut down."""
        if self._closed:
            return None
        self._next_id += 1
        job = Job(self._next_id, fn, args, key, on_result, on_error)
        if key is not None:
            older = self._latest.get(key)
            if older is not None:
                older.cancel.set()
            self._latest[key] = job
        self._jobs[job.id] = job
        self._dispatch.emit(job)
        return job

    def pending(self) -> int:
        return len(self._jobs)

    @Slot(int, bool, object)
    def _on_finished(self, job_id: int, ok: bool, payload: object) -> None:
        job = self._jobs.pop(job_id, None)
        if job is None:
            return
        if job.key is not None and self._latest.get(job.key) is job:
            del self._latest[job.key]
        if self._closed or job.cancelled:
            return
        if ok:
            if job.on_result:
                job.on_result(payload)
        elif payload is not None and job.on_error:
            message, details, user = payload  # type: ignore[misc]
            job.on_error(message, details, user)

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Skip queued jobs, let the running one finish, join the thread; True if it stopped."""
        self._closed = True
        for job in self._jobs.values():
            job.cancel.set()
        self._thread.quit()
        ok = self._thread.wait(timeout_ms)
        if not ok:
            log.warning("lane %s did not stop within %d ms", self.name, timeout_ms)
        return ok

    @property
    def running(self) -> bool:
        return self._thread.isRunning()
