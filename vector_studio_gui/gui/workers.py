"""Background work for the GUI: run a function on a QThread, report back on the GUI thread.

Modelled on superqt's ``thread_worker``: the function gets a context with a cancel flag and a
``progress`` callback; results, progress and errors come back as signals of a GUI-thread
``Task`` object (a lambda connected directly to a worker-thread signal would run in the worker
thread, so every hop goes through a slot of a GUI-thread QObject). Workers never touch widgets.
``TaskRunner.shutdown`` cancels and joins every thread, so closing the app never aborts a running
QThread (which kills the whole process).

Worker threads announce themselves to Python's ``threading`` while they run (see
:func:`python_thread`): the library closes the SQLite connections of threads ``threading`` does
not know as alive, and a QThread is unknown to it until something calls
``threading.current_thread()`` there, so without this a connection could be closed while its
thread is using it (a crash).
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from PySide6.QtCore import QObject, QThread, Signal, Slot

from vector_studio_gui.core.errors import Cancelled, VectorStudioError

log = logging.getLogger(__name__)


@contextmanager
def python_thread() -> Iterator[None]:
    """While inside, the current (Qt-started) thread counts as alive for ``threading`` (it is
    in ``threading.enumerate()``); afterwards it no longer does, so what was kept per thread
    (the library's read connection) can be released."""
    ident = threading.get_ident()
    known = ident in threading._active  # a thread threading started itself: leave it alone
    threading.current_thread()  # registers a dummy Thread for a foreign (Qt) thread
    try:
        yield
    finally:
        if not known:
            with threading._active_limbo_lock:
                threading._active.pop(ident, None)


class TaskContext:
    """What the background function sees: a cancel flag and a progress callback."""

    def __init__(self, emit_progress: Callable[[object], None]) -> None:
        self.cancel = threading.Event()
        self._emit = emit_progress

    def progress(self, value: object) -> None:
        self._emit(value)

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()


class _Worker(QObject):
    progressed = Signal(object)
    succeeded = Signal(object)
    failed = Signal(str, str, bool)  # message, details, user-caused (VectorStudioError)
    done = Signal()

    def __init__(self, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        super().__init__()
        self._fn = fn
        self._args = args
        self._kwargs = kwargs
        self.ctx = TaskContext(self.progressed.emit)

    @Slot()
    def run(self) -> None:
        with python_thread():
            self._run()

    def _run(self) -> None:
        try:
            result = self._fn(self.ctx, *self._args, **self._kwargs)
        except Cancelled as exc:
            self.failed.emit(str(exc), "", True)
        except VectorStudioError as exc:
            self.failed.emit(str(exc), "", True)
        except Exception as exc:  # a bug: report with details, never die silently
            details = traceback.format_exc()
            log.error("background task failed:\n%s", details)
            self.failed.emit(f"{type(exc).__name__}: {exc}", details, False)
        else:
            self.succeeded.emit(result)
        finally:
            self.done.emit()


class Task(QObject):
    """GUI-thread handle of one background job; its signals are delivered on the GUI thread."""

    progress = Signal(object)
    result = Signal(object)
    error = Signal(str, str, bool)
    finished = Signal()

    def __init__(self, name: str, fn: Callable[..., Any], args: tuple, kwargs: dict,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.name = name
        self.thread = QThread()
        self.thread.setObjectName(f"vs-{name}")
        self.worker = _Worker(fn, args, kwargs)
        self.worker.moveToThread(self.thread)
        self.thread.started.connect(self.worker.run)
        self.worker.progressed.connect(self._on_progress)
        self.worker.succeeded.connect(self._on_result)
        self.worker.failed.connect(self._on_error)
        self.worker.done.connect(self._on_done)
        self.running = False

    def start(self) -> None:
        self.running = True
        self.thread.start()

    def cancel(self) -> None:
        self.worker.ctx.cancel.set()

    @property
    def cancelled(self) -> bool:
        return self.worker.ctx.cancel.is_set()

    def wait(self, timeout_ms: int = 5000) -> bool:
        self.thread.quit()
        return self.thread.wait(timeout_ms)

    @Slot(object)
    def _on_progress(self, value: object) -> None:
        self.progress.emit(value)

    @Slot(object)
    def _on_result(self, value: object) -> None:
        self.result.emit(value)

    @Slot(str, str, bool)
    def _on_error(self, message: str, details: str, user: bool) -> None:
        self.error.emit(message, details, user)

    @Slot()
    def _on_done(self) -> None:
        self.thread.quit()
        self.thread.wait()
        self.running = False
        self.finished.emit()


class TaskRunner(QObject):
    """Starts tasks, keeps them alive while they run, and stops them all on shutdown."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._tasks: list[Task] = []

    def start(self, name: str, fn: Callable[..., Any], *args: Any,
              on_result: Callable[[object], None] | None = None,
              on_error: Callable[[str, str, bool], None] | None = None,
              on_progress: Callable[[object], None] | None = None,
              on_finished: Callable[[], None] | None = None, **kwargs: Any) -> Task:
        task = Task(name, fn, args, kwargs, self)
        if on_result:
            task.result.connect(on_result)
        if on_error:
            task.error.connect(on_error)
        if on_progress:
            task.progress.connect(on_progress)
        if on_finished:
            task.finished.connect(on_finished)
        task.finished.connect(lambda t=task: self._forget(t))
        self._tasks.append(task)
        task.start()
        return task

    def _forget(self, task: Task) -> None:
        if task in self._tasks:
            self._tasks.remove(task)
            task.deleteLater()

    def active(self, name: str | None = None) -> list[Task]:
        return [t for t in self._tasks if t.running and (name is None or t.name == name)]

    def shutdown(self, timeout_ms: int = 2000) -> bool:
        """Cancel everything and join the threads; True when all stopped in time."""
        for t in self._tasks:
            t.cancel()
        ok = True
        for t in list(self._tasks):
            ok = t.wait(timeout_ms) and ok
        return ok
