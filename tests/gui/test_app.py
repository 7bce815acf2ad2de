"""Starting the app: the real command in a process, the locked-library offer, crash reporting,
settings changes that re-create the engine, and re-encoding from the settings dialog."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from PySide6.QtWidgets import QDialog, QMessageBox

from gui.helpers import ingest_and_wait, names
from vector_studio_gui.core.engine import Engine
from vector_studio_gui.core.models import ModelStore
from vector_studio_gui.core.settings import Settings
from vector_studio_gui.gui import app as gui_app


def test_the_command_starts_the_window_and_ctrl_c_closes_it_cleanly(settings, tmp_path):
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", PYTHONPATH=os.getcwd())
    cfg = tmp_path / "settings.json"
    settings.gui.first_run_done = True
    settings.save(cfg)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vector_studio_gui", "--config", str(cfg), "--no-crash-dialog"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lock = Path(settings.library.path) / "writer.lock"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and proc.poll() is None:
            if lock.exists() and lock.read_text().strip() == str(proc.pid):
                break  # the window is up with the library open
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    # the window state was written back to the settings file, and the library lock released
    assert json.loads(cfg.read_text())["gui"]["geometry"]
    with Engine(settings) as again:
        assert again.library.count() == 0


def test_a_library_locked_by_another_process_can_be_opened_read_only(qtbot, settings, monkeypatch,
                                                                     chart_folder):
    with Engine(settings) as eng:
        eng.ingest([chart_folder])
    holder = Engine(settings)
    asked = []

    def answer(parent, title, text, *args):
        asked.append(text)
        return QMessageBox.StandardButton.Open

    monkeypatch.setattr(QMessageBox, "question", answer)
    try:
        w = gui_app.open_window(settings, None)
        qtbot.addWidget(w)
        assert "being changed by another Vector Studio" in asked[0] and "read-only" in asked[0]
        assert w.read_only and w.windowTitle() == "Vector Studio (read-only)"
        w.show()
        qtbot.waitUntil(lambda: w.model.rowCount() == 6)
        w.close()
    finally:
        holder.close()


def test_declining_read_only_opens_no_window(qtbot, settings, monkeypatch):
    holder = Engine(settings)
    monkeypatch.setattr(QMessageBox, "question",
                        lambda *a: QMessageBox.StandardButton.Cancel)
    try:
        assert gui_app.open_window(settings, None) is None
    finally:
        holder.close()


def test_unexpected_errors_are_logged_and_counted_without_a_dialog(qtbot, capsys):
    crash = gui_app.CrashHandler(show_dialog=False)
    crash.install()
    try:
        try:
            raise RuntimeError("boom in a slot")
        except RuntimeError:
            sys.excepthook(*sys.exc_info())
    finally:
        crash.uninstall()
    assert crash.count == 1
    err = capsys.readouterr().err
    assert "RuntimeError: boom in a slot" in err and "Traceback" in err
    assert sys.excepthook is not crash._hook


def test_unexpected_errors_show_a_dialog_with_details(qtbot, monkeypatch):
    shown = []

    def fake_exec(box):
        shown.append((box.text(), box.detailedText()))
        return 0

    monkeypatch.setattr(QMessageBox, "exec", fake_exec)
    crash = gui_app.CrashHandler(show_dialog=True)
    try:
        raise ValueError("bad value")
    except ValueError:
        crash.report(*sys.exc_info())
    qtbot.waitUntil(lambda: bool(shown))
    text, details = shown[0]
    assert "ValueError: bad value" in text and "library is safe" in text
    assert "Traceback" in details and "bad value" in details


def test_settings_changes_recreate_the_engine(qtbot, make_window, settings, chart_folder,
                                              tmp_path, config_path, monkeypatch):
    from vector_studio_gui.gui import settings_dialog

    w = make_window()
    ingest_and_wait(qtbot, w, [chart_folder])
    old_engine = w.engine
    other_library = tmp_path / "other-library"

    def fake_exec(dlg):  # the user picks another library folder and presses OK
        dlg.settings.library.path = str(other_library)
        dlg.settings.save(dlg.config_path)
        return QDialog.DialogCode.Accepted

    monkeypatch.setattr(settings_dialog.SettingsDialog, "exec", fake_exec)
    with qtbot.waitSignal(w.engineReplaced, timeout=10000):
        w.act_settings.trigger()
    assert w.engine is not old_engine
    assert w.engine.library.root == other_library
    qtbot.waitUntil(lambda: w.count_label.text() == "0 charts")
    assert w.view.hint_visible()  # the new library is empty
    # the old library was closed properly: another writer can open it
    with Engine(settings) as again:
        assert again.library.count() == 6


def test_cancelled_settings_keep_the_engine(qtbot, window, monkeypatch):
    from vector_studio_gui.gui import settings_dialog

    monkeypatch.setattr(settings_dialog.SettingsDialog, "exec",
                        lambda dlg: QDialog.DialogCode.Rejected)
    before = window.engine
    window.act_settings.trigger()
    assert window.engine is before and not window.engine.library.read_only


def test_reencoding_with_another_model_switches_the_library(qtbot, make_window, settings,
                                                            chart_folder, toy_model_sources,
                                                            config_path):
    ModelStore(settings.models_dir).import_folder(toy_model_sources["clip"], "toy-clip-2", "clip")
    settings.save(config_path)
    w = make_window()
    ingest_and_wait(qtbot, w, [chart_folder])
    with qtbot.waitSignal(w.ingest.reencoded, timeout=30000):
        w.ingest.reencode("toy-clip-2")
    assert "toy-clip-2" in w.models_label.text()
    assert "Re-encoded 6 charts with toy-clip-2" in w.ingest.summary_widget.label.text()
    assert Settings.load(config_path).embedding.clip_model == "toy-clip-2"
    with qtbot.waitSignal(w.searchShown, timeout=10000):
        w.search_text("red chart")
    assert names(w)[0] == "red-bar.png"
