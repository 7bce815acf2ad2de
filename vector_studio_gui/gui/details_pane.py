"""The details pane: a larger preview and the facts of the selected chart, its text and note.

The pane only shows and asks: it emits signals (open, show in folder, find similar, remove,
save note) and the window does the work on a worker thread. The chart's recognised text (from
the reading-text pass) is shown read-only with the words of the current query highlighted, and
the preview outlines where those words are on the chart.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import (
    QBrush,
    QColor,
    QFont,
    QFontMetricsF,
    QImage,
    QPainter,
    QPaintEvent,
    QPen,
    QPixmap,
    QPolygonF,
    QResizeEvent,
    QTextCharFormat,
    QTextCursor,
)
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
from vector_studio_gui.gui.chart_text import Box, LineMatch, find_matches, query_terms
from vector_studio_gui.gui.results_model import describe_signals, human_size

#: the box the larger preview is loaded into from the file (device-independent pixels; the
#: pane is rarely wider, and a wider pane still gets a sharp picture on 2x screens)
PREVIEW_BOX = QSize(640, 440)
#: how matched words are marked, in the text and on the preview (amber: readable on light and
#: dark palettes, distinct from the selection colour)
MATCH_BACKGROUND = QColor(255, 206, 64)
MATCH_TEXT = QColor(20, 20, 20)
MATCH_OUTLINE = QColor(255, 140, 0)

#: states of the chart-text area
TEXT_READ, TEXT_PENDING, TEXT_OFF, TEXT_LOADING = "read", "pending", "off", "loading"


class _Preview(QLabel):
    """Shows a pixmap scaled to the label's width, keeping its aspect ratio, with the boxes of
    the matched words drawn over it."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pix: QPixmap | None = None
        #: boxes in the original image's pixels, and that image's size
        self._boxes: list[Box] = []
        self._source = QSize()
        self.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(220)

    def set_pixmap(self, pix: QPixmap | None) -> None:
        self._pix = pix if pix is not None and not pix.isNull() else None
        self._rescale()

    def pixmap_size(self) -> QSize:
        return QSize() if self._pix is None else self._pix.size()

    def set_overlay(self, boxes: Sequence[Box], source: QSize) -> None:
        """Boxes (4 corner points each, in the pixels of the original image of size
        ``source``) to outline on the picture, whatever size it is shown at."""
        self._boxes = list(boxes)
        self._source = QSize(source)
        self.update()

    def overlay_boxes(self) -> list[Box]:
        return list(self._boxes)

    def image_rect(self) -> QRectF:
        """Where the picture is drawn, in widget coordinates (empty without one)."""
        pm = self.pixmap()
        if self._pix is None or pm is None or pm.isNull():
            return QRectF()
        dpr = pm.devicePixelRatio() or 1.0
        w, h = pm.width() / dpr, pm.height() / dpr
        cr = QRectF(self.contentsRect())
        return QRectF(cr.x() + (cr.width() - w) / 2, cr.y() + (cr.height() - h) / 2, w, h)

    def overlay_polygons(self) -> list[QPolygonF]:
        """The overlay boxes scaled from original image pixels onto the shown picture."""
        rect = self.image_rect()
        if rect.isEmpty() or not self._boxes or self._source.isEmpty():
            return []
        sx = rect.width() / self._source.width()
        sy = rect.height() / self._source.height()
        return [QPolygonF([QPointF(rect.x() + x * sx, rect.y() + y * sy) for x, y in box])
                for box in self._boxes]

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802
        super().resizeEvent(event)
        self._rescale()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        super().paintEvent(event)
        polys = self.overlay_polygons()
        if not polys:
            return
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        fill = QColor(MATCH_BACKGROUND)
        fill.setAlpha(70)
        p.setBrush(QBrush(fill))
        p.setPen(QPen(MATCH_OUTLINE, 2.0))
        for poly in polys:
            p.drawPolygon(poly)
        p.end()

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
        #: the text query the shown results answer (None: browsing, or an image query)
        self.query: str | None = None
        self._terms: list[list[str]] = []
        self._lines: list = []  # OcrLine of the shown item
        self._text_state = TEXT_LOADING
        self._matched: tuple[str, ...] = ()
        #: where the query's words are in the shown chart's text
        self.matches: list[LineMatch] = []
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
        self.score_label.setWordWrap(True)  # with its signals it is longer than the pane
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

        self.text_status = _section_head(lay, "Text in the chart", page)
        self.text_view = QPlainTextEdit(page)
        self.text_view.setObjectName("chartText")
        self.text_view.setReadOnly(True)
        self.text_view.setTabChangesFocus(True)
        self.text_view.setAccessibleName("Text in the chart")
        self.text_view.setToolTip("The text read in the chart (titles, tickers, labels); words "
                                  "of the query are highlighted here and outlined on the preview")
        # a fixed height: the window's minimum size never changes with the text shown
        fm = self.text_view.fontMetrics()
        self.text_view.setFixedHeight(fm.lineSpacing() * 4 + 14)
        lay.addWidget(self.text_view)

        self.note_status = _section_head(lay, "Note", page)
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
            self.preview.set_overlay([], QSize())
            self._lines = []
            self.matches = []
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
        self._matched = tuple(matched)
        if not same or not self.note_dirty():
            self.note_edit.blockSignals(True)
            self.note_edit.setPlainText(item.note)
            self.note_edit.blockSignals(False)
            self.note_status.setText("")
            self.save_note_button.setEnabled(False)
        if not same:
            self.preview.set_pixmap(thumbnail)
            self._lines = []
            self._text_state = TEXT_LOADING
        self._render_text()
        self._apply_read_only()

    # ----------------------------------------------------------------- chart text
    def set_query(self, query: str | None) -> None:
        """The text query whose words are highlighted (None or "" for none)."""
        query = query or None
        if query == self.query:
            return
        self.query = query
        self._terms = query_terms(query)
        if self.item is not None:
            self._render_text()

    def set_chart_text(self, item_id: int, lines: Sequence, state: str = TEXT_READ) -> None:
        """The recognised lines of a chart, loaded off the GUI thread (ignored if the
        selection moved on); ``state`` says why there are none: TEXT_PENDING (not read yet)
        or TEXT_OFF (reading chart text is switched off)."""
        if self.item is None or self.item.id != item_id:
            return
        self._lines = list(lines)
        self._text_state = TEXT_READ if self._lines else state
        self._render_text()

    def _render_text(self) -> None:
        item = self.item
        view = self.text_view
        lines = self._lines
        self.matches = find_matches(self._terms, lines, advance=QFontMetricsF(view.font())
                                    .horizontalAdvance) if self._terms and lines else []
        # a plain format first: new text would take the one under the cursor (a highlight)
        view.setCurrentCharFormat(QTextCharFormat())
        view.setPlainText("\n".join(ln.text for ln in lines))
        placeholder = {
            TEXT_LOADING: "",
            TEXT_PENDING: "Not read yet: the chart's text is read in the background after "
                          "charts are added",
            TEXT_OFF: "Reading chart text is switched off (Settings ▸ Library)",
        }.get(self._text_state, "No text found in this chart")
        view.setPlaceholderText(placeholder)
        fmt = QTextCharFormat()
        fmt.setBackground(MATCH_BACKGROUND)
        fmt.setForeground(MATCH_TEXT)
        fmt.setFontWeight(QFont.Weight.Bold)
        doc = view.document()
        first: QTextCursor | None = None
        for m in self.matches:
            block = doc.findBlockByNumber(m.line)
            for start, end in m.spans:
                cur = QTextCursor(doc)
                cur.setPosition(block.position() + start)
                cur.setPosition(block.position() + end, QTextCursor.MoveMode.KeepAnchor)
                cur.mergeCharFormat(fmt)
                if first is None:
                    first = QTextCursor(doc)
                    first.setPosition(block.position() + start)
        if first is not None:  # the first match in view, without selecting it
            view.setTextCursor(first)
            view.ensureCursorVisible()
        words = sum(len(m.spans) for m in self.matches)
        if self._text_state == TEXT_READ and lines:
            status = f"{len(lines)} line{'' if len(lines) == 1 else 's'}"
            if self._terms:
                status += f" · {words} match{'' if words == 1 else 'es'}"
        else:
            status = {TEXT_PENDING: "not read yet", TEXT_OFF: "off"}.get(self._text_state, "")
        self.text_status.setText(status if item is not None else "")
        # "Matched": what matched besides the chart text highlighted below (note, file name)
        shown = {ln.text for ln in lines} if self.matches else set()
        rest = [m for m in self._matched if m not in shown]
        self.matched_label.setText("\n".join(rest[:4]))
        self.form.setRowVisible(self.matched_label, bool(rest))
        source = QSize(item.width, item.height) if item is not None else QSize()
        self.preview.set_overlay([b for m in self.matches for b in m.boxes], source)

    def highlighted_text(self) -> list[str]:
        """The highlighted pieces of the text area, in order (what the user sees marked)."""
        out = []
        block = self.text_view.document().firstBlock()
        while block.isValid():
            it = block.begin()
            while not it.atEnd():
                frag = it.fragment()
                if frag.isValid() and frag.charFormat().fontWeight() >= QFont.Weight.Bold:
                    out.append(frag.text())
                it += 1
            block = block.next()
        return out

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


def _section_head(lay: QVBoxLayout, title: str, page: QWidget) -> QLabel:
    """A section's title with a dimmed status label on the right ("2 lines", "saved");
    returns the status label."""
    head = QHBoxLayout()
    head.addWidget(QLabel(title, page))
    head.addStretch(1)
    status = QLabel("", page)
    status.setEnabled(False)
    head.addWidget(status)
    lay.addLayout(head)
    return status
