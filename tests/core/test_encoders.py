"""Encoders read their inputs/outputs from the session, pad queries to their real length, pool,
project and L2-normalise; checked against small real CLIP/BERT graphs built with modelgen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from vector_studio_gui.core.encoders import (
    ClipImageEncoder,
    ClipTextEncoder,
    RuntimeOptions,
    TextEncoder,
    l2_normalize,
    orthonormal_projection,
)
from vector_studio_gui.core.errors import ModelError
from vector_studio_gui.modelgen import (
    BertConfig,
    ClipTextConfig,
    ClipVisionConfig,
    bert_reference,
    build_bert_onnx,
    build_broken_models,
    build_clip_text_onnx,
    build_clip_vision_onnx,
    build_custom_text_onnx,
    build_toy_text_model,
    clip_text_reference,
    clip_vision_reference,
    random_bert_weights,
    random_clip_text_weights,
    random_clip_vision_weights,
    write_bert_tokenizer,
    write_clip_tokenizer,
)
from vector_studio_gui.modelgen.toy import TOY_CLIP_WORDS, TOY_TEXT_WORDS

RT = RuntimeOptions(threads=1)
WORDS = [*TOY_TEXT_WORDS, "query", "passage", "red", "blue", "chart", "bar"]


class Recorder:
    """Wraps an InferenceSession and records every feed dict the encoder passes to run()."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self._session = session
        self.feeds: list[dict[str, np.ndarray]] = []

    def run(self, outputs, feeds):
        self.feeds.append({k: np.array(v) for k, v in feeds.items()})
        return self._session.run(outputs, feeds)

    def __getattr__(self, name):
        return getattr(self._session, name)


def record(enc) -> Recorder:
    rec = Recorder(enc.model.session)
    enc.model.session = rec
    return rec


def unit_rows(x: np.ndarray) -> bool:
    return bool(np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5))


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A small real CLIP (both towers, random weights) + a tokenizer that pads to 77, like
    the hub's; a copy of the text tower that declares a fixed sequence length of 77, and one
    of 12."""
    d = tmp_path_factory.mktemp("clip")
    vocab = write_clip_tokenizer(d / "tokenizer.json", list(TOY_CLIP_WORDS), pad_to=77)
    tcfg = ClipTextConfig(vocab_size=len(vocab), width=32, layers=2, heads=4, mlp=64,
                          max_positions=77, proj_dim=16, eos_token_id=max(vocab.values()))
    tw = random_clip_text_weights(tcfg, seed=3)
    vcfg = ClipVisionConfig(image_size=64, patch=16, width=32, layers=2, heads=4, mlp=64,
                            proj_dim=16)
    vw = random_clip_vision_weights(vcfg, seed=4)
    return {
        "dir": d, "vocab": vocab, "tcfg": tcfg, "tw": tw, "vcfg": vcfg, "vw": vw,
        "tokenizer": d / "tokenizer.json",
        "text": build_clip_text_onnx(tw, tcfg, d / "text_model.onnx"),
        "text77": build_clip_text_onnx(tw, tcfg, d / "text_model_77.onnx", fixed_length=77),
        "text12": build_clip_text_onnx(tw, tcfg, d / "text_model_12.onnx", fixed_length=12),
        "vision": build_clip_vision_onnx(vw, vcfg, d / "vision_model.onnx"),
    }


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A small real BERT (MiniLM interface) + a tokenizer.json that pads to a fixed 128 and
    truncates at 128, like the real all-MiniLM-L6-v2 file."""
    d = tmp_path_factory.mktemp("bert")
    vocab = write_bert_tokenizer(d / "tokenizer.json", WORDS, pad_to=128, max_length=128)
    cfg = BertConfig(vocab_size=len(vocab), hidden=32, layers=2, heads=4, intermediate=64,
                     max_positions=512)
    w = random_bert_weights(cfg, seed=5)
    return {"dir": d, "vocab": vocab, "cfg": cfg, "w": w, "tokenizer": d / "tokenizer.json",
            "model": build_bert_onnx(w, cfg, d / "model.onnx")}


