"""Settings: defaults, the user guide's config examples verbatim, JSON round trips that keep
unknown keys, clear errors for wrong types and values, atomic saves."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vector_studio_gui.core.errors import VectorStudioError
from vector_studio_gui.core.paths import default_config_file
from vector_studio_gui.core.settings import Settings


def test_defaults():
    s = Settings()
    e = s.embedding
    assert e.clip_model == "clip-vit-b32"
    assert e.text_model == "minilm-l6"
    assert e.text_dim is None and e.project_to is None and e.text_tokenizer is None
    assert e.execution_provider == "CPUExecutionProvider" and e.device_id == 0
    assert e.threads == 0 and e.batch_size == 8 and e.quantized is False
    assert s.models_dir is None and s.library.path is None
    assert s.problems() == []


def test_missing_file_gives_defaults_and_creates_nothing(tmp_path):
    path = tmp_path / "cfg" / "settings.json"
    assert Settings.load(path) == Settings()
    assert not (tmp_path / "cfg").exists()


def test_default_config_file_is_under_the_users_config_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("VECTOR_STUDIO_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert default_config_file() == tmp_path / "xdg" / "vector_studio" / "settings.json"
    monkeypatch.setenv("VECTOR_STUDIO_CONFIG", str(tmp_path / "mine.json"))
    assert default_config_file() == tmp_path / "mine.json"


@pytest.mark.parametrize(("text", "expected"), [
    ('{"embedding": {"text_model": "custom_text.onnx", "text_dim": 512}}',
     {"text_model": "custom_text.onnx", "text_dim": 512, "project_to": None}),
    ('{"embedding": {"text_model": "custom_768dim.onnx", "text_dim": 768, "project_to": 512}}',
     {"text_model": "custom_768dim.onnx", "text_dim": 768, "project_to": 512}),
    ('{"embedding": {"execution_provider": "CUDAExecutionProvider", "device_id": 0}}',
     {"execution_provider": "CUDAExecutionProvider", "device_id": 0,
      "text_model": "minilm-l6"}),
])
def test_user_guide_config_examples_load_verbatim(tmp_path, text, expected):
    path = tmp_path / "settings.json"
    path.write_text(text)
    s = Settings.load(path)
    for key, value in expected.items():
        assert getattr(s.embedding, key) == value
    assert s.problems() == []
    # everything not in the file keeps its default
    assert s.embedding.clip_model == "clip-vit-b32" and s.embedding.batch_size == 8
    # and a save writes the guide's keys back where the guide puts them
    s.save(path)
    saved = json.loads(path.read_text())
    for key, value in json.loads(text)["embedding"].items():
        assert saved["embedding"][key] == value


def test_json_round_trip(tmp_path):
    s = Settings()
    s.embedding.clip_model = "my-clip"
    s.embedding.text_model = "custom/my_model.onnx"
    s.embedding.text_dim = 768
    s.embedding.project_to = 512
    s.embedding.text_tokenizer = "custom/tokenizer.json"
    s.embedding.quantized = True
    s.embedding.execution_provider = "DmlExecutionProvider"
    s.embedding.device_id = 1
    s.embedding.threads = 3
    s.embedding.batch_size = 16
    s.library.path = str(tmp_path / "lib")
    s.library.thumbnail_size = 128
    s.gui.geometry = "abc"
    s.gui.first_run_done = True
    s.models_dir = str(tmp_path / "models")
    path = tmp_path / "settings.json"
    s.save(path)
    back = Settings.load(path)
    assert back == s
    assert back.to_dict() == s.to_dict()
    assert json.loads(path.read_text()) == s.to_dict()


def test_unknown_keys_preserved_on_save(tmp_path):
    path = tmp_path / "settings.json"
    original = {
        "version": 4,
        "database": {"path": "~/charts.db", "hnsw": {"M": 16}},
        "embedding": {"text_model": "custom_text.onnx", "text_dim": 512,
                      "normalize": True, "pooling": "mean"},
        "gui": {"theme": "dark"},
    }
    path.write_text(json.dumps(original))
    s = Settings.load(path)
    s.embedding.threads = 2
    s.save(path)
    saved = json.loads(path.read_text())
    assert saved["version"] == 4
    assert saved["database"] == original["database"]
    assert saved["embedding"]["normalize"] is True and saved["embedding"]["pooling"] == "mean"
    assert saved["embedding"]["threads"] == 2 and saved["embedding"]["text_dim"] == 512
    assert saved["gui"]["theme"] == "dark"
    # and they survive a second round trip too
    Settings.load(path).save(path)
    assert json.loads(path.read_text()) == saved


@pytest.mark.parametrize(("data", "message"), [
    ({"embedding": {"text_dim": "512"}}, r"embedding\.text_dim must be a whole number or null, "
                                         r"not a string"),
    ({"embedding": {"text_dim": 512.5}}, r"embedding\.text_dim"),
    ({"embedding": {"threads": True}}, r"embedding\.threads must be a whole number"),
    ({"embedding": {"threads": None}}, r"embedding\.threads must be a whole number, not null"),
    ({"embedding": {"quantized": "yes"}}, r"embedding\.quantized must be true or false"),
    ({"embedding": {"text_model": 5}}, r"embedding\.text_model must be a string"),
    ({"embedding": {"device_id": [0]}}, r"embedding\.device_id .* not a list"),
    ({"embedding": "fast"}, r"'embedding' must be an object"),
    ({"library": None}, r"'library' must be an object, not null"),
    ({"models_dir": 3}, r"models_dir must be a string or null"),
    ([1, 2], r"JSON object"),
])
def test_wrong_types_are_clear_errors(data, message):
    with pytest.raises(VectorStudioError, match=message):
        Settings.from_dict(data)


def test_wrong_type_in_a_file_names_the_file_and_changes_nothing(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text('{"embedding": {"text_dim": "768", "threads": 2}}')
    with pytest.raises(VectorStudioError, match=r"settings\.json.*embedding\.text_dim"):
        Settings.load(path)


@pytest.mark.parametrize("text", ["", "{", "not json", '{"a": 1,}'])
def test_unreadable_file_is_a_clear_error(tmp_path, text):
    path = tmp_path / "settings.json"
    path.write_text(text)
    with pytest.raises(VectorStudioError, match="cannot read settings file"):
        Settings.load(path)


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(VectorStudioError, match="cannot read settings file"):
        Settings.load(tmp_path)


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("embedding", "threads", -1, "embedding.threads"),
    ("embedding", "batch_size", 0, "embedding.batch_size"),
    ("embedding", "batch_size", 1000, "embedding.batch_size"),
    ("embedding", "device_id", -2, "embedding.device_id"),
    ("embedding", "text_dim", 0, "embedding.text_dim"),
    ("embedding", "project_to", -512, "embedding.project_to"),
    ("embedding", "text_model", " ", "embedding.text_model"),
    ("embedding", "clip_model", "", "embedding.clip_model"),
    ("embedding", "execution_provider", "", "embedding.execution_provider"),
    ("library", "thumbnail_size", 8, "library.thumbnail_size"),
])
def test_invalid_values_listed_by_problems(section, key, value, message):
    s = Settings.from_dict({section: {key: value}})
    problems = s.problems()
    assert len(problems) == 1 and message in problems[0]


def test_engine_refuses_invalid_settings_with_the_problems(tmp_path):
    from vector_studio_gui.core.engine import Engine

    s = Settings.from_dict({"embedding": {"threads": -1, "batch_size": 0}})
    s.library.path = str(tmp_path / "lib")
    with pytest.raises(VectorStudioError, match=r"embedding\.threads.*embedding\.batch_size"):
        Engine(s)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "cfg" / "settings.json"
    Settings().save(path)  # creates the folder
    s = Settings()
    s.embedding.threads = 4
    s.save(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["settings.json"]
    assert Settings.load(path).embedding.threads == 4


def test_save_replaces_a_longer_existing_file_whole(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"x": "y" * 100_000}) + "\n" + " " * 1000)
    loaded = Settings.load(path)
    loaded.embedding.threads = 2
    loaded.save(path)
    data = json.loads(path.read_text())  # parses: no tail of the old file left
    assert data["x"] == "y" * 100_000 and data["embedding"]["threads"] == 2
    Settings().save(path)
    assert "x" not in json.loads(path.read_text())
    assert path.stat().st_size < 2000


def test_failed_save_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "settings.json"
    Settings().save(path)
    before = path.read_bytes()

    def boom(*a, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    s = Settings()
    s.embedding.threads = 7
    with pytest.raises(OSError, match="disk full"):
        s.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]


def test_saved_file_is_readable_json_with_sections(tmp_path):
    path = Path(tmp_path / "settings.json")
    Settings().save(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    assert {"embedding", "library", "gui", "models_dir"} <= set(data)
    assert data["embedding"]["text_model"] == "minilm-l6"
    assert path.read_text().endswith("\n")
