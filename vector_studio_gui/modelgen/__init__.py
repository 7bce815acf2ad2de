"""Builders for ONNX models and tokenizer files shaped like the real Hugging Face exports.

Qt-free; needs the ``onnx`` package (a test/offline extra), imported only when a model is built.
Used by the tests, the benchmarks and the optional offline model builder.
"""

from .bert import BertConfig, bert_reference, build_bert_onnx, random_bert_weights
from .clip import (
    ClipTextConfig,
    ClipVisionConfig,
    build_clip_text_onnx,
    build_clip_vision_onnx,
    clip_text_reference,
    clip_vision_reference,
    random_clip_text_weights,
    random_clip_vision_weights,
)
from .quantize import quantize_dynamic_model
from .tokenizer_files import write_bert_tokenizer, write_clip_tokenizer
from .toy import (
    CLIP_MEAN,
    CLIP_STD,
    COLOURS,
    build_broken_models,
    build_custom_text_onnx,
    build_toy_clip,
    build_toy_text_model,
    toy_chart_image,
)

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "COLOURS",
    "BertConfig",
    "ClipTextConfig",
    "ClipVisionConfig",
    "bert_reference",
    "build_bert_onnx",
    "build_broken_models",
    "build_clip_text_onnx",
    "build_clip_vision_onnx",
    "build_custom_text_onnx",
    "build_toy_clip",
    "build_toy_text_model",
    "clip_text_reference",
    "clip_vision_reference",
    "quantize_dynamic_model",
    "random_bert_weights",
    "random_clip_text_weights",
    "random_clip_vision_weights",
    "toy_chart_image",
    "write_bert_tokenizer",
    "write_clip_tokenizer",
]
