"""Starting the desktop app: ``run_gui(args)`` is what ``vector-studio`` runs with no subcommand.

It builds the settings exactly like the CLI (same options, same config file), creates the
QApplication, installs a crash handler (a dialog with the details, or with ``--no-crash-dialog``
a log on stderr and a non-zero exit code), opens the library (offering read-only when another
process is writing it) and shows the main window. Models are not loaded here: the engine loads
them on first use, so the window appears at once.
"""

from __future__ import annotations

import logging
import logging.handlers
import signal
import sys
import threading
import traceback
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication, QMessageBox

from vector_studio_gui import __version__
from vector_studio_gui.core.errors import LibraryLockedError, VectorStudioError
from vector_studio_gui.gui import pyside_guard

log = logging.getLogger(__name__)

APP_DISPLAY_NAME = "Vector Studio"
ICON_NAMES = ("vector-studio.svg", "vector-studio.png", "icon.svg", "icon.png", "app.png")


def find_icon() -> QIcon | None:
    """The window icon from ``resources/`` (source tree) or the package's resources, if present."""
    here = Path(__file__).resolve()
    roots = [here.parents[1] / "resources", here.parents[2] / "resources"]
    if getattr(sys, "_MEIPASS", None):  # PyInstaller bundle
        roots.insert(0, Path(sys._MEIPASS) / "resources")  # type: ignore[attr-defined]
    for root in roots:
        for name in ICON_NAMES:
            p = root / name
            if p.is_file():
                icon = QIcon(str(p))
                if not icon.isNull():
                    return icon
        if root.is_dir():  # any other png/svg icon there
            for p in sorted(root.glob("*.png")) + sorted(root.glob("*.svg")):
                icon = QIcon(str(p))
                if not icon.isNull():
                    return icon
    return None


def setup_logging(verbose: bool = False) -> Path | None:
    """Log to a rotating file in the user log dir (and to stderr when verbose); returns the file."""
    from vector_studio_gui.core.paths import default_log_dir

    root = logging.getLogger()
    root.setLevel(logging.INFO)
    try:
        folder = default_log_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "vector-studio.log"
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=2_000_000, backupCount=2,
                                                       encoding="utf-8")
    except OSError:
        return None
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if not verbose:
        for h in root.handlers:
            if h is not handler and isinstance(h, logging.StreamHandler):
                h.setLevel(logging.ERROR)
    return path