def _reference_mean_pooled(bert_dir: dict, texts: list[str]) -> np.ndarray:
    """What the model gives with the tokenizer file's own 128 padding, pooled over the mask."""
    tok = Tokenizer.from_file(str(bert_dir["tokenizer"]))
    encs = tok.encode_batch(texts)
    ids = np.array([e.ids for e in encs], np.int64)
    mask = np.array([e.attention_mask for e in encs], np.int64)
    assert ids.shape[1] == 128  # the file really pads to 128
    sess = ort.InferenceSession(str(bert_dir["model"]), providers=["CPUExecutionProvider"])
    (hidden,) = sess.run(["last_hidden_state"], {"input_ids": ids, "attention_mask": mask,
                                                 "token_type_ids": np.zeros_like(ids)})
    m = mask[:, :, None].astype(np.float32)
    return l2_normalize((hidden * m).sum(1) / m.sum(1))


# ------------------------------------------------------------------------------ CLIP vision


def test_clip_vision_feeds_pixel_values_and_returns_normalised_image_embeds(clip_dir):
    enc = ClipImageEncoder(clip_dir["vision"], RT)
    assert enc.input.name == "pixel_values"
    assert enc.output == "image_embeds"  # not last_hidden_state, the other output
    assert enc.image_size == 64  # read from the declared input shape
    rec = record(enc)
    px = np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float32)
    out = enc.encode(px)
    assert list(rec.feeds[0]) == ["pixel_values"]
    assert out.shape == (3, 16) and out.dtype == np.float32
    assert unit_rows(out)
    ref, _ = clip_vision_reference(clip_dir["vw"], clip_dir["vcfg"], px)
    np.testing.assert_allclose(out, l2_normalize(ref), atol=2e-4)


def test_clip_vision_empty_batch_and_bad_shape(clip_dir):
    enc = ClipImageEncoder(clip_dir["vision"], RT)
    assert enc.encode(np.zeros((0, 3, 64, 64), np.float32)).shape == (0, 16)
    with pytest.raises(ModelError, match="pixels"):
        enc.encode(np.zeros((3, 64, 64), np.float32))


def test_text_model_given_as_image_model_is_refused_naming_inputs(clip_dir):
    with pytest.raises(ModelError, match="pixel_values.*input_ids"):
        ClipImageEncoder(clip_dir["text"], RT)


# ------------------------------------------------------------------------------ CLIP text


def test_clip_text_queries_padded_to_longest_not_77_and_identical_to_77_padding(clip_dir):
    texts = ["red", "a rising gold price line chart with data", "", "blue bar chart"]
    enc = ClipTextEncoder(clip_dir["text"], clip_dir["tokenizer"], RT)
    assert enc.fixed_length is None
    rec = record(enc)
    out = enc.encode(texts)
    ids = rec.feeds[0]["input_ids"]
    # <|startoftext|> + 8 words + <|endoftext|>: the longest query, not the file's 77
    assert ids.shape == (4, 10)
    assert set(rec.feeds[0]) == {"input_ids", "attention_mask"}
    assert rec.feeds[0]["attention_mask"].sum(axis=1).tolist() == [3, 10, 2, 5]
    assert unit_rows(out)

    # the same graph declaring a fixed 77 is fed 77 tokens; the vectors do not change
    enc77 = ClipTextEncoder(clip_dir["text77"], clip_dir["tokenizer"], RT)
    rec77 = record(enc77)
    out77 = enc77.encode(texts)
    assert rec77.feeds[0]["input_ids"].shape == (4, 77)
    np.testing.assert_allclose(out, out77, atol=1e-5)

    # and both equal the numpy reference run with the tokenizer file's own 77 padding
    tok = Tokenizer.from_file(str(clip_dir["tokenizer"]))
    encs = tok.encode_batch(texts)
    ids77 = np.array([e.ids for e in encs])
    mask77 = np.array([e.attention_mask for e in encs])
    assert ids77.shape == (4, 77)
    ref, _ = clip_text_reference(clip_dir["tw"], clip_dir["tcfg"], ids77, mask77)
    np.testing.assert_allclose(out, l2_normalize(ref), atol=2e-4)


