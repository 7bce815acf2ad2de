"""The search box: text queries (debounced while typing), image queries (paste or drop).

``textQuery`` carries the text to search for; an empty string means "show the library".
``imageQuery`` carries a ``QImage`` (pasted or dropped image data) or a local file path (a
dropped image file). Dropped folders or several files are not queries: the box ignores them so
they reach the window, which ingests them.
"""

from __future__ import annotations

import os

from PySide6.QtCore import QEvent, QMimeData, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QIcon,
    QImage,
    QKeyEvent,
    QKeySequence,
    QPainter,
    QPalette,
    QPen,
    QPixmap,
)
from PySide6.QtWidgets import QLineEdit, QWidget

from vector_studio_gui.core.imaging import SUPPORTED_EXTENSIONS

PLACEHOLDER = "Describe a chart, or paste/drop an image"
DEBOUNCE_MS = 250
#: the query syntax (core/query.py; the README's "Search syntax" section says the same)
SYNTAX_TIP = (
    "<b>Search syntax</b>"
    "<table cellspacing='0' cellpadding='2'>"
    "<tr><td><tt>gold&nbsp;price&nbsp;2024</tt></td><td>plain words are semantic: matched by "
    "meaning against the picture, the chart's text and your notes; charts whose text holds "
    "the words also rank higher</td></tr>"
    "<tr><td><tt>\"XAUUSD&nbsp;4H\"</tt></td><td>a \"quoted phrase\" must appear in the "
    "chart's text (read from the picture, its note or its file name)</td></tr>"
    "<tr><td><tt>-weekly</tt></td><td>a -word excludes charts whose text contains it "
    "(-\"a phrase\" too)</td></tr>"
    "</table>"
    "Case and accents do not matter; common words (<i>the, of, chart</i>) are not keywords. "
    "Paste (Ctrl+V) or drop an image to find similar charts; Enter searches at once, Esc "
    "shows the whole library."
)


def image_file(mime: QMimeData | None) -> str | None:
    """The path of the single local image file in ``mime``, if that is what it holds."""
    if mime is None or not mime.hasUrls():
        return None
    urls = [u for u in mime.urls() if u.isLocalFile()]
    if len(urls) != 1:
        return None
    path = urls[0].toLocalFile()
    if os.path.isfile(path) and os.path.splitext(path)[1].lower() in SUPPORTED_EXTENSIONS:
        return path
    return None


def image_data(mime: QMimeData | None) -> QImage | None:
    """Image data in ``mime`` (a screenshot on the clipboard, an image dragged from a browser)."""
    if mime is None or not mime.hasImage():
        return None
    img = mime.imageData()
    if isinstance(img, QImage) and not img.isNull():
        return img
    return None


def _magnifier(widget: QWidget) -> QPixmap:
    """A small search icon drawn in the palette's text colour (no icon theme needed)."""
    dpr = widget.devicePixelRatioF()
    size = 16
    pix = QPixmap(round(size * dpr), round(size * dpr))
    pix.setDevicePixelRatio(dpr)
    pix.fill(Qt.GlobalColor.transparent)
    p = QPainter(pix)
    p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
    colour = widget.palette().color(QPalette.ColorRole.PlaceholderText)
    p.setPen(QPen(colour, 1.8))
    p.drawEllipse(QRectF(2.0, 2.0, 8.5, 8.5))
    p.drawLine(QPointF(9.6, 9.6), QPointF(14.0, 14.0))
    p.end()
    return pix


class SearchBox(QLineEdit):
    textQuery = Signal(str)
    imageQuery = Signal(object)  # QImage or str (path of an image file)

    def __init__(self, parent: QWidget | None = None, debounce_ms: int = DEBOUNCE_MS) -> None:
        super().__init__(parent)
        self.setPlaceholderText(PLACEHOLDER)
        self.setToolTip(SYNTAX_TIP)
        self.setClearButtonEnabled(True)
        self.setAccessibleName("Search")
        self._icon_action = self.addAction(QIcon(_magnifier(self)),
                                           QLineEdit.ActionPosition.LeadingPosition)
        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(debounce_ms)
        self._debounce.timeout.connect(self.search_now)
        self._silent = False
        self._last_sent: str | None = None
        self.textChanged.connect(self._on_text_changed)
        self.returnPressed.connect(self._on_return)

    def changeEvent(self, event: QEvent) -> None:  # noqa: N802
        if event.type() == QEvent.Type.PaletteChange:  # light/dark switch: redraw the icon
            self._icon_action.setIcon(QIcon(_magnifier(self)))
        super().changeEvent(event)

    # ----------------------------------------------------------------- text
    def _on_text_changed(self, _text: str) -> None:
        if not self._silent:
            self._debounce.start()

    def _on_return(self) -> None:
        self._last_sent = None  # Enter always searches, even for the same text again
        self.search_now()

    def search_now(self) -> None:
        """Send the current text as a query now (cancels a pending debounced one)."""
        self._debounce.stop()
        text = self.text().strip()
        if text == self._last_sent:
            return
        self._last_sent = text
        self.textQuery.emit(text)

    def set_text_silently(self, text: str) -> None:
        """Change the text without triggering a search (e.g. when an image query replaces it)."""
        self._debounce.stop()
        self._silent = True
        try:
            self.setText(text)
        finally:
            self._silent = False
        self._last_sent = text.strip()

    def forget_last(self) -> None:
        """The next text query is sent even if the text did not change."""
        self._last_sent = None

    def pending(self) -> bool:
        return self._debounce.isActive()

    # ----------------------------------------------------------------- keys
    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802
        if event.key() == Qt.Key.Key_Escape and not event.modifiers():
            if self.text():
                self.clear()
            self._last_sent = None
            self.search_now()
            event.accept()
            return
        if event.matches(QKeySequence.StandardKey.Paste) and self.paste_image():
            event.accept()
            return
        super().keyPressEvent(event)

    def paste_image(self) -> bool:
        """If the clipboard holds an image (or one image file), search with it; True if it did."""
        mime = QGuiApplication.clipboard().mimeData()
        path = image_file(mime)
        if path is not None:
            self.imageQuery.emit(path)
            return True
        img = image_data(mime)
        if img is not None:
            self.imageQuery.emit(img.copy())
            return True
        return False

    # ----------------------------------------------------------------- drops
    def _wants(self, mime: QMimeData | None) -> bool:
        return image_file(mime) is not None or image_data(mime) is not None

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        mime = event.mimeData()
        if self._wants(mime):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        elif mime.hasUrls():
            event.ignore()  # folders / several files: the window ingests them
        else:
            super().dragEnterEvent(event)

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802
        mime = event.mimeData()
        if self._wants(mime):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        elif mime.hasUrls():
            event.ignore()
        else:
            super().dragMoveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        mime = event.mimeData()
        path = image_file(mime)
        img = None if path else image_data(mime)
        if path is not None or img is not None:
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
            self.imageQuery.emit(path if path is not None else img.copy())
            return
        if mime.hasUrls():
            event.ignore()
            return
        super().dropEvent(event)
