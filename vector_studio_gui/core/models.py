"""Installed models: where their files are, importing and validating local folders.

Layout under the models dir: ``<name>/`` holds a catalog model as the hub lays it out
(``onnx/vision_model.onnx``...) or an imported one, each with a ``manifest.json`` written last so
a half-finished install or import never counts as installed. The int8 variant of a catalog model
lives in ``<name>/int8/``. Bare ``.onnx`` files named in the config (the user guide's workflow) are
resolved relative to the models dir.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from vector_studio_gui.core import download
from vector_studio_gui.core.catalog import (
    CATALOG,
    DEFAULT_TEXT_MODEL,
    ModelSpec,
    get_spec,
)
from vector_studio_gui.core.encoders import (
    ClipImageEncoder,
    ClipTextEncoder,
    RuntimeOptions,
    TextEncoder,
)
from vector_studio_gui.core.errors import ModelError, ModelNotInstalledError
from vector_studio_gui.core.fsutil import atomic_write_json, sha256_file

MANIFEST = "manifest.json"
Kind = Literal["clip", "text"]

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: texts used for the test inference; the long one checks the model takes max_tokens tokens
_PROBE_TEXTS = ("a chart", "test inference of the text tower")
#: the widest embedding accepted (the largest known models output 4096-d); the index reserves
#: room for vectors up front, so a model with millions of outputs would exhaust memory
MAX_DIM = 8192


@dataclass(frozen=True)
class ClipFiles:
    name: str
    vision: Path
    text: Path
    tokenizer: Path
    max_tokens: int = 77


@dataclass(frozen=True)
class TextFiles:
    name: str
    model: Path
    tokenizer: Path
    max_tokens: int = 256
    query_prefix: str = ""
    passage_prefix: str = ""


@dataclass(frozen=True)
class ModelInfo:
    name: str
    role: str
    installed: bool
    source: str  # "catalog", "import" or "file"
    dim: int | None
    size_mb: float | None
    path: Path
    summary: str = ""
    speed: int = 0
    quality: int = 0
    quantized_installed: bool = False


def _find(folder: Path, filename: str) -> Path | None:
    for cand in (folder / filename, folder / "onnx" / filename):
        if cand.is_file():
            return cand
    return None


def _dir_size_mb(folder: Path) -> float:
    total = 0
    for p in folder.rglob("*"):
        if p.is_file():
            total += p.stat().st_size
    return round(total / 1e6, 1)


class ModelStore:
    def __init__(self, models_dir: Path) -> None:
        self.root = Path(models_dir)

    # ----------------------------------------------------------------- locations
    def folder(self, name: str, quantized: bool = False) -> Path:
        base = self.root / name
        return base / "int8" if quantized else base

    def manifest(self, name: str, quantized: bool = False) -> dict | None:
        return download.read_manifest(self.folder(name, quantized))

    def is_installed(self, name: str, quantized: bool = False) -> bool:
        if name.endswith(".onnx"):
            return self._bare_path(name).is_file()
        return download.is_installed(self.folder(name, quantized))

    def _bare_path(self, name: str) -> Path:
        p = Path(name).expanduser()
        return p if p.is_absolute() else self.root / p

    def list(self) -> list[ModelInfo]:
        out = []
        for spec in CATALOG:
            installed = self.is_installed(spec.name)
            out.append(ModelInfo(
                name=spec.name, role=spec.role, installed=installed, source="catalog",
                dim=spec.dim, size_mb=spec.size_mb, path=self.folder(spec.name),
                summary=spec.summary, speed=spec.speed, quality=spec.quality,
                quantized_installed=self.is_installed(spec.name, True),
            ))
        if self.root.is_dir():
            for sub in sorted(self.root.iterdir()):
                if sub.name in {s.name for s in CATALOG} or not sub.is_dir() or _hidden(sub.name):
                    continue
                man = download.read_manifest(sub)
                if man and man.get("source") == "import":
                    out.append(ModelInfo(
                        name=sub.name, role=man["role"], installed=download.is_installed(sub),
                        source="import", dim=man.get("dim"), size_mb=_dir_size_mb(sub), path=sub,
                        summary=f"imported from {man.get('imported_from', '?')}",
                    ))
            for f in sorted(self.root.rglob("*.onnx")):
                rel = f.relative_to(self.root)
                if rel.parts[0] in {s.name for s in CATALOG} or any(map(_hidden, rel.parts)) or (
                        self.root / rel.parts[0] / MANIFEST).exists() or not f.is_file():
                    continue
                out.append(ModelInfo(
                    name=rel.as_posix(), role="text", installed=True, source="file", dim=None,
                    size_mb=round(f.stat().st_size / 1e6, 1), path=f,
                    summary="bare ONNX file (user guide workflow)",
                ))
        return out

    # ----------------------------------------------------------------- resolving
    def _installed(self, name: str, quantized: bool, role: str
                   ) -> tuple[ModelSpec | None, Path, dict]:
        """Catalog entry, folder and manifest of an installed model of ``role``, or a clear error."""
        wrong = (f"{name} is a text model, not a CLIP model" if role == "clip"
                 else f"{name} is a CLIP model, not a text model")
        spec = get_spec(name)
        if spec is not None and spec.role != role:
            raise ModelError(wrong)
        folder = self.folder(name, quantized)
        man = download.read_manifest(folder)
        if man is None or not download.is_installed(folder):
            self._raise_missing_variant(name, quantized)
            raise ModelNotInstalledError(_not_installed(name))
        if man.get("role") != role:
            raise ModelError(wrong)
        return spec, folder, man

    def clip_files(self, name: str, quantized: bool = False) -> ClipFiles:
        spec, folder, man = self._installed(name, quantized, "clip")
        files = man["files"]
        return ClipFiles(
            name=name,
            vision=folder / files["vision"]["path"],
            text=folder / files["text"]["path"],
            tokenizer=folder / files["tokenizer"]["path"],
            max_tokens=int(man.get("max_tokens") or (spec.max_tokens if spec else 77)),
        )

    def text_files(self, name: str, quantized: bool = False, tokenizer: str | None = None
                   ) -> TextFiles:
        if name.endswith(".onnx"):
            path = self._bare_path(name)
            if not path.is_file():
                raise ModelNotInstalledError(
                    f"custom text model {name} not found (looked for {path})"
                )
            tok = self._tokenizer_for_bare(path, tokenizer)
            return TextFiles(name=name, model=path, tokenizer=tok, max_tokens=256)
        spec, folder, man = self._installed(name, quantized, "text")
        files = man["files"]
        return TextFiles(
            name=name,
            model=folder / files["model"]["path"],
            tokenizer=folder / files["tokenizer"]["path"],
            max_tokens=int(man.get("max_tokens") or (spec.max_tokens if spec else 256)),
            query_prefix=man.get("query_prefix", spec.query_prefix if spec else ""),
            passage_prefix=man.get("passage_prefix", spec.passage_prefix if spec else ""),
        )

    def _raise_missing_variant(self, name: str, quantized: bool) -> None:
        """A clear message when the int8 variant is asked for but only fp32 is there."""
        if not quantized or not self.is_installed(name):
            return
        if get_spec(name) is None:
            raise ModelNotInstalledError(
                f"{name} is an imported model and has no int8 variant; turn quantized off "
                f"(or import an int8 copy under another name)"
            )
        raise ModelNotInstalledError(
            f"the int8 variant of {name} is not installed (only the fp32 one is); run "
            f"'vector-studio models install {name} --quantized' or turn quantized off"
        )

    def _tokenizer_for_bare(self, model: Path, tokenizer: str | None) -> Path:
        if tokenizer:
            p = self._bare_path(tokenizer)
            if not p.is_file():
                raise ModelError(f"tokenizer {tokenizer} not found (looked for {p})")
            return p
        beside = model.with_suffix(".tokenizer.json")
        if beside.is_file():
            return beside
        if (model.parent / "tokenizer.json").is_file():
            return model.parent / "tokenizer.json"
        for quantized in (False, True):
            try:
                return self.text_files(DEFAULT_TEXT_MODEL, quantized).tokenizer
            except ModelError:
                continue
        raise ModelError(
            f"custom model {model.name} needs a tokenizer: the default text model "
            f"{DEFAULT_TEXT_MODEL} (whose tokenizer is used unless one is given) is not "
            f"installed. Run 'vector-studio models install {DEFAULT_TEXT_MODEL}', put a "
            f"tokenizer.json beside the model (or {beside.name}), or set "
            f"embedding.text_tokenizer in the settings"
        )

    # ----------------------------------------------------------------- install / remove
    def install(self, name: str, *, quantized: bool = False, progress=None, cancel=None,
                endpoint: str | None = None, offline: bool = False,
                warn: Callable[[str], None] | None = None) -> Path:
        """Download a catalog model; ``offline`` builds it from a local package instead
        (minilm-l6 only, see :mod:`offline_models`), which also happens automatically when the
        hub is unreachable and the package is installed (``warn`` is told; default: logging)."""
        from vector_studio_gui.core import offline_models
        from vector_studio_gui.core.errors import OfflineError

        spec = get_spec(name)
        if spec is None:
            raise ModelError(
                f"unknown model {name}; known: {', '.join(s.name for s in CATALOG)}"
            )
        folder = self.folder(name, quantized)
        if offline:
            return offline_models.install_offline(spec, folder, quantized=quantized,
                                                  progress=progress, cancel=cancel)
        try:
            return download.download_model(spec, folder, quantized=quantized, progress=progress,
                                           cancel=cancel, endpoint=endpoint)
        except OfflineError as exc:
            if not offline_models.can_build_offline(name, quantized):
                hint = offline_models.offline_hint(name, quantized)
                if hint:
                    raise OfflineError(f"{exc} {hint}") from exc
                raise
            (warn or offline_models.log.warning)(offline_models.fallback_message(name, exc))
            return offline_models.build_minilm_from_package(folder, progress=progress,
                                                            cancel=cancel)

    def delete(self, name: str) -> None:
        if name.endswith(".onnx"):
            path = self._bare_path(name)
            if not _inside(path, self.root):
                raise ModelError(f"{name} is not in the models folder {self.root}; delete it "
                                 f"yourself if you mean to")
            if not path.is_file():
                raise ModelNotInstalledError(f"{name} is not in {self.root}")
            path.unlink()
            return
        if not _NAME_RE.fullmatch(name) or name.endswith(".onnx"):
            raise ModelError(f"invalid model name {name!r}")
        folder = self.root / name
        if not folder.is_dir():
            raise ModelNotInstalledError(f"{name} is not installed")
        # rename first so a crash mid-delete never leaves a half model that looks installed
        trash = self.root / f".deleting-{name}-{os.getpid()}-{time.time_ns()}"
        os.replace(folder, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def verify(self, name: str, quantized: bool = False) -> list[str]:
        """Problems with an installed model's files and a test inference (empty = fine)."""
        problems: list[str] = []
        if name.endswith(".onnx"):
            if not self.is_installed(name):
                return [f"custom model {name} not found (looked for {self._bare_path(name)})"]
        else:
            folder = self.folder(name, quantized)
            if self.manifest(name, quantized) is None:
                try:
                    self._raise_missing_variant(name, quantized)
                except ModelError as exc:
                    return [str(exc)]
                return [_not_installed(name)]
            # size and sha256 of every file: a truncated or corrupted file is named
            problems += download.verify_files(folder)
        if problems:
            return problems
        try:
            man = self.manifest(name, quantized) or {}
            if name.endswith(".onnx") or man.get("role") == "text":
                validate_text(self.text_files(name, quantized))
            else:
                validate_clip(self.clip_files(name, quantized))
        except ModelError as exc:
            problems.append(str(exc))
        return problems

    def import_folder(self, source: Path, name: str, kind: Kind) -> dict:
        """Copy a local model folder in, after validating it; refuse a bad one untouched."""
        source = Path(source).expanduser()
        if not _NAME_RE.fullmatch(name or "") or name.lower().endswith(".onnx"):
            raise ModelError(
                f"invalid model name {name!r}: use up to 64 letters, digits, '.', '-' and '_' "
                f"(no '/', '\\' or spaces, not starting with '.', not ending in .onnx)"
            )
        if get_spec(name) is not None:
            raise ModelError(f"{name} is a catalog model name; choose another name for the import")
        if self.folder(name).exists():
            raise ModelError(f"a model called {name} is already installed; delete it first "
                             f"('vector-studio models delete {name}') or choose another name")
        if not source.is_dir():
            raise ModelError(f"{source} is not a folder")
        if kind == "clip":
            needed = {"vision": "vision_model.onnx", "text": "text_model.onnx"}
        elif kind == "text":
            needed = {"model": "model.onnx"}
        else:
            raise ModelError(f"--kind must be clip or text, not {kind}")
        found: dict[str, Path] = {}
        missing = []
        for part, filename in {**needed, "tokenizer": "tokenizer.json"}.items():
            p = _find(source, filename)
            if p is None:
                missing.append(filename)
            else:
                found[part] = p
        if missing:
            raise ModelError(
                f"{source} is not a {kind} model folder: missing {', '.join(missing)} "
                f"(looked at the folder root and in onnx/)"
            )
        max_tokens = _tokenizer_max_length(found["tokenizer"]) or (77 if kind == "clip" else 256)
        if kind == "clip":
            max_tokens = min(max_tokens, 77)
            dim = validate_clip(ClipFiles(name, found["vision"], found["text"], found["tokenizer"],
                                          max_tokens))
        else:
            dim = validate_text(TextFiles(name, found["model"], found["tokenizer"], max_tokens))
        target = self.folder(name)
        if target.exists():
            raise ModelError(f"a model called {name} is already installed; delete it first")
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".import-{name}-", dir=self.root))
        try:
            files = {}
            for part, src in found.items():
                rel = Path("onnx", src.name) if src.suffix == ".onnx" else Path(src.name)
                (staging / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, staging / rel)
                files[part] = {"path": rel.as_posix(), "size": src.stat().st_size,
                               "sha256": sha256_file(staging / rel)}
            manifest = {"name": name, "role": kind, "source": "import", "dim": dim,
                        "imported_from": str(source), "files": files, "installed": time.time(),
                        "max_tokens": max_tokens}
            atomic_write_json(staging / MANIFEST, manifest)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return manifest


