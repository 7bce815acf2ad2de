"""Adding charts: runs ``Engine.ingest`` on a worker, shows progress and a summary in the status bar.

Paths dropped or chosen while an ingest runs are queued and ingested next. Every signal of the
controller is emitted on the GUI thread (batches arrive through the task's progress channel).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from vector_studio_gui.core import priority
from vector_studio_gui.core.types import IngestProgress, IngestReport
from vector_studio_gui.gui.workers import Task, TaskContext, TaskRunner

log = logging.getLogger(__name__)

TASK_NAME = "ingest"


def _ingest(ctx: TaskContext, engine, paths: list[str]) -> IngestReport:
    """Worker thread: ingest and report progress and batches through the task's channel."""
    priority.lower_thread_priority()  # the window stays responsive (core/priority.py)
    return engine.ingest(paths, progress=ctx.progress, cancel=ctx.cancel,
                         on_batch=lambda ids: ctx.progress(("batch", list(ids))))


def _reencode(ctx: TaskContext, engine, model: str, quantized: bool | None) -> dict:
    """Worker thread: encode the library again with ``model`` (the old index answers meanwhile)."""
    priority.lower_thread_priority()
    return engine.reencode(model, quantized=quantized, progress=ctx.progress, cancel=ctx.cancel)


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = max(1, math.ceil(seconds))
    if s < 60:
        return f"about {s} s left"
    m, s = divmod(s, 60)
    if m < 60:
        return f"about {m} min {s:02d} s left"
    h, m = divmod(m, 60)
    return f"about {h} h {m:02d} min left"


def progress_text(p: IngestProgress, what: str = "Adding charts") -> str:
    parts = [f"{what}: {p.done} / {p.total}"]
    if p.rate > 0:
        parts.append(f"{p.rate:.1f}/s")
    eta = format_eta(p.eta_s) if p.done < p.total else ""
    if eta:
        parts.append(eta)
    return " · ".join(parts)


class ProgressWidget(QWidget):
    """Status-bar widget: text (count, rate, ETA), a progress bar and a Cancel button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        self.label = QLabel("", self)
        self.bar = QProgressBar(self)
        self.bar.setFixedWidth(160)
        self.bar.setTextVisible(False)
        self.bar.setMaximumHeight(14)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop adding; charts added so far are kept")
        lay.addWidget(self.label)
        lay.addWidget(self.bar)
        lay.addWidget(self.cancel_button)

    def set_cancelling(self, cancelling: bool) -> None:
        """The Cancel button while work runs, or disabled "Cancelling…" once it was pressed."""
        self.cancel_button.setEnabled(not cancelling)
        self.cancel_button.setText("Cancelling…" if cancelling else "Cancel")


class SummaryWidget(QWidget):
    """Status-bar widget shown after an ingest: "412 added, 3 skipped" and a Details button."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(6)
        self.label = QLabel("", self)
        self.details_button = QPushButton("Details", self)
        self.details_button.setToolTip("The files that were skipped, and why")
        self.close_button = QPushButton("\u2715", self)
        self.close_button.setFlat(True)
        self.close_button.setFixedWidth(self.close_button.fontMetrics().height() + 10)
        self.close_button.setToolTip("Dismiss")
        lay.addWidget(self.label)
        lay.addWidget(self.details_button)
        lay.addWidget(self.close_button)


