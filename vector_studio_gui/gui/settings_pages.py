"""Settings pages (like Picard's options pages): each one loads from, checks and saves to Settings.

Every page is a QWidget with ``load(settings)``, ``save(settings)``, ``check() -> list[str]``
(problems that block OK, also shown in place next to the field) and ``restore_defaults()``.
The Models page lives in :mod:`model_manager`; the Runtime and Library pages are here.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QStandardItemModel
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from vector_studio_gui.core.encoders import ClipImageEncoder, RuntimeOptions
from vector_studio_gui.core.models import ModelStore
from vector_studio_gui.core.paths import default_library_dir
from vector_studio_gui.core.runtime import CPU, default_threads, normalize_provider, provider_table
from vector_studio_gui.core.settings import EmbeddingSettings, LibrarySettings, OcrSettings, Settings
from vector_studio_gui.gui.settings_widgets import JobTracker, message_label, show_messages

if TYPE_CHECKING:
    from vector_studio_gui.core.engine import Engine


@dataclass
class PageContext:
    """What the pages of one dialog share: its jobs, where models live, the open engine and
    getters for values edited on other pages (the active CLIP model, int8 or not)."""

    jobs: JobTracker
    models_dir: Callable[[], Path]
    engine_provider: Callable[[], Engine | None] | None = None
    active_clip: Callable[[], str] = lambda: ""
    quantized: Callable[[], bool] = lambda: False
    #: (items, active space, model of that space) of the library the settings point at
    library_state: Callable[[], tuple[int, str | None, str | None]] = lambda: (0, None, None)
    endpoint: str | None = None

    def engine(self) -> Engine | None:
        return self.engine_provider() if self.engine_provider is not None else None


class OptionsPage(QWidget):
    """Base class of a settings page."""

    TITLE = ""
    #: emitted when the user edits something (for live checks / cross-page updates)
    changed = Signal()

    def __init__(self, ctx: PageContext, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.ctx = ctx

    def load(self, settings: Settings) -> None:
        raise NotImplementedError

    def save(self, settings: Settings) -> None:
        raise NotImplementedError

    def check(self) -> list[str]:
        return []

    def restore_defaults(self) -> None:
        raise NotImplementedError

    def first_invalid_widget(self) -> QWidget | None:
        return None


# ------------------------------------------------------------------------------------------
# Runtime
# ------------------------------------------------------------------------------------------

def run_test_inference(ctx: Any, models_dir: Path, model: str, quantized: bool, provider: str,
                       device_id: int, threads: int) -> dict:
    """Load ``model``'s image tower with these runtime options and time one inference."""
    warnings: list[str] = []
    files = ModelStore(models_dir).clip_files(model, quantized)
    t0 = time.perf_counter()
    enc = ClipImageEncoder(files.vision, RuntimeOptions(normalize_provider(provider), device_id,
                                                         threads), warnings.append)
    load_ms = (time.perf_counter() - t0) * 1000
    s = enc.image_size
    x = np.zeros((1, 3, s, s), np.float32)
    enc.encode(x)  # warm-up: the first run allocates and may compile kernels
    t1 = time.perf_counter()
    vec = enc.encode(x)
    ms = (time.perf_counter() - t1) * 1000
    return {"model": model, "quantized": quantized, "ms": ms, "load_ms": load_ms,
            "provider": enc.provider, "dim": int(vec.shape[1]), "warnings": warnings}


PROVIDER_LABELS = {
    "CPUExecutionProvider": "CPU",
    "CUDAExecutionProvider": "CUDA (NVIDIA GPU)",
    "TensorrtExecutionProvider": "TensorRT (NVIDIA GPU)",
    "DmlExecutionProvider": "DirectML (Windows GPU)",
    "CoreMLExecutionProvider": "Core ML (Apple)",
    "ROCMExecutionProvider": "ROCm (AMD GPU)",
    "OpenVINOExecutionProvider": "OpenVINO (Intel)",
}


def provider_label(name: str) -> str:
    return PROVIDER_LABELS.get(name, name.removesuffix("ExecutionProvider"))


