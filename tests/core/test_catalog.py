"""The model catalog holds exactly the models the issue lists, with their hub files and facts."""

from __future__ import annotations

import dataclasses

import pytest

from vector_studio_gui.core import catalog
from vector_studio_gui.core.catalog import (
    CATALOG,
    CLIP_MEAN,
    CLIP_STD,
    DEFAULT_CLIP_MODEL,
    DEFAULT_TEXT_MODEL,
    catalog_names,
    get_spec,
)

CLIP_FILES = {"vision": "onnx/vision_model.onnx", "text": "onnx/text_model.onnx",
              "tokenizer": "tokenizer.json"}
CLIP_INT8 = {"vision": "onnx/vision_model_quantized.onnx",
             "text": "onnx/text_model_quantized.onnx", "tokenizer": "tokenizer.json"}
TEXT_FILES = {"model": "onnx/model.onnx", "tokenizer": "tokenizer.json"}
TEXT_INT8 = {"model": "onnx/model_quantized.onnx", "tokenizer": "tokenizer.json"}

# name: (role, repo, dim, max tokens, query prefix, passage prefix)
EXPECTED = {
    "clip-vit-b32": ("clip", "Xenova/clip-vit-base-patch32", 512, 77, "", ""),
    "clip-vit-b16": ("clip", "Xenova/clip-vit-base-patch16", 512, 77, "", ""),
    "clip-vit-l14": ("clip", "Xenova/clip-vit-large-patch14", 768, 77, "", ""),
    "minilm-l6": ("text", "Xenova/all-MiniLM-L6-v2", 384, 256, "", ""),
    "minilm-l12": ("text", "Xenova/all-MiniLM-L12-v2", 384, 256, "", ""),
    "mpnet-base": ("text", "Xenova/all-mpnet-base-v2", 768, 384, "", ""),
    "e5-base-v2": ("text", "Xenova/e5-base-v2", 768, 512, "query: ", "passage: "),
    "multilingual-e5-base": ("text", "Xenova/multilingual-e5-base", 768, 512, "query: ",
                             "passage: "),
}


def test_catalog_lists_exactly_the_issues_models_in_order():
    assert [s.name for s in CATALOG] == list(EXPECTED)
    assert len({s.name for s in CATALOG}) == len(CATALOG)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_entry_facts(name):
    spec = get_spec(name)
    assert spec is not None and spec.name == name
    role, repo, dim, max_tokens, qp, pp = EXPECTED[name]
    assert (spec.role, spec.repo, spec.dim, spec.max_tokens) == (role, repo, dim, max_tokens)
    assert (spec.query_prefix, spec.passage_prefix) == (qp, pp)
    assert spec.size_mb > spec.quantized_size_mb > 0
    assert 1 <= spec.speed <= 5 and 1 <= spec.quality <= 5
    assert spec.summary and spec.revision == "main"
    if role == "clip":
        assert spec.files == CLIP_FILES
        assert spec.files_for(quantized=True) == CLIP_INT8
        assert spec.image_size == 224
    else:
        assert spec.files == TEXT_FILES
        assert spec.files_for(quantized=True) == TEXT_INT8
    assert spec.files_for() == spec.files
    assert spec.files_for() is not spec.files  # a copy: callers cannot edit the catalog


def test_defaults():
    assert DEFAULT_CLIP_MODEL == "clip-vit-b32" and get_spec(DEFAULT_CLIP_MODEL).role == "clip"
    assert DEFAULT_TEXT_MODEL == "minilm-l6" and get_spec(DEFAULT_TEXT_MODEL).role == "text"


def test_b32_sizes_match_the_hub_files():
    spec = get_spec("clip-vit-b32")
    # vision_model.onnx is about 352 MB, text_model.onnx about 254 MB
    assert 550 <= spec.size_mb <= 650
    assert spec.quantized_size_mb < spec.size_mb / 3


def test_relative_sizes_follow_the_guide():
    mb = {s.name: s.size_mb for s in CATALOG}
    assert mb["minilm-l6"] < mb["minilm-l12"] < mb["mpnet-base"] < mb["multilingual-e5-base"]
    assert mb["clip-vit-l14"] > 2 * mb["clip-vit-b32"]


def test_only_e5_models_use_prefixes():
    assert {s.name for s in CATALOG if s.query_prefix or s.passage_prefix} == {
        "e5-base-v2", "multilingual-e5-base"}


def test_catalog_names_by_role():
    assert catalog_names("clip") == ["clip-vit-b32", "clip-vit-b16", "clip-vit-l14"]
    assert catalog_names("text") == ["minilm-l6", "minilm-l12", "mpnet-base", "e5-base-v2",
                                     "multilingual-e5-base"]
    assert catalog_names() == list(EXPECTED)


def test_unknown_names_are_not_catalog_models():
    for name in ("toy-clip", "custom/my_model.onnx", "MINILM-L6", ""):
        assert get_spec(name) is None


def test_entries_are_immutable_data():
    spec = get_spec("minilm-l6")
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.dim = 512  # type: ignore[misc]
    assert isinstance(CATALOG, tuple)


def test_repo_paths_are_safe_relative_paths():
    for spec in CATALOG:
        for path in {**spec.files, **spec.quantized_files}.values():
            assert not path.startswith("/") and ".." not in path.split("/")


def test_clip_normalisation_constants():
    assert CLIP_MEAN == (0.48145466, 0.4578275, 0.40821073)
    assert CLIP_STD == (0.26862954, 0.26130258, 0.27577711)


def test_catalog_is_one_table_in_one_module():
    specs = [v for v in vars(catalog).values() if isinstance(v, catalog.ModelSpec)]
    assert specs == []  # no stray entries outside CATALOG