class SkippedDialog(QDialog):
    def __init__(self, report: IngestReport, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Skipped files")
        self.resize(720, 360)
        lay = QVBoxLayout(self)
        lay.setSizeConstraint(QVBoxLayout.SizeConstraint.SetNoConstraint)
        self.setMinimumSize(360, 200)
        head = QLabel(f"{report.summary()}. "
                      + (f"{len(report.failed)} files were skipped:" if report.failed
                         else "No files were skipped."), self)
        head.setWordWrap(True)
        lay.addWidget(head)
        self.text = QPlainTextEdit(self)
        self.text.setReadOnly(True)
        self.text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
        self.text.setPlainText("\n".join(f"{f.path}\n    {f.error}" for f in report.failed))
        lay.addWidget(self.text)
        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        box.rejected.connect(self.reject)
        box.accepted.connect(self.accept)
        lay.addWidget(box)


class IngestController(QObject):
    started = Signal()
    progressed = Signal(object)  # IngestProgress
    batchAdded = Signal(list)  # item ids committed in one batch
    finished = Signal(object)  # IngestReport
    reencoded = Signal(object)  # Engine.reencode's dict, after a complete re-encode
    failed = Signal(str, str, bool)  # message, details, user-caused
    idle = Signal()  # nothing running and nothing queued

    def __init__(self, runner: TaskRunner, engine: Callable[[], object],
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._runner = runner
        self._engine = engine
        self._queue: list[tuple] = []  # ("ingest", paths) or ("reencode", model, quantized)
        self._task: Task | None = None
        self._kind = ""
        self._what = "Adding charts"
        self.last_report: IngestReport | None = None
        self.dialog: SkippedDialog | None = None
        self.progress_widget = ProgressWidget(parent)
        self.progress_widget.hide()
        self.progress_widget.cancel_button.clicked.connect(self.cancel)
        self.summary_widget = SummaryWidget(parent)
        self.summary_widget.hide()
        self.summary_widget.details_button.clicked.connect(self.show_details)
        self.summary_widget.close_button.clicked.connect(self.summary_widget.hide)
        self._stopped = False

    @property
    def running(self) -> bool:
        return self._task is not None

    def add(self, paths: Sequence[str]) -> None:
        paths = [str(p) for p in paths if str(p)]
        if not paths or self._stopped:
            return
        if self._queue and self._queue[-1][0] == "ingest":
            self._queue[-1][1].extend(paths)  # everything dropped meanwhile goes in one run
        else:
            self._queue.append(("ingest", paths))
        if self._task is None:
            self._next()

    def reencode(self, model: str, quantized: bool | None = None) -> None:
        """Encode the library again with another CLIP model, after what is queued."""
        if self._stopped:
            return
        self._queue.append(("reencode", model, quantized))
        if self._task is None:
            self._next()

    @property
    def kind(self) -> str:
        """"ingest" or "reencode" while running, else ""."""
        return self._kind if self._task is not None else ""

    def _next(self) -> None:
        if not self._queue or self._stopped:
            self.idle.emit()
            return
        job = self._queue.pop(0)
        self.summary_widget.hide()
        w = self.progress_widget
        w.bar.setRange(0, 0)
        w.set_cancelling(False)
        self._kind = job[0]
        if job[0] == "ingest":
            paths = job[1]
            self._what = "Adding charts"
            w.label.setText(f"Adding charts: scanning {len(paths)} item(s)…")
            fn, args = _ingest, (self._engine(), paths)
        else:
            self._what = f"Re-encoding with {job[1]}"
            w.label.setText(f"{self._what}: loading the model…")
            fn, args = _reencode, (self._engine(), job[1], job[2])
        w.show()
        self._task = self._runner.start(TASK_NAME if job[0] == "ingest" else "reencode", fn, *args,
                                        on_result=self._on_result, on_error=self._on_error,
                                        on_progress=self._on_progress,
                                        on_finished=self._on_finished)
        self.started.emit()

    def cancel(self) -> None:
        """Stop the running ingest (what was committed is kept) and drop what is queued."""
        self._queue.clear()
        if self._task is not None:
            self._task.cancel()
            self.progress_widget.set_cancelling(True)

    def stop(self) -> None:
        """The window closes: cancel, and ignore whatever arrives afterwards."""
        self.cancel()
        self._stopped = True

    # ----------------------------------------------------------------- task callbacks
    def _on_progress(self, value: object) -> None:
        if self._stopped:
            return
        if isinstance(value, tuple) and value and value[0] == "batch":
            self.batchAdded.emit(list(value[1]))
            return
        if isinstance(value, IngestProgress):
            w = self.progress_widget
            w.bar.setRange(0, max(value.total, 1))
            w.bar.setValue(value.done)
            w.label.setText(progress_text(value, self._what))
            self.progressed.emit(value)
        elif hasattr(value, "done") and hasattr(value, "total"):  # another pass (e.g. OCR)
            w = self.progress_widget
            w.bar.setRange(0, max(int(value.total), 1))
            w.bar.setValue(int(value.done))
            what = getattr(value, "message", "") or f"{self._what}: {value.done} / {value.total}"
            eta = format_eta(getattr(value, "eta_s", None)) if value.done < value.total else ""
            w.label.setText(what + (f" · {eta}" if eta else ""))
            self.progressed.emit(value)

    def _on_result(self, report: object) -> None:
        if self._stopped:
            return
        if isinstance(report, dict):  # a re-encode finished and the library switched
            s = self.summary_widget
            s.label.setText(f"Re-encoded {report.get('encoded', 0)} charts with "
                            f"{report.get('model')}")
            s.details_button.setVisible(False)
            s.show()
            self.reencoded.emit(report)
            return
        if not isinstance(report, IngestReport):
            return
        self.last_report = report
        log.info("ingest: %s", report.summary())
        s = self.summary_widget
        s.label.setText(report.summary())
        s.details_button.setVisible(bool(report.failed))
        s.show()
        self.finished.emit(report)

    def _on_error(self, message: str, details: str, user: bool) -> None:
        if self._stopped:
            return
        self.failed.emit(message, details, user)

    def _on_finished(self) -> None:
        self._task = None
        self.progress_widget.hide()
        if not self._stopped:
            self._next()

    def show_details(self) -> None:
        if self.last_report is None:
            return
        if self.dialog is not None:
            self.dialog.close()
            self.dialog.deleteLater()
        self.dialog = SkippedDialog(self.last_report, self.progress_widget.parentWidget())
        self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, False)
        self.dialog.show()