class CrashHandler(QObject):
    """Unexpected exceptions: logged, then shown in a dialog (or only printed for CI)."""

    crashed = Signal(str, str)  # summary, details; emitted from any thread, shown on the GUI thread

    def __init__(self, show_dialog: bool = True, log_file: Path | None = None) -> None:
        super().__init__()
        self.show_dialog = show_dialog
        self.log_file = log_file
        self.count = 0
        self._showing = False
        self._prev_hook = sys.excepthook
        self._prev_thread_hook = threading.excepthook
        self.crashed.connect(self._show)

    def install(self) -> None:
        sys.excepthook = self._hook
        threading.excepthook = self._thread_hook

    def uninstall(self) -> None:
        sys.excepthook = self._prev_hook
        threading.excepthook = self._prev_thread_hook

    def _hook(self, etype, value, tb) -> None:
        if issubclass(etype, KeyboardInterrupt):
            app = QApplication.instance()
            if app is not None:
                app.quit()
            return
        self.report(etype, value, tb)

    def _thread_hook(self, args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        self.report(args.exc_type, args.exc_value, args.exc_traceback)

    def report(self, etype, value, tb) -> None:
        details = "".join(traceback.format_exception(etype, value, tb))
        summary = f"{etype.__name__}: {value}"
        self.count += 1
        log.critical("unexpected error:\n%s", details)
        if not self.show_dialog:
            sys.stderr.write(f"vector-studio: unexpected error\n{details}")
            sys.stderr.flush()
            return
        self.crashed.emit(summary, details)

    @Slot(str, str)
    def _show(self, summary: str, details: str) -> None:
        if self._showing:
            return  # one dialog at a time; the rest is in the log
        self._showing = True
        try:
            box = QMessageBox(QMessageBox.Icon.Critical, APP_DISPLAY_NAME,
                              "Vector Studio ran into an unexpected problem. Your library is "
                              "safe: every change is saved as it happens.\n\n" + summary,
                              QMessageBox.StandardButton.NoButton)
            if self.log_file:
                box.setInformativeText(f"Details were written to {self.log_file}.")
            box.setDetailedText(details)
            keep = box.addButton("Keep working", QMessageBox.ButtonRole.AcceptRole)
            quit_btn = box.addButton("Quit", QMessageBox.ButtonRole.DestructiveRole)
            box.setDefaultButton(keep)
            box.exec()
            if box.clickedButton() is quit_btn:
                app = QApplication.instance()
                if app is not None:
                    app.closeAllWindows()
                    app.quit()
        finally:
            self._showing = False


def make_app() -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication([sys.argv[0] if sys.argv else "vector-studio"])
    app.setApplicationName(APP_DISPLAY_NAME)
    app.setApplicationDisplayName(APP_DISPLAY_NAME)
    app.setOrganizationName(APP_DISPLAY_NAME)
    app.setApplicationVersion(__version__)
    app.setDesktopFileName("vector-studio")
    icon = find_icon()
    if icon is not None:
        app.setWindowIcon(icon)
    return app  # type: ignore[return-value]


def open_window(settings, config_path: Path | None, parent=None):
    """The main window on the configured library; None if the user declined or it cannot open."""
    from vector_studio_gui.gui.main_window import MainWindow

    try:
        return MainWindow(settings, config_path)
    except LibraryLockedError as exc:
        answer = QMessageBox.question(
            parent, APP_DISPLAY_NAME,
            f"{exc}.\n\nOpen it read-only? You can browse and search, but not add charts, "
            f"edit notes or remove items.",
            QMessageBox.StandardButton.Open | QMessageBox.StandardButton.Cancel,
            QMessageBox.StandardButton.Open)
        if answer != QMessageBox.StandardButton.Open:
            return None
        try:
            return MainWindow(settings, config_path, read_only=True)
        except VectorStudioError as exc2:
            QMessageBox.critical(parent, APP_DISPLAY_NAME, str(exc2))
            return None
    except VectorStudioError as exc:
        QMessageBox.critical(parent, APP_DISPLAY_NAME, f"The library cannot be opened:\n\n{exc}")
        return None


def run_gui(args) -> int:
    from vector_studio_gui.cli import _settings

    verbose = bool(getattr(args, "verbose", False))
    log_file = setup_logging(verbose)
    pyside_guard.apply()
    app = make_app()
    crash = CrashHandler(show_dialog=not getattr(args, "no_crash_dialog", False),
                         log_file=log_file)
    crash.install()
    try:
        try:
            settings, config_path = _settings(args)
        except VectorStudioError as exc:
            QMessageBox.critical(None, APP_DISPLAY_NAME, f"The settings cannot be used:\n\n{exc}")
            return 1
        window = open_window(settings, config_path)
        if window is None:
            return 1
        window.show()
        QTimer.singleShot(0, window.maybe_first_run)
        app.aboutToQuit.connect(window.shutdown)
        # Ctrl+C in the terminal closes the window cleanly (Python sees signals only when
        # the interpreter runs, hence the idle timer).
        signal.signal(signal.SIGINT, lambda *_: window.close())
        ticker = QTimer(app)
        ticker.timeout.connect(lambda: None)
        ticker.start(250)
        log.info("Vector Studio %s started on %s", __version__, settings.library.path or
                 "the default library")
        rc = app.exec()
        ticker.stop()
        window.shutdown()
        if crash.count and not crash.show_dialog:
            return rc or 1
        return rc
    finally:
        crash.uninstall()
        signal.signal(signal.SIGINT, signal.default_int_handler)
