"""The model catalog: every model Vector Studio knows how to download, as one table of data.

The figures (sizes, speed and quality stars, advice) come from the user guide's model chapter;
keeping them here as data lets the CLI, the settings dialog and the tests read the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["clip", "text"]

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ModelSpec:
    """One downloadable model.

    ``files`` maps a part (``vision``, ``text``, ``model``, ``tokenizer``) to its path in the
    Hugging Face repo; ``quantized_files`` replaces some of them for the int8 variant.
    """

    name: str
    role: Role
    repo: str
    files: dict[str, str]
    dim: int
    max_tokens: int
    size_mb: int
    quantized_files: dict[str, str] = field(default_factory=dict)
    quantized_size_mb: int = 0
    query_prefix: str = ""
    passage_prefix: str = ""
    image_size: int = 224
    speed: int = 3
    quality: int = 3
    summary: str = ""
    revision: str = "main"

    def files_for(self, quantized: bool = False) -> dict[str, str]:
        if quantized and self.quantized_files:
            return {**self.files, **self.quantized_files}
        return dict(self.files)


def _clip(name: str, repo: str, dim: int, size_mb: int, q_mb: int, speed: int, quality: int,
          summary: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        role="clip",
        repo=repo,
        files={
            "vision": "onnx/vision_model.onnx",
            "text": "onnx/text_model.onnx",
            "tokenizer": "tokenizer.json",
        },
        quantized_files={
            "vision": "onnx/vision_model_quantized.onnx",
            "text": "onnx/text_model_quantized.onnx",
        },
        dim=dim,
        max_tokens=77,
        size_mb=size_mb,
        quantized_size_mb=q_mb,
        speed=speed,
        quality=quality,
        summary=summary,
    )


def _text(name: str, repo: str, dim: int, max_tokens: int, size_mb: int, q_mb: int, speed: int,
          quality: int, summary: str, query_prefix: str = "", passage_prefix: str = "") -> ModelSpec:
    return ModelSpec(
        name=name,
        role="text",
        repo=repo,
        files={"model": "onnx/model.onnx", "tokenizer": "tokenizer.json"},
        quantized_files={"model": "onnx/model_quantized.onnx"},
        dim=dim,
        max_tokens=max_tokens,
        size_mb=size_mb,
        quantized_size_mb=q_mb,
        speed=speed,
        quality=quality,
        summary=summary,
        query_prefix=query_prefix,
        passage_prefix=passage_prefix,
    )


CATALOG: tuple[ModelSpec, ...] = (
    _clip("clip-vit-b32", "Xenova/clip-vit-base-patch32", 512, 606, 153, 5, 3,
          "Default for charts and typed queries: fast, 49 patches per image."),
    _clip("clip-vit-b16", "Xenova/clip-vit-base-patch16", 512, 600, 152, 4, 4,
          "Detailed charts, small text: 196 patches, about 4x the compute of B/32."),
    _clip("clip-vit-l14", "Xenova/clip-vit-large-patch14", 768, 1710, 430, 2, 5,
          "Highest image quality; 768-d, about 4x slower than B/32 again."),
    _text("minilm-l6", "Xenova/all-MiniLM-L6-v2", 384, 256, 90, 23, 5, 3,
          "Default text model (notes, chart text): fast, good balance."),
    _text("minilm-l12", "Xenova/all-MiniLM-L12-v2", 384, 256, 133, 34, 4, 4,
          "Better accuracy than L6 at about 1.5x the cost."),
    _text("mpnet-base", "Xenova/all-mpnet-base-v2", 768, 384, 436, 110, 2, 5,
          "Maximum accuracy, longer texts (384 tokens); 768-d."),
    _text("e5-base-v2", "Xenova/e5-base-v2", 768, 512, 438, 110, 2, 5,
          "Retrieval-focused; uses 'query: ' / 'passage: ' prefixes.",
          query_prefix="query: ", passage_prefix="passage: "),
    _text("multilingual-e5-base", "Xenova/multilingual-e5-base", 768, 512, 1110, 280, 1, 4,
          "100+ languages, cross-lingual search; 'query: ' / 'passage: ' prefixes.",
          query_prefix="query: ", passage_prefix="passage: "),
)

DEFAULT_CLIP_MODEL = "clip-vit-b32"
DEFAULT_TEXT_MODEL = "minilm-l6"

_BY_NAME = {spec.name: spec for spec in CATALOG}


def get_spec(name: str) -> ModelSpec | None:
    """The catalog entry called ``name``, or None for imported/custom models."""
    return _BY_NAME.get(name)


def catalog_names(role: Role | None = None) -> list[str]:
    return [s.name for s in CATALOG if role is None or s.role == role]
