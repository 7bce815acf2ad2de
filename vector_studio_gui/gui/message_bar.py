"""A non-blocking message strip under the search box, for errors and warnings the user should read.

Errors the user can fix (a model that is not installed, a library encoded with another model)
are shown here with an optional action button ("Settings…") instead of a modal dialog, so typing
and browsing go on. Unexpected errors get a "Details" button showing the traceback.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QStyle,
    QWidget,
)

LEVELS = {
    "error": (QColor(200, 40, 40), QStyle.StandardPixmap.SP_MessageBoxCritical),
    "warning": (QColor(210, 140, 0), QStyle.StandardPixmap.SP_MessageBoxWarning),
    "info": (QColor(40, 110, 200), QStyle.StandardPixmap.SP_MessageBoxInformation),
}


class MessageBar(QFrame):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("MessageBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(8, 4, 4, 4)
        lay.setSpacing(8)
        self.icon = QLabel(self)
        self.text = QLabel(self)
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.text.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.action_button = QPushButton(self)
        self.details_button = QPushButton("Details…", self)
        self.close_button = QPushButton("\u2715", self)
        self.close_button.setFlat(True)
        self.close_button.setToolTip("Dismiss")
        self.close_button.setFixedWidth(self.close_button.fontMetrics().height() + 12)
        for w in (self.icon, self.text, self.action_button, self.details_button,
                  self.close_button):
            lay.addWidget(w)
        self.close_button.clicked.connect(self.hide)
        self.action_button.clicked.connect(self._run_action)
        self.details_button.clicked.connect(self._show_details)
        self.level = ""
        self._action: Callable[[], None] | None = None
        self._details = ""
        self.hide()

    def show_message(self, text: str, level: str = "error", *,
                     action: tuple[str, Callable[[], None]] | None = None,
                     details: str = "") -> None:
        colour, icon = LEVELS.get(level, LEVELS["error"])
        self.level = level
        size = self.fontMetrics().height()
        self.icon.setPixmap(self.style().standardIcon(icon).pixmap(size, size))
        self.text.setText(text)
        self._action = action[1] if action else None
        self.action_button.setText(action[0] if action else "")
        self.action_button.setVisible(action is not None)
        self._details = details
        self.details_button.setVisible(bool(details))
        pal = self.palette()
        base = QColor(pal.color(QPalette.ColorRole.Window))
        tint = QColor(colour)
        tint.setAlpha(45)
        mixed = QColor(
            (base.red() * (255 - tint.alpha()) + tint.red() * tint.alpha()) // 255,
            (base.green() * (255 - tint.alpha()) + tint.green() * tint.alpha()) // 255,
            (base.blue() * (255 - tint.alpha()) + tint.blue() * tint.alpha()) // 255,
        )
        self.setStyleSheet(f"#MessageBar {{ background: {mixed.name()}; "
                           f"border: 1px solid {colour.name()}; border-radius: 4px; }}")
        self.show()

    def message(self) -> str:
        return self.text.text() if self.isVisible() else ""

    def _run_action(self) -> None:
        if self._action is not None:
            self.hide()
            self._action()

    def _show_details(self) -> None:
        box = QMessageBox(QMessageBox.Icon.Critical, "Error details", self.text.text(),
                          QMessageBox.StandardButton.Close, self.window())
        box.setDetailedText(self._details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        box.show()