class RuntimePage(OptionsPage):
    TITLE = "Runtime"
    quantized_changed = Signal(bool)
    TEST_TASK = "runtime-test"

    def __init__(self, ctx: PageContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.providers = provider_table()

        self.provider_combo = QComboBox()
        self.provider_combo.setObjectName("providerCombo")
        model = QStandardItemModel(self.provider_combo)
        self.provider_combo.setModel(model)
        for info in self.providers:
            label = f"{provider_label(info.name)} ({info.name})"
            self.provider_combo.addItem(label if info.available else f"{label}: not available",
                                        info.name)
            item = model.item(self.provider_combo.count() - 1)
            item.setToolTip(info.reason)
            if not info.available:
                item.setEnabled(False)
        unavailable = [f"\u2022 {provider_label(p.name)}: "
                       f"{p.reason.removeprefix('not available: ')}"
                       for p in self.providers if not p.available]
        self.unavailable_label = QLabel("Not available on this computer:\n" + "\n".join(unavailable)
                                        if unavailable else "")
        self.unavailable_label.setObjectName("unavailableProviders")
        # short lines, no wrapping: a wrapped label nested in a form row gets too little height
        self.unavailable_label.setWordWrap(False)
        self.unavailable_label.setEnabled(False)  # greyed: information, not a control
        self.unavailable_label.setVisible(bool(unavailable))
        self.provider_message = message_label()

        self.device_spin = QSpinBox()
        self.device_spin.setRange(0, 63)
        self.device_spin.setToolTip("Which GPU to use when there are several (0 = the first)")
        self.threads_spin = QSpinBox()
        self.threads_spin.setRange(0, 512)
        self.threads_spin.setSpecialValueText(f"Automatic ({default_threads()} cores)")
        self.threads_spin.setToolTip("Inference threads; 0 lets ONNX Runtime use every core")
        self.batch_spin = QSpinBox()
        self.batch_spin.setRange(1, 256)
        self.batch_spin.setToolTip("Images encoded together while ingesting; larger batches are "
                                   "faster up to a point and use more memory")
        self.quantized_check = QCheckBox("Use the int8 (quantized) models")
        self.quantized_check.setToolTip("About 2x faster on the CPU and 4x smaller, slightly less "
                                        "accurate; needs the int8 download of each model")
        self.quantized_message = message_label()

        self.test_button = QPushButton("Test")
        self.test_button.setObjectName("testButton")
        self.test_button.setToolTip("Run one image inference with these settings on the active "
                                    "CLIP model and report the time")
        self.test_result = message_label("testResult")

        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        prov_box = QVBoxLayout()
        prov_box.addWidget(self.provider_combo)
        prov_box.addWidget(self.provider_message)
        prov_box.addWidget(self.unavailable_label)
        form.addRow("Execution provider:", prov_box)
        form.addRow("GPU device id:", self.device_spin)
        form.addRow("Threads:", self.threads_spin)
        form.addRow("Batch size:", self.batch_spin)
        q_box = QVBoxLayout()
        q_box.addWidget(self.quantized_check)
        q_box.addWidget(self.quantized_message)
        form.addRow("Precision:", q_box)
        test_row = QHBoxLayout()
        test_row.addWidget(self.test_button)
        test_row.addStretch(1)
        test_box = QVBoxLayout()
        test_box.addLayout(test_row)
        test_box.addWidget(self.test_result)
        form.addRow("Speed test:", test_box)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addStretch(1)

        self.provider_combo.currentIndexChanged.connect(self._provider_changed)
        self.quantized_check.toggled.connect(self._quantized_toggled)
        self.test_button.clicked.connect(self.run_test)
        for spin in (self.device_spin, self.threads_spin, self.batch_spin):
            spin.valueChanged.connect(self.changed)

    # ---------------------------------------------------------------- values
    def provider(self) -> str:
        return str(self.provider_combo.currentData() or CPU)

    def _set_provider(self, name: str) -> None:
        name = normalize_provider(name)
        idx = self.provider_combo.findData(name)
        if idx < 0:  # a provider this ONNX Runtime does not know: keep it visible, disabled
            self.provider_combo.addItem(f"{name}: not available", name)
            idx = self.provider_combo.count() - 1
            item = self.provider_combo.model().item(idx)  # type: ignore[attr-defined]
            item.setEnabled(False)
            item.setToolTip("not offered by this ONNX Runtime build")
        self.provider_combo.setCurrentIndex(idx)
        self._provider_changed()

    def _apply(self, e: EmbeddingSettings) -> None:
        self._set_provider(e.execution_provider)
        self.device_spin.setValue(e.device_id)
        self.threads_spin.setValue(e.threads)
        self.batch_spin.setValue(e.batch_size)
        self.quantized_check.setChecked(e.quantized)
        self.refresh_quantized_note()

    def load(self, settings: Settings) -> None:
        self._apply(settings.embedding)
        show_messages(self.test_result, None)

    def save(self, settings: Settings) -> None:
        e = settings.embedding
        e.execution_provider = self.provider()
        e.device_id = self.device_spin.value()
        e.threads = self.threads_spin.value()
        e.batch_size = self.batch_spin.value()
        e.quantized = self.quantized_check.isChecked()

    def restore_defaults(self) -> None:
        self._apply(EmbeddingSettings())

    def check(self) -> list[str]:
        return []  # spin ranges make invalid numbers impossible; providers fall back to the CPU

    # ---------------------------------------------------------------- reactions
    @Slot()
    def _provider_changed(self, *_: object) -> None:
        name = self.provider()
        info = next((p for p in self.providers if p.name == name), None)
        self.device_spin.setEnabled(name != CPU)
        if info is not None and info.available:
            show_messages(self.provider_message, None)
        else:
            why = info.reason.removeprefix("not available: ") if info else "not in this build"
            show_messages(self.provider_message,
                          f"{name} is not available here ({why}); Vector Studio will use the "
                          "CPU instead.", "warning")
        self.changed.emit()

    @Slot(bool)
    def _quantized_toggled(self, on: bool) -> None:
        self.refresh_quantized_note()
        self.quantized_changed.emit(on)
        self.changed.emit()

    def refresh_quantized_note(self) -> None:
        model = self.ctx.active_clip()
        on = self.quantized_check.isChecked()
        if on and model:
            store = ModelStore(self.ctx.models_dir())
            if store.is_installed(model) and not store.is_installed(model, True):
                show_messages(self.quantized_message,
                              f"The int8 variant of {model} is not installed; download it on the "
                              "Models tab (Download fetches the int8 files while this is on).",
                              "warning")
                return
        show_messages(self.quantized_message, None)

    # ---------------------------------------------------------------- test
    @Slot()
    def run_test(self) -> None:
        model = self.ctx.active_clip()
        if not model:
            show_messages(self.test_result, "Choose a CLIP model on the Models tab first.")
            return
        self.test_button.setEnabled(False)
        show_messages(self.test_result, f"Loading {model} and running one inference...", "info")
        self.ctx.jobs.start(
            self.TEST_TASK, run_test_inference, self.ctx.models_dir(), model,
            self.quantized_check.isChecked(), self.provider(), self.device_spin.value(),
            self.threads_spin.value(),
            on_result=self._test_done, on_error=self._test_failed, on_finished=self._test_ended,
        )

    @Slot(object)
    def _test_done(self, r: object) -> None:
        assert isinstance(r, dict)
        variant = " int8" if r["quantized"] else ""
        text = (f"{r['ms']:.1f} ms per image on {r['provider']} ({r['model']}{variant}, "
                f"{r['dim']}-d; loaded in {r['load_ms']:.0f} ms)")
        lines = [text, *r["warnings"]]
        show_messages(self.test_result, lines, "warning" if r["warnings"] else "ok")

    @Slot(str, str, bool)
    def _test_failed(self, message: str, details: str, user: bool) -> None:
        show_messages(self.test_result, f"Test failed: {message}")

    @Slot()
    def _test_ended(self) -> None:
        self.test_button.setEnabled(True)


# ------------------------------------------------------------------------------------------
# Library
# ------------------------------------------------------------------------------------------

def _rebuild(ctx: Any, engine: Engine) -> dict:
    return engine.rebuild_index()


def _check(ctx: Any, engine: Engine) -> Any:
    return engine.check()


def library_path_problems(text: str) -> list[str]:
    """Why ``text`` cannot be a library folder (empty = fine; empty text = the default)."""
    text = text.strip()
    if not text:
        return []
    path = Path(text).expanduser()
    if not path.is_absolute():
        return [f"Enter a full path (for example {Path.home() / 'Charts library'})."]
    if path.exists() and not path.is_dir():
        return [f"{path} is a file, not a folder. Choose a folder for the library (it is "
                "created if it does not exist)."]
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            return [f"You cannot write to {path}; choose another folder."]
        return []
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return [f"{parent} is a file, so {path} cannot be created; choose another folder."]
    if not os.access(parent, os.W_OK | os.X_OK):
        return [f"{path} cannot be created: you cannot write to {parent}."]
    return []


class LibraryPage(OptionsPage):
    TITLE = "Library"
    REBUILD_TASK = "library-rebuild"
    CHECK_TASK = "library-check"

    def __init__(self, ctx: PageContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self.path_edit = QLineEdit()
        self.path_edit.setObjectName("libraryPath")
        self.path_edit.setPlaceholderText(f"Default: {default_library_dir()}")
        self.path_edit.setClearButtonEnabled(True)
        self.browse_button = QPushButton("Browse...")
        self.path_message = message_label()
        self.thumb_spin = QSpinBox()
        self.thumb_spin.setRange(32, 1024)
        self.thumb_spin.setSingleStep(32)
        self.thumb_spin.setSuffix(" px")
        self.thumb_spin.setToolTip("Longest side of the thumbnails made when charts are added "
                                   "(existing thumbnails keep their size)")
        self.ocr_check = QCheckBox("Read the text in charts (OCR) when adding them")
        self.ocr_check.setToolTip("Reads titles, tickers and labels in the background after "
                                  "charts are added, so searches find charts by their text; "
                                  "about 10x slower per chart than the image model, and never "
                                  "holds up searching")

        self.rebuild_button = QPushButton("Rebuild index")
        self.rebuild_button.setToolTip("Rebuild the search index from the vectors in the library "
                                       "database")
        self.check_button = QPushButton("Check library")
        self.check_button.setToolTip("Check the database, index and thumbnails, repair the index "
                                     "if needed and list files that are gone")
        self.maintenance_result = message_label("maintenanceResult")
        self.maintenance_where = QLabel()
        self.maintenance_where.setWordWrap(True)
        if ctx.engine_provider is None:
            why = "Available from the main window once a library is open."
            for b in (self.rebuild_button, self.check_button):
                b.setEnabled(False)
                b.setToolTip(why)
            self.maintenance_where.setText(why)

        path_row = QHBoxLayout()
        path_row.addWidget(self.path_edit, 1)
        path_row.addWidget(self.browse_button)
        path_box = QVBoxLayout()
        path_box.addLayout(path_row)
        path_box.addWidget(self.path_message)
        form = QFormLayout()
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
        form.addRow("Library folder:", path_box)
        form.addRow("Thumbnail size:", self.thumb_spin)
        form.addRow("Chart text:", self.ocr_check)

        maint = QGroupBox("Maintenance")
        buttons = QHBoxLayout()
        buttons.addWidget(self.rebuild_button)
        buttons.addWidget(self.check_button)
        buttons.addStretch(1)
        mlay = QVBoxLayout(maint)
        mlay.addWidget(self.maintenance_where)
        mlay.addLayout(buttons)
        mlay.addWidget(self.maintenance_result)

        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(maint)
        lay.addStretch(1)

        self.browse_button.clicked.connect(self.browse)
        self.path_edit.textChanged.connect(self._path_edited)
        self.thumb_spin.valueChanged.connect(self.changed)
        self.ocr_check.toggled.connect(self.changed)
        self.rebuild_button.clicked.connect(self.rebuild_index)
        self.check_button.clicked.connect(self.check_library)

    def _apply(self, lib: LibrarySettings, ocr: OcrSettings) -> None:
        self.path_edit.setText(lib.path or "")
        self.thumb_spin.setValue(lib.thumbnail_size)
        self.ocr_check.setChecked(ocr.enabled)
        show_messages(self.path_message, None)

    def load(self, settings: Settings) -> None:
        self._apply(settings.library, settings.ocr)
        eng = self.ctx.engine()
        if eng is not None:
            self.maintenance_where.setText(f"Open library: {eng.library.root}")

    def save(self, settings: Settings) -> None:
        text = self.path_edit.text().strip()
        settings.library.path = str(Path(text).expanduser()) if text else None
        settings.library.thumbnail_size = self.thumb_spin.value()
        settings.ocr.enabled = self.ocr_check.isChecked()

    def restore_defaults(self) -> None:
        self._apply(LibrarySettings(), OcrSettings())

    def check(self) -> list[str]:
        problems = library_path_problems(self.path_edit.text())
        show_messages(self.path_message, problems)
        return problems

    def first_invalid_widget(self) -> QWidget | None:
        return self.path_edit if library_path_problems(self.path_edit.text()) else None

    @Slot()
    def _path_edited(self) -> None:
        # explain as the user types, but only once something is wrong (no nagging while typing
        # a valid path)
        show_messages(self.path_message, library_path_problems(self.path_edit.text()))
        self.changed.emit()

    @Slot()
    def browse(self) -> None:
        start = self.path_edit.text().strip() or str(default_library_dir())
        folder = QFileDialog.getExistingDirectory(self, "Choose the library folder", start)
        if folder:
            self.path_edit.setText(folder)

    # ---------------------------------------------------------------- maintenance
    def _engine_or_explain(self) -> Engine | None:
        eng = self.ctx.engine()
        if eng is None:
            show_messages(self.maintenance_result, "No library is open.")
        return eng

    def _set_busy(self, busy: bool) -> None:
        for b in (self.rebuild_button, self.check_button):
            b.setEnabled(not busy)

    @Slot()
    def rebuild_index(self) -> None:
        eng = self._engine_or_explain()
        if eng is None:
            return
        self._set_busy(True)
        show_messages(self.maintenance_result, "Rebuilding the index...", "info")
        self.ctx.jobs.start(self.REBUILD_TASK, _rebuild, eng, on_result=self._rebuilt,
                            on_error=self._maintenance_failed, on_finished=self._maintenance_ended)

    @Slot()
    def check_library(self) -> None:
        eng = self._engine_or_explain()
        if eng is None:
            return
        self._set_busy(True)
        show_messages(self.maintenance_result, "Checking the library...", "info")
        self.ctx.jobs.start(self.CHECK_TASK, _check, eng, on_result=self._checked,
                            on_error=self._maintenance_failed, on_finished=self._maintenance_ended)

    @Slot(object)
    def _rebuilt(self, r: object) -> None:
        assert isinstance(r, dict)
        took = f" in {r['took_s']:.2f} s" if "took_s" in r else ""
        show_messages(self.maintenance_result,
                      f"Index rebuilt: {r.get('items', 0)} items ({r.get('space')}){took}.", "ok")

    @Slot(object)
    def _checked(self, report: Any) -> None:
        lines = [f"{report.items} items checked: "
                 + ("no problems found." if report.ok else f"{len(report.problems)} problem(s).")]
        lines += [f"\u2022 {p}" for p in report.problems]
        lines += [f"Repaired: {r}" for r in report.repaired]
        if report.missing_files:
            shown = report.missing_files[:5]
            more = len(report.missing_files) - len(shown)
            lines.append(f"{len(report.missing_files)} file(s) are gone from disk: "
                         + ", ".join(shown) + (f" and {more} more" if more > 0 else ""))
        kind = "ok" if report.ok and not report.missing_files else "warning"
        show_messages(self.maintenance_result, lines, kind)

    @Slot(str, str, bool)
    def _maintenance_failed(self, message: str, details: str, user: bool) -> None:
        show_messages(self.maintenance_result, message)

    @Slot()
    def _maintenance_ended(self) -> None:
        self._set_busy(False)

