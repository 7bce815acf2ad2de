"""A real BERT encoder as ONNX, with the interface of the Hugging Face "Xenova" exports.

Inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64 [batch_size,
sequence_length]); output ``last_hidden_state`` (float32 [batch_size, sequence_length, hidden]).
Weights use the Hugging Face ``BertModel`` state-dict names, with or without a ``bert.`` prefix,
so the real all-MiniLM-L6-v2 safetensors can be converted offline::

    from safetensors.numpy import load_file
    build_bert_onnx(load_file("model.safetensors"), BertConfig(), "onnx/model.onnx")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ._graph import (
    DEFAULT_OPSET,
    FLOAT_MIN,
    GraphBuilder,
    as_f64,
    np_attention,
    np_gelu,
    np_layer_norm,
    np_linear,
)

BATCH = "batch_size"
SEQ = "sequence_length"


@dataclass
class BertConfig:
    vocab_size: int = 30522
    hidden: int = 384
    layers: int = 6
    heads: int = 12
    intermediate: int = 1536
    max_positions: int = 512
    type_vocab: int = 2
    layer_norm_eps: float = 1e-12

    def __post_init__(self) -> None:
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")


def _layer_names(i: int) -> dict[str, str]:
    p = f"encoder.layer.{i}."
    return {
        "q": p + "attention.self.query",
        "k": p + "attention.self.key",
        "v": p + "attention.self.value",
        "o": p + "attention.output.dense",
        "ln1": p + "attention.output.LayerNorm",
        "fc1": p + "intermediate.dense",
        "fc2": p + "output.dense",
        "ln2": p + "output.LayerNorm",
    }


def expected_bert_shapes(cfg: BertConfig) -> dict[str, tuple[int, ...]]:
    """Every weight the graph needs, by its Hugging Face name, with its shape."""
    h, f = cfg.hidden, cfg.intermediate
    shapes: dict[str, tuple[int, ...]] = {
        "embeddings.word_embeddings.weight": (cfg.vocab_size, h),
        "embeddings.position_embeddings.weight": (cfg.max_positions, h),
        "embeddings.token_type_embeddings.weight": (cfg.type_vocab, h),
        "embeddings.LayerNorm.weight": (h,),
        "embeddings.LayerNorm.bias": (h,),
    }
    for i in range(cfg.layers):
        n = _layer_names(i)
        for key in ("q", "k", "v", "o"):
            shapes[n[key] + ".weight"] = (h, h)
            shapes[n[key] + ".bias"] = (h,)
        shapes[n["fc1"] + ".weight"] = (f, h)
        shapes[n["fc1"] + ".bias"] = (f,)
        shapes[n["fc2"] + ".weight"] = (h, f)
        shapes[n["fc2"] + ".bias"] = (h,)
        for key in ("ln1", "ln2"):
            shapes[n[key] + ".weight"] = (h,)
            shapes[n[key] + ".bias"] = (h,)
    return shapes


def normalize_bert_weights(weights: dict[str, np.ndarray],
                           cfg: BertConfig) -> dict[str, np.ndarray]:
    """Map a state dict to the canonical names and check every shape against ``cfg``.

    Accepts names with or without the ``bert.`` prefix (``BertForX`` checkpoints) and the old
    ``LayerNorm.gamma``/``beta`` spelling; ignores extra entries (pooler, ``position_ids``, heads).
    """
    canon: dict[str, np.ndarray] = {}
    for key, value in weights.items():
        name = key[len("bert."):] if key.startswith("bert.") else key
        if name.endswith("LayerNorm.gamma"):
            name = name[: -len("gamma")] + "weight"
        elif name.endswith("LayerNorm.beta"):
            name = name[: -len("beta")] + "bias"
        canon[name] = np.asarray(value)
    out: dict[str, np.ndarray] = {}
    for name, shape in expected_bert_shapes(cfg).items():
        if name not in canon:
            raise KeyError(f"BERT weight missing: {name!r} (nor 'bert.{name}')")
        arr = canon[name]
        if tuple(arr.shape) != shape:
            raise ValueError(f"BERT weight {name!r} has shape {arr.shape}, config wants {shape}")
        out[name] = arr.astype(np.float32, copy=False)
    return out


def random_bert_weights(cfg: BertConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights (std 0.02, LayerNorm near identity) under the Hugging Face names."""
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in expected_bert_shapes(cfg).items():
        if name.endswith("LayerNorm.weight"):
            arr = 1.0 + 0.02 * rng.standard_normal(shape, dtype=np.float32)
        elif name.endswith(".bias"):
            arr = 0.02 * rng.standard_normal(shape, dtype=np.float32)
        else:
            arr = rng.standard_normal(shape, dtype=np.float32)
            arr *= np.float32(0.02)
        out[name] = arr.astype(np.float32, copy=False)
    return out


