"""Encoders: ONNX sessions wrapped with discovery of their inputs/outputs, pooling and L2 norm.

Inputs and outputs are read from the session rather than assumed, so hub exports, user exports
with fewer inputs (only ``input_ids``) and models with a fixed sequence length all work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from vector_studio_gui.core.errors import ModelError
from vector_studio_gui.core.runtime import CPU, active_provider, create_session
from vector_studio_gui.core.tokenization import BatchTokenizer

Warn = Callable[[str], None] | None


@dataclass(frozen=True)
class RuntimeOptions:
    provider: str = CPU
    device_id: int = 0
    threads: int = 0


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def orthonormal_projection(d_in: int, d_out: int, seed: int) -> np.ndarray:
    """A fixed (seeded) matrix of shape (d_in, d_out) that preserves angles as far as possible.

    Columns are orthonormal when reducing, rows when expanding, so cosine similarities are kept
    exactly when expanding and approximately (random-projection style) when reducing.
    """
    rng = np.random.default_rng(seed)
    if d_out <= d_in:
        q, _ = np.linalg.qr(rng.standard_normal((d_in, d_out)))
        return q.astype(np.float32)
    q, _ = np.linalg.qr(rng.standard_normal((d_out, d_in)))
    return q.T.astype(np.float32)


class _OnnxModel:
    def __init__(self, path: Path, runtime: RuntimeOptions, warn: Warn) -> None:
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        self.path = path
        self.session = create_session(
            path, provider=runtime.provider, device_id=runtime.device_id,
            threads=runtime.threads, warn=warn,
        )
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = {o.name: o for o in self.session.get_outputs()}
        # ORT sessions are thread-safe for run(), but two concurrent runs each spawn a full
        # thread pool and fight for the cores; serialising keeps latency predictable.
        self._lock = threading.Lock()

    @property
    def provider(self) -> str:
        return active_provider(self.session)

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self._lock:
            try:
                return self.session.run(outputs, feeds)
            except Exception as exc:
                msg = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else repr(exc)
                raise ModelError(f"model {self.path.name} failed to run: {msg}") from exc

    def pick_output(self, preferred: tuple[str, ...], rank: int | None = None) -> str:
        for name in preferred:
            if name in self.outputs:
                return name
        for name, meta in self.outputs.items():
            if rank is None or len(meta.shape or []) == rank:
                return name
        raise ModelError(
            f"{self.path.name}: no usable output (outputs: {', '.join(self.outputs) or 'none'})"
        )


def _declared_int(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


class ClipImageEncoder:
    """CLIP vision tower: ``pixel_values`` (B,3,S,S) float -> ``image_embeds`` (B,D)."""

    def __init__(self, path: Path, runtime: RuntimeOptions = RuntimeOptions(), warn: Warn = None,
                 projection: np.ndarray | None = None) -> None:
        self.model = _OnnxModel(path, runtime, warn)
        candidates = [i for i in self.model.inputs.values() if len(i.shape or []) == 4]
        if "pixel_values" in self.model.inputs:
            self.input = self.model.inputs["pixel_values"]
        elif len(candidates) == 1:
            self.input = candidates[0]
        else:
            raise ModelError(
                f"{path.name}: not a CLIP image model (expected an input 'pixel_values' of shape "
                f"(batch, 3, H, W); found {_describe(self.model.inputs)})"
            )
        if "float" not in self.input.type:
            raise ModelError(f"{path.name}: image input '{self.input.name}' must be float")
        shape = self.input.shape
        self.image_size = _declared_int(shape[2]) or 224
        self.fixed_batch = _declared_int(shape[0])
        self.output = self.model.pick_output(("image_embeds",), rank=2)
        self.projection = projection

    @property
    def provider(self) -> str:
        return self.model.provider

    def encode(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.ascontiguousarray(pixels, dtype=np.float32)
        if self.fixed_batch and pixels.shape[0] != self.fixed_batch:
            return np.concatenate(
                [self.encode(pixels[i : i + 1]) for i in range(pixels.shape[0])]
            ) if self.fixed_batch == 1 else self._encode_padded(pixels)
        (out,) = self.model.run([self.output], {self.input.name: pixels})
        return _finish(out, self.projection, self.model.path)

    def _encode_padded(self, pixels: np.ndarray) -> np.ndarray:
        fb = self.fixed_batch or 1
        parts = []
        for start in range(0, pixels.shape[0], fb):
            chunk = pixels[start : start + fb]
            n = chunk.shape[0]
            if n < fb:
                chunk = np.concatenate([chunk, np.zeros((fb - n, *chunk.shape[1:]), np.float32)])
            (out,) = self.model.run([self.output], {self.input.name: chunk})
            parts.append(out[:n])
        return _finish(np.concatenate(parts), self.projection, self.model.path)


class ClipTextEncoder:
    """CLIP text tower: ``input_ids`` (+ ``attention_mask``) -> ``text_embeds`` (B,D)."""

    def __init__(self, path: Path, tokenizer_path: Path, runtime: RuntimeOptions = RuntimeOptions(),
                 warn: Warn = None, max_tokens: int = 77,
                 projection: np.ndarray | None = None) -> None:
        self.model = _OnnxModel(path, runtime, warn)
        ids = self.model.inputs.get("input_ids")
        if ids is None or len(ids.shape or []) != 2:
            raise ModelError(
                f"{path.name}: not a CLIP text model (expected an input 'input_ids' of shape "
                f"(batch, sequence); found {_describe(self.model.inputs)})"
            )
        unknown = set(self.model.inputs) - {"input_ids", "attention_mask", "position_ids"}
        if unknown:
            raise ModelError(f"{path.name}: unexpected text inputs {sorted(unknown)}")
        self.fixed_length = _declared_int(ids.shape[1])
        self.tokenizer = BatchTokenizer(tokenizer_path, max_tokens, self.fixed_length)
        self.output = self.model.pick_output(("text_embeds",), rank=2)
        self.projection = projection

    @property
    def provider(self) -> str:
        return self.model.provider

    def encode(self, texts: list[str]) -> np.ndarray:
        ids, mask = self.tokenizer.encode(texts)
        feeds = {"input_ids": ids}
        if "attention_mask" in self.model.inputs:
            feeds["attention_mask"] = mask
        if "position_ids" in self.model.inputs:
            feeds["position_ids"] = np.broadcast_to(
                np.arange(ids.shape[1], dtype=np.int64), ids.shape
            ).copy()
        (out,) = self.model.run([self.output], feeds)
        return _finish(out, self.projection, self.model.path)


class TextEncoder:
    """Sentence encoder (BERT-like): mean pooling over the mask, or the model's pooled output."""

    def __init__(self, path: Path, tokenizer_path: Path, runtime: RuntimeOptions = RuntimeOptions(),
                 warn: Warn = None, max_tokens: int = 256, query_prefix: str = "",
                 passage_prefix: str = "", projection: np.ndarray | None = None) -> None:
        self.model = _OnnxModel(path, runtime, warn)
        ids = self.model.inputs.get("input_ids")
        if ids is None or len(ids.shape or []) != 2:
            raise ModelError(
                f"{path.name}: not a text model (expected an input 'input_ids' of shape "
                f"(batch, sequence); found {_describe(self.model.inputs)})"
            )
        unknown = set(self.model.inputs) - {"input_ids", "attention_mask", "token_type_ids"}
        if unknown:
            raise ModelError(f"{path.name}: unexpected text inputs {sorted(unknown)}")
        self.fixed_length = _declared_int(ids.shape[1])
        self.tokenizer = BatchTokenizer(tokenizer_path, max_tokens, self.fixed_length)
        preferred = ("last_hidden_state", "token_embeddings", "sentence_embedding", "embeddings",
                     "text_embeds", "pooler_output")
        name = None
        for cand in preferred:
            if cand in self.model.outputs and len(self.model.outputs[cand].shape or []) in (2, 3):
                name = cand
                break
        if name is None:
            for cand, meta in self.model.outputs.items():
                if len(meta.shape or []) in (2, 3):
                    name = cand
                    break
        if name is None:
            raise ModelError(
                f"{path.name}: no usable output: need (batch, dim) embeddings or "
                f"(batch, sequence, dim) hidden states; found {_describe(self.model.outputs)}"
            )
        self.output = name
        self.pooled = len(self.model.outputs[name].shape) == 2
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.projection = projection

    @property
    def provider(self) -> str:
        return self.model.provider

    def encode(self, texts: list[str]) -> np.ndarray:
        ids, mask = self.tokenizer.encode(texts)
        feeds = {"input_ids": ids}
        if "attention_mask" in self.model.inputs:
            feeds["attention_mask"] = mask
        if "token_type_ids" in self.model.inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        (out,) = self.model.run([self.output], feeds)
        if out.ndim == 3:
            m = mask[:, : out.shape[1], None].astype(np.float32)
            out = (out * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return _finish(out, self.projection, self.model.path)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return self.encode([self.query_prefix + t for t in texts])

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        return self.encode([self.passage_prefix + t for t in texts])


def _finish(out: np.ndarray, projection: np.ndarray | None, path: Path) -> np.ndarray:
    out = np.asarray(out, dtype=np.float32)
    if out.ndim != 2:
        raise ModelError(f"{path.name}: expected (batch, dim) embeddings, got shape {out.shape}")
    if projection is not None:
        if out.shape[1] != projection.shape[0]:
            raise ModelError(
                f"{path.name}: outputs {out.shape[1]}-d vectors but the configured projection "
                f"expects {projection.shape[0]}-d (check text_dim)"
            )
        out = out @ projection
    if not np.all(np.isfinite(out)):
        raise ModelError(f"{path.name}: produced NaN or infinite values")
    return l2_normalize(out)


def _describe(values: dict[str, ort.NodeArg]) -> str:
    return ", ".join(f"{n} {v.shape}" for n, v in values.items()) or "nothing"
