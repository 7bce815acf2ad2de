"""Settings dialog: round trip through the file, restore defaults, in-place validation, the
Runtime test button, library maintenance and the re-encode offer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PySide6.QtWidgets import QDialog, QDialogButtonBox

from vector_studio_gui.core.runtime import provider_table
from vector_studio_gui.core.settings import Settings
from vector_studio_gui.gui.settings_dialog import SettingsDialog
from vector_studio_gui.gui.workers import TaskRunner


@pytest.fixture
def runner(qtbot):
    r = TaskRunner()
    yield r
    assert r.shutdown(5000)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "config" / "settings.json"


def open_dialog(qtbot, settings, config_path, **kwargs) -> SettingsDialog:
    dlg = SettingsDialog(settings, config_path, **kwargs)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    return dlg


def press(dlg: SettingsDialog, which: QDialogButtonBox.StandardButton) -> None:
    dlg.buttons.button(which).click()


def test_round_trip_through_the_file(qtbot, settings, config_path, tmp_path):
    embedding_section = settings.embedding
    dlg = open_dialog(qtbot, settings, config_path)
    rt, lib = dlg.runtime_page, dlg.library_page
    assert rt.threads_spin.value() == 1 and rt.batch_spin.value() == 4  # from the fixture
    rt.threads_spin.setValue(3)
    rt.batch_spin.setValue(16)
    rt.device_spin.setValue(2)
    new_lib = tmp_path / "elsewhere" / "my library"
    lib.path_edit.setText(str(new_lib))
    lib.thumb_spin.setValue(128)
    lib.ocr_check.setChecked(False)
    # nothing is written or changed before OK
    assert not config_path.exists() and settings.embedding.threads == 1

    press(dlg, QDialogButtonBox.StandardButton.Ok)
    assert dlg.result() == QDialog.DialogCode.Accepted
    data = json.loads(config_path.read_text())
    assert data["embedding"]["threads"] == 3
    assert data["embedding"]["batch_size"] == 16
    assert data["embedding"]["device_id"] == 2
    assert data["embedding"]["clip_model"] == "toy-clip"
    assert data["embedding"]["text_model"] == "toy-text"
    assert data["library"] == {"path": str(new_lib), "thumbnail_size": 128}
    assert data["ocr"]["enabled"] is False
    # the passed object was updated in place (same section objects)
    assert settings.embedding is embedding_section
    assert settings.embedding.threads == 3 and settings.library.path == str(new_lib)
    assert settings.ocr.enabled is False

    again = open_dialog(qtbot, Settings.load(config_path), config_path)
    assert again.runtime_page.threads_spin.value() == 3
    assert again.runtime_page.batch_spin.value() == 16
    assert again.runtime_page.device_spin.value() == 2
    assert again.library_page.path_edit.text() == str(new_lib)
    assert again.library_page.thumb_spin.value() == 128
    assert not again.library_page.ocr_check.isChecked()
    assert again.models_page.clip_model() == "toy-clip"


def test_cancel_changes_nothing(qtbot, settings, config_path):
    dlg = open_dialog(qtbot, settings, config_path)
    dlg.runtime_page.threads_spin.setValue(7)
    press(dlg, QDialogButtonBox.StandardButton.Cancel)
    assert dlg.result() == QDialog.DialogCode.Rejected
    assert settings.embedding.threads == 1
    assert not config_path.exists()


def test_unknown_keys_survive_the_dialog(qtbot, settings, config_path):
    settings._extra = {"future": {"x": 1}}
    dlg = open_dialog(qtbot, settings, config_path)
    press(dlg, QDialogButtonBox.StandardButton.Ok)
    assert json.loads(config_path.read_text())["future"] == {"x": 1}


def test_restore_defaults_affects_only_the_current_page(qtbot, settings, config_path):
    dlg = open_dialog(qtbot, settings, config_path)
    rt, lib = dlg.runtime_page, dlg.library_page
    rt.threads_spin.setValue(5)
    rt.batch_spin.setValue(32)
    rt.quantized_check.setChecked(True)
    lib.thumb_spin.setValue(512)

    dlg.tabs.setCurrentWidget(rt)
    press(dlg, QDialogButtonBox.StandardButton.RestoreDefaults)
    assert rt.threads_spin.value() == 0  # automatic
    assert rt.batch_spin.value() == 8
    assert not rt.quantized_check.isChecked()
    assert rt.provider() == "CPUExecutionProvider"
    assert lib.thumb_spin.value() == 512  # other page untouched

    dlg.tabs.setCurrentWidget(lib)
    press(dlg, QDialogButtonBox.StandardButton.RestoreDefaults)
    assert lib.thumb_spin.value() == 256
    assert lib.path_edit.text() == ""  # default location
    assert lib.ocr_check.isChecked()

    dlg.tabs.setCurrentWidget(dlg.models_page)
    press(dlg, QDialogButtonBox.StandardButton.RestoreDefaults)
    assert dlg.models_page.clip_model() == "clip-vit-b32"
    assert dlg.models_page.text_model() == "minilm-l6"
    # the default model is not installed here: explained in place
    msg = dlg.models_page.selection_message
    assert msg.isVisible() and "clip-vit-b32 is not installed" in msg.text()

    press(dlg, QDialogButtonBox.StandardButton.Ok)
    saved = Settings.load(config_path)
    assert saved.embedding.threads == 0 and saved.library.path is None
    assert saved.embedding.clip_model == "clip-vit-b32"


def test_library_path_that_is_a_file_blocks_ok(qtbot, settings, config_path, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    dlg = open_dialog(qtbot, settings, config_path)
    lib = dlg.library_page
    lib.path_edit.setText(str(a_file))
    # explained as soon as it is typed, next to the field
    assert lib.path_message.isVisibleTo(lib)
    assert "is a file, not a folder" in lib.path_message.text()

    dlg.tabs.setCurrentWidget(dlg.runtime_page)
    press(dlg, QDialogButtonBox.StandardButton.Ok)
    assert dlg.isVisible() and dlg.result() != QDialog.DialogCode.Accepted
    assert dlg.tabs.currentWidget() is lib  # jumps to the page with the problem
    assert lib.path_message.isVisible()
    assert "Library" in dlg.message.text() and dlg.message.isVisible()
    assert not config_path.exists()
    assert settings.library.path != str(a_file)

    # fixing it clears the message and OK goes through
    lib.path_edit.setText(str(tmp_path / "lib2"))
    assert not lib.path_message.isVisibleTo(lib)
    press(dlg, QDialogButtonBox.StandardButton.Ok)
    assert dlg.result() == QDialog.DialogCode.Accepted
    assert Settings.load(config_path).library.path == str(tmp_path / "lib2")


@pytest.mark.parametrize("text, expected", [
    ("relative/folder", "Enter a full path"),
    ("{file}/sub", "is a file, so"),
])
def test_other_invalid_library_paths(qtbot, settings, config_path, tmp_path, text, expected):
    a_file = tmp_path / "plain"
    a_file.write_text("x")
    dlg = open_dialog(qtbot, settings, config_path)
    dlg.library_page.path_edit.setText(text.format(file=a_file))
    press(dlg, QDialogButtonBox.StandardButton.Ok)
    assert dlg.result() != QDialog.DialogCode.Accepted
    assert expected in dlg.library_page.path_message.text()


def test_providers_listed_with_unavailable_ones_disabled(qtbot, settings, config_path):
    dlg = open_dialog(qtbot, settings, config_path)
    combo = dlg.runtime_page.provider_combo
    model = combo.model()
    table = {p.name: p for p in provider_table()}
    assert combo.count() == len(table)
    for i in range(combo.count()):
        info = table[combo.itemData(i)]
        item = model.item(i)
        assert item.isEnabled() == info.available
        assert item.toolTip() == info.reason
    assert combo.currentData() == "CPUExecutionProvider"
    assert not dlg.runtime_page.device_spin.isEnabled()  # only for GPU providers
    unavailable = [p for p in table.values() if not p.available]
    if unavailable:
        assert "needs" in dlg.runtime_page.unavailable_label.text()


def test_configured_provider_that_is_unavailable_is_explained(qtbot, settings, config_path):
    missing = next((p.name for p in provider_table() if not p.available), None)
    if missing is None:
        pytest.skip("every known provider is available here")
    settings.embedding.execution_provider = missing
    dlg = open_dialog(qtbot, settings, config_path)
    rt = dlg.runtime_page
    assert rt.provider() == missing
    assert "will use the CPU instead" in rt.provider_message.text()
    assert rt.provider_message.isVisibleTo(rt)


def test_runtime_test_button_reports_a_time(qtbot, settings, config_path, runner):
    dlg = open_dialog(qtbot, settings, config_path, runner=runner)
    rt = dlg.runtime_page
    dlg.tabs.setCurrentWidget(rt)
    rt.threads_spin.setValue(1)
    rt.test_button.click()
    assert not rt.test_button.isEnabled()
    qtbot.waitUntil(lambda: rt.test_button.isEnabled(), timeout=20_000)
    text = rt.test_result.text()
    assert rt.test_result.isVisible()
    assert "ms per image on CPUExecutionProvider" in text, text
    assert "toy-clip" in text and "16-d" in text


def test_runtime_test_reports_a_missing_model(qtbot, settings, config_path, runner):
    settings.embedding.clip_model = "clip-vit-b32"  # not installed in the test models dir
    dlg = open_dialog(qtbot, settings, config_path, runner=runner)
    rt = dlg.runtime_page
    rt.test_button.click()
    qtbot.waitUntil(lambda: rt.test_button.isEnabled(), timeout=20_000)
    assert "Test failed" in rt.test_result.text()
    assert "clip-vit-b32 is not installed" in rt.test_result.text()


def test_maintenance_buttons_need_an_engine(qtbot, settings, config_path):
    dlg = open_dialog(qtbot, settings, config_path)
    lib = dlg.library_page
    assert not lib.rebuild_button.isEnabled() and not lib.check_button.isEnabled()
    assert "once a library is open" in lib.rebuild_button.toolTip()


def test_rebuild_index_and_check_library_run_in_the_background(qtbot, settings, config_path,
                                                                engine, chart_folder, runner):
    report = engine.ingest([chart_folder])
    assert report.added > 0
    dlg = open_dialog(qtbot, settings, config_path, runner=runner,
                      engine_provider=lambda: engine)
    lib = dlg.library_page
    dlg.tabs.setCurrentWidget(lib)
    assert str(engine.library.root) in lib.maintenance_where.text()

    lib.rebuild_button.click()
    qtbot.waitUntil(lambda: "Index rebuilt" in lib.maintenance_result.text(), timeout=20_000)
    assert f"{report.added} items" in lib.maintenance_result.text()
    qtbot.waitUntil(lambda: lib.check_button.isEnabled(), timeout=5_000)

    lib.check_button.click()
    qtbot.waitUntil(lambda: "items checked" in lib.maintenance_result.text(), timeout=20_000)
    assert "no problems found" in lib.maintenance_result.text()
    qtbot.waitUntil(lambda: lib.rebuild_button.isEnabled(), timeout=5_000)


@pytest.fixture
def second_clip(settings, toy_model_sources):
    from vector_studio_gui.core.models import ModelStore

    ModelStore(Path(settings.models_dir)).import_folder(toy_model_sources["clip"], "toy-clip-2",
                                                        "clip")
    return "toy-clip-2"


def test_changing_the_clip_model_offers_a_background_reencode(qtbot, settings, config_path,
                                                               engine, chart_folder, second_clip,
                                                               runner):
    added = engine.ingest([chart_folder]).added
    dlg = open_dialog(qtbot, settings, config_path, runner=runner,
                      engine_provider=lambda: engine)
    models = dlg.models_page
    assert not models.reencode_frame.isVisibleTo(models)
    models.clip_combo.setCurrentIndex(models.clip_combo.findData(second_clip))
    assert models.reencode_frame.isVisible()
    assert f"{added} charts are encoded with toy-clip" in models.reencode_label.text()
    assert models.reencode_check.isChecked()

    with qtbot.waitSignal(dlg.reencode_requested, timeout=2000) as sig:
        press(dlg, QDialogButtonBox.StandardButton.Ok)
    assert sig.args == [second_clip]
    assert dlg.reencode_quantized is False
    # the old model keeps answering until the re-encode completes
    assert settings.embedding.clip_model == "toy-clip"
    assert Settings.load(config_path).embedding.clip_model == "toy-clip"
    # what the main window does with the request: the engine switches when complete
    result = engine.reencode(sig.args[0], quantized=dlg.reencode_quantized)
    assert result["switched"] and settings.embedding.clip_model == second_clip


def test_switching_without_reencode_saves_the_new_model(qtbot, settings, config_path, engine,
                                                       chart_folder, second_clip):
    engine.ingest([chart_folder])
    dlg = open_dialog(qtbot, settings, config_path, engine_provider=lambda: engine)
    models = dlg.models_page
    models.clip_combo.setCurrentIndex(models.clip_combo.findData(second_clip))
    models.reencode_check.setChecked(False)
    assert "searches fail until" in models.reencode_note.text()
    requests = []
    dlg.reencode_requested.connect(requests.append)
    press(dlg, QDialogButtonBox.StandardButton.Ok)
    assert requests == []
    assert Settings.load(config_path).embedding.clip_model == second_clip


def test_empty_library_needs_no_reencode(qtbot, settings, config_path, second_clip):
    dlg = open_dialog(qtbot, settings, config_path)
    models = dlg.models_page
    models.clip_combo.setCurrentIndex(models.clip_combo.findData(second_clip))
    assert not models.reencode_frame.isVisibleTo(models)
    press(dlg, QDialogButtonBox.StandardButton.Ok)
    assert Settings.load(config_path).embedding.clip_model == second_clip


def test_screenshot(qtbot, settings, config_path, tmp_path):
    """Render the dialog offscreen (docs/settings.png is made the same way, by
    scripts/settings_screenshot.py)."""
    dlg = open_dialog(qtbot, settings, config_path)
    for page in dlg.pages:
        dlg.tabs.setCurrentWidget(page)
        image = dlg.grab().toImage()
        assert image.width() >= 760 and image.height() >= 520
        assert not image.isNull()