def build_bert_onnx(weights: dict[str, np.ndarray], cfg: BertConfig, path: str | Path, *,
                    opset: int = DEFAULT_OPSET) -> Path:
    """Write a BERT encoder to ``path`` (a single .onnx file) and return the path."""
    w = normalize_bert_weights(weights, cfg)
    g = GraphBuilder()
    ids = g.input("input_ids", np.int64, [BATCH, SEQ])
    mask = g.input("attention_mask", np.int64, [BATCH, SEQ])
    types = g.input("token_type_ids", np.int64, [BATCH, SEQ])

    # Embeddings: word + position (0..seq-1) + token type, then LayerNorm.
    word = g.op("Gather", [g.weight(w["embeddings.word_embeddings.weight"],
                                    "embeddings.word_embeddings.weight"), ids], axis=0)
    # Positions 0..seq-1: the first `seq` rows of the table (Slice, as torch exports do).
    pos = g.prefix_rows(g.weight(w["embeddings.position_embeddings.weight"],
                                 "embeddings.position_embeddings.weight"), ids)
    typ = g.op("Gather", [g.weight(w["embeddings.token_type_embeddings.weight"],
                                   "embeddings.token_type_embeddings.weight"), types], axis=0)
    x = g.op("Add", [g.op("Add", [word, pos]), typ])
    x = g.layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                     cfg.layer_norm_eps, "embeddings.LayerNorm")

    # Additive mask [B, 1, 1, S]: 0 where attended, float32 min where padded.
    m = g.op("Unsqueeze", [g.op("Cast", [mask], to=1), g.const([1, 2], np.int64)])
    additive = g.op("Mul", [g.op("Sub", [g.const(1.0), m]), g.const(FLOAT_MIN)],
                    hint="extended_attention_mask")

    for i in range(cfg.layers):
        n = _layer_names(i)

        def p(key: str, n: dict[str, str] = n) -> tuple[np.ndarray, np.ndarray]:
            return w[n[key] + ".weight"], w[n[key] + ".bias"]

        attn = g.attention(x, p("q"), p("k"), p("v"), p("o"), heads=cfg.heads, width=cfg.hidden,
                           additive_mask=additive, hint=f"encoder.layer.{i}.attention")
        x = g.layer_norm(g.op("Add", [attn, x]), *p("ln1"), cfg.layer_norm_eps, n["ln1"])
        hmid = g.gelu_erf(g.linear(x, *p("fc1"), n["fc1"]))
        out = g.linear(hmid, *p("fc2"), n["fc2"])
        x = g.layer_norm(g.op("Add", [out, x]), *p("ln2"), cfg.layer_norm_eps, n["ln2"])

    g.output(x, "last_hidden_state", np.float32, [BATCH, SEQ, cfg.hidden])
    return g.save(path, "bert", opset=opset)


def bert_reference(weights: dict[str, np.ndarray], cfg: BertConfig, input_ids: np.ndarray,
                   attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
    """numpy (float64) forward pass of the same network; returns float32 last_hidden_state."""
    w = as_f64(normalize_bert_weights(weights, cfg))
    ids = np.asarray(input_ids, dtype=np.int64)
    s = ids.shape[1]
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][:s][None]
         + w["embeddings.token_type_embeddings.weight"][np.asarray(token_type_ids)])
    x = np_layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"],
                      cfg.layer_norm_eps)
    m = np.asarray(attention_mask, dtype=np.float64)[:, None, None, :]
    additive = (1.0 - m) * FLOAT_MIN
    for i in range(cfg.layers):
        n = _layer_names(i)

        def p(key: str, n: dict[str, str] = n) -> tuple[np.ndarray, np.ndarray]:
            return w[n[key] + ".weight"], w[n[key] + ".bias"]

        attn = np_attention(x, p("q"), p("k"), p("v"), p("o"), heads=cfg.heads,
                            additive_mask=additive)
        x = np_layer_norm(attn + x, *p("ln1"), cfg.layer_norm_eps)
        out = np_linear(np_gelu(np_linear(x, *p("fc1"))), *p("fc2"))
        x = np_layer_norm(out + x, *p("ln2"), cfg.layer_norm_eps)
    return x.astype(np.float32)
