"""The settings dialog: Models, Runtime and Library pages over a copy of the settings.

Usage from the main window::

    dlg = SettingsDialog(settings, config_path, self, runner=self.runner,
                         engine_provider=lambda: self.engine)
    dlg.reencode_requested.connect(self.start_reencode)   # model name, after OK
    if dlg.exec() == QDialog.DialogCode.Accepted:
        ...  # settings (same object) now holds the new values; re-create the Engine if needed

OK checks every page (problems are shown next to their field and block OK), saves the copy to
``config_path`` and only then copies the values into the passed ``Settings`` object. Closing the
dialog in any way cancels its background work (downloads, tests...) and joins the threads.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import fields, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal, Slot
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from vector_studio_gui.core.errors import VectorStudioError
from vector_studio_gui.core.paths import default_library_dir
from vector_studio_gui.core.settings import Settings
from vector_studio_gui.gui.model_manager import ModelManager
from vector_studio_gui.gui.settings_pages import (
    LibraryPage,
    OptionsPage,
    PageContext,
    RuntimePage,
)
from vector_studio_gui.gui.settings_widgets import (
    JobTracker,
    fixed_minimum,
    message_label,
    models_dir_of,
    show_messages,
)
from vector_studio_gui.gui.workers import TaskRunner

if TYPE_CHECKING:
    from vector_studio_gui.core.engine import Engine


def copy_settings_into(source: Settings, target: Settings) -> None:
    """Update ``target`` in place with ``source``'s values (section objects are kept, so code
    holding ``target.embedding`` sees the change)."""
    for f in fields(source):
        value = getattr(source, f.name)
        current = getattr(target, f.name)
        if is_dataclass(value) and is_dataclass(current):
            for sub in fields(value):
                setattr(current, sub.name, copy.deepcopy(getattr(value, sub.name)))
        else:
            setattr(target, f.name, copy.deepcopy(value))


def library_state(settings: Settings, engine: Engine | None) -> tuple[int, str | None, str | None]:
    """(items, active space, its model) of the library, from the open engine or read-only."""
    try:
        if engine is not None:
            lib = engine.library
            space = engine.active_space()
            sp = lib.space(space) if space else None
            return lib.count(), space, sp.model if sp else None
        from vector_studio_gui.core.library import Library

        root = Path(settings.library.path).expanduser() if settings.library.path \
            else default_library_dir()
        if not (root / "library.sqlite3").exists():
            return 0, None, None
        lib = Library(root, read_only=True)
        try:
            space = lib.meta("active_space")
            sp = lib.space(space) if space else None
            return lib.count(), space, sp.model if sp else None
        finally:
            lib.close()
    except Exception:  # an unreadable library must not keep the settings from opening
        return 0, None, None


class SettingsDialog(QDialog):
    #: after OK: re-encode the library with this CLIP model in the background (use
    #: ``Engine.reencode(model, quantized=dialog.reencode_quantized)``)
    reencode_requested = Signal(str)

    def __init__(self, settings: Settings, config_path: Path, parent: QWidget | None = None,
                 runner: TaskRunner | None = None,
                 engine_provider: Callable[[], Engine | None] | None = None,
                 endpoint: str | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings \u2014 Vector Studio")
        self.setObjectName("settingsDialog")
        self.settings = settings
        self.config_path = Path(config_path)
        self.edited = copy.deepcopy(settings)
        self.reencode_quantized: bool | None = None
        self.jobs = JobTracker(runner, self)

        self.ctx = PageContext(
            jobs=self.jobs,
            models_dir=lambda: models_dir_of(self.edited),
            engine_provider=engine_provider,
            library_state=lambda: library_state(self.settings, self.ctx.engine()),
            endpoint=endpoint,
        )
        self.models_page = ModelManager(self.ctx)
        self.runtime_page = RuntimePage(self.ctx)
        self.library_page = LibraryPage(self.ctx)
        self.ctx.active_clip = self.models_page.clip_model
        self.ctx.quantized = self.runtime_page.quantized_check.isChecked
        self.pages: list[OptionsPage] = [self.models_page, self.runtime_page, self.library_page]

        self.tabs = QTabWidget()
        for page in self.pages:
            self.tabs.addTab(page, page.TITLE)
        self.message = message_label("dialogMessage")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.RestoreDefaults
                                        | QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        restore = self.buttons.button(QDialogButtonBox.StandardButton.RestoreDefaults)
        restore.setToolTip("Restore the defaults of this page")
        restore.clicked.connect(self.restore_defaults)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        lay = QVBoxLayout(self)
        lay.addWidget(self.tabs, 1)
        lay.addWidget(self.message)
        lay.addWidget(self.buttons)

        self.runtime_page.quantized_changed.connect(self.models_page.set_quantized)
        self.models_page.changed.connect(self.runtime_page.refresh_quantized_note)
        self.models_page.reencode_requested.connect(self.reencode_requested)

        for page in self.pages:
            page.load(self.edited)
        self.models_page.set_quantized(self.runtime_page.quantized_check.isChecked())
        fixed_minimum(self, 760, 520)
        self.resize(980, 680)

    # ---------------------------------------------------------------- helpers
    def page(self, title: str) -> OptionsPage:
        return next(p for p in self.pages if title == p.TITLE)

    @Slot()
    def restore_defaults(self) -> None:
        page = self.tabs.currentWidget()
        if isinstance(page, OptionsPage):
            page.restore_defaults()

    def check(self) -> dict[str, list[str]]:
        """Problems per page title (only pages with problems); each is shown in place."""
        out = {}
        for page in self.pages:
            problems = page.check()
            if problems:
                out[page.TITLE] = problems
        return out

    # ---------------------------------------------------------------- OK / close
    def accept(self) -> None:
        problems = self.check()
        if problems:
            first = next(p for p in self.pages if p.TITLE in problems)
            self.tabs.setCurrentWidget(first)
            widget = first.first_invalid_widget()
            if widget is not None:
                widget.setFocus()
            n = sum(len(v) for v in problems.values())
            show_messages(self.message, f"Fix the {'problem' if n == 1 else f'{n} problems'} "
                          f"shown on the {', '.join(problems)} "
                          f"{'page' if len(problems) == 1 else 'pages'} first.")
            return
        new = copy.deepcopy(self.edited)
        # the Models page goes last: a pending re-encode keeps the old model and precision
        for page in (self.runtime_page, self.library_page, self.models_page):
            page.save(new)
        invalid = new.problems()
        if invalid:
            show_messages(self.message, invalid)
            return
        try:
            new.save(self.config_path)
        except (OSError, VectorStudioError) as exc:
            show_messages(self.message, f"Could not save the settings to {self.config_path}: "
                          f"{exc}")
            return
        copy_settings_into(new, self.settings)
        self.edited = new
        pending = self.models_page.pending_reencode()
        self.reencode_quantized = pending[1] if pending else None
        show_messages(self.message, None)
        self._stop_jobs()
        self.models_page.commit()
        super().accept()

    def _stop_jobs(self) -> None:
        if not self.jobs.stop_all():
            show_messages(self.message, "Background work is still stopping...", "warning")

    def done(self, result: int) -> None:
        self._stop_jobs()
        super().done(result)

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt naming
        self._stop_jobs()
        super().closeEvent(event)
