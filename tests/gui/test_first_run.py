"""First run with no models: sizes shown, offline explained within seconds, download of the
default models from a fake hub, cancel, import, Later."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hub_server import FakeHub, SilentServer, closed_port_url
from PySide6.QtWidgets import QDialog
from settings_gui_support import hub_env, serve_catalog_model  # noqa: F401 - fixture

from vector_studio_gui.core.catalog import get_spec
from vector_studio_gui.core.models import ModelStore
from vector_studio_gui.core.settings import Settings
from vector_studio_gui.gui.first_run import FirstRunDialog, default_downloads, needs_first_run
from vector_studio_gui.gui.workers import TaskRunner


@pytest.fixture
def fresh(tmp_path: Path) -> Settings:
    """Settings of a new user: default models, none installed."""
    s = Settings()
    s.models_dir = str(tmp_path / "models")
    s.library.path = str(tmp_path / "library")
    return s


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return tmp_path / "config" / "settings.json"


@pytest.fixture
def runner(qtbot):
    r = TaskRunner()
    yield r
    assert r.shutdown(5000)


def open_dialog(qtbot, settings, config_path, **kwargs) -> FirstRunDialog:
    dlg = FirstRunDialog(settings, config_path, **kwargs)
    qtbot.addWidget(dlg)
    dlg.show()
    qtbot.waitExposed(dlg)
    return dlg


def test_needs_first_run(settings, fresh):
    assert needs_first_run(fresh)
    assert not needs_first_run(settings)  # toy-clip is installed
    fresh.gui.first_run_done = True  # "Don't show this at start"
    assert not needs_first_run(fresh)
    settings.embedding.quantized = True  # no int8 variant of the toy model
    assert needs_first_run(settings)


def test_default_downloads(fresh, settings):
    assert default_downloads(fresh) == ["clip-vit-b32", "minilm-l6"]
    assert default_downloads(settings) == []
    fresh.embedding.clip_model = "some-missing-import"
    assert default_downloads(fresh) == ["clip-vit-b32", "minilm-l6"]


def test_sizes_from_the_catalog_are_shown(qtbot, fresh, config_path):
    dlg = open_dialog(qtbot, fresh, config_path)
    clip, text = get_spec("clip-vit-b32"), get_spec("minilm-l6")
    listing = dlg.model_list.text()
    assert f"clip-vit-b32 (image + query model, {clip.size_mb} MB)" in listing
    assert f"minilm-l6 (text model, {text.size_mb} MB)" in listing
    assert dlg.download_button.text() == f"Download default models ({clip.size_mb + text.size_mb} MB)"


def test_quantized_sizes_when_int8_is_configured(qtbot, fresh, config_path):
    fresh.embedding.quantized = True
    dlg = open_dialog(qtbot, fresh, config_path)
    clip, text = get_spec("clip-vit-b32"), get_spec("minilm-l6")
    total = clip.quantized_size_mb + text.quantized_size_mb
    assert dlg.download_button.text() == f"Download default models ({total} MB)"


def test_offline_mode_is_explained_at_once(qtbot, fresh, config_path):
    # tests/conftest.py sets HF_HUB_OFFLINE=1
    dlg = open_dialog(qtbot, fresh, config_path)
    t0 = time.monotonic()
    with qtbot.waitSignal(dlg.panel.ended, timeout=10_000):
        dlg.download_button.click()
    assert time.monotonic() - t0 < 2
    assert dlg.message.isVisible()
    assert "Cannot reach the model hub" in dlg.message.text()
    assert "offline mode" in dlg.message.text()
    # the app stays usable: the dialog can be retried or closed
    assert dlg.download_button.isEnabled() and dlg.later_button.isEnabled()
    dlg.later_button.click()
    assert dlg.result() == QDialog.DialogCode.Rejected
    assert not config_path.exists()


@pytest.mark.usefixtures("hub_env")
def test_refused_connection_is_explained_within_seconds(qtbot, fresh, config_path):
    dlg = open_dialog(qtbot, fresh, config_path, endpoint=closed_port_url())
    t0 = time.monotonic()
    with qtbot.waitSignal(dlg.panel.ended, timeout=10_000):
        dlg.download_button.click()
    assert time.monotonic() - t0 < 10
    assert "Cannot reach the model hub" in dlg.message.text()


@pytest.mark.slow
@pytest.mark.usefixtures("hub_env")
def test_silent_hub_is_explained_within_ten_seconds(qtbot, fresh, config_path):
    with SilentServer() as silent:
        dlg = open_dialog(qtbot, fresh, config_path, endpoint=silent.url)
        t0 = time.monotonic()
        with qtbot.waitSignal(dlg.panel.ended, timeout=15_000):
            dlg.download_button.click()
        assert time.monotonic() - t0 < 10
    assert "Cannot reach the model hub" in dlg.message.text()
    assert "no answer within" in dlg.message.text()


@pytest.mark.usefixtures("hub_env")
def test_download_default_models_from_fake_hub(qtbot, fresh, config_path, monkeypatch,
                                               runner):
    with FakeHub() as hub:
        serve_catalog_model(hub, "clip-vit-b32", size=300_000)
        serve_catalog_model(hub, "minilm-l6", size=100_000)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        dlg = open_dialog(qtbot, fresh, config_path, runner=runner)
        seen = []
        dlg.panel.bar.valueChanged.connect(lambda _v: seen.append(dlg.panel.bar.format()))
        with qtbot.waitSignal(dlg.models_ready, timeout=30_000):
            dlg.download_button.click()
            assert not dlg.download_button.isEnabled()
    assert dlg.result() == QDialog.DialogCode.Accepted
    assert any(f.startswith("clip-vit-b32 (1/2)") for f in seen)
    assert any(f.startswith("minilm-l6 (2/2)") for f in seen)
    store = ModelStore(Path(fresh.models_dir))
    assert store.is_installed("clip-vit-b32") and store.is_installed("minilm-l6")
    saved = Settings.load(config_path)
    assert saved.gui.first_run_done
    assert saved.embedding.clip_model == "clip-vit-b32"
    assert not needs_first_run(fresh)


@pytest.mark.usefixtures("hub_env")
def test_cancel_keeps_the_dialog_open_and_nothing_installed(qtbot, fresh, config_path, monkeypatch):
    spec = get_spec("clip-vit-b32")
    with FakeHub() as hub:
        serve_catalog_model(hub, "clip-vit-b32", size=3_000_000)
        serve_catalog_model(hub, "minilm-l6", size=100_000)
        for path in spec.files.values():
            hub.throttle(spec.repo, path, 200_000)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        dlg = open_dialog(qtbot, fresh, config_path)
        dlg.download_button.click()
        qtbot.waitUntil(lambda: dlg.panel.last_progress is not None
                        and dlg.panel.last_progress.bytes.done > 20_000, timeout=15_000)
        t0 = time.monotonic()
        with qtbot.waitSignal(dlg.panel.ended, timeout=5000):
            dlg.panel.cancel_button.click()
        assert time.monotonic() - t0 < 1.0
    assert dlg.isVisible()
    assert "cancelled" in dlg.message.text()
    assert not ModelStore(Path(fresh.models_dir)).is_installed("clip-vit-b32")
    assert dlg.download_button.isEnabled()


@pytest.mark.usefixtures("hub_env")
def test_closing_during_download_cancels_it(qtbot, fresh, config_path, monkeypatch,
                                            runner):
    spec = get_spec("clip-vit-b32")
    with FakeHub() as hub:
        serve_catalog_model(hub, "clip-vit-b32", size=3_000_000)
        for path in spec.files.values():
            hub.throttle(spec.repo, path, 200_000)
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        dlg = open_dialog(qtbot, fresh, config_path, runner=runner)
        dlg.download_button.click()
        qtbot.waitUntil(lambda: dlg.panel.last_progress is not None, timeout=15_000)
        (task,) = runner.active()
        t0 = time.monotonic()
        dlg.later_button.click()
        assert time.monotonic() - t0 < 2.0
        assert task.cancelled and task.thread.isFinished()
        assert dlg.result() == QDialog.DialogCode.Rejected
        qtbot.waitUntil(lambda: not runner.active(), timeout=5000)


def test_import_a_clip_folder_finishes_the_first_run(qtbot, fresh, config_path,
                                                     toy_model_sources):
    dlg = open_dialog(qtbot, fresh, config_path)
    with qtbot.waitSignal(dlg.models_ready, timeout=20_000):
        dlg.import_from(toy_model_sources["clip"], "my-clip", "clip")
    assert dlg.result() == QDialog.DialogCode.Accepted
    assert fresh.embedding.clip_model == "my-clip"
    assert Settings.load(config_path).embedding.clip_model == "my-clip"
    assert not needs_first_run(fresh)


def test_import_of_a_bad_folder_explains_why(qtbot, fresh, config_path, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    dlg = open_dialog(qtbot, fresh, config_path)
    dlg.import_from(bad, "bad", "clip")
    qtbot.waitUntil(lambda: "Import failed" in dlg.message.text(), timeout=10_000)
    assert "missing" in dlg.message.text()
    assert dlg.isVisible()


def test_later_with_dont_show_again_is_remembered(qtbot, fresh, config_path):
    dlg = open_dialog(qtbot, fresh, config_path)
    dlg.dont_ask.setChecked(True)
    dlg.later_button.click()
    assert dlg.result() == QDialog.DialogCode.Rejected
    assert Settings.load(config_path).gui.first_run_done
    assert not needs_first_run(fresh)
