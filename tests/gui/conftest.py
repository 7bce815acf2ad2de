"""GUI fixtures: a main window on the toy models, and helpers that act like a user would."""

from __future__ import annotations

from pathlib import Path

import pytest

from gui.helpers import ingest_and_wait
from vector_studio_gui.gui import pyside_guard

# PySide6 6.12.0 on Python 3.11 drops references to None/True on every void call and emit;
# without this a long GUI test run aborts with "none_dealloc" (see pyside_guard).
pyside_guard.apply()


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "config" / "settings.json"


@pytest.fixture
def make_window(qtbot, settings, config_path):
    """Factory: a shown main window whose first listing of the library is on screen."""
    from vector_studio_gui.gui.main_window import MainWindow

    made = []

    def make(s=None, **kw):
        w = MainWindow(s or settings, config_path, **kw)
        qtbot.addWidget(w)
        made.append(w)
        w.show()
        qtbot.waitUntil(lambda: w.model.shown_generation == w.model.generation
                        and w.count_label.text() != "", timeout=5000)
        return w

    yield make
    for w in made:
        w.close()  # joins every thread even if a test failed midway


@pytest.fixture
def window(make_window):
    return make_window()


@pytest.fixture
def filled_window(qtbot, window, chart_folder):
    """A window whose library holds the six colour bar charts, showing the library."""
    ingest_and_wait(qtbot, window, [chart_folder])
    qtbot.waitUntil(lambda: window.model.rowCount() == 6, timeout=5000)
    return window
