"""The thumbnail grid: an icon-mode QListView with a delegate painting tile, score and file name.

The view is virtualised (uniform item sizes, batched layout), drags tiles out as file URLs,
accepts dropped files and folders (emitting ``filesDropped``) and, while the model is empty,
paints a large hint in the middle ("Drop chart images or folders here").
"""

from __future__ import annotations

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QFont,
    QFontMetrics,
    QKeyEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPalette,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from vector_studio_gui.gui.results_model import (
    MAX_THUMB_WIDTH,
    THUMB_SIZE,
    ResultsModel,
    blank_pixmap,
)

_SELECTED = QStyle.StateFlag.State_Selected.value
_HOVER = QStyle.StateFlag.State_MouseOver.value

DROP_HINT = "Drop chart images or folders here"
DROP_SUBHINT = "or use File \u25b8 Add files\u2026 (Ctrl+O) or Add folder\u2026"
PAD = 8
#: minimum gap between tiles
GAP = 10


def local_paths(mime) -> list[str]:
    """Local file paths in a drag's mime data (empty when it holds no local files)."""
    if mime is None or not mime.hasUrls():
        return []
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile() and u.toLocalFile()]


class TileDelegate(QStyledItemDelegate):
    """Paints one tile: rounded card, thumbnail, score badge (searches only), elided file name."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.thumb = QSize(THUMB_SIZE)
        self._cards: dict[tuple, QPixmap] = {}
        self._badges: dict[tuple, QPixmap] = {}
        self._fonts: dict[str, QFontMetrics] = {}
        self._names: dict[tuple, str] = {}

    def set_thumb_width(self, width: int) -> bool:
        """Stretch the thumbnail box to ``width`` (keeping its aspect); True if it changed."""
        width = max(THUMB_SIZE.width(), min(MAX_THUMB_WIDTH, width))
        size = QSize(width, round(width * THUMB_SIZE.height() / THUMB_SIZE.width()))
        if size == self.thumb:
            return False
        self.thumb = size
        return True

    def tile_size(self, option_font: QFont) -> QSize:
        fm = QFontMetrics(option_font)
        return QSize(self.thumb.width() + 2 * PAD,
                     PAD + self.thumb.height() + 6 + fm.height() + PAD)

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex | QPersistentModelIndex
                 ) -> QSize:  # noqa: N802
        return self.tile_size(option.font)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem,
              index: QModelIndex | QPersistentModelIndex) -> None:
        # Every frame of a scroll repaints a viewport of ~25 tiles on the GUI thread, which
        # during an ingest shares 2 cores with the encoder: antialiased card paths and frames
        # were 60% of that time (py-spy), so the card is a cached pixmap and the thumbnail is
        # drawn at its own size, scaled and framed once, off the GUI thread.
        painter.save()
        # the view paints with smooth pixmap transforms on, which makes Qt blend even an
        # unscaled pixmap with alpha through its slow transform path (38 vs 4 us a card)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, False)
        pal: QPalette = option.palette
        state = option.state.value  # ints: Python enum flag arithmetic costs ~5 us a test
        selected = bool(state & _SELECTED)
        hover = bool(state & _HOVER)
        device = painter.device()
        dpr = device.devicePixelRatioF() if device else 1.0
        rect = option.rect
        # the palette's colour group (active / inactive window) changes without its cacheKey
        key = (rect.width(), rect.height(), dpr, pal.cacheKey(), pal.currentColorGroup(),
               selected, hover)
        card = self._cards.get(key)
        if card is None:
            card = self._card(key, rect.size(), pal, selected, hover, dpr)
        painter.drawPixmap(rect.topLeft(), card)

        # thumbnail, centred in its box
        box = QRect(option.rect.x() + PAD, option.rect.y() + PAD, self.thumb.width(),
                    self.thumb.height())
        pix = index.data(Qt.ItemDataRole.DecorationRole)
        if isinstance(pix, QPixmap) and not pix.isNull():
            pdpr = pix.devicePixelRatio() or 1.0
            size = QSize(round(pix.width() / pdpr), round(pix.height() / pdpr))
            size.scale(box.size(), Qt.AspectRatioMode.KeepAspectRatio)
            target = QRect(QPoint(0, 0), size)
            target.moveCenter(box.center())
            if size.width() * pdpr != pix.width():  # only when the box outgrew the thumbnail
                painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform, True)
            painter.drawPixmap(target, pix)  # its 1 px frame is drawn in when it is loaded

        # score badge (search results only; not on picture-only candidates of a text match)
        badge = index.data(ResultsModel.BadgeRole)
        if isinstance(badge, str):
            pill = self._badge(option, badge, index.row() == 0, dpr)
            width = round(pill.width() / pill.devicePixelRatio())
            painter.drawPixmap(box.right() - width - 3, box.top() + 4, pill)

        # file name
        name = index.data(Qt.ItemDataRole.DisplayRole) or ""
        fm = self._metrics(option.font)
        text_rect = QRect(option.rect.x() + PAD, box.bottom() + 6, box.width(), fm.height())
        painter.setFont(option.font)
        painter.setPen(pal.color(QPalette.ColorRole.Text))
        painter.drawText(text_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter,
                         self._elided(name, fm, text_rect.width()))
        painter.restore()

    def _metrics(self, font: QFont) -> QFontMetrics:
        key = font.key()
        fm = self._fonts.get(key)
        if fm is None:
            fm = self._fonts[key] = QFontMetrics(font)
        return fm

    def _elided(self, name: str, fm: QFontMetrics, width: int) -> str:
        key = (name, width, id(fm))
        text = self._names.get(key)
        if text is None:
            if len(self._names) > 4000:
                self._names.clear()
            text = self._names[key] = fm.elidedText(name, Qt.TextElideMode.ElideMiddle, width)
        return text

    def _card(self, key: tuple, size: QSize, pal: QPalette, selected: bool, hover: bool,
              dpr: float) -> QPixmap:
        """The rounded card (background, border) of a tile, painted once per size, palette and
        state."""
        dark = pal.color(QPalette.ColorRole.Base).lightness() < 128
        bg = QColor(pal.color(QPalette.ColorRole.Base))
        bg = bg.lighter(135) if dark else bg.darker(104)
        hl = QColor(pal.color(QPalette.ColorRole.Highlight))
        border = QColor(hl) if selected else QColor(pal.color(QPalette.ColorRole.Text))
        if not selected:
            border.setAlpha(70 if hover else 28)
        if len(self._cards) > 32:  # palette or size changes leave old cards behind
            self._cards.clear()
        pix = blank_pixmap(size, dpr, Qt.GlobalColor.transparent)
        p = QPainter(pix)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        card = QPainterPath()
        card.addRoundedRect(QRectF(0, 0, size.width(), size.height()).adjusted(
            1.5, 1.5, -1.5, -1.5), 7, 7)
        p.fillPath(card, bg)
        if selected:
            hl.setAlpha(70)
            p.fillPath(card, hl)
        p.setPen(QPen(border, 2.0 if selected else 1.0))
        p.drawPath(card)
        p.end()
        self._cards[key] = pix
        return pix

    def _badge(self, option: QStyleOptionViewItem, text: str, best: bool, dpr: float
               ) -> QPixmap:
        """The score pill, painted once per score text and colour."""
        hl = option.palette.color(QPalette.ColorRole.Highlight).rgba()
        key = (text, best, dpr, option.font.key(), hl if best else 0)
        pix = self._badges.get(key)
        if pix is not None:
            return pix
        if len(self._badges) > 512:
            self._badges.clear()
        font = QFont(option.font)
        font.setBold(True)
        if font.pointSizeF() > 0:
            font.setPointSizeF(max(7.0, font.pointSizeF() * 0.85))
        fm = QFontMetrics(font)
        w = fm.horizontalAdvance(text) + 12
        h = fm.height() + 4
        pix = blank_pixmap(QSize(w, h), dpr, Qt.GlobalColor.transparent)
        p = QPainter(pix)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        r = QRectF(0, 0, w, h)
        path = QPainterPath()
        path.addRoundedRect(r, h / 2, h / 2)
        colour = QColor(option.palette.color(QPalette.ColorRole.Highlight)) if best else QColor(
            20, 24, 30)
        colour.setAlpha(225 if best else 190)
        p.fillPath(path, colour)
        p.setFont(font)
        p.setPen(QColor(255, 255, 255))
        p.drawText(r, Qt.AlignmentFlag.AlignCenter, text)
        p.end()
        self._badges[key] = pix
        return pix


class ResultsView(QListView):
    filesDropped = Signal(list)  # local paths dropped onto the grid
    openRequested = Signal()  # Enter / double click on the current tile
    deleteRequested = Signal()  # Delete key
    thumbBoxChanged = Signal(QSize)  # the tiles' thumbnail box, after a resize

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setMovement(QListView.Movement.Static)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(True)
        self.setUniformItemSizes(True)
        self.setLayoutMode(QListView.LayoutMode.Batched)
        self.setBatchSize(256)
        self.setSpacing(6)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setSelectionRectVisible(True)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.verticalScrollBar().setSingleStep(24)
        self.setMouseTracking(True)
        self.setWordWrap(False)
        self.setDragEnabled(True)
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setDropIndicatorShown(False)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.setFrameShape(QListView.Shape.NoFrame)
        self.delegate = TileDelegate(self)
        self.setItemDelegate(self.delegate)
        self.setIconSize(THUMB_SIZE)
        self._sync_grid()
        self.hint_title = DROP_HINT
        self.hint_subtitle = DROP_SUBHINT
        self.drop_highlight = False
        self.doubleClicked.connect(lambda _idx: self.openRequested.emit())

    def _sync_grid(self) -> None:
        """Spread the columns over the whole width, so no wide empty strip is left on the right.

        The width assumes a vertical scroll bar is shown, so the grid does not change (and the
        layout does not oscillate) when the scroll bar appears or goes.
        """
        bar = self.verticalScrollBar().sizeHint().width()
        avail = self.width() - 2 * self.frameWidth() - bar - 2
        min_cell = THUMB_SIZE.width() + 2 * PAD + GAP
        cols = max(1, avail // min_cell)
        cell_w = max(min_cell, avail // cols)
        if self.delegate.set_thumb_width(cell_w - GAP - 2 * PAD):
            self.thumbBoxChanged.emit(QSize(self.delegate.thumb))
        tile = self.delegate.tile_size(self.font())
        grid = QSize(max(cell_w, tile.width() + GAP), tile.height() + GAP)
        if grid != self.gridSize():
            self.setGridSize(grid)
            self.setIconSize(self.delegate.thumb)

    def resizeEvent(self, event) -> None:  # noqa: N802
        self._sync_grid()
        super().resizeEvent(event)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        if event.type() in (QEvent.Type.FontChange, QEvent.Type.StyleChange):
            self._sync_grid()
        super().changeEvent(event)

    # ----------------------------------------------------------------- empty state
    def set_hint(self, title: str, subtitle: str = "") -> None:
        self.hint_title, self.hint_subtitle = title, subtitle
        self.viewport().update()

    def hint_visible(self) -> bool:
        """True while the big centred hint is painted (no rows to show)."""
        model = self.model()
        return bool(self.hint_title) and (model is None or model.rowCount() == 0)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        super().paintEvent(event)
        if not self.hint_visible() and not self.drop_highlight:
            return
        p = QPainter(self.viewport())
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        pal = self.palette()
        area = QRectF(self.viewport().rect()).adjusted(24, 24, -24, -24)
        accent = QColor(pal.color(QPalette.ColorRole.Highlight))
        if self.drop_highlight:
            fill = QColor(accent)
            fill.setAlpha(30)
            p.fillRect(area, fill)
        if self.hint_visible():
            pen = QPen(accent if self.drop_highlight else QColor(
                pal.color(QPalette.ColorRole.PlaceholderText)), 2.0, Qt.PenStyle.DashLine)
            p.setPen(pen)
            p.drawRoundedRect(area, 14, 14)
            title = QFont(self.font())
            title.setPointSizeF(max(self.font().pointSizeF(), 9.0) * 1.8)
            title.setBold(True)
            p.setFont(title)
            p.setPen(pal.color(QPalette.ColorRole.Text))
            fm = QFontMetrics(title)
            mid = area.center().y()
            p.drawText(QRectF(area.left(), mid - fm.height(), area.width(), fm.height()),
                       Qt.AlignmentFlag.AlignCenter, self.hint_title)
            if self.hint_subtitle:
                p.setFont(self.font())
                p.setPen(pal.color(QPalette.ColorRole.PlaceholderText))
                p.drawText(QRectF(area.left(), mid + 6, area.width(), fm.height()),
                           Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
                           self.hint_subtitle)
        p.end()

    # ----------------------------------------------------------------- keys
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.openRequested.emit()
            event.accept()
            return
        if event.key() == Qt.Key.Key_Delete and self.selectionModel() is not None and (
                self.selectionModel().hasSelection()):
            self.deleteRequested.emit()
            event.accept()
            return
        super().keyPressEvent(event)

    # ----------------------------------------------------------------- drops in, drags out
    def _external_files(self, event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> list[str]:
        if event.source() is self:
            return []  # a tile dragged out and back in: nothing to add
        return local_paths(event.mimeData())

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if self._external_files(event):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
            self.drop_highlight = True
            self.viewport().update()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802
        if self._external_files(event):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()

    def dragLeaveEvent(self, event) -> None:  # noqa: N802
        self.drop_highlight = False
        self.viewport().update()
        event.accept()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        self.drop_highlight = False
        self.viewport().update()
        paths = self._external_files(event)
        if not paths:
            event.ignore()
            return
        event.setDropAction(Qt.DropAction.CopyAction)
        event.accept()
        self.filesDropped.emit(paths)

    def startDrag(self, supported: Qt.DropAction) -> None:  # noqa: N802
        super().startDrag(Qt.DropAction.CopyAction)
