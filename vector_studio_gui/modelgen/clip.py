"""CLIP image and text towers as ONNX, with the interface of the "Xenova" exports.

``vision_model.onnx``: ``pixel_values`` float32 [batch_size, 3, H, W] ->
``image_embeds`` [batch_size, proj_dim], ``last_hidden_state`` [batch_size, tokens, width]
(tokens = (H / patch)^2 + 1; the hidden state is the encoder output, before post_layernorm).

``text_model.onnx``: ``input_ids``, ``attention_mask`` int64 [batch_size, sequence_length] ->
``text_embeds`` [batch_size, proj_dim], ``last_hidden_state`` [batch_size, sequence_length,
width] (after final_layer_norm). ``text_embeds`` is taken at the first position of the highest
token id (the end-of-text token) under a causal mask, so trailing padding changes nothing.

Neither embedding is L2-normalised. Weight names are those of Hugging Face
``CLIPVisionModelWithProjection`` / ``CLIPTextModelWithProjection`` (a full ``CLIPModel`` state
dict works for both).
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
    np_layer_norm,
    np_linear,
    np_quick_gelu,
)

BATCH = "batch_size"
SEQ = "sequence_length"

VISION = "vision_model."
TEXT = "text_model."


@dataclass
class ClipVisionConfig:
    image_size: int = 224
    patch: int = 32
    width: int = 768
    layers: int = 12
    heads: int = 12
    mlp: int = 3072
    proj_dim: int = 512
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.image_size % self.patch:
            raise ValueError("image_size must be a multiple of patch")
        if self.width % self.heads:
            raise ValueError("width must be divisible by heads")

    @property
    def tokens(self) -> int:
        return (self.image_size // self.patch) ** 2 + 1


@dataclass
class ClipTextConfig:
    vocab_size: int = 49408
    width: int = 512
    layers: int = 12
    heads: int = 8
    mlp: int = 2048
    max_positions: int = 77
    proj_dim: int = 512
    eos_token_id: int = 49407
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError("width must be divisible by heads")


# --------------------------------------------------------------------------------------------
# weight names and shapes
# --------------------------------------------------------------------------------------------


def _encoder_shapes(prefix: str, layers: int, width: int, mlp: int) -> dict[str, tuple]:
    shapes: dict[str, tuple] = {}
    for i in range(layers):
        p = f"{prefix}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[f"{p}self_attn.{proj}.weight"] = (width, width)
            shapes[f"{p}self_attn.{proj}.bias"] = (width,)
        for ln in ("layer_norm1", "layer_norm2"):
            shapes[f"{p}{ln}.weight"] = (width,)
            shapes[f"{p}{ln}.bias"] = (width,)
        shapes[f"{p}mlp.fc1.weight"] = (mlp, width)
        shapes[f"{p}mlp.fc1.bias"] = (mlp,)
        shapes[f"{p}mlp.fc2.weight"] = (width, mlp)
        shapes[f"{p}mlp.fc2.bias"] = (width,)
    return shapes


def expected_clip_vision_shapes(cfg: ClipVisionConfig) -> dict[str, tuple]:
    w = cfg.width
    shapes: dict[str, tuple] = {
        VISION + "embeddings.class_embedding": (w,),
        VISION + "embeddings.patch_embedding.weight": (w, 3, cfg.patch, cfg.patch),
        VISION + "embeddings.position_embedding.weight": (cfg.tokens, w),
        VISION + "pre_layrnorm.weight": (w,),  # sic: Hugging Face's spelling
        VISION + "pre_layrnorm.bias": (w,),
    }
    shapes.update(_encoder_shapes(VISION, cfg.layers, w, cfg.mlp))
    shapes[VISION + "post_layernorm.weight"] = (w,)
    shapes[VISION + "post_layernorm.bias"] = (w,)
    shapes["visual_projection.weight"] = (cfg.proj_dim, w)
    return shapes


def expected_clip_text_shapes(cfg: ClipTextConfig) -> dict[str, tuple]:
    w = cfg.width
    shapes: dict[str, tuple] = {
        TEXT + "embeddings.token_embedding.weight": (cfg.vocab_size, w),
        TEXT + "embeddings.position_embedding.weight": (cfg.max_positions, w),
    }
    shapes.update(_encoder_shapes(TEXT, cfg.layers, w, cfg.mlp))
    shapes[TEXT + "final_layer_norm.weight"] = (w,)
    shapes[TEXT + "final_layer_norm.bias"] = (w,)
    shapes["text_projection.weight"] = (cfg.proj_dim, w)
    return shapes


def _select(weights: dict[str, np.ndarray], shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        if name not in weights:
            raise KeyError(f"CLIP weight missing: {name!r}")
        arr = np.asarray(weights[name])
        if tuple(arr.shape) != tuple(shape):
            raise ValueError(f"CLIP weight {name!r} has shape {arr.shape}, config wants {shape}")
        out[name] = arr.astype(np.float32, copy=False)
    return out


def _random(shapes: dict[str, tuple], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for name, shape in shapes.items():
        arr = rng.standard_normal(shape, dtype=np.float32)
        arr *= np.float32(0.02)
        if "norm" in name and name.endswith(".weight"):  # layer_norm1, pre_layrnorm, ...
            arr += np.float32(1.0)
        out[name] = arr
    return out


def random_clip_vision_weights(cfg: ClipVisionConfig, seed: int = 0) -> dict[str, np.ndarray]:
    return _random(expected_clip_vision_shapes(cfg), seed)


def random_clip_text_weights(cfg: ClipTextConfig, seed: int = 0) -> dict[str, np.ndarray]:
    return _random(expected_clip_text_shapes(cfg), seed)


# --------------------------------------------------------------------------------------------
# graphs
# --------------------------------------------------------------------------------------------


def _pair(w: dict[str, np.ndarray], name: str) -> tuple[np.ndarray, np.ndarray]:
    return w[name + ".weight"], w[name + ".bias"]


def _encoder(g: GraphBuilder, w: dict[str, np.ndarray], x: str, prefix: str, layers: int,
             width: int, heads: int, eps: float, mask: str | None) -> str:
    """Pre-norm CLIP encoder layers: x += attn(ln1(x)); x += fc2(quick_gelu(fc1(ln2(x))))."""
    for i in range(layers):
        p = f"{prefix}encoder.layers.{i}."
        h = g.layer_norm(x, *_pair(w, p + "layer_norm1"), eps, p + "layer_norm1")
        h = g.attention(h, _pair(w, p + "self_attn.q_proj"), _pair(w, p + "self_attn.k_proj"),
                        _pair(w, p + "self_attn.v_proj"), _pair(w, p + "self_attn.out_proj"),
                        heads=heads, width=width, additive_mask=mask, hint=p + "self_attn",
                        scale_query=True)
        x = g.op("Add", [x, h])
        h = g.layer_norm(x, *_pair(w, p + "layer_norm2"), eps, p + "layer_norm2")
        h = g.quick_gelu(g.linear(h, *_pair(w, p + "mlp.fc1"), p + "mlp.fc1"))
        h = g.linear(h, *_pair(w, p + "mlp.fc2"), p + "mlp.fc2")
        x = g.op("Add", [x, h])
    return x


def build_clip_vision_onnx(weights: dict[str, np.ndarray], cfg: ClipVisionConfig,
                           path: str | Path, *, opset: int = DEFAULT_OPSET) -> Path:
    w = _select(weights, expected_clip_vision_shapes(cfg))
    g = GraphBuilder()
    size, width = cfg.image_size, cfg.width
    pixels = g.input("pixel_values", np.float32, [BATCH, 3, size, size])

    patches = g.op("Conv", [pixels, g.weight(w[VISION + "embeddings.patch_embedding.weight"],
                                            VISION + "embeddings.patch_embedding.weight")],
                   kernel_shape=[cfg.patch, cfg.patch], strides=[cfg.patch, cfg.patch])
    patches = g.op("Reshape", [patches, g.const([0, 0, -1], np.int64)])  # B, width, N
    patches = g.op("Transpose", [patches], perm=[0, 2, 1])  # B, N, width
    cls = g.weight(w[VISION + "embeddings.class_embedding"].reshape(1, 1, width),
                   VISION + "embeddings.class_embedding")
    cls_shape = g.op("Concat", [g.dim(pixels, 0), g.const([1, width], np.int64)], axis=0)
    cls = g.op("Expand", [cls, cls_shape])
    x = g.op("Concat", [cls, patches], axis=1)
    x = g.op("Add", [x, g.weight(w[VISION + "embeddings.position_embedding.weight"],
                                 VISION + "embeddings.position_embedding.weight")])
    x = g.layer_norm(x, *_pair(w, VISION + "pre_layrnorm"), cfg.layer_norm_eps,
                     VISION + "pre_layrnorm")
    x = _encoder(g, w, x, VISION, cfg.layers, width, cfg.heads, cfg.layer_norm_eps, None)

    pooled = g.op("Slice", [x, g.const([0], np.int64), g.const([1], np.int64),
                            g.const([1], np.int64)])  # B, 1, width (class token)
    pooled = g.layer_norm(pooled, *_pair(w, VISION + "post_layernorm"), cfg.layer_norm_eps,
                          VISION + "post_layernorm")
    emb = g.linear(pooled, w["visual_projection.weight"], None, "visual_projection")
    emb = g.op("Flatten", [emb], axis=1)  # B, proj_dim

    g.output(emb, "image_embeds", np.float32, [BATCH, cfg.proj_dim])
    g.output(x, "last_hidden_state", np.float32, [BATCH, cfg.tokens, width])
    return g.save(path, "clip_vision", opset=opset)


def build_clip_text_onnx(weights: dict[str, np.ndarray], cfg: ClipTextConfig, path: str | Path,
                         *, fixed_length: int | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """Write the text tower; ``fixed_length`` declares a fixed sequence dimension."""
    if fixed_length is not None and not 0 < fixed_length <= cfg.max_positions:
        raise ValueError(f"fixed_length must be in 1..{cfg.max_positions}")
    w = _select(weights, expected_clip_text_shapes(cfg))
    g = GraphBuilder()
    seq_dim = SEQ if fixed_length is None else fixed_length
    ids = g.input("input_ids", np.int64, [BATCH, seq_dim])
    mask = g.input("attention_mask", np.int64, [BATCH, seq_dim])

    tok = g.op("Gather", [g.weight(w[TEXT + "embeddings.token_embedding.weight"],
                                   TEXT + "embeddings.token_embedding.weight"), ids], axis=0)
    pos = g.prefix_rows(g.weight(w[TEXT + "embeddings.position_embedding.weight"],
                                 TEXT + "embeddings.position_embedding.weight"), ids)
    x = g.op("Add", [tok, pos])

    # Allowed[b, 0, i, j] = causal[i, j] * mask[b, j]; additive = (1 - allowed) * float32 min.
    n = cfg.max_positions
    causal = g.prefix_rows(g.weight(np.tril(np.ones((n, n), np.float32)), "causal_mask"), ids,
                           axes=(0, 1))
    keys = g.op("Unsqueeze", [g.op("Cast", [mask], to=1), g.const([1, 2], np.int64)])
    allowed = g.op("Mul", [causal, keys])
    additive = g.op("Mul", [g.op("Sub", [g.const(1.0), allowed]), g.const(FLOAT_MIN)],
                    hint="causal_attention_mask")

    x = _encoder(g, w, x, TEXT, cfg.layers, cfg.width, cfg.heads, cfg.layer_norm_eps, additive)
    x = g.layer_norm(x, *_pair(w, TEXT + "final_layer_norm"), cfg.layer_norm_eps,
                     TEXT + "final_layer_norm")

    eos = g.op("ArgMax", [ids], axis=-1, keepdims=1)  # B, 1: first position of the highest id
    pooled = g.op("GatherND", [x, eos], batch_dims=1)  # B, width
    emb = g.linear(pooled, w["text_projection.weight"], None, "text_projection")

    g.output(emb, "text_embeds", np.float32, [BATCH, cfg.proj_dim])
    g.output(x, "last_hidden_state", np.float32, [BATCH, seq_dim, cfg.width])
    return g.save(path, "clip_text", opset=opset)


# --------------------------------------------------------------------------------------------
# numpy references
# --------------------------------------------------------------------------------------------


def _np_encoder(w: dict[str, np.ndarray], x: np.ndarray, prefix: str, layers: int, heads: int,
                eps: float, mask: np.ndarray | None) -> np.ndarray:
    for i in range(layers):
        p = f"{prefix}encoder.layers.{i}."
        h = np_layer_norm(x, *_pair(w, p + "layer_norm1"), eps)
        x = x + np_attention(h, *(_pair(w, f"{p}self_attn.{k}_proj")
                                  for k in ("q", "k", "v", "out")),
                             heads=heads, additive_mask=mask)
        h = np_layer_norm(x, *_pair(w, p + "layer_norm2"), eps)
        h = np_linear(np_quick_gelu(np_linear(h, *_pair(w, p + "mlp.fc1"))),
                      *_pair(w, p + "mlp.fc2"))
        x = x + h
    return x


def clip_vision_reference(weights: dict[str, np.ndarray], cfg: ClipVisionConfig,
                          pixel_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(image_embeds, last_hidden_state)`` as float32."""
    w = as_f64(_select(weights, expected_clip_vision_shapes(cfg)))
    px = np.asarray(pixel_values, dtype=np.float64)
    b, p, gsz = px.shape[0], cfg.patch, cfg.image_size // cfg.patch
    cols = px.reshape(b, 3, gsz, p, gsz, p).transpose(0, 2, 4, 1, 3, 5).reshape(b, gsz * gsz, -1)
    patches = cols @ w[VISION + "embeddings.patch_embedding.weight"].reshape(cfg.width, -1).T
    cls = np.broadcast_to(w[VISION + "embeddings.class_embedding"], (b, 1, cfg.width))
    x = np.concatenate([cls, patches], axis=1) + w[VISION + "embeddings.position_embedding.weight"]
    x = np_layer_norm(x, *_pair(w, VISION + "pre_layrnorm"), cfg.layer_norm_eps)
    x = _np_encoder(w, x, VISION, cfg.layers, cfg.heads, cfg.layer_norm_eps, None)
    pooled = np_layer_norm(x[:, 0], *_pair(w, VISION + "post_layernorm"), cfg.layer_norm_eps)
    emb = np_linear(pooled, w["visual_projection.weight"], None)
    return emb.astype(np.float32), x.astype(np.float32)


def clip_text_reference(weights: dict[str, np.ndarray], cfg: ClipTextConfig,
                        input_ids: np.ndarray, attention_mask: np.ndarray
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(text_embeds, last_hidden_state)`` as float32."""
    w = as_f64(_select(weights, expected_clip_text_shapes(cfg)))
    ids = np.asarray(input_ids, dtype=np.int64)
    b, s = ids.shape
    x = (w[TEXT + "embeddings.token_embedding.weight"][ids]
         + w[TEXT + "embeddings.position_embedding.weight"][:s])
    allowed = np.tril(np.ones((s, s)))[None, None] * np.asarray(attention_mask,
                                                                 np.float64)[:, None, None, :]
    x = _np_encoder(w, x, TEXT, cfg.layers, cfg.heads, cfg.layer_norm_eps,
                    (1.0 - allowed) * FLOAT_MIN)
    x = np_layer_norm(x, *_pair(w, TEXT + "final_layer_norm"), cfg.layer_norm_eps)
    pooled = x[np.arange(b), ids.argmax(-1)]
    emb = np_linear(pooled, w["text_projection.weight"], None)
    return emb.astype(np.float32), x.astype(np.float32)
