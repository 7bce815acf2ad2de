"""Encoders: ONNX sessions wrapped with discovery of their inputs/outputs, pooling and L2 norm.

Inputs and outputs are read from the session rather than assumed, so hub exports, user exports
with fewer inputs (only ``input_ids``) and models with a fixed sequence length all work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vector_studio_gui.core.errors import ModelError
from vector_studio_gui.core.runtime import CPU, active_provider, create_session
from vector_studio_gui.core.tokenization import BatchTokenizer

if TYPE_CHECKING:  # onnxruntime is loaded through core.runtime (which sets its options first)
    import onnxruntime as ort

Warn = Callable[[str], None] | None

#: ONNX tensor element types (as ORT reports them) -> numpy dtypes we feed
_NP_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


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
    def __init__(self, path: Path, runtime: RuntimeOptions, warn: Warn, *,
                 spin: bool = False) -> None:
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        self.path = path
        self.session = create_session(
            path, provider=runtime.provider, device_id=runtime.device_id,
            threads=runtime.threads, warn=warn, spin=spin,
        )
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = {o.name: o for o in self.session.get_outputs()}
        # ORT sessions are thread-safe for run(), but two concurrent runs each spawn a full
        # thread pool and fight for the cores; serialising keeps latency predictable.
        self._lock = threading.Lock()

    @property
    def provider(self) -> str:
        return active_provider(self.session)

    def feed(self, name: str, value: np.ndarray) -> np.ndarray:
        """``value`` in the element type the graph declares for input ``name`` (int32 exports...)."""
        dtype = _NP_TYPES.get(self.inputs[name].type)
        if dtype is None or value.dtype == dtype:
            return np.ascontiguousarray(value)
        return np.ascontiguousarray(value, dtype=dtype)

    def declared_dim(self, output: str) -> int | None:
        shape = self.outputs[output].shape or []
        return _declared_int(shape[-1]) if shape else None

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


#: the largest square input an image model may declare (CLIP models take 224-448)
MAX_IMAGE_SIZE = 1024


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
        if self.input.type not in ("tensor(float)", "tensor(float16)", "tensor(double)"):
            raise ModelError(
                f"{path.name}: image input '{self.input.name}' must be float, not {self.input.type}"
            )
        shape = self.input.shape
        if len(shape or []) != 4 or _declared_int(shape[1]) not in (None, 3):
            raise ModelError(
                f"{path.name}: image input '{self.input.name}' must have shape (batch, 3, H, W), "
                f"not {shape}"
            )
        self.image_size = _declared_int(shape[2]) or 224
        if self.image_size > MAX_IMAGE_SIZE:  # every image would become a huge tensor
            raise ModelError(
                f"{path.name}: asks for {self.image_size}x{self.image_size} pixel images; at most "
                f"{MAX_IMAGE_SIZE}x{MAX_IMAGE_SIZE} are supported (CLIP models take 224 to 448)"
            )
        self.fixed_batch = _declared_int(shape[0])
        self.output = self.model.pick_output(("image_embeds",), rank=2)
        self.projection = projection
        self._dim: int | None = None

    @property
    def provider(self) -> str:
        return self.model.provider

    @property
    def dim(self) -> int:
        """Output dim (after projection), from the graph or one probe inference."""
        if self._dim is None:
            s = self.image_size
            self._dim = int(self.encode(np.zeros((1, 3, s, s), np.float32)).shape[1])
        return self._dim

    def encode(self, pixels: np.ndarray) -> np.ndarray:
        pixels = np.asarray(pixels, dtype=np.float32)
        if pixels.ndim != 4:
            raise ModelError(f"{self.model.path.name}: expected (batch, 3, H, W) pixels, "
                             f"got shape {pixels.shape}")
        if pixels.shape[0] == 0:
            return np.zeros((0, self.dim), np.float32)
        pixels = self.model.feed(self.input.name, pixels)
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
                chunk = np.concatenate([chunk, np.zeros((fb - n, *chunk.shape[1:]), chunk.dtype)])
            (out,) = self.model.run([self.output], {self.input.name: chunk})
            parts.append(out[:n])
        return _finish(np.concatenate(parts), self.projection, self.model.path)


class _TokenModel:
    """Shared by the text towers: tokenise, feed only the inputs the graph declares, run."""

    model: _OnnxModel
    tokenizer: BatchTokenizer
    output: str
    projection: np.ndarray | None
    _dim: int | None
    #: the graph takes no attention_mask, so padding would be read as text
    _mask_free: bool = False

    @property
    def provider(self) -> str:
        return self.model.provider

    @property
    def dim(self) -> int:
        """Output dim (after projection), from the graph or one probe inference."""
        if self._dim is None:
            if self.projection is not None:
                self._dim = int(self.projection.shape[1])
            else:
                self._dim = self.model.declared_dim(self.output) if self._pooled_output() else None
                if self._dim is None:
                    self._dim = int(self._encode(["dimension probe"]).shape[1])
        return self._dim

    def _pooled_output(self) -> bool:
        return len(self.model.outputs[self.output].shape or []) == 2

    def _feeds(self, ids: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        m = self.model
        feeds = {"input_ids": m.feed("input_ids", ids)}
        if "attention_mask" in m.inputs:
            feeds["attention_mask"] = m.feed("attention_mask", mask)
        if "token_type_ids" in m.inputs:
            feeds["token_type_ids"] = m.feed("token_type_ids", np.zeros_like(ids))
        if "position_ids" in m.inputs:
            pos = np.broadcast_to(np.arange(ids.shape[1], dtype=np.int64), ids.shape)
            feeds["position_ids"] = m.feed("position_ids", pos)
        return feeds

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        fb = _declared_int(self.model.inputs["input_ids"].shape[0])
        if fb and ids.shape[0] != fb:
            # exported without a dynamic batch axis: run in chunks of the declared size, the
            # last one filled up with copies of its first row
            parts = []
            for start in range(0, ids.shape[0], fb):
                n = min(fb, ids.shape[0] - start)
                rows = np.r_[np.arange(start, start + n), np.full(fb - n, start)]
                parts.append(self._run(ids[rows], mask[rows])[:n])
            return np.concatenate(parts)
        (out,) = self.model.run([self.output], self._feeds(ids, mask))
        out = np.asarray(out, dtype=np.float32)
        if out.ndim == 3:  # hidden states: mean over the tokens the mask keeps
            m = mask[:, : out.shape[1], None].astype(np.float32)
            out = (out * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9)
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        texts = list(texts)
        ids, mask = self.tokenizer.encode(texts)
        if self._padding_leaks(mask):
            # Without an attention mask the model would read the padding as text, so a text's
            # vector would depend on the longest text in its batch: run each length on its own.
            lengths = mask.sum(axis=1)
            out: np.ndarray | None = None
            for n in np.unique(lengths):
                rows = np.flatnonzero(lengths == n)
                part = self._run(ids[rows, :n], mask[rows, :n])
                if out is None:
                    out = np.zeros((len(texts), part.shape[1]), np.float32)
                out[rows] = part
            assert out is not None
        else:
            out = self._run(ids, mask)
        return _finish(out, self.projection, self.model.path)

    def _padding_leaks(self, mask: np.ndarray) -> bool:
        return (self._mask_free and self.tokenizer.fixed_length is None
                and mask.shape[0] > 1 and not bool(mask.all()))

    def encode(self, texts: list[str]) -> np.ndarray:
        """L2-normalised (batch, dim) embeddings of ``texts``."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a list of texts, not one string")
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        return self._encode(texts)


