"""Shared fixtures: tiny real ONNX models (built with onnx.helper), chart folders, engines.

Models are built once per session into a cache folder and imported into each test's own
models dir, so tests never touch the network or the user's real folders.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")  # before any test module imports onnxruntime
# Qt must never need a display in tests; set before anything imports PySide6.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Never let a test reach the real hub, even by accident.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

from vector_studio_gui.modelgen.toy import (  # noqa: E402
    COLOURS,
    build_toy_clip,
    build_toy_text_model,
    toy_chart_image,
)

TOY_CLIP = "toy-clip"
TOY_TEXT = "toy-text"


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Point every platform folder (config, data, cache) at a temp dir for each test."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("VECTOR_STUDIO_CONFIG", str(home / "config" / "settings.json"))
    monkeypatch.setenv("VECTOR_STUDIO_LIBRARY", str(home / "library"))
    monkeypatch.setenv("VECTOR_STUDIO_MODELS_DIR", str(home / "models"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "xdg-cache"))
    yield home


@pytest.fixture(scope="session")
def toy_model_sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("toy-models")
    clip = build_toy_clip(root / "clip")
    text = build_toy_text_model(root / "text")
    return {"clip": Path(clip), "text": Path(text)}


@pytest.fixture
def models_dir(tmp_path: Path, toy_model_sources: dict[str, Path]) -> Path:
    """A models dir holding the toy CLIP model and the toy text model, imported as a user would."""
    from vector_studio_gui.core.models import ModelStore

    root = tmp_path / "models"
    store = ModelStore(root)
    store.import_folder(toy_model_sources["clip"], TOY_CLIP, "clip")
    store.import_folder(toy_model_sources["text"], TOY_TEXT, "text")
    return root


@pytest.fixture
def settings(models_dir: Path, tmp_path: Path):
    from vector_studio_gui.core.settings import Settings

    s = Settings()
    s.embedding.clip_model = TOY_CLIP
    s.embedding.text_model = TOY_TEXT
    s.embedding.threads = 1
    s.embedding.batch_size = 4
    s.models_dir = str(models_dir)
    s.library.path = str(tmp_path / "library")
    # OCR (~0.4 s a chart) only where a test is about chart text: those switch it on
    s.ocr.enabled = False
    return s


@pytest.fixture
def engine(settings):
    from vector_studio_gui.core.engine import Engine

    eng = Engine(settings)
    yield eng
    eng.close()


def write_charts(folder: Path, colours=None, kinds=("bar",), fmt: str = "png",
                 size=(640, 360)) -> dict[str, Path]:
    """One chart per colour (and kind); returns {"<colour>-<kind>": path}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for colour in colours or COLOURS:
        for kind in kinds:
            img = toy_chart_image(colour, size=size, kind=kind)
            path = folder / f"{colour}-{kind}.{fmt}"
            img.convert("RGB").save(path) if fmt in ("jpg", "jpeg") else img.save(path)
            out[f"{colour}-{kind}"] = path
    return out


@pytest.fixture
def chart_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "charts"
    write_charts(folder)
    return folder


@pytest.fixture
def cli_env(settings, tmp_path: Path) -> dict[str, str]:
    """Environment for running the CLI in a subprocess against the test's models and library."""
    env = dict(os.environ)
    env["VECTOR_STUDIO_MODELS_DIR"] = settings.models_dir
    env["VECTOR_STUDIO_LIBRARY"] = settings.library.path
    cfg = tmp_path / "cli-settings.json"
    settings.save(cfg)
    env["VECTOR_STUDIO_CONFIG"] = str(cfg)
    return env


def copy_tree(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst
