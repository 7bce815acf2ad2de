"""First run: no CLIP model installed yet. Offer to download the default models or import one.

The dialog never blocks the app: downloads run on the TaskRunner, the main window may show it
non-modally (``show()``) so the library can be browsed meanwhile, and closing it ("Later", the
window's close button) cancels a running download and joins its thread. Offline, the download
fails within seconds with the downloader's message ("Cannot reach the model hub ...").

On success the settings (passed object, updated in place) are saved to ``config_path`` and the
dialog is accepted; the main window then (re)creates its Engine.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from vector_studio_gui.core.catalog import DEFAULT_CLIP_MODEL, DEFAULT_TEXT_MODEL, get_spec
from vector_studio_gui.core.errors import VectorStudioError
from vector_studio_gui.core.models import ModelStore
from vector_studio_gui.core.settings import Settings
from vector_studio_gui.gui.settings_widgets import (
    DownloadPanel,
    ImportModelDialog,
    JobTracker,
    fixed_minimum,
    fmt_mb,
    import_model,
    message_label,
    model_size_mb,
    models_dir_of,
    show_messages,
)
from vector_studio_gui.gui.workers import TaskRunner


def needs_first_run(settings: Settings) -> bool:
    """True when the active CLIP model (in the configured precision) is not installed and the
    user has not dismissed the first-run dialog for good (``gui.first_run_done``)."""
    if settings.gui.first_run_done:
        return False
    store = ModelStore(models_dir_of(settings))
    return not store.is_installed(settings.embedding.clip_model, settings.embedding.quantized)


def default_downloads(settings: Settings) -> list[str]:
    """Catalog models to download so that both active models are installed.

    An active model that is not in the catalog (a missing import) is replaced by the default.
    """
    e = settings.embedding
    store = ModelStore(models_dir_of(settings))
    out = []
    for name, default in ((e.clip_model, DEFAULT_CLIP_MODEL), (e.text_model, DEFAULT_TEXT_MODEL)):
        if store.is_installed(name, e.quantized and get_spec(name) is not None):
            continue
        pick = name if get_spec(name) is not None else default
        if not store.is_installed(pick, e.quantized):
            out.append(pick)
    return out


class FirstRunDialog(QDialog):
    #: the active CLIP model is installed now (downloaded or imported); settings are saved
    models_ready = Signal()
    IMPORT_TASK = "first-run-import"

    def __init__(self, settings: Settings, config_path: Path, parent: QWidget | None = None,
                 runner: TaskRunner | None = None, endpoint: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome to Vector Studio")
        self.setObjectName("firstRunDialog")
        self.settings = settings
        self.config_path = Path(config_path)
        self.jobs = JobTracker(runner, self)
        self.quantized = settings.embedding.quantized
        self.names = default_downloads(settings)

        title = QLabel("Vector Studio needs a model to search your charts")
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.3)
        font.setBold(True)
        title.setFont(font)
        intro = QLabel(
            "An image model (CLIP) turns each chart and each query into a vector; a small text "
            "model does the same for your notes. They run on this computer: nothing you add or "
            "search is uploaded. Download them once from the Hugging Face hub, or import a model "
            "folder you already have.")
        intro.setWordWrap(True)

        lines = []
        total = 0
        for name in self.names:
            spec = get_spec(name)
            mb = model_size_mb(name, self.quantized) or 0
            total += mb
            what = "image + query model" if spec and spec.role == "clip" else "text model"
            lines.append(f"\u2022 {name} ({what}, {fmt_mb(mb)}): {spec.summary if spec else ''}")
        self.total_mb = total
        self.model_list = QLabel("\n".join(lines))
        self.model_list.setObjectName("defaultModels")
        self.model_list.setWordWrap(True)

        self.download_button = QPushButton(f"Download default models ({fmt_mb(total)})")
        self.download_button.setObjectName("downloadDefaults")
        self.download_button.setDefault(True)
        self.download_button.setEnabled(bool(self.names))
        self.import_button = QPushButton("Import a model folder...")
        self.later_button = QPushButton("Later")
        self.later_button.setToolTip("Close this; you can browse the library meanwhile and "
                                     "download models later in Settings > Models")
        self.dont_ask = QCheckBox("Don't show this at start")
        self.panel = DownloadPanel(self.jobs, lambda: models_dir_of(self.settings), self,
                                   endpoint=endpoint)
        self.message = message_label("firstRunMessage")
        self.hint = QLabel("You can keep browsing your library meanwhile; models can also be "
                           "downloaded later in Settings > Models.")
        self.hint.setWordWrap(True)
        self.hint.setEnabled(False)

        buttons = QHBoxLayout()
        buttons.addWidget(self.download_button)
        buttons.addWidget(self.import_button)
        buttons.addStretch(1)
        buttons.addWidget(self.dont_ask)
        buttons.addWidget(self.later_button)
        lay = QVBoxLayout(self)
        lay.addWidget(title)
        lay.addWidget(intro)
        lay.addWidget(self.model_list)
        lay.addWidget(self.panel)
        lay.addWidget(self.message)
        lay.addStretch(1)
        lay.addWidget(self.hint)
        lay.addLayout(buttons)

        self.download_button.clicked.connect(self.download_defaults)
        self.import_button.clicked.connect(self.import_folder)
        self.later_button.clicked.connect(self.reject)
        self.panel.succeeded.connect(self._downloaded)
        self.panel.failed.connect(self._failed)
        self.panel.cancelled.connect(self._cancelled)
        self.panel.ended.connect(self._ended)
        fixed_minimum(self, 640, 300)
        self.resize(700, 340)
        self.setWindowModality(Qt.WindowModality.NonModal)

    # ---------------------------------------------------------------- download
    @Slot()
    def download_defaults(self) -> None:
        if self.panel.running or not self.names:
            return
        show_messages(self.message, None)
        self._set_busy(True)
        self.panel.start(self.names, self.quantized)

    def _set_busy(self, busy: bool) -> None:
        self.download_button.setEnabled(not busy and bool(self.names))
        self.import_button.setEnabled(not busy)

    @Slot(list)
    def _downloaded(self, names: list) -> None:
        e = self.settings.embedding
        for name in names:
            spec = get_spec(name)
            if spec is not None and spec.role == "clip":
                e.clip_model = name
            elif spec is not None:
                e.text_model = name
        self._finish(f"{', '.join(names)} installed.")

    @Slot(str)
    def _failed(self, message: str) -> None:
        show_messages(self.message, message)

    @Slot()
    def _cancelled(self) -> None:
        show_messages(self.message, "Download cancelled. What was downloaded is kept; the next "
                      "download resumes from there.", "warning")

    @Slot()
    def _ended(self) -> None:
        self.names = default_downloads(self.settings)
        self._set_busy(False)

    # ---------------------------------------------------------------- import
    @Slot()
    def import_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder to import",
                                                  str(Path.home()))
        if not folder:
            return
        taken = [r.name for r in ModelStore(models_dir_of(self.settings)).list()]
        answer = ImportModelDialog.ask(Path(folder), taken, self)
        if answer is not None:
            self.import_from(Path(folder), *answer)

    def import_from(self, folder: Path, name: str, kind: str) -> None:
        self._set_busy(True)
        show_messages(self.message, f"Checking and importing {folder}...", "info")
        self.jobs.start(self.IMPORT_TASK, import_model, models_dir_of(self.settings), folder, name,
                        kind, on_result=self._imported, on_error=self._import_failed,
                        on_finished=self._import_ended)

    @Slot(object)
    def _imported(self, manifest: object) -> None:
        assert isinstance(manifest, dict)
        if self.jobs.closing:
            return
        e = self.settings.embedding
        if manifest["role"] == "clip":
            e.clip_model = manifest["name"]
            e.quantized = False  # an imported model has no int8 variant
            self._finish(f"Imported {manifest['name']}; it is now the image model.")
        else:
            e.text_model = manifest["name"]
            self.names = default_downloads(self.settings)
            show_messages(self.message, f"Imported {manifest['name']} as the text model. Now "
                          "download or import an image (CLIP) model.", "ok")

    @Slot(str, str, bool)
    def _import_failed(self, message: str, details: str, user: bool) -> None:
        show_messages(self.message, f"Import failed: {message}")

    @Slot()
    def _import_ended(self) -> None:
        self._set_busy(False)

    # ---------------------------------------------------------------- closing
    def _finish(self, text: str) -> None:
        show_messages(self.message, text, "ok")
        self.settings.gui.first_run_done = True
        if not self._save():
            return
        self.models_ready.emit()
        self.accept()

    def _save(self) -> bool:
        try:
            self.settings.save(self.config_path)
        except (OSError, VectorStudioError) as exc:
            show_messages(self.message, f"Could not save the settings to {self.config_path}: {exc}")
            return False
        return True

    def done(self, result: int) -> None:
        self.jobs.stop_all()
        if result != QDialog.DialogCode.Accepted and self.dont_ask.isChecked():
            # remember only the choice, on top of what is on disk
            try:
                on_disk = Settings.load(self.config_path)
            except VectorStudioError:
                on_disk = copy.deepcopy(self.settings)
            on_disk.gui.first_run_done = True
            self.settings.gui.first_run_done = True
            with contextlib.suppress(OSError, VectorStudioError):
                on_disk.save(self.config_path)
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt naming
        self.jobs.stop_all()
        super().closeEvent(event)