def _check_text_inputs(model: _OnnxModel, allowed: set[str], what: str) -> None:
    path = model.path
    ids = model.inputs.get("input_ids")
    if ids is None or len(ids.shape or []) != 2:
        raise ModelError(
            f"{path.name}: not a {what} (expected an input 'input_ids' of shape "
            f"(batch, sequence); found {_describe(model.inputs)})"
        )
    unknown = set(model.inputs) - allowed
    if unknown:
        raise ModelError(
            f"{path.name}: unexpected inputs {sorted(unknown)} for a {what} (it may take "
            f"{', '.join(sorted(allowed))})"
        )
    for name, meta in model.inputs.items():
        if meta.type not in ("tensor(int64)", "tensor(int32)"):
            raise ModelError(f"{path.name}: input '{name}' must be int64 token ids, not {meta.type}")


class ClipTextEncoder(_TokenModel):
    """CLIP text tower: ``input_ids`` (+ ``attention_mask``) -> ``text_embeds`` (B,D).

    Queries are padded to the longest in the batch (CLIP's causal mask makes the end-of-text
    token blind to what follows it), unless the graph declares a fixed sequence length.
    """

    def __init__(self, path: Path, tokenizer_path: Path, runtime: RuntimeOptions = RuntimeOptions(),
                 warn: Warn = None, max_tokens: int = 77,
                 projection: np.ndarray | None = None) -> None:
        self.model = _OnnxModel(path, runtime, warn, spin=True)  # latency-bound: queries
        _check_text_inputs(self.model, {"input_ids", "attention_mask", "position_ids"},
                           "CLIP text model")
        self.fixed_length = _declared_int(self.model.inputs["input_ids"].shape[1])
        self.tokenizer = BatchTokenizer(tokenizer_path, max_tokens, self.fixed_length)
        self.output = self.model.pick_output(("text_embeds",), rank=2)
        self.projection = projection
        self._dim = None