def test_clip_text_batch_companions_do_not_change_a_query(clip_dir):
    enc = ClipTextEncoder(clip_dir["text"], clip_dir["tokenizer"], RT)
    alone = enc.encode(["red chart"])
    together = enc.encode(["red chart", "the price of oil and gold in a falling trend"])
    np.testing.assert_allclose(alone[0], together[0], atol=1e-5)


def test_clip_text_model_with_fixed_length_is_padded_to_it_and_truncates(clip_dir):
    enc = ClipTextEncoder(clip_dir["text12"], clip_dir["tokenizer"], RT)
    assert enc.fixed_length == 12
    rec = record(enc)
    long_query = " ".join(["red chart"] * 40)
    out = enc.encode(["red", long_query])
    assert rec.feeds[0]["input_ids"].shape == (2, 12)
    assert rec.feeds[0]["attention_mask"][1].sum() == 12
    # truncation keeps the end-of-text token, which CLIP pools at
    eos = max(clip_dir["vocab"].values())
    assert rec.feeds[0]["input_ids"][1, -1] == eos
    assert unit_rows(out)


def test_clip_text_very_long_query_is_truncated_at_77(clip_dir):
    enc = ClipTextEncoder(clip_dir["text"], clip_dir["tokenizer"], RT)
    rec = record(enc)
    out = enc.encode(["gold " * 5000])
    assert rec.feeds[0]["input_ids"].shape == (1, 77)
    assert unit_rows(out)


def test_attention_mask_fed_only_where_declared(tmp_path, clip_dir):
    only_ids = build_custom_text_onnx(tmp_path / "ids.onnx", dim=8, input_names=("input_ids",),
                                      output_name="text_embeds")
    enc = ClipTextEncoder(only_ids, clip_dir["tokenizer"], RT)
    rec = record(enc)
    out = enc.encode(["red chart", "blue"])
    assert set(rec.feeds[0]) == {"input_ids"}
    assert out.shape == (2, 8) and unit_rows(out)

    with_mask = build_custom_text_onnx(tmp_path / "mask.onnx", dim=8,
                                       input_names=("input_ids", "attention_mask"),
                                       output_name="text_embeds")
    enc = ClipTextEncoder(with_mask, clip_dir["tokenizer"], RT)
    rec = record(enc)
    enc.encode(["red chart", "blue"])
    assert set(rec.feeds[0]) == {"input_ids", "attention_mask"}


@pytest.mark.parametrize("text", [
    "",
    "   ",
    "red\x00\x07chart\x1b[0m\u0085",
    "红色柱状图 الرسم البياني Диаграмма",
    "📈🚀 red chart 📉",
    "tab\there\nnew line\r\n",
    "e\u0301 composed and \ufeff BOM",
])
def test_odd_text_tokenises_and_encodes(clip_dir, bert_dir, text):
    clip = ClipTextEncoder(clip_dir["text"], clip_dir["tokenizer"], RT)
    bert = TextEncoder(bert_dir["model"], bert_dir["tokenizer"], RT)
    for enc in (clip, bert):
        out = enc.encode([text, "gold chart"])
        assert out.shape[0] == 2
        assert np.all(np.isfinite(out))
        assert unit_rows(out)


def test_control_characters_do_not_change_the_words(clip_dir):
    enc = ClipTextEncoder(clip_dir["text"], clip_dir["tokenizer"], RT)
    a, b = enc.encode(["red\x00 \x07bar\tchart", "red bar chart"])
    np.testing.assert_allclose(a, b, atol=1e-6)


# ------------------------------------------------------------------------------ BERT-like


