"""The details pane: a larger preview and the facts of the selected chart, with its note.

The pane only shows and asks: it emits signals (open, show in folder, find similar, remove,
save note) and the window does the work on a worker thread.
"""

from __future__ import annotations

import os
import time

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtGui import QFont, QImage, QPixmap, QResizeEvent
from PySide6.QtWidgets import (
    QFormLayout,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from vector_studio_gui.core.types import Item
from vector_studio_gui.gui.results_model import describe_signals, human_size

PREVIEW_BOX = QSize(420, 300)


class _Preview(QLabel):
    """Shows a pixmap scaled to the label's width, keeping its aspect ratio."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pix: QPixmap | None = None
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(220)

    def set_pixmap(self, pix: QPixmap | None) -> None:
        self._pix = pix if pix is not None and not pix.isNull() else None
        self._rescale()

    def pixmap_size(self) -> QSize:
        return QSize() if self._pix is None else self._pix.size()

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._rescale()

    def _rescale(self) -> None:
        if self._pix is None:
            self.clear()
            return
        dpr = self.devicePixelRatioF()
        target = QSize(round(self.width() * dpr), round(self.height() * dpr))
        scaled = self._pix.scaled(target, Qt.AspectRatioMode.KeepAspectRatio,
                                  Qt.TransformationMode.SmoothTransformation)
        scaled.setDevicePixelRatio(dpr)
        self.setPixmap(scaled)


class DetailsPane(QWidget):
    openRequested = Signal(object)  # Item
    showInFolderRequested = Signal(object)  # Item
    findSimilarRequested = Signal(object)  # Item
    removeRequested = Signal(object)  # Item
    saveNoteRequested = Signal(int, str)  # item id, note

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.item: Item | None = None
        self.score: float | None = None
        self.read_only = False
        self.setMinimumWidth(240)

        self.stack = QStackedWidget(self)
        outer = QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)

        self.empty_label = QLabel("Select a chart to see its details", self)
        self.empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.empty_label.setWordWrap(True)
        self.empty_label.setEnabled(False)
        self.stack.addWidget(self.empty_label)

        page = QWidget(self)
        lay = QVBoxLayout(page)
        lay.setContentsMargins(10, 8, 10, 8)
        lay.setSpacing(8)
        self.preview = _Preview(page)
        lay.addWidget(self.preview)

        self.title = QLabel(page)
        f = QFont(self.title.font())
        f.setBold(True)
        f.setPointSizeF(max(f.pointSizeF(), 9.0) * 1.15)
        self.title.setFont(f)
        self.title.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay.addWidget(self.title)

        form = QFormLayout()
        form.setContentsMargins(0, 0, 0, 0)
        form.setHorizontalSpacing(10)
        form.setVerticalSpacing(4)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        self.path_label = self._value(page, selectable=True)
        self.path_label.setWordWrap(True)
        self.size_label = self._value(page)
        self.dims_label = self._value(page)
        self.score_label = self._value(page)
        self.added_label = self._value(page)
        self.matched_label = self._value(page, selectable=True)
        self.matched_label.setWordWrap(True)
        form.addRow("Path", self.path_label)
        form.addRow("Size", self.size_label)
        form.addRow("Dimensions", self.dims_label)
        form.addRow("Score", self.score_label)
        form.addRow("Added", self.added_label)
        form.addRow("Matched", self.matched_label)
        self.form = form
        lay.addLayout(form)

        line = QFrame(page)
        line.setFrameShape(QFrame.Shape.HLine)
        line.setFrameShadow(QFrame.Shadow.Sunken)
        lay.addWidget(line)

        note_head = QHBoxLayout()
        note_head.addWidget(QLabel("Note", page))
        note_head.addStretch(1)
        self.note_status = QLabel("", page)
        self.note_status.setEnabled(False)
        note_head.addWidget(self.note_status)
        lay.addLayout(note_head)
        self.note_edit = QPlainTextEdit(page)
        self.note_edit.setPlaceholderText("Add words to find this chart by, e.g. \"gold breakout "
                                          "weekly\"")
        self.note_edit.setTabChangesFocus(True)
        self.note_edit.setFixedHeight(72)
        self.note_edit.textChanged.connect(self._note_changed)
        lay.addWidget(self.note_edit)
        self.save_note_button = QPushButton("Save note", page)
        self.save_note_button.setEnabled(False)
        self.save_note_button.clicked.connect(self._save_note)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(self.save_note_button)
        lay.addLayout(row)

        buttons = QGridLayout()
        buttons.setSpacing(6)
        self.open_button = QPushButton("Open", page)
        self.folder_button = QPushButton("Show in folder", page)
        self.similar_button = QPushButton("Find similar", page)
        self.remove_button = QPushButton("Remove", page)
        self.remove_button.setToolTip("Remove from the library (the file is not deleted)")
        buttons.addWidget(self.open_button, 0, 0)
        buttons.addWidget(self.folder_button, 0, 1)
        buttons.addWidget(self.similar_button, 1, 0)
        buttons.addWidget(self.remove_button, 1, 1)
        lay.addLayout(buttons)
        lay.addStretch(1)
        self.open_button.clicked.connect(lambda: self._emit(self.openRequested))
        self.folder_button.clicked.connect(lambda: self._emit(self.showInFolderRequested))
        self.similar_button.clicked.connect(lambda: self._emit(self.findSimilarRequested))
        self.remove_button.clicked.connect(lambda: self._emit(self.removeRequested))
        self.stack.addWidget(page)
        self.page = page
        self.show_item(None)

    @staticmethod
    def _value(parent: QWidget, selectable: bool = False) -> QLabel:
        lab = QLabel(parent)
        lab.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        if selectable:
            lab.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        return lab

    def _emit(self, signal) -> None:
        if self.item is not None:
            signal.emit(self.item)

    # ----------------------------------------------------------------- content
    def show_item(self, item: Item | None, score: float | None = None,
                  signals: dict[str, float] | None = None,
                  thumbnail: QPixmap | None = None, matched: tuple[str, ...] = ()) -> None:
        same = item is not None and self.item is not None and item.id == self.item.id
        self.item = item
        self.score = score
        if item is None:
            self.stack.setCurrentWidget(self.empty_label)
            self.preview.set_pixmap(None)
            return
        self.stack.setCurrentWidget(self.page)
        self.title.setText(os.path.basename(item.path) or item.path)
        self.title.setToolTip(item.path)
        others = f"\n(+{len(item.paths) - 1} more)" if len(item.paths) > 1 else ""
        self.path_label.setText(item.path + others)
        self.path_label.setToolTip("\n".join(item.paths))
        self.size_label.setText(human_size(item.size))
        self.dims_label.setText(f"{item.width} × {item.height} px")
        if score is None:
            self.score_label.setText("—")
        else:
            extra = f" ({describe_signals(signals)})" if signals and len(signals) > 1 else ""
            self.score_label.setText(f"{score:.3f}{extra}")
        self.added_label.setText(time.strftime("%Y-%m-%d %H:%M", time.localtime(item.added)))
        self.matched_label.setText("\n".join(matched[:4]))
        self.form.setRowVisible(self.matched_label, bool(matched))
        if not same or not self.note_dirty():
            self.note_edit.blockSignals(True)
            self.note_edit.setPlainText(item.note)
            self.note_edit.blockSignals(False)
            self.note_status.setText("")
            self.save_note_button.setEnabled(False)
        if not same:
            self.preview.set_pixmap(thumbnail)
        self._apply_read_only()

    def set_preview(self, item_id: int, image: QImage | QPixmap | None) -> None:
        """A larger preview loaded off the GUI thread (ignored if the selection moved on)."""
        if self.item is None or self.item.id != item_id or image is None:
            return
        pix = QPixmap.fromImage(image) if isinstance(image, QImage) else image
        if not pix.isNull():
            self.preview.set_pixmap(pix)

    def set_read_only(self, read_only: bool) -> None:
        self.read_only = read_only
        self._apply_read_only()

    def _apply_read_only(self) -> None:
        self.note_edit.setReadOnly(self.read_only)
        self.remove_button.setEnabled(not self.read_only)
        if self.read_only:
            self.save_note_button.setEnabled(False)

    # ----------------------------------------------------------------- note
    def note_dirty(self) -> bool:
        return self.item is not None and self.note_edit.toPlainText().strip() != self.item.note

    def _note_changed(self) -> None:
        dirty = self.note_dirty()
        self.save_note_button.setEnabled(dirty and not self.read_only)
        self.note_status.setText("unsaved" if dirty else "")

    def _save_note(self) -> None:
        if self.item is None or self.read_only:
            return
        self.save_note_button.setEnabled(False)
        self.note_status.setText("saving…")
        self.saveNoteRequested.emit(self.item.id, self.note_edit.toPlainText().strip())

    def note_saved(self, item: Item) -> None:
        if self.item is not None and item.id == self.item.id:
            self.item = item
            self._note_changed()
            if not self.note_dirty():
                self.note_status.setText("saved")

    def note_failed(self, message: str) -> None:
        self.note_status.setText("not saved")
        self.save_note_button.setEnabled(not self.read_only)
        self.note_status.setToolTip(message)