class TextEncoder(_TokenModel):
    """Sentence encoder (BERT-like): mean pooling over the mask, or the model's pooled output."""

    #: outputs tried first, in order; then any output of rank 2 or 3
    PREFERRED_OUTPUTS = ("sentence_embedding", "last_hidden_state", "token_embeddings",
                         "embeddings", "text_embeds", "pooler_output")

    def __init__(self, path: Path, tokenizer_path: Path, runtime: RuntimeOptions = RuntimeOptions(),
                 warn: Warn = None, max_tokens: int = 256, query_prefix: str = "",
                 passage_prefix: str = "", projection: np.ndarray | None = None) -> None:
        self.model = _OnnxModel(path, runtime, warn, spin=True)  # latency-bound: queries
        _check_text_inputs(self.model, {"input_ids", "attention_mask", "token_type_ids"},
                           "text model")
        self.fixed_length = _declared_int(self.model.inputs["input_ids"].shape[1])
        self.tokenizer = BatchTokenizer(tokenizer_path, max_tokens, self.fixed_length)
        usable = {n: m for n, m in self.model.outputs.items() if len(m.shape or []) in (2, 3)}
        name = next((n for n in self.PREFERRED_OUTPUTS if n in usable), None)
        if name is None and usable:
            name = next(iter(usable))
        if name is None:
            raise ModelError(
                f"{path.name}: no usable output: need (batch, dim) embeddings or "
                f"(batch, sequence, dim) hidden states; found {_describe(self.model.outputs)}"
            )
        self.output = name
        self.pooled = self._pooled_output()
        self._mask_free = "attention_mask" not in self.model.inputs
        self.query_prefix = query_prefix
        self.passage_prefix = passage_prefix
        self.projection = projection
        self._dim = None
        self._last_query: tuple[str, np.ndarray] | None = None

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Search queries, with the model's query prefix (e5: ``"query: "``).

        One search matches the same query against OCR text and notes: the last single query's
        vector is kept, so it is encoded once."""
        last = self._last_query
        if len(texts) == 1 and last is not None and last[0] == texts[0]:
            return last[1].copy()
        out = self.encode([self.query_prefix + t for t in texts])
        if len(texts) == 1:
            self._last_query = (texts[0], out.copy())
        return out

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        """Stored texts (notes), with the model's passage prefix (e5: ``"passage: "``)."""
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
