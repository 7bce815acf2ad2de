"""Reading chart text: runs ``Engine.read_text_pass`` (OCR of charts not read yet) on a worker.

The pass is the second, resumable one after adding charts: it starts when an ingest is over,
at start-up when charts are waiting to be read, and when reading text is switched on in the
settings; it pauses (is cancelled, keeping what it read) while charts are being added, so the
visual index is never held up, and it never blocks searching (the engine's searches only read
the library, which has its own connection per thread; OCR holds only the OCR engine's lock).
Its progress ("Reading chart text: 120/400") and a Cancel button sit in the status bar.

Every signal is emitted on the GUI thread.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from contextlib import suppress

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QWidget

from vector_studio_gui.core import priority
from vector_studio_gui.core.errors import VectorStudioError
from vector_studio_gui.core.types import OcrProgress, OcrReport
from vector_studio_gui.gui.ingest_controller import ProgressWidget, format_eta
from vector_studio_gui.gui.workers import Task, TaskContext, TaskRunner

log = logging.getLogger(__name__)

TASK_NAME = "read-text"


def needs_pass(engine) -> bool:
    """Whether a pass has work: charts not read yet, or text read before the (installed) text
    model could embed it. Checked first, so a library with nothing to read loads no model."""
    lib = engine.library
    try:
        if lib.ids_without_ocr(1):
            return True
        model = engine.text_model
        installed = engine.models.is_installed(model) or engine.models.is_installed(model, True)
        return bool(installed and lib.ocr_without_embedding(engine.text_space(), 1))
    except sqlite3.Error:  # an old library opened read-only: no text tables yet
        return False


def _read_text(ctx: TaskContext, engine) -> OcrReport:
    """Worker thread: read the text of every chart not read yet."""
    if not needs_pass(engine):
        return OcrReport()
    # the sentence model also answers typed queries: its session (and the ONNX Runtime threads
    # it starts, which inherit this thread's priority) is made before the pass lowers itself
    with suppress(VectorStudioError):
        engine.text_encoder()
    priority.lower_thread_priority()  # the window stays responsive (core/priority.py)
    return engine.read_text_pass(progress=ctx.progress, cancel=ctx.cancel)


def progress_text(p: OcrProgress) -> str:
    parts = [p.message]  # "Reading chart text: 120/400"
    if p.rate > 0 and p.done:
        parts.append(f"{p.rate:.1f}/s")
    eta = format_eta(p.eta_s) if 0 < p.done < p.total else ""
    if eta:
        parts.append(eta)
    if p.failed:
        parts.append(f"{p.failed} failed")
    return " · ".join(parts)


class TextPassController(QObject):
    started = Signal()
    progressed = Signal(object)  # OcrProgress
    #: the pass ended (completed or cancelled, not paused): OcrReport
    finished = Signal(object)
    #: the pass stopped; emitted after ``finished``/a failure, also for a pause
    stopped = Signal()
    failed = Signal(str, str, bool)  # message, details, user-caused

    def __init__(self, runner: TaskRunner, engine: Callable[[], object],
                 enabled: Callable[[], bool], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self._engine = engine
        self._enabled = enabled
        self._task: Task | None = None
        self._again = False  # start once more when the running one stops
        self._paused = False  # the running one is being cancelled to make way for an ingest
        self._stopped = False
        self.last_report: OcrReport | None = None
        self.last_progress: OcrProgress | None = None
        w = ProgressWidget(parent)
        w.cancel_button.setToolTip("Stop reading chart text; what was read is kept, and the "
                                   "rest is read next time")
        w.cancel_button.clicked.connect(self.cancel)
        w.hide()
        self.progress_widget = w

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> bool:
        """Read the text of the charts not read yet (if switched on); True if a pass starts
        or is already running."""
        if self._stopped or not self._enabled():
            return False
        if self._task is not None:
            if self._paused or self._task.cancelled:
                self._again = True  # it is stopping: go again afterwards
            return True
        self._again = False
        self._paused = False
        self.last_progress = None
        w = self.progress_widget
        w.bar.setRange(0, 0)
        w.set_cancelling(False)
        w.label.setText("Reading chart text…")
        self._task = self._runner.start(TASK_NAME, _read_text, self._engine(),
                                        on_result=self._on_result, on_error=self._on_error,
                                        on_progress=self._on_progress,
                                        on_finished=self._on_finished)
        self.started.emit()
        return True

    def cancel(self) -> None:
        """The user stops the pass: what was read is kept; the rest waits for the next run."""
        self._again = False
        self._paused = False
        if self._task is not None:
            self._task.cancel()
            self.progress_widget.set_cancelling(True)

    def pause(self) -> bool:
        """Make way for other work (an ingest): cancel quietly; True if a pass was running.
        Start it again with :meth:`start`."""
        if self._task is None:
            return False
        self._paused = True
        self._again = False
        self._task.cancel()
        self.progress_widget.hide()
        return True

    def stop(self) -> None:
        """The window closes: cancel, and ignore whatever arrives afterwards."""
        self.cancel()
        self._stopped = True

    # ----------------------------------------------------------------- task callbacks
    def _on_progress(self, value: object) -> None:
        if self._stopped or self._paused or not isinstance(value, OcrProgress):
            return
        self.last_progress = value
        w = self.progress_widget
        if value.total == 0:
            return  # nothing to read: no progress shown at all
        w.bar.setRange(0, value.total)
        w.bar.setValue(value.done)
        w.label.setText(progress_text(value))
        if w.isHidden() and self._task is not None and not self._task.cancelled:
            w.show()
        self.progressed.emit(value)

    def _on_result(self, report: object) -> None:
        if self._stopped or not isinstance(report, OcrReport):
            return
        self.last_report = report
        if self._paused:
            return
        if report.read or report.failed or report.cancelled:
            log.info("reading chart text: %s", report.summary())
        self.finished.emit(report)

    def _on_error(self, message: str, details: str, user: bool) -> None:
        if self._stopped or self._paused:
            return
        self.failed.emit(message, details, user)

    def _on_finished(self) -> None:
        self._task = None
        self.progress_widget.hide()
        again = self._again
        self._again = False
        self._paused = False
        if not self._stopped:
            self.stopped.emit()
            if again:
                self.start()