def test_bert_tokenizer_fixed_padding_ignored_and_mean_pooling_unchanged(bert_dir):
    texts = ["gold price", "the daily chart of oil and gas is in a rally", "copper"]
    enc = TextEncoder(bert_dir["model"], bert_dir["tokenizer"], RT)
    assert enc.output == "last_hidden_state" and not enc.pooled
    rec = record(enc)
    out = enc.encode(texts)
    feeds = rec.feeds[0]
    assert set(feeds) == {"input_ids", "attention_mask", "token_type_ids"}
    # [CLS] + 11 words + [SEP]: the real length, not the file's 128
    assert feeds["input_ids"].shape == (3, 13)
    assert not feeds["token_type_ids"].any()
    assert unit_rows(out)
    np.testing.assert_allclose(out, _reference_mean_pooled(bert_dir, texts), atol=1e-5)

    # and the numpy reference of the network agrees
    ids, mask = feeds["input_ids"], feeds["attention_mask"]
    hidden = bert_reference(bert_dir["w"], bert_dir["cfg"], ids, mask, np.zeros_like(ids))
    m = mask[:, :, None]
    np.testing.assert_allclose(out, l2_normalize((hidden * m).sum(1) / m.sum(1)), atol=1e-4)


def test_bert_very_long_text_is_truncated_not_an_error(bert_dir):
    enc = TextEncoder(bert_dir["model"], bert_dir["tokenizer"], RT, max_tokens=256)
    rec = record(enc)
    out = enc.encode(["gold price rally " * 2000, "oil"])
    assert rec.feeds[0]["input_ids"].shape == (2, 256)
    assert unit_rows(out)
    enc = TextEncoder(bert_dir["model"], bert_dir["tokenizer"], RT, max_tokens=32)
    rec = record(enc)
    enc.encode(["gold price rally " * 2000])
    assert rec.feeds[0]["input_ids"].shape == (1, 32)


def test_mask_aware_pooling_ignores_padding_drift(tmp_path):
    """The toy text model adds a large vector wherever the mask is 0: a short text encoded next
    to a long one must still equal the short text alone."""
    folder = build_toy_text_model(tmp_path / "toy", dim=16, pad_to=128)
    enc = TextEncoder(folder / "onnx" / "model.onnx", folder / "tokenizer.json", RT)
    alone = enc.encode(["gold"])
    together = enc.encode(["gold", "silver and copper breakout on the weekly chart"])
    np.testing.assert_allclose(alone[0], together[0], atol=1e-5)


@pytest.mark.parametrize("with_types", [True, False])
def test_token_type_ids_fed_only_where_declared(tmp_path, with_types):
    folder = build_toy_text_model(tmp_path / "toy", dim=16, with_token_type_ids=with_types)
    enc = TextEncoder(folder / "onnx" / "model.onnx", folder / "tokenizer.json", RT)
    rec = record(enc)
    out = enc.encode(["gold rally", "oil"])
    expected = {"input_ids", "attention_mask"} | ({"token_type_ids"} if with_types else set())
    assert set(rec.feeds[0]) == expected
    assert unit_rows(out)


def test_user_guide_custom_model_only_input_ids_to_embeddings(tmp_path, bert_dir):
    path = build_custom_text_onnx(tmp_path / "custom_text.onnx", dim=24)
    enc = TextEncoder(path, bert_dir["tokenizer"], RT)
    assert enc.output == "embeddings" and enc.pooled
    assert enc.dim == 24
    rec = record(enc)
    out = enc.encode(["gold", "gold price forecast is rising in the daily chart"])
    assert all(set(f) == {"input_ids"} for f in rec.feeds)
    assert out.shape == (2, 24) and unit_rows(out)
    # no attention mask: the padding of a batch would be read as text, so a text's vector must
    # not depend on the other texts of its batch
    np.testing.assert_allclose(out[0], enc.encode(["gold"])[0], atol=1e-5)
    ids = rec.feeds[0]["input_ids"]
    assert ids.shape[1] == 3  # [CLS] gold [SEP], not padded to the long one (or to 128)


