"""Helpers that act on the GUI like a user would (drag and drop, reading the grid)."""

from __future__ import annotations

import time

from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QWidget


def drop_urls(target: QWidget, paths, *, source_ok: bool = True) -> tuple[bool, bool]:
    """Drag ``paths`` onto ``target`` (enter, then drop) like a file manager would.

    Returns (enter accepted, drop accepted). For a list view pass ``view.viewport()``.
    """
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QPointF(target.width() / 2, target.height() / 2)
    args = (Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
            Qt.KeyboardModifier.NoModifier)
    try:  # PySide6 >= 6.12 takes QPointF (and warns on QPoint); earlier versions QPoint only
        enter = QDragEnterEvent(pos, *args)
    except TypeError:
        enter = QDragEnterEvent(QPoint(int(pos.x()), int(pos.y())), *args)
    QApplication.sendEvent(target, enter)
    if not enter.isAccepted():
        return False, False
    drop = QDropEvent(pos, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(target, drop)
    return True, drop.isAccepted()


def names(window) -> list[str]:
    """File names of the tiles in grid order, as the user reads them."""
    m = window.model
    return [m.data(m.index(r, 0)) for r in range(m.rowCount())]


def slow_down_encoder(engine, seconds: float) -> None:
    """Make every image batch take ``seconds`` (like a big real model), so a run can be caught
    midway; the model is loaded here, before the test starts the clock."""
    enc = engine.image_encoder()
    real = enc.encode

    def slow(pixels):
        time.sleep(seconds)
        return real(pixels)

    enc.encode = slow


def ingest_and_wait(qtbot, window, paths, timeout: int = 20000):
    """Drop ``paths`` on the grid and wait for the ingest summary; returns the IngestReport."""
    with qtbot.waitSignal(window.ingest.finished, timeout=timeout) as blocker:
        enter, dropped = drop_urls(window.view.viewport(), paths)
        assert enter and dropped
    return blocker.args[0]
