"""Tiny models with hand-built weights whose behaviour is known, for end-to-end tests.

Toy CLIP (``build_toy_clip``), same interface as the real Xenova export:

* ``onnx/vision_model.onnx``: ``pixel_values`` float32 [batch_size, 3, 224, 224] (CLIP-normalised)
  -> ``image_embeds`` [batch_size, dim], ``last_hidden_state`` [batch_size, 50, dim].
  The graph undoes the CLIP normalisation, weights every pixel by its chroma squared
  ((max - min over RGB)^2, so white, grey and black count for nothing), takes the weighted mean
  colour, removes its grey component, compares its direction with the six colour prototypes of
  ``COLOURS`` (sharp softmax) and returns the mixture of the colours' unit directions in the
  embedding space. So an image's embedding points at its dominant *hue*, whatever the
  background or lightness.
* ``onnx/text_model.onnx``: ``input_ids``, ``attention_mask`` int64 [batch_size,
  sequence_length] -> ``text_embeds`` [batch_size, dim], ``last_hidden_state``
  [batch_size, sequence_length, dim]. Each token is looked up in a word table (colour word =
  that colour's unit direction; other words: small random vectors of norm 0.1; the special
  tokens: zero), multiplied by the attention mask and summed. Hence "red", "a red chart" and
  "red bar chart" all point at red, and padding (mask 0, or ``<|endoftext|>``) adds nothing.
* ``tokenizer.json``: ``write_clip_tokenizer`` over ``TOY_CLIP_WORDS`` (fixed padding to 77).

Toy text model (``build_toy_text_model``): BERT interface, ``last_hidden_state`` = token vector
(random unit vector per word) + token-type vector, plus a large fixed "padding drift" vector
where ``attention_mask`` is 0, so only mask-aware mean pooling gives the clean result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ._graph import GraphBuilder
from .tokenizer_files import (
    CLIP_BOS,
    CLIP_EOS,
    CLIP_UNK,
    write_bert_tokenizer,
    write_clip_tokenizer,
)

#: the six colours the toy CLIP knows, as 0-255 RGB
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 180, 60),
    "blue": (30, 60, 220),
    "yellow": (230, 210, 40),
    "purple": (140, 50, 170),
    "orange": (240, 140, 20),
}

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

TOY_CLIP_WORDS: tuple[str, ...] = (
    *COLOURS,
    "chart", "bar", "line", "pie", "graph", "plot", "diagram", "a", "an", "the", "of", "with",
    "and", "in", "on", "price", "sales", "trend", "data", "report", "rising", "falling", "gold",
    "oil", "dark", "light", "bright",
)

TOY_TEXT_WORDS: tuple[str, ...] = (
    "gold", "silver", "oil", "gas", "copper", "bitcoin", "stocks", "bonds", "dollar", "euro",
    "breakout", "breakdown", "rally", "crash", "support", "resistance", "trend", "price", "chart",
    "volume", "inflation", "rates", "weekly", "daily", "forecast", "the", "a", "of", "and", "in",
    "on", "to", "for", "is", "with",
)

_SHARPNESS = 40.0  # softmax temperature over the colour prototypes
_LAYOUTS = ("hub", "flat")


def _model_dir(folder: Path, layout: str) -> Path:
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {_LAYOUTS}, not {layout!r}")
    return folder / "onnx" if layout == "hub" else folder


def _colour_prototypes() -> np.ndarray:
    """[6, 3] unit vectors: each colour minus its grey component (the hue direction)."""
    p = np.array(list(COLOURS.values()), dtype=np.float64) / 255.0
    p -= p.mean(axis=1, keepdims=True)
    return (p / np.linalg.norm(p, axis=1, keepdims=True)).astype(np.float32)


def colour_directions(dim: int) -> np.ndarray:
    """[6, dim] orthonormal rows: where each colour of ``COLOURS`` lives in the embedding space."""
    if dim < len(COLOURS):
        raise ValueError(f"toy CLIP needs dim >= {len(COLOURS)}")
    q, _ = np.linalg.qr(np.random.default_rng(1234 + dim).standard_normal((dim, dim)))
    return q[:, : len(COLOURS)].T.astype(np.float32).copy()


# --------------------------------------------------------------------------------------------
# toy CLIP
# --------------------------------------------------------------------------------------------


def _toy_clip_vision(path: Path, dim: int) -> Path:
    g = GraphBuilder()
    px = g.input("pixel_values", np.float32, ["batch_size", 3, 224, 224])
    mean = g.const(np.array(CLIP_MEAN, np.float32).reshape(1, 3, 1, 1))
    std = g.const(np.array(CLIP_STD, np.float32).reshape(1, 3, 1, 1))
    rgb = g.op("Add", [g.op("Mul", [px, std]), mean])
    rgb = g.op("Clip", [rgb, g.const(0.0), g.const(1.0)])  # bicubic overshoot

    chroma = g.op("Sub", [g.op("ReduceMax", [rgb], axes=[1], keepdims=1),
                          g.op("ReduceMin", [rgb], axes=[1], keepdims=1)])  # B,1,H,W
    weight = g.op("Mul", [chroma, chroma])
    hw = g.const([2, 3], np.int64)
    num = g.op("ReduceSum", [g.op("Mul", [rgb, weight]), hw], keepdims=0)  # B,3
    den = g.op("ReduceSum", [weight, hw], keepdims=0)  # B,1
    colour = g.op("Div", [num, g.op("Add", [den, g.const(1e-6)])], hint="mean_colour")
    centred = g.op("Sub", [colour, g.op("ReduceMean", [colour], axes=[1], keepdims=1)])
    norm = g.op("Sqrt", [g.op("ReduceSum", [g.op("Mul", [centred, centred]),
                                             g.const([1], np.int64)], keepdims=1)])
    hue = g.op("Div", [centred, g.op("Add", [norm, g.const(1e-6)])])  # B,3

    protos = _colour_prototypes()
    dirs = colour_directions(dim)
    logits = g.op("MatMul", [hue, g.weight(_SHARPNESS * protos.T, "colour_prototypes")])
    probs = g.op("Softmax", [logits], axis=-1)  # B,6
    emb = g.op("MatMul", [probs, g.weight(dirs, "colour_directions")])  # B,dim

    # last_hidden_state: [class token = image_embeds, 49 patch tokens = patch hue, projected]
    patches = g.op("AveragePool", [rgb], kernel_shape=[32, 32], strides=[32, 32])  # B,3,7,7
    patches = g.op("Transpose", [g.op("Reshape", [patches, g.const([0, 3, 49], np.int64)])],
                   perm=[0, 2, 1])  # B,49,3
    patches = g.op("Sub", [patches, g.op("ReduceMean", [patches], axes=[2], keepdims=1)])
    patches = g.op("MatMul", [patches, g.weight(protos.T @ dirs, "patch_projection")])
    cls = g.op("Unsqueeze", [emb, g.const([1], np.int64)])
    hidden = g.op("Concat", [cls, patches], axis=1)

    g.output(emb, "image_embeds", np.float32, ["batch_size", dim])
    g.output(hidden, "last_hidden_state", np.float32, ["batch_size", 50, dim])
    return g.save(path, "toy_clip_vision")


def _toy_clip_word_table(vocab: dict[str, int], dim: int) -> np.ndarray:
    rng = np.random.default_rng(4321 + dim)
    dirs = colour_directions(dim)
    colour_index = {name: i for i, name in enumerate(COLOURS)}
    table = np.zeros((max(vocab.values()) + 1, dim), np.float32)
    for word, idx in vocab.items():
        if word in colour_index:
            table[idx] = dirs[colour_index[word]]
        elif word not in (CLIP_UNK, CLIP_BOS, CLIP_EOS):
            v = rng.standard_normal(dim)
            table[idx] = 0.1 * v / np.linalg.norm(v)
    return table


def _toy_clip_text(path: Path, dim: int, vocab: dict[str, int],
                   fixed_length: int | None) -> Path:
    g = GraphBuilder()
    seq: Any = "sequence_length" if fixed_length is None else fixed_length
    ids = g.input("input_ids", np.int64, ["batch_size", seq])
    mask = g.input("attention_mask", np.int64, ["batch_size", seq])
    table = g.weight(_toy_clip_word_table(vocab, dim), "token_embedding")
    tokens = g.op("Gather", [table, ids], axis=0)  # B,S,dim
    m = g.op("Unsqueeze", [g.op("Cast", [mask], to=1), g.const([2], np.int64)])
    hidden = g.op("Mul", [tokens, m])
    emb = g.op("ReduceSum", [hidden, g.const([1], np.int64)], keepdims=0)
    g.output(emb, "text_embeds", np.float32, ["batch_size", dim])
    g.output(hidden, "last_hidden_state", np.float32, ["batch_size", seq, dim])
    return g.save(path, "toy_clip_text")


def _write_preprocessor_config(folder: Path) -> None:
    """The real openai/clip-vit-base-patch32 preprocessor_config.json values."""
    config = {
        "crop_size": {"height": 224, "width": 224},
        "do_center_crop": True,
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "image_mean": list(CLIP_MEAN),
        "image_processor_type": "CLIPImageProcessor",
        "image_std": list(CLIP_STD),
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"shortest_edge": 224},
    }
    (folder / "preprocessor_config.json").write_text(json.dumps(config, indent=2) + "\n")


def _build_clip_folder(folder: Path, vision_dim: int, text_dim: int, layout: str,
                       fixed_text_length: int | None) -> Path:
    folder = Path(folder)
    model_dir = _model_dir(folder, layout)
    model_dir.mkdir(parents=True, exist_ok=True)
    pad_to = fixed_text_length if fixed_text_length is not None else 77
    vocab = write_clip_tokenizer(folder / "tokenizer.json", list(TOY_CLIP_WORDS), pad_to=pad_to)
    _write_preprocessor_config(folder)
    _toy_clip_vision(model_dir / "vision_model.onnx", vision_dim)
    _toy_clip_text(model_dir / "text_model.onnx", text_dim, vocab, fixed_text_length)
    return folder


def build_toy_clip(folder: str | Path, *, dim: int = 16, layout: str = "hub",
                   fixed_text_length: int | None = None) -> Path:
    """Write a toy CLIP model folder and return it.

    ``layout="hub"``: ``folder/onnx/{vision,text}_model.onnx``; ``"flat"``: at the root. Both
    get ``folder/tokenizer.json`` (fixed padding to 77, or to ``fixed_text_length``) and
    ``folder/preprocessor_config.json``. ``fixed_text_length`` declares the text inputs'
    sequence dimension as that fixed number.
    """
    return _build_clip_folder(Path(folder), dim, dim, layout, fixed_text_length)


def toy_chart_image(colour_name: str, size: tuple[int, int] = (640, 360), kind: str = "bar",
                    seed: int = 0, background: Any = "white") -> Any:
    """A simple chart (``kind`` "bar", "line" or "pie") drawn in shades of one colour.

    Axes, grid, title and labels are black/grey, so the toy CLIP sees only ``colour_name``.
    Returns an RGB ``PIL.Image``.
    """
    from PIL import Image, ImageDraw

    if colour_name not in COLOURS:
        raise ValueError(f"unknown colour {colour_name!r}; choose from {list(COLOURS)}")
    if kind not in ("bar", "line", "pie"):
        raise ValueError(f"kind must be 'bar', 'line' or 'pie', not {kind!r}")
    rng = np.random.default_rng(seed)
    base = np.array(COLOURS[colour_name], dtype=np.float64)

    def shade(t: float) -> tuple[int, int, int]:
        """t in [-1, 1]: negative darkens towards black, positive lightens towards white."""
        c = base * (1 + t) if t < 0 else base + (255 - base) * t
        return tuple(int(round(v)) for v in np.clip(c, 0, 255))  # type: ignore[return-value]

    w, h = size
    img = Image.new("RGB", size, background)
    d = ImageDraw.Draw(img)
    left, right, top, bottom = int(w * 0.08), int(w * 0.97), int(h * 0.14), int(h * 0.88)
    d.text((left, int(h * 0.03)), f"{colour_name} {kind} chart", fill=(20, 20, 20))

    if kind == "pie":
        r = min(right - left, bottom - top) // 2
        cx, cy = (left + right) // 2, (top + bottom) // 2
        parts = rng.uniform(0.5, 1.5, size=int(rng.integers(4, 7)))
        angles = np.concatenate([[0.0], np.cumsum(parts / parts.sum() * 360.0)])
        for i in range(len(parts)):
            d.pieslice([cx - r, cy - r, cx + r, cy + r], float(angles[i]), float(angles[i + 1]),
                       fill=shade(float(rng.uniform(-0.35, 0.35))), outline=(255, 255, 255),
                       width=2)
        return img

    for k in range(1, 5):  # grid
        y = bottom - (bottom - top) * k // 5
        d.line([(left, y), (right, y)], fill=(215, 215, 215), width=1)
    if kind == "bar":
        n = int(rng.integers(5, 9))
        slot = (right - left) / n
        for i in range(n):
            x0 = left + slot * (i + 0.12)
            x1 = left + slot * (i + 0.88)
            y0 = bottom - (bottom - top) * float(rng.uniform(0.35, 0.98))
            d.rectangle([x0, y0, x1, bottom], fill=shade(float(rng.uniform(-0.2, 0.2))))
    else:
        n = 12
        xs = np.linspace(left, right, n)
        ys = bottom - (bottom - top) * np.clip(
            0.5 + np.cumsum(rng.normal(0.0, 0.12, n)), 0.1, 0.95)
        points = [(float(x), float(y)) for x, y in zip(xs, ys, strict=True)]
        d.polygon(points + [(right, bottom), (left, bottom)], fill=shade(0.55))  # area
        d.line(points, fill=shade(-0.1), width=8, joint="curve")
        for x, y in points:
            d.ellipse([x - 6, y - 6, x + 6, y + 6], fill=shade(-0.25))
    d.line([(left, top), (left, bottom), (right, bottom)], fill=(0, 0, 0), width=2)  # axes
    return img


# --------------------------------------------------------------------------------------------
# toy BERT-like text model
# --------------------------------------------------------------------------------------------


def _toy_text_table(vocab: dict[str, int], dim: int) -> np.ndarray:
    rng = np.random.default_rng(777 + dim)
    table = rng.standard_normal((max(vocab.values()) + 1, dim)).astype(np.float32)
    table /= np.linalg.norm(table, axis=1, keepdims=True)
    for special in ("[CLS]", "[SEP]", "[UNK]", "[MASK]"):
        table[vocab[special]] *= 0.2  # present in every text: keep them from dominating
    return table


def build_toy_text_model(folder: str | Path, *, dim: int = 32, layout: str = "hub",
                         with_token_type_ids: bool = True, pad_to: int | None = 128) -> Path:
    """Write a BERT-interface toy sentence encoder folder and return it.

    ``folder/onnx/model.onnx`` (hub) or ``folder/model.onnx`` (flat) + ``folder/tokenizer.json``
    (``write_bert_tokenizer`` over ``TOY_TEXT_WORDS``, fixed padding to ``pad_to``, truncation
    at 128). Inputs ``input_ids``, ``attention_mask`` (+ ``token_type_ids``) int64
    [batch_size, sequence_length]; output ``last_hidden_state`` [batch_size, sequence_length,
    dim]. Mean pooling over the attention mask makes texts that share words similar.
    """
    folder = Path(folder)
    model_dir = _model_dir(folder, layout)
    model_dir.mkdir(parents=True, exist_ok=True)
    vocab = write_bert_tokenizer(folder / "tokenizer.json", list(TOY_TEXT_WORDS), pad_to=pad_to)
    rng = np.random.default_rng(99 + dim)

    g = GraphBuilder()
    ids = g.input("input_ids", np.int64, ["batch_size", "sequence_length"])
    mask = g.input("attention_mask", np.int64, ["batch_size", "sequence_length"])
    x = g.op("Gather", [g.weight(_toy_text_table(vocab, dim), "word_embeddings"), ids], axis=0)
    if with_token_type_ids:
        types = g.input("token_type_ids", np.int64, ["batch_size", "sequence_length"])
        type_table = np.zeros((2, dim), np.float32)
        type_table[1] = 0.05 * rng.standard_normal(dim)
        x = g.op("Add", [x, g.op("Gather", [g.weight(type_table, "token_type_embeddings"),
                                            types], axis=0)])
    drift = rng.standard_normal(dim).astype(np.float32)
    drift *= 2.0 / np.linalg.norm(drift)
    padded = g.op("Sub", [g.const(1.0), g.op("Cast", [mask], to=1)])
    padded = g.op("Unsqueeze", [padded, g.const([2], np.int64)])  # B,S,1
    x = g.op("Add", [x, g.op("Mul", [padded, g.weight(drift, "padding_drift")])])
    g.output(x, "last_hidden_state", np.float32, ["batch_size", "sequence_length", dim])
    g.save(model_dir / "model.onnx", "toy_text")
    return folder


# --------------------------------------------------------------------------------------------
# custom and broken models
# --------------------------------------------------------------------------------------------


def build_custom_text_onnx(path: str | Path, *, dim: int = 768, vocab: int = 1000,
                           input_names: Sequence[str] = ("input_ids",),
                           output_name: str = "embeddings", seed: int = 0) -> Path:
    """The user guide's custom model: ``input_names[0]`` int64 [batch, seq] -> ``output_name``
    float32 [batch, dim] (already pooled).

    Token ids are taken modulo ``vocab`` (any tokenizer works); the output is the mean of their
    seeded random vectors. An ``attention_mask`` among ``input_names`` makes it a masked mean;
    any other extra name is an int64 [batch, seq] input that is read but changes nothing.
    """
    names = list(input_names)
    if not names:
        raise ValueError("need at least one input name")
    g = GraphBuilder()
    ids = g.input(names[0], np.int64, ["batch", "seq"])
    table = np.random.default_rng(seed).standard_normal((vocab, dim)).astype(np.float32)
    tokens = g.op("Gather", [g.weight(table, "embedding"),
                             g.op("Mod", [ids, g.const([vocab], np.int64)])], axis=0)
    seq_axis = g.const([1], np.int64)
    if "attention_mask" in names[1:]:
        m = g.op("Cast", [g.input("attention_mask", np.int64, ["batch", "seq"])], to=1)
        total = g.op("ReduceSum", [g.op("Mul", [tokens, g.op("Unsqueeze", [m, g.const(
            [2], np.int64)])]), seq_axis], keepdims=0)
        count = g.op("Max", [g.op("ReduceSum", [m, seq_axis], keepdims=1), g.const(1.0)])
        emb = g.op("Div", [total, count])
    else:
        emb = g.op("ReduceMean", [tokens], axes=[1], keepdims=0)
    for extra in names[1:]:
        if extra == "attention_mask":
            continue
        zero = g.op("Mul", [g.op("Cast", [g.input(extra, np.int64, ["batch", "seq"])], to=1),
                            g.const(0.0)])
        emb = g.op("Add", [emb, g.op("ReduceSum", [zero, seq_axis], keepdims=1)])
    g.output(emb, output_name, np.float32, ["batch", dim])
    return g.save(path, "custom_text")


def build_broken_models(folder: str | Path) -> dict[str, Path]:
    """Write deliberately wrong models into ``folder``; returns name -> path.

    * ``not_onnx``: ``not_onnx.onnx``, random bytes.
    * ``wrong_inputs``: ``wrong_inputs.onnx``, a valid ONNX whose only input is ``foo`` float32
      [batch, 4] (output ``embeddings`` [batch, 4]).
    * ``wrong_output_rank``: ``wrong_output_rank.onnx``, a text model (``input_ids``,
      ``attention_mask``) whose ``last_hidden_state`` is 4-D [batch_size, sequence_length, 2, 8].
    * ``mismatched_clip``: folder ``mismatched_clip/`` (hub layout) whose vision tower outputs
      16-d ``image_embeds`` and text tower 8-d ``text_embeds``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    out["not_onnx"] = folder / "not_onnx.onnx"
    noise = np.random.default_rng(13).integers(0, 256, 2048, dtype=np.uint8).tobytes()
    out["not_onnx"].write_bytes(b"\x00\xffthis is not an ONNX model\xff" + noise)

    g = GraphBuilder()
    foo = g.input("foo", np.float32, ["batch", 4])
    g.output(g.op("Mul", [foo, g.const(2.0)]), "embeddings", np.float32, ["batch", 4])
    out["wrong_inputs"] = g.save(folder / "wrong_inputs.onnx", "wrong_inputs")

    g = GraphBuilder()
    ids = g.input("input_ids", np.int64, ["batch_size", "sequence_length"])
    mask = g.input("attention_mask", np.int64, ["batch_size", "sequence_length"])
    table = np.random.default_rng(5).standard_normal((64, 2, 8)).astype(np.float32)
    x = g.op("Gather", [g.weight(table, "table"), g.op("Mod", [ids, g.const([64], np.int64)])],
             axis=0)  # B,S,2,8
    m = g.op("Unsqueeze", [g.op("Cast", [mask], to=1), g.const([2, 3], np.int64)])
    g.output(g.op("Mul", [x, m]), "last_hidden_state", np.float32,
             ["batch_size", "sequence_length", 2, 8])
    out["wrong_output_rank"] = g.save(folder / "wrong_output_rank.onnx", "wrong_output_rank")

    out["mismatched_clip"] = _build_clip_folder(folder / "mismatched_clip", 16, 8, "hub", None)
    return out


__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "COLOURS",
    "TOY_CLIP_WORDS",
    "TOY_TEXT_WORDS",
    "build_broken_models",
    "build_custom_text_onnx",
    "build_toy_clip",
    "build_toy_text_model",
    "colour_directions",
    "toy_chart_image",
]
