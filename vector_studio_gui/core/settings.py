"""One typed settings object with defaults, persisted as JSON.

The ``embedding`` section uses the user guide's key names (``text_model``, ``text_dim``,
``project_to``, ``execution_provider``, ``device_id``) so a config written from the guide's
examples loads unchanged. Unknown keys are preserved on save, so a newer version's settings survive
a round trip through an older one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from vector_studio_gui.core.catalog import DEFAULT_CLIP_MODEL, DEFAULT_TEXT_MODEL
from vector_studio_gui.core.errors import VectorStudioError


@dataclass
class EmbeddingSettings:
    clip_model: str = DEFAULT_CLIP_MODEL
    text_model: str = DEFAULT_TEXT_MODEL
    #: Output dim of a custom text model (guide: ``text_dim``); None = discovered from the model.
    text_dim: int | None = None
    #: Project embeddings of custom models to this dim (guide: ``project_to``).
    project_to: int | None = None
    #: tokenizer.json for a bare custom ONNX text model; None = the default text model's.
    text_tokenizer: str | None = None
    quantized: bool = False
    execution_provider: str = "CPUExecutionProvider"
    device_id: int = 0
    #: Inference threads; 0 lets ONNX Runtime use every core.
    threads: int = 0
    batch_size: int = 8


@dataclass
class LibrarySettings:
    path: str | None = None
    thumbnail_size: int = 256


@dataclass
class OcrSettings:
    enabled: bool = True


@dataclass
class GuiSettings:
    geometry: str = ""
    splitter: str = ""
    first_run_done: bool = False


@dataclass
class Settings:
    embedding: EmbeddingSettings = field(default_factory=EmbeddingSettings)
    library: LibrarySettings = field(default_factory=LibrarySettings)
    ocr: OcrSettings = field(default_factory=OcrSettings)
    gui: GuiSettings = field(default_factory=GuiSettings)
    models_dir: str | None = None
    #: keys this version does not know, kept so a save never loses them: top level...
    _extra: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    #: ... and per section ({"embedding": {"pooling": "cls"}})
    _section_extra: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False,
                                                      compare=False)

    def problems(self) -> list[str]:
        """Human-readable reasons this configuration cannot work (empty when fine)."""
        e = self.embedding
        out = []
        if not e.clip_model.strip():
            out.append("embedding.clip_model must name a CLIP model")
        if not e.text_model.strip():
            out.append("embedding.text_model must name a text model")
        if not e.execution_provider.strip():
            out.append("embedding.execution_provider must name a provider (e.g. "
                       "CPUExecutionProvider)")
        if e.threads < 0:
            out.append("embedding.threads must be 0 (automatic) or a positive number")
        if not 1 <= e.batch_size <= 256:
            out.append("embedding.batch_size must be between 1 and 256")
        if e.device_id < 0:
            out.append("embedding.device_id must be 0 or more")
        if e.text_dim is not None and e.text_dim <= 0:
            out.append("embedding.text_dim must be a positive number")
        if e.project_to is not None and e.project_to <= 0:
            out.append("embedding.project_to must be a positive number")
        if not 32 <= self.library.thumbnail_size <= 1024:
            out.append("library.thumbnail_size must be between 32 and 1024 pixels")
        return out

    def to_dict(self) -> dict[str, Any]:
        data = dict(self._extra)
        for f in fields(self):
            if f.name.startswith("_"):
                continue
            value = getattr(self, f.name)
            if hasattr(value, "__dataclass_fields__"):
                data[f.name] = {**self._section_extra.get(f.name, {}), **asdict(value)}
            else:
                data[f.name] = value
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        if not isinstance(data, dict):
            raise VectorStudioError("settings file must hold a JSON object")
        s = cls()
        known = {f.name: f for f in fields(cls) if not f.name.startswith("_")}
        s._extra = {k: v for k, v in data.items() if k not in known}
        for name, f in known.items():
            if name not in data:
                continue
            current = getattr(s, name)
            if hasattr(current, "__dataclass_fields__"):
                section = data[name]
                if not isinstance(section, dict):
                    raise VectorStudioError(
                        f"settings: '{name}' must be an object, not {_json_type(section)}"
                    )
                extra = _fill(current, section, name)
                if extra:
                    s._section_extra[name] = extra
            else:
                _check_type(data[name], str(f.type), name)
                setattr(s, name, data[name])
        return s

    @classmethod
    def load(cls, path: Path) -> Settings:
        """Settings from ``path``; defaults when it does not exist."""
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise VectorStudioError(f"cannot read settings file {path}: {exc}") from exc
        try:
            return cls.from_dict(data)
        except VectorStudioError as exc:
            raise VectorStudioError(f"{path}: {exc}") from exc

    def save(self, path: Path) -> None:
        """Write atomically so a crash never leaves a half-written settings file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"
        fd, tmp = tempfile.mkstemp(prefix=".settings-", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _fill(target: Any, values: dict[str, Any], section: str) -> dict[str, Any]:
    """Set the known keys of ``values`` on ``target`` (type-checked); return the unknown ones
    (keys from newer versions or from the guide that we do not use) so they can be kept."""
    types = {f.name: str(f.type) for f in fields(target)}
    extra = {}
    for key, value in values.items():
        if key not in types:
            extra[key] = value
            continue
        _check_type(value, types[key], f"{section}.{key}")
    for key, value in values.items():
        if key in types:
            setattr(target, key, value)
    return extra


_JSON_NAMES = {"int": "a whole number", "str": "a string", "bool": "true or false",
               "None": "null", "float": "a number"}


def _check_type(value: Any, annotation: str, key: str) -> None:
    allowed = [part.strip() for part in annotation.split("|")]
    if not any(_is(value, t) for t in allowed):
        wanted = " or ".join(_JSON_NAMES.get(t, t) for t in allowed)
        raise VectorStudioError(
            f"settings: {key} must be {wanted}, not {_json_type(value)} ({json.dumps(value)})"
        )


def _is(value: Any, type_name: str) -> bool:
    if type_name == "None":
        return value is None
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "str":
        return isinstance(value, str)
    if type_name == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "an object"
