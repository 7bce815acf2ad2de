"""The Models tab: the catalog and imported models, downloads, imports, verify, delete, and the
choice of the active CLIP and text models.

Downloads, imports and verification run on the dialog's :class:`TaskRunner` (never on the GUI
thread); closing the dialog cancels them and joins their threads.

When the active CLIP model (or int8 vs fp32) changes and the library already holds charts, the
page offers to re-encode the library in the background. The request is committed with the
dialog: :meth:`ModelManager.commit` emits :attr:`ModelManager.reencode_requested` after the
settings were saved. Until that re-encode completes the saved settings keep the old model, so
the old index keeps answering searches; ``Engine.reencode`` switches the settings when done.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from vector_studio_gui.core.catalog import DEFAULT_CLIP_MODEL, DEFAULT_TEXT_MODEL, get_spec
from vector_studio_gui.core.engine import clip_space_name
from vector_studio_gui.core.errors import VectorStudioError
from vector_studio_gui.core.models import ModelInfo, ModelStore
from vector_studio_gui.core.settings import Settings
from vector_studio_gui.gui.settings_pages import OptionsPage, PageContext
from vector_studio_gui.gui.settings_widgets import (
    ROLE_NAMES,
    ROLE_TIPS,
    DownloadPanel,
    ImportModelDialog,
    fmt_mb,
    import_model,
    message_label,
    show_messages,
    stars,
)

COLUMNS = ("Name", "Role", "Dim", "Size", "Speed", "Quality", "Status", "Notes")
NAME_ROLE = Qt.ItemDataRole.UserRole


def _verify(ctx: object, models_dir: Path, name: str, quantized: bool) -> list[str]:
    return ModelStore(models_dir).verify(name, quantized)


class ModelManager(OptionsPage):
    """The Models page of the settings dialog (also usable on its own)."""

    TITLE = "Models"
    #: the user asked to re-encode the library with this CLIP model (emitted by commit())
    reencode_requested = Signal(str)
    #: models were downloaded, imported or deleted
    models_changed = Signal()

    VERIFY_TASK = "model-verify"
    IMPORT_TASK = "model-import"

    def __init__(self, ctx: PageContext, parent: QWidget | None = None) -> None:
        super().__init__(ctx, parent)
        self._rows: list[ModelInfo] = []
        self._quantized = False
        self._orig_clip = DEFAULT_CLIP_MODEL
        self._orig_quantized = False
        self._library: tuple[int, str | None, str | None] = (0, None, None)
        self._downloading: list[str] = []

        # active models
        self.clip_combo = QComboBox()
        self.clip_combo.setObjectName("clipModelCombo")
        self.clip_combo.setToolTip("Encodes the charts and your typed or pasted queries")
        self.text_combo = QComboBox()
        self.text_combo.setObjectName("textModelCombo")
        self.text_combo.setToolTip("Encodes the notes you attach to charts")
        self.selection_message = message_label("selectionMessage")
        for combo in (self.clip_combo, self.text_combo):
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
            combo.setMinimumWidth(220)

        # re-encode offer
        self.reencode_frame = QFrame()
        self.reencode_frame.setObjectName("reencodeBanner")
        self.reencode_frame.setFrameShape(QFrame.Shape.StyledPanel)
        self.reencode_label = QLabel()
        self.reencode_label.setWordWrap(True)
        self.reencode_check = QCheckBox()
        self.reencode_check.setChecked(True)
        self.reencode_note = message_label()
        blay = QVBoxLayout(self.reencode_frame)
        blay.addWidget(self.reencode_label)
        blay.addWidget(self.reencode_check)
        blay.addWidget(self.reencode_note)
        self.reencode_frame.setVisible(False)

        # catalog table
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setObjectName("modelTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        for col in range(len(COLUMNS) - 1):
            header.setSectionResizeMode(col, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

        self.details = QLabel()
        self.details.setObjectName("modelDetails")
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.download_button = QPushButton("Download")
        self.download_button.setObjectName("downloadButton")
        self.import_button = QPushButton("Import folder...")
        self.import_button.setToolTip("Copy in a local model folder (ONNX files + tokenizer.json)")
        self.verify_button = QPushButton("Verify")
        self.verify_button.setToolTip("Check the files against their checksums and run a test "
                                      "inference")
        self.delete_button = QPushButton("Delete...")
        self.download_panel = DownloadPanel(ctx.jobs, ctx.models_dir, self, endpoint=ctx.endpoint)
        self.status = message_label("modelStatus")
        self.where = QLabel()
        self.where.setObjectName("modelsFolder")
        self.where.setEnabled(False)
        self.where.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        form = QFormLayout()
        form.addRow("Image and query model (CLIP):", self.clip_combo)
        form.addRow("Text model (notes):", self.text_combo)
        buttons = QHBoxLayout()
        for b in (self.download_button, self.import_button, self.verify_button,
                  self.delete_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay = QVBoxLayout(self)
        lay.addLayout(form)
        lay.addWidget(self.selection_message)
        lay.addWidget(self.reencode_frame)
        lay.addWidget(self.table, 1)
        lay.addWidget(self.details)
        lay.addLayout(buttons)
        lay.addWidget(self.download_panel)
        lay.addWidget(self.status)
        lay.addWidget(self.where)

        self.clip_combo.currentIndexChanged.connect(self._selection_changed)
        self.text_combo.currentIndexChanged.connect(self._selection_changed)
        self.reencode_check.toggled.connect(self._update_banner)
        self.table.itemSelectionChanged.connect(self._row_changed)
        self.download_button.clicked.connect(self.download_selected)
        self.import_button.clicked.connect(self.import_folder)
        self.verify_button.clicked.connect(self.verify_selected)
        self.delete_button.clicked.connect(self.delete_selected)
        self.download_panel.succeeded.connect(self._download_succeeded)
        self.download_panel.failed.connect(self._download_failed)
        self.download_panel.cancelled.connect(self._download_cancelled)
        self.download_panel.ended.connect(self._download_ended)
        ctx.jobs.changed.connect(self._update_buttons)

    # ---------------------------------------------------------------- properties
    @property
    def store(self) -> ModelStore:
        return ModelStore(self.ctx.models_dir())

    def clip_model(self) -> str:
        return str(self.clip_combo.currentData() or "")

    def text_model(self) -> str:
        return str(self.text_combo.currentData() or "")

    def rows(self) -> list[ModelInfo]:
        return list(self._rows)

    def row_of(self, name: str) -> ModelInfo | None:
        return next((r for r in self._rows if r.name == name), None)

    def selected(self) -> ModelInfo | None:
        items = self.table.selectedItems()
        if not items:
            return None
        name = self.table.item(items[0].row(), 0).data(NAME_ROLE)
        return self.row_of(name)

    def select(self, name: str) -> None:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 0).data(NAME_ROLE) == name:
                self.table.selectRow(r)
                return

    # ---------------------------------------------------------------- page API
    def load(self, settings: Settings) -> None:
        e = settings.embedding
        self._orig_clip = e.clip_model
        self._orig_quantized = e.quantized
        self._quantized = e.quantized
        self._library = self.ctx.library_state()
        self.where.setText(f"Models folder: {self.ctx.models_dir()}")
        self.reencode_check.setChecked(True)
        self.refresh(e.clip_model, e.text_model)
        show_messages(self.status, None)

    def save(self, settings: Settings) -> None:
        """Store the chosen models; call after the other pages (it may keep the old CLIP model
        and precision while a re-encode is pending)."""
        e = settings.embedding
        e.clip_model = self.clip_model() or e.clip_model
        e.text_model = self.text_model() or e.text_model
        if self.pending_reencode() is not None:
            e.clip_model = self._orig_clip
            e.quantized = self._orig_quantized

    def check(self) -> list[str]:
        return []  # a missing model is allowed (browse now, download later): warned in place

    def restore_defaults(self) -> None:
        self._set_combo(self.clip_combo, "clip", DEFAULT_CLIP_MODEL)
        self._set_combo(self.text_combo, "text", DEFAULT_TEXT_MODEL)
        self._selection_changed()

    def pending_reencode(self) -> tuple[str, bool] | None:
        """(model, quantized) to re-encode the library with after OK, or None."""
        if (self._needs_reencode() and self.reencode_check.isEnabled()
                and self.reencode_check.isChecked()):
            return self.clip_model(), self._quantized
        return None

    def commit(self) -> None:
        """Called by the dialog once the settings are saved: emit the re-encode request."""
        pending = self.pending_reencode()
        if pending is not None:
            self.reencode_requested.emit(pending[0])

    def set_quantized(self, on: bool) -> None:
        self._quantized = on
        self.refresh()

    # ---------------------------------------------------------------- filling
    def refresh(self, clip: str | None = None, text: str | None = None) -> None:
        """Re-read the models folder; keep (or set) the chosen models and the selected row."""
        clip = clip if clip is not None else self.clip_model()
        text = text if text is not None else self.text_model()
        keep = self.selected()
        self._rows = self.store.list()
        self._set_combo(self.clip_combo, "clip", clip)
        self._set_combo(self.text_combo, "text", text)
        self._fill_table()
        if keep is not None:
            self.select(keep.name)
        elif self._rows:
            self.select(self.clip_model() if self.row_of(self.clip_model()) else self._rows[0].name)
        self._selection_changed()

    def _usable(self, row: ModelInfo) -> bool:
        return row.installed or row.quantized_installed

    def _set_combo(self, combo: QComboBox, role: str, current: str) -> None:
        combo.blockSignals(True)
        try:
            combo.clear()
            for row in self._rows:
                if row.role == role and self._usable(row):
                    label = row.name
                    if row.source == "catalog" and not row.installed:
                        label += " (int8 only)"
                    combo.addItem(label, row.name)
            if current and combo.findData(current) < 0:
                combo.addItem(f"{current} (not installed)", current)
            combo.setCurrentIndex(max(0, combo.findData(current)))
        finally:
            combo.blockSignals(False)

    def _status_text(self, row: ModelInfo) -> str:
        if row.name in self._downloading:
            text = "Downloading..."
        elif row.source == "import":
            text = "Imported" if row.installed else "Incomplete"
        elif row.source == "file":
            text = "ONNX file"
        elif row.installed and row.quantized_installed:
            text = "Installed (+ int8)"
        elif row.installed:
            text = "Installed"
        elif row.quantized_installed:
            text = "Installed (int8)"
        else:
            text = "Not installed"
        if row.name in (self.clip_model(), self.text_model()):
            text += " \u00b7 in use"
        return text

    def _fill_table(self) -> None:
        self.table.setSortingEnabled(False)
        self.table.clearContents()
        self.table.setRowCount(len(self._rows))
        bold = QFont(self.table.font())
        bold.setBold(True)
        for r, row in enumerate(self._rows):
            spec = get_spec(row.name)
            size = fmt_mb(row.size_mb)
            if spec is not None and spec.quantized_size_mb:
                size_tip = f"{spec.size_mb} MB; int8 variant {spec.quantized_size_mb} MB"
            else:
                size_tip = f"{size} on disk" if size else ""
            values = [
                (row.name, row.name),
                (ROLE_NAMES.get(row.role, row.role), ROLE_TIPS.get(row.role, "")),
                (str(row.dim) if row.dim else "", "embedding dimension"),
                (size, size_tip),
                (stars(row.speed), f"speed {row.speed}/5" if row.speed else ""),
                (stars(row.quality), f"quality {row.quality}/5" if row.quality else ""),
                (self._status_text(row), str(row.path)),
                (row.summary, row.summary),
            ]
            for c, (text, tip) in enumerate(values):
                item = QTableWidgetItem(text)
                if tip:
                    item.setToolTip(tip)
                if c in (2, 3):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                if c == 0:
                    item.setData(NAME_ROLE, row.name)
                    if row.name in (self.clip_model(), self.text_model()):
                        item.setFont(bold)
                self.table.setItem(r, c, item)

    def _refresh_status_column(self) -> None:
        bold = QFont(self.table.font())
        bold.setBold(True)
        for r in range(self.table.rowCount()):
            name = self.table.item(r, 0).data(NAME_ROLE)
            row = self.row_of(name)
            if row is None:
                continue
            self.table.item(r, 6).setText(self._status_text(row))
            self.table.item(r, 0).setFont(bold if name in (self.clip_model(), self.text_model())
                                          else self.table.font())

    # ---------------------------------------------------------------- reactions
    @Slot()
    def _selection_changed(self, *_: object) -> None:
        self._refresh_status_column()
        self._update_selection_message()
        self._update_banner()
        self._update_buttons()
        self.changed.emit()

    def _update_selection_message(self) -> None:
        messages = []
        store = self.store
        clip, text = self.clip_model(), self.text_model()
        if clip and not store.is_installed(clip, self._quantized):
            if self._quantized and store.is_installed(clip):
                messages.append(f"The int8 variant of {clip} is not installed: select it below and "
                                "press Download, or turn int8 off on the Runtime tab.")
            else:
                messages.append(f"{clip} is not installed: select it below and press Download, or "
                                "import a model folder. Until then the library can be browsed "
                                "but not searched.")
        if text and not store.is_installed(text) and not (
                get_spec(text) and store.is_installed(text, True)):
            messages.append(f"{text} is not installed: notes are searched by keywords only until "
                            "it is.")
        show_messages(self.selection_message, messages, "warning")

    def _needs_reencode(self) -> bool:
        count, space, _model = self._library
        clip = self.clip_model()
        return bool(count > 0 and space and clip and clip_space_name(clip, self._quantized) != space)

    def _describe_space(self, space: str, model: str | None) -> str:
        if model and space == f"{model}-int8":
            return f"{model} (int8)"
        return model or space

    @Slot()
    def _update_banner(self, *_: object) -> None:
        if not self._needs_reencode():
            self.reencode_frame.setVisible(False)
            return
        count, space, model = self._library
        assert space is not None
        old = self._describe_space(space, model)
        clip = self.clip_model()
        new = f"{clip} (int8)" if self._quantized else clip
        self.reencode_label.setText(
            f"Your library's {count} charts are encoded with {old}. To search them with {new}, "
            f"the library must be re-encoded: each chart is read from its file and encoded again "
            f"in the background, while {old} keeps answering searches until it is complete.")
        self.reencode_check.setText(f"Re-encode the library with {new} after OK")
        if not self.store.is_installed(clip, self._quantized):
            self.reencode_check.setEnabled(False)
            show_messages(self.reencode_note, f"Install {new} first (Download or Import folder).",
                          "warning")
        else:
            self.reencode_check.setEnabled(True)
            if self.reencode_check.isChecked():
                show_messages(self.reencode_note, None)
            else:
                show_messages(self.reencode_note,
                              f"Without re-encoding, searches fail until the library is re-encoded "
                              f"with {new} (later: 'vector-studio library reencode --model {clip}').",
                              "warning")
        self.reencode_frame.setVisible(True)

    @Slot()
    def _row_changed(self) -> None:
        row = self.selected()
        if row is None:
            self.details.setText("")
        else:
            spec = get_spec(row.name)
            parts = [f"{row.name}: {row.summary}" if row.summary else row.name]
            if spec is not None:
                parts.append(f"Hugging Face repo {spec.repo}; {spec.size_mb} MB, int8 "
                             f"{spec.quantized_size_mb} MB; up to {spec.max_tokens} tokens.")
            parts.append(f"Folder: {row.path}")
            self.details.setText("\n".join(parts))
        self._update_buttons()

    def _installed_in_variant(self, row: ModelInfo) -> bool:
        if row.source != "catalog":
            return row.installed
        return row.quantized_installed if self._quantized else row.installed

    @Slot()
    def _update_buttons(self) -> None:
        row = self.selected()
        downloading = self.download_panel.running
        can_download = bool(row and row.source == "catalog" and not self._installed_in_variant(row))
        size = None
        if row is not None and (spec := get_spec(row.name)) is not None:
            size = spec.quantized_size_mb if self._quantized else spec.size_mb
        label = "Download int8" if self._quantized else "Download"
        self.download_button.setText(f"{label} ({fmt_mb(size)})" if can_download and size
                                     else label)
        self.download_button.setEnabled(can_download and not downloading)
        if row is not None and not can_download:
            self.download_button.setToolTip(f"{row.name} is installed" if row.source == "catalog"
                                            else "Only catalog models can be downloaded")
        else:
            self.download_button.setToolTip("Download the selected model from the Hugging Face hub")
        busy_row = bool(row and row.name in self._downloading)
        self.verify_button.setEnabled(bool(row and self._usable(row)) and not busy_row
                                      and not self.ctx.jobs.busy(self.VERIFY_TASK))
        self.delete_button.setEnabled(bool(row and (self._usable(row) or row.path.exists()))
                                      and not busy_row)
        self.import_button.setEnabled(not self.ctx.jobs.busy(self.IMPORT_TASK))

    # ---------------------------------------------------------------- download
    @Slot()
    def download_selected(self) -> None:
        row = self.selected()
        if row is None or self.download_panel.running:
            return
        self.download(row.name)

    def download(self, name: str) -> None:
        self._downloading = [name]
        show_messages(self.status, None)
        self.download_panel.start([name], self._quantized)
        self._refresh_status_column()
        self._update_buttons()

    @Slot(list)
    def _download_succeeded(self, names: list) -> None:
        show_messages(self.status, [f"{', '.join(names)} installed.",
                                    *self.download_panel.notes], "ok")
        self.models_changed.emit()

    @Slot(str)
    def _download_failed(self, message: str) -> None:
        show_messages(self.status, f"Download failed: {message}")

    @Slot()
    def _download_cancelled(self) -> None:
        show_messages(self.status, "Download cancelled. The files downloaded so far are kept; "
                      "Download resumes from there.", "warning")

    @Slot()
    def _download_ended(self) -> None:
        self._downloading = []
        self.refresh()

    # ---------------------------------------------------------------- import
    @Slot()
    def import_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a model folder to import",
                                                  str(Path.home()))
        if not folder:
            return
        answer = ImportModelDialog.ask(Path(folder), [r.name for r in self._rows], self)
        if answer is None:
            return
        self.import_from(Path(folder), *answer)

    def import_from(self, folder: Path, name: str, kind: str) -> None:
        """Import ``folder`` as model ``name`` of ``kind`` in the background."""
        show_messages(self.status, f"Checking and importing {folder}...", "info")
        self.ctx.jobs.start(self.IMPORT_TASK, import_model, self.ctx.models_dir(), folder, name,
                            kind, on_result=self._imported, on_error=self._import_failed)
        self._update_buttons()

    @Slot(object)
    def _imported(self, manifest: object) -> None:
        assert isinstance(manifest, dict)
        show_messages(self.status, f"Imported {manifest['name']} ({manifest['role']}, "
                      f"{manifest['dim']}-d) from {manifest.get('imported_from', '')}.", "ok")
        self.refresh()
        self.select(manifest["name"])
        self.models_changed.emit()

    @Slot(str, str, bool)
    def _import_failed(self, message: str, details: str, user: bool) -> None:
        show_messages(self.status, f"Import failed: {message}")

    # ---------------------------------------------------------------- verify / delete
    @Slot()
    def verify_selected(self) -> None:
        row = self.selected()
        if row is None:
            return
        quantized = row.quantized_installed and (self._quantized or not row.installed)
        what = f"{row.name} (int8)" if quantized else row.name
        show_messages(self.status, f"Verifying {what}...", "info")
        self.ctx.jobs.start(self.VERIFY_TASK, _verify, self.ctx.models_dir(), row.name, quantized,
                            on_result=lambda problems, w=what: self._verified(w, problems),
                            on_error=self._verify_failed)
        self._update_buttons()

    def _verified(self, what: str, problems: object) -> None:
        if self.ctx.jobs.closing:
            return
        problems = list(problems)  # type: ignore[call-overload]
        if problems:
            show_messages(self.status, [f"{what}: {len(problems)} problem(s):",
                                        *[f"\u2022 {p}" for p in problems]])
        else:
            show_messages(self.status, f"{what}: OK (files match their checksums and a test "
                          "inference ran).", "ok")

    @Slot(str, str, bool)
    def _verify_failed(self, message: str, details: str, user: bool) -> None:
        show_messages(self.status, f"Verify failed: {message}")

    @Slot()
    def delete_selected(self) -> None:
        row = self.selected()
        if row is None:
            return
        extra = ""
        if row.name in (self.clip_model(), self.text_model()):
            extra = ("\n\nIt is the active model: searching will not work until you choose "
                     "another one or install it again.")
        size = f" ({fmt_mb(row.size_mb)})" if row.size_mb else ""
        answer = QMessageBox.question(
            self, "Delete model", f"Delete {row.name}{size} from {row.path}?{extra}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            QMessageBox.StandardButton.No)
        if answer != QMessageBox.StandardButton.Yes:
            return
        try:
            self.store.delete(row.name)
        except (VectorStudioError, OSError) as exc:
            show_messages(self.status, f"Could not delete {row.name}: {exc}")
            return
        show_messages(self.status, f"{row.name} deleted.", "ok")
        self.refresh()
        self.models_changed.emit()