def test_pooled_2d_output_used_as_is(tmp_path, bert_dir):
    path = build_custom_text_onnx(tmp_path / "c.onnx", dim=12,
                                  input_names=("input_ids", "attention_mask", "token_type_ids"),
                                  output_name="sentence_embedding")
    enc = TextEncoder(path, bert_dir["tokenizer"], RT)
    assert enc.output == "sentence_embedding" and enc.pooled
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ids, mask = enc.tokenizer.encode(["gold price", "oil"])
    (raw,) = sess.run(None, {"input_ids": ids, "attention_mask": mask,
                             "token_type_ids": np.zeros_like(ids)})
    np.testing.assert_allclose(enc.encode(["gold price", "oil"]), l2_normalize(raw), atol=1e-6)


def test_empty_batch_gives_empty_matrix(bert_dir, clip_dir):
    enc = TextEncoder(bert_dir["model"], bert_dir["tokenizer"], RT)
    assert enc.encode([]).shape == (0, 32)
    clip = ClipTextEncoder(clip_dir["text"], clip_dir["tokenizer"], RT)
    assert clip.encode([]).shape == (0, 16)


def test_single_string_is_a_usage_error(bert_dir):
    enc = TextEncoder(bert_dir["model"], bert_dir["tokenizer"], RT)
    with pytest.raises(TypeError):
        enc.encode("gold")


def test_e5_prefixes_applied_to_queries_and_passages(bert_dir):
    enc = TextEncoder(bert_dir["model"], bert_dir["tokenizer"], RT, query_prefix="query: ",
                      passage_prefix="passage: ")
    rec = record(enc)
    q = enc.encode_queries(["gold price"])
    p = enc.encode_passages(["gold price"])
    vocab = bert_dir["vocab"]
    assert rec.feeds[0]["input_ids"][0, 1] == vocab["query"]
    assert rec.feeds[1]["input_ids"][0, 1] == vocab["passage"]
    np.testing.assert_allclose(q, enc.encode(["query: gold price"]), atol=1e-6)
    np.testing.assert_allclose(p, enc.encode(["passage: gold price"]), atol=1e-6)
    assert float(q[0] @ p[0]) < 0.9999
    # no prefixes: queries and passages are the same text
    plain = TextEncoder(bert_dir["model"], bert_dir["tokenizer"], RT)
    np.testing.assert_allclose(plain.encode_queries(["oil"]), plain.encode_passages(["oil"]))


# ------------------------------------------------------------------------------ projection


def test_projection_is_fixed_by_its_seed():
    a = orthonormal_projection(64, 32, seed=7)
    assert a.shape == (64, 32) and a.dtype == np.float32
    np.testing.assert_array_equal(a, orthonormal_projection(64, 32, seed=7))
    assert not np.allclose(a, orthonormal_projection(64, 32, seed=8))
    np.testing.assert_allclose(a.T @ a, np.eye(32), atol=1e-5)  # orthonormal columns
    b = orthonormal_projection(32, 64, seed=7)
    np.testing.assert_allclose(b @ b.T, np.eye(32), atol=1e-5)  # orthonormal rows


def test_expanding_projection_preserves_cosines_exactly():
    x = l2_normalize(np.random.default_rng(1).standard_normal((50, 384)))
    p = orthonormal_projection(384, 512, seed=20240531)
    y = x @ p
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(y @ y.T, x @ x.T, atol=1e-5)


def test_reducing_projection_preserves_cosines_roughly():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((40, 768))
    # pairs with a spread of similarities, not only near-orthogonal random vectors
    x = l2_normalize(np.concatenate([base, base + rng.standard_normal((40, 768)) * 0.8]))
    p = orthonormal_projection(768, 512, seed=20240531)
    y = l2_normalize(x @ p)
    before, after = x @ x.T, y @ y.T
    err = np.abs(before - after)
    assert err.mean() < 0.03 and err.max() < 0.2
    # the ranking of the neighbours of a query is essentially kept
    assert np.corrcoef(before[0], after[0])[0, 1] > 0.95