def _hidden(name: str) -> bool:
    """Staging (.import-*), trash (.deleting-*) and partial-download folders."""
    return name.startswith(".")


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _tokenizer_max_length(path: Path) -> int | None:
    """The truncation length a tokenizer.json asks for (MiniLM's: 128), if any."""
    try:
        trunc = json.loads(path.read_text(encoding="utf-8")).get("truncation") or {}
        value = int(trunc.get("max_length") or 0)
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    return value if value > 0 else None


def _not_installed(name: str) -> str:
    if get_spec(name) is not None:
        return (f"model {name} is not installed; run 'vector-studio models install {name}' "
                f"(needs internet) or import a folder with 'vector-studio models import'")
    return f"model {name} is not installed or imported"


_validate_lock = threading.Lock()


def validate_clip(files: ClipFiles, runtime: RuntimeOptions = RuntimeOptions(threads=1)) -> int:
    """Load both towers, run one inference each, check their dims agree; returns the dim."""
    image = ClipImageEncoder(files.vision, runtime)
    text = ClipTextEncoder(files.text, files.tokenizer, runtime, max_tokens=files.max_tokens)
    s = image.image_size
    img_vec = image.encode(np.zeros((2, 3, s, s), np.float32))
    txt_vec = text.encode(list(_PROBE_TEXTS))
    _probe_long(text, files.name)
    if img_vec.shape[0] != 2 or txt_vec.shape[0] != 2:
        raise ModelError(f"{files.name}: the model does not accept a batch of 2 inputs")
    if img_vec.shape[1] != txt_vec.shape[1]:
        raise ModelError(
            f"{files.name}: image tower outputs {img_vec.shape[1]}-d vectors but the text tower "
            f"{txt_vec.shape[1]}-d; both towers must share one embedding space"
        )
    _check_dim(files.name, int(img_vec.shape[1]))
    return int(img_vec.shape[1])


def validate_text(files: TextFiles, runtime: RuntimeOptions = RuntimeOptions(threads=1)) -> int:
    enc = TextEncoder(files.model, files.tokenizer, runtime, max_tokens=files.max_tokens)
    vecs = enc.encode(list(_PROBE_TEXTS))
    if vecs.shape[0] != 2:
        raise ModelError(f"{files.name}: the model does not accept a batch of 2 inputs")
    _probe_long(enc, files.name)
    _check_dim(files.name, int(vecs.shape[1]))
    return int(vecs.shape[1])


def _check_dim(name: str, dim: int) -> None:
    if dim > MAX_DIM:
        raise ModelError(f"{name}: outputs {dim}-d vectors; at most {MAX_DIM}-d are supported")


def _probe_long(enc: ClipTextEncoder | TextEncoder, name: str) -> None:
    """A text of the full token limit must run too, or long notes would fail at search time."""
    n = enc.tokenizer.max_tokens
    try:
        enc.encode(["chart " * (n + 8)])
    except ModelError as exc:
        raise ModelError(f"{name}: the model fails on a {n}-token input ({exc})") from exc


def spec_or_none(name: str) -> ModelSpec | None:
    return get_spec(name)


ProgressFn = Callable[[object], None]
