"""Building blocks shared by the settings dialog, the model manager and the first-run dialog.

- :func:`message_label` / :func:`show_messages`: the in-place explanations under a field.
- :class:`JobTracker`: starts this dialog's background tasks on a :class:`TaskRunner` and, when
  the dialog closes, cancels and joins exactly those tasks (never another window's).
- :class:`DownloadPanel`: progress bar (bytes, rate, time left) + Cancel for model downloads.
- :class:`ImportModelDialog`: asks the name and kind of a model folder to import.
- :func:`install_models` / :func:`import_model`: the functions the worker threads run.

Workers never touch widgets: they call ``ctx.progress`` and return a value; everything visible
happens in slots on the GUI thread.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLayout,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from vector_studio_gui.core.catalog import get_spec
from vector_studio_gui.core.download import DownloadProgress
from vector_studio_gui.core.errors import Cancelled
from vector_studio_gui.core.models import ModelStore
from vector_studio_gui.core.paths import default_models_dir
from vector_studio_gui.core.settings import Settings
from vector_studio_gui.gui.workers import Task, TaskContext, TaskRunner

# ------------------------------------------------------------------------------------------
# Small helpers
# ------------------------------------------------------------------------------------------

ROLE_NAMES = {"clip": "CLIP", "text": "Text"}
ROLE_TIPS = {"clip": "CLIP: encodes chart images and typed or pasted queries into one space",
             "text": "Sentence model: encodes the notes attached to charts"}


def models_dir_of(settings: Settings) -> Path:
    return Path(settings.models_dir).expanduser() if settings.models_dir else default_models_dir()


def stars(n: int, of: int = 5) -> str:
    n = max(0, min(of, int(n)))
    return "\u2605" * n + "\u2606" * (of - n) if n else ""


def fmt_bytes(n: float) -> str:
    n = float(n)
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n)} B"


def fmt_mb(mb: float | int | None) -> str:
    if mb is None:
        return ""
    if mb < 0.1:
        return "< 0.1 MB"
    return f"{mb / 1000:.2f} GB" if mb >= 1000 else f"{mb:g} MB"


def fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def model_size_mb(name: str, quantized: bool) -> int | None:
    spec = get_spec(name)
    if spec is None:
        return None
    return spec.quantized_size_mb if quantized and spec.quantized_size_mb else spec.size_mb


def is_dark(widget: QWidget | None = None) -> bool:
    pal = widget.palette() if widget is not None else QApplication.palette()
    return pal.color(QPalette.ColorRole.Window).lightness() < 128


_COLOURS = {  # (light palette, dark palette): readable on both
    "error": ("#b3261e", "#ff8a80"),
    "warning": ("#8a5300", "#ffcc80"),
    "ok": ("#1b6e20", "#a5d6a7"),
}


def message_label(object_name: str = "fieldMessage") -> QLabel:
    """A word-wrapped label for explanations under a field; hidden while empty."""
    label = QLabel()
    label.setObjectName(object_name)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    label.setVisible(False)
    return label


def show_messages(label: QLabel, messages: Sequence[str] | str | None, kind: str = "error") -> None:
    """Show ``messages`` (one per line) in ``label`` coloured by ``kind``, or hide it when empty.

    ``kind`` is error, warning, ok or info (the palette's normal text colour).
    """
    if isinstance(messages, str):
        messages = [messages] if messages else []
    messages = [m for m in (messages or []) if m]
    label.setProperty("messageKind", kind if messages else "")
    if not messages:
        label.clear()
        label.setVisible(False)
        return
    label.setText("\n".join(messages))
    if kind in _COLOURS:
        colour = _COLOURS[kind][1 if is_dark(label) else 0]
        label.setStyleSheet(f"color: {colour};")
    else:
        label.setStyleSheet("")
    # visible only when the page itself is shown (a hidden tab keeps it for later)
    label.setVisible(True)


def fixed_minimum(dialog: QWidget, width: int, height: int) -> None:
    """Give a top-level dialog a fixed minimum size instead of one its layout keeps updating.

    With the default size constraint the layout sets the window's minimum size whenever the
    content changes (a message appears, a progress line grows); on a shown window that goes to
    the platform plugin, and the offscreen plugin (tests, screenshots) answers each time with
    the warning "This plugin does not support propagateSizeHints()". Call before showing.
    """
    layout = dialog.layout()
    if layout is not None:
        layout.setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
    dialog.setMinimumSize(width, height)


# ------------------------------------------------------------------------------------------
# Background jobs owned by one dialog
# ------------------------------------------------------------------------------------------

class JobTracker(QObject):
    """This dialog's tasks on a (possibly shared) :class:`TaskRunner`.

    Without a runner, one is made as a child of the QApplication, so a task that does not stop
    within the join timeout outlives the dialog safely (destroying a running QThread aborts the
    process) instead of being destroyed with it.
    """

    changed = Signal()

    def __init__(self, runner: TaskRunner | None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._own_runner = runner is None
        self.runner = runner if runner is not None else TaskRunner(QApplication.instance())
        self._tasks: list[Task] = []
        self.closing = False

    def start(self, name: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Task:
        task = self.runner.start(name, fn, *args, **kwargs)
        self._tasks.append(task)
        task.finished.connect(self._task_finished)
        self.changed.emit()
        return task

    @Slot()
    def _task_finished(self) -> None:
        self._tasks = [t for t in self._tasks if t.running]
        self.changed.emit()

    def busy(self, name: str | None = None) -> bool:
        return any(t.running and (name is None or t.name == name) for t in self._tasks)

    def tasks(self, name: str | None = None) -> list[Task]:
        return [t for t in self._tasks if t.running and (name is None or t.name == name)]

    def cancel(self, name: str | None = None) -> None:
        for t in self.tasks(name):
            t.cancel()

    def stop_all(self, timeout_ms: int = 3000) -> bool:
        """Cancel every task of this dialog and join its thread; True when all stopped."""
        self.closing = True
        tasks = [t for t in self._tasks if t.running]
        for t in tasks:
            t.cancel()
        ok = True
        for t in tasks:
            ok = t.wait(timeout_ms) and ok
        if ok and self._own_runner:
            # nothing of ours runs any more: the private runner (and its finished tasks) can go
            self.runner.deleteLater()
            self._own_runner = False
        return ok


# ------------------------------------------------------------------------------------------
# Worker functions (run on a QThread; no widgets here)
# ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InstallProgress:
    """Progress of a multi-model download: model ``index`` of ``count`` and its bytes."""

    name: str
    index: int
    count: int
    bytes: DownloadProgress


@dataclass(frozen=True)
class InstallNote:
    """Something the user should know about an install that goes on (not an error)."""

    message: str


def install_models(ctx: TaskContext, models_dir: Path, names: Sequence[str], quantized: bool,
                   endpoint: str | None = None) -> list[str]:
    store = ModelStore(models_dir)
    for i, name in enumerate(names):
        if ctx.cancelled:
            raise Cancelled(f"download of {name} cancelled; run it again to resume")
        store.install(
            name, quantized=quantized, cancel=ctx.cancel, endpoint=endpoint,
            progress=lambda p, i=i, name=name: ctx.progress(InstallProgress(name, i, len(names), p)),
            # e.g. the hub is unreachable and minilm-l6 is built from the installed package
            warn=lambda message: ctx.progress(InstallNote(message)),
        )
    return list(names)


def import_model(ctx: TaskContext, models_dir: Path, folder: Path, name: str, kind: str) -> dict:
    return ModelStore(models_dir).import_folder(folder, name, kind)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# Download panel
# ------------------------------------------------------------------------------------------

class DownloadPanel(QWidget):
    """Progress of a model download (bytes, rate, time left) with a Cancel button.

    ``start(names, quantized)`` runs :func:`install_models` through the tracker. Signals:
    ``succeeded(list)`` (names installed), ``failed(str)`` (message, offline included),
    ``cancelled()``; ``ended()`` after any of them.
    """

    succeeded = Signal(list)
    failed = Signal(str)
    cancelled = Signal()
    ended = Signal()

    TASK = "model-download"

    def __init__(self, jobs: JobTracker, models_dir: Callable[[], Path],
                 parent: QWidget | None = None, endpoint: str | None = None) -> None:
        super().__init__(parent)
        self.jobs = jobs
        self._models_dir = models_dir
        self.endpoint = endpoint
        self._task: Task | None = None
        self._names: list[str] = []
        self._t0 = 0.0
        self._rate_mark: tuple[float, int] | None = None
        self._rate = 0.0
        self.last_progress: InstallProgress | None = None
        #: notes of the running or last install (shown under the bar, kept for the summary)
        self.notes: list[str] = []

        self.title = QLabel()
        self.title.setObjectName("downloadTitle")
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setTextVisible(True)
        self.detail = QLabel()
        self.detail.setObjectName("downloadDetail")
        self.detail.setWordWrap(True)
        self.cancel_button = QPushButton("Cancel download")
        self.cancel_button.clicked.connect(self.cancel)

        row = QHBoxLayout()
        row.addWidget(self.bar, 1)
        row.addWidget(self.cancel_button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.title)
        lay.addLayout(row)
        lay.addWidget(self.detail)
        self.setVisible(False)

    @property
    def running(self) -> bool:
        return self._task is not None and self._task.running

    def start(self, names: Sequence[str], quantized: bool) -> Task:
        if self.running:
            raise RuntimeError("a download is already running")
        self._names = list(names)
        self._t0 = time.monotonic()
        self._rate_mark = None
        self._rate = 0.0
        self.last_progress = None
        self.notes = []
        total = sum(model_size_mb(n, quantized) or 0 for n in names)
        what = ", ".join(names)
        self.title.setText(f"Downloading {what}" + (f" (about {fmt_mb(total)})" if total else ""))
        self.bar.setValue(0)
        self.bar.setFormat("Contacting the model hub...")
        self.detail.setText("")
        self.cancel_button.setEnabled(True)
        self.setVisible(True)
        self._task = self.jobs.start(
            self.TASK, install_models, self._models_dir(), self._names, quantized, self.endpoint,
            on_progress=self._on_progress, on_result=self._on_result, on_error=self._on_error,
        )
        return self._task

    @Slot()
    def cancel(self) -> None:
        if self._task is not None and self._task.running:
            self._task.cancel()
            self.cancel_button.setEnabled(False)
            self.bar.setFormat("Cancelling...")

    @Slot(object)
    def _on_progress(self, p: object) -> None:
        if self.jobs.closing:
            return
        if isinstance(p, InstallNote):
            self.notes.append(p.message)
            self.detail.setText(p.message)
            self._rate_mark = None
            return
        if not isinstance(p, InstallProgress):
            return
        self.last_progress = p
        b = p.bytes
        now = time.monotonic()
        if self._rate_mark is None or b.done < self._rate_mark[1]:
            self._rate_mark = (now, b.done)
        elif now - self._rate_mark[0] >= 0.5:
            inst = (b.done - self._rate_mark[1]) / (now - self._rate_mark[0])
            self._rate = inst if not self._rate else 0.7 * self._rate + 0.3 * inst
            self._rate_mark = (now, b.done)
        self.bar.setValue(int(1000 * b.fraction))
        prefix = f"{p.name} ({p.index + 1}/{p.count}): " if p.count > 1 else f"{p.name}: "
        self.bar.setFormat(f"{prefix}{fmt_bytes(b.done)} of {fmt_bytes(b.total)}  (%p%)")
        parts = [f"file {b.file_index + 1} of {b.file_count}: {b.file}"]
        if self._rate > 0:
            parts.append(f"{fmt_bytes(self._rate)}/s")
            left = (b.total - b.done) / self._rate
            parts.append(f"about {fmt_duration(left)} left")
        self.detail.setText(" \u2014 ".join([*self.notes[-1:], *parts]))

    @Slot(object)
    def _on_result(self, names: object) -> None:
        self._task = None
        self.setVisible(False)
        if not self.jobs.closing:
            self.succeeded.emit(list(names))  # type: ignore[arg-type]
            self.ended.emit()

    @Slot(str, str, bool)
    def _on_error(self, message: str, details: str, user: bool) -> None:
        was_cancel = self._task is not None and self._task.cancelled
        self._task = None
        self.setVisible(False)
        if self.jobs.closing:
            return
        if was_cancel:
            self.cancelled.emit()
        else:
            self.failed.emit(message)
        self.ended.emit()


# ------------------------------------------------------------------------------------------
# Import dialog
# ------------------------------------------------------------------------------------------

_NAME_OK = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def suggest_model_name(folder: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name).strip("-.") or "my-model"
    return name if get_spec(name) is None else f"{name}-local"


def guess_kind(folder: Path) -> str:
    for sub in (folder, folder / "onnx"):
        if (sub / "vision_model.onnx").is_file():
            return "clip"
    return "text"


class ImportModelDialog(QDialog):
    """Name and kind for a model folder about to be imported."""

    def __init__(self, folder: Path, taken: Sequence[str] = (), parent: QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import a model folder")
        self._taken = set(taken)
        self.folder = folder
        self.name_edit = QLineEdit(suggest_model_name(folder))
        self.kind_combo = QComboBox()
        self.kind_combo.addItem("CLIP model (vision_model.onnx + text_model.onnx)", "clip")
        self.kind_combo.addItem("Text model (model.onnx)", "text")
        self.kind_combo.setCurrentIndex(0 if guess_kind(folder) == "clip" else 1)
        self.message = message_label()
        form = QFormLayout()
        where = QLabel(str(folder))
        where.setWordWrap(True)
        form.addRow("Folder:", where)
        form.addRow("Name:", self.name_edit)
        form.addRow("Kind:", self.kind_combo)
        hint = QLabel("The folder needs tokenizer.json beside the ONNX files (at its root or in "
                      "onnx/). Files are checked with a test inference, then copied.")
        hint.setWordWrap(True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Import")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(hint)
        lay.addWidget(self.message)
        lay.addWidget(self.buttons)
        fixed_minimum(self, 520, 260)
        self.resize(560, 280)

    def problems(self) -> list[str]:
        name = self.name_edit.text().strip()
        if not name:
            return ["Enter a name for the model."]
        if not _NAME_OK.fullmatch(name):
            return ["Use letters, digits, '.', '-' and '_' only (no spaces or slashes)."]
        if get_spec(name) is not None:
            return [f"{name} is a catalog model's name; choose another name."]
        if name in self._taken:
            return [f"A model called {name} is already installed; choose another name."]
        return []

    def accept(self) -> None:
        problems = self.problems()
        show_messages(self.message, problems)
        if not problems:
            super().accept()

    def values(self) -> tuple[str, str]:
        return self.name_edit.text().strip(), str(self.kind_combo.currentData())

    @classmethod
    def ask(cls, folder: Path, taken: Sequence[str] = (), parent: QWidget | None = None
            ) -> tuple[str, str] | None:
        dlg = cls(folder, taken, parent)
        try:
            return dlg.values() if dlg.exec() == QDialog.DialogCode.Accepted else None
        finally:
            dlg.deleteLater()