def test_encoder_with_projection_outputs_projected_unit_vectors(bert_dir):
    proj = orthonormal_projection(32, 48, seed=1)
    plain = TextEncoder(bert_dir["model"], bert_dir["tokenizer"], RT)
    enc = TextEncoder(bert_dir["model"], bert_dir["tokenizer"], RT, projection=proj)
    texts = ["gold price", "oil crash", "bitcoin rally"]
    a, b = plain.encode(texts), enc.encode(texts)
    assert b.shape == (3, 48) and unit_rows(b) and enc.dim == 48
    np.testing.assert_allclose(b @ b.T, a @ a.T, atol=1e-5)


def test_projection_of_the_wrong_size_names_text_dim(bert_dir):
    enc = TextEncoder(bert_dir["model"], bert_dir["tokenizer"], RT,
                      projection=orthonormal_projection(768, 512, seed=1))
    with pytest.raises(ModelError, match="text_dim"):
        enc.encode(["gold"])


# ------------------------------------------------------------------------------ bad models


@pytest.fixture(scope="module")
def broken(tmp_path_factory) -> dict[str, Path]:
    return build_broken_models(tmp_path_factory.mktemp("broken"))


def test_wrong_inputs_refused_naming_what_was_found(broken, bert_dir):
    with pytest.raises(ModelError, match=r"input_ids.*found foo"):
        TextEncoder(broken["wrong_inputs"], bert_dir["tokenizer"], RT)


def test_four_d_output_refused_naming_it(broken, bert_dir):
    with pytest.raises(ModelError, match=r"no usable output.*last_hidden_state"):
        TextEncoder(broken["wrong_output_rank"], bert_dir["tokenizer"], RT)


def test_not_onnx_and_missing_file_refused(broken, bert_dir, tmp_path):
    with pytest.raises(ModelError, match="not_onnx.onnx"):
        TextEncoder(broken["not_onnx"], bert_dir["tokenizer"], RT)
    with pytest.raises(ModelError, match="not found"):
        TextEncoder(tmp_path / "nope.onnx", bert_dir["tokenizer"], RT)


def test_unreadable_tokenizer_refused_naming_it(bert_dir, tmp_path):
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ModelError, match="tokenizer"):
        TextEncoder(bert_dir["model"], bad, RT)


def test_model_exported_without_dynamic_axes_runs_in_its_fixed_batch(tmp_path, bert_dir):
    """torch.onnx.export without dynamic_axes gives input_ids a fixed [1, 16] shape."""
    import onnx

    path = build_custom_text_onnx(tmp_path / "dynamic.onnx", dim=12)
    model = onnx.load(str(path))
    for value in (*model.graph.input, *model.graph.output):
        dims = value.type.tensor_type.shape.dim
        dims[0].dim_value = 1
        if value.name == "input_ids":
            dims[1].dim_value = 16
    onnx.save(model, str(tmp_path / "fixed.onnx"))
    dynamic = TextEncoder(path, bert_dir["tokenizer"], RT)
    enc = TextEncoder(tmp_path / "fixed.onnx", bert_dir["tokenizer"], RT)
    assert enc.fixed_length == 16
    rec = record(enc)
    texts = ["gold", "oil price", "copper rally " * 30]
    out = enc.encode(texts)
    assert [f["input_ids"].shape for f in rec.feeds] == [(1, 16)] * 3
    assert out.shape == (3, 12) and unit_rows(out)
    # the same texts, padded to 16 without a mask, through the dynamic copy
    ids, _ = enc.tokenizer.encode(texts)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (raw,) = sess.run(None, {"input_ids": ids})
    np.testing.assert_allclose(out, l2_normalize(raw), atol=1e-5)
    assert dynamic.encode(["gold"]).shape == (1, 12)
