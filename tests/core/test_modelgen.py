"""The model builders produce the real exports' interfaces and compute what they claim."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image
from tokenizers import Tokenizer

from vector_studio_gui.modelgen import (
    CLIP_MEAN,
    CLIP_STD,
    COLOURS,
    BertConfig,
    ClipTextConfig,
    ClipVisionConfig,
    bert_reference,
    build_bert_onnx,
    build_broken_models,
    build_clip_text_onnx,
    build_clip_vision_onnx,
    build_custom_text_onnx,
    build_toy_clip,
    build_toy_text_model,
    clip_text_reference,
    clip_vision_reference,
    quantize_dynamic_model,
    random_bert_weights,
    random_clip_text_weights,
    random_clip_vision_weights,
    toy_chart_image,
    write_bert_tokenizer,
    write_clip_tokenizer,
)

SMALL_BERT = BertConfig(vocab_size=120, hidden=32, layers=2, heads=4, intermediate=64,
                        max_positions=24)
SMALL_VISION = ClipVisionConfig(image_size=64, patch=16, width=32, layers=2, heads=4, mlp=64,
                                proj_dim=24)
SMALL_TEXT = ClipTextConfig(vocab_size=60, width=32, layers=2, heads=4, mlp=64, max_positions=16,
                            proj_dim=24, eos_token_id=59)


def session(path: Path | str) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def io_spec(sess: ort.InferenceSession) -> tuple[list, list]:
    return ([(i.name, i.type, i.shape) for i in sess.get_inputs()],
            [(o.name, o.type, o.shape) for o in sess.get_outputs()])


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def clip_preprocess(img: Image.Image) -> np.ndarray:
    """The user guide's preprocessing: RGB, 224x224 bicubic, /255, mean/std, CHW."""
    arr = np.asarray(img.convert("RGB").resize((224, 224), Image.BICUBIC), dtype=np.float32)
    arr = (arr / 255.0 - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)
    return arr.transpose(2, 0, 1).astype(np.float32)


# --------------------------------------------------------------------------------------------
# BERT
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_bert(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, ort.InferenceSession]:
    weights = random_bert_weights(SMALL_BERT, seed=3)
    path = build_bert_onnx(weights, SMALL_BERT, tmp_path_factory.mktemp("bert") / "model.onnx")
    return weights, session(path)


def test_bert_interface_is_the_xenova_one(small_bert: tuple) -> None:
    inputs, outputs = io_spec(small_bert[1])
    dyn = ["batch_size", "sequence_length"]
    assert inputs == [("input_ids", "tensor(int64)", dyn),
                      ("attention_mask", "tensor(int64)", dyn),
                      ("token_type_ids", "tensor(int64)", dyn)]
    assert outputs == [("last_hidden_state", "tensor(float)", [*dyn, SMALL_BERT.hidden])]


def test_bert_matches_numpy_reference(small_bert: tuple) -> None:
    weights, sess = small_bert
    rng = np.random.default_rng(0)
    ids = rng.integers(0, SMALL_BERT.vocab_size, (3, 11))
    mask = np.ones_like(ids)
    mask[1, 6:] = 0
    types = np.zeros_like(ids)
    types[2, 5:] = 1
    got = sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})[0]
    want = bert_reference(weights, SMALL_BERT, ids, mask, types)
    assert got.shape == (3, 11, SMALL_BERT.hidden)
    assert np.abs(got - want).max() < 1e-4
    assert got.std() > 0.5  # LayerNorm output, not a degenerate constant


def test_bert_mask_hides_padding(small_bert: tuple) -> None:
    _, sess = small_bert
    ids = np.random.default_rng(1).integers(0, SMALL_BERT.vocab_size, (1, 5))
    short = sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                            "token_type_ids": np.zeros_like(ids)})[0]
    padded_ids = np.concatenate([ids, np.full((1, 7), 7)], axis=1)
    mask = np.concatenate([np.ones((1, 5), np.int64), np.zeros((1, 7), np.int64)], axis=1)
    padded = sess.run(None, {"input_ids": padded_ids, "attention_mask": mask,
                             "token_type_ids": np.zeros_like(padded_ids)})[0]
    assert np.abs(padded[:, :5] - short).max() < 1e-5
    unmasked = sess.run(None, {"input_ids": padded_ids, "attention_mask": np.ones_like(mask),
                               "token_type_ids": np.zeros_like(padded_ids)})[0]
    assert np.abs(unmasked[:, :5] - short).max() > 1e-3


def test_bert_accepts_prefixed_and_checkpoint_names(tmp_path: Path) -> None:
    weights = random_bert_weights(SMALL_BERT, seed=5)
    prefixed = {f"bert.{k}": v for k, v in weights.items()}
    prefixed["bert.embeddings.position_ids"] = np.arange(SMALL_BERT.max_positions)[None]
    prefixed["bert.pooler.dense.weight"] = np.zeros((32, 32), np.float32)
    sess = session(build_bert_onnx(prefixed, SMALL_BERT, tmp_path / "prefixed.onnx"))
    ids = np.array([[2, 40, 41, 3]])
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids)}
    want = bert_reference(weights, SMALL_BERT, ids, feed["attention_mask"],
                          feed["token_type_ids"])
    assert np.abs(sess.run(None, feed)[0] - want).max() < 1e-4

    del prefixed["bert.encoder.layer.1.output.dense.bias"]
    with pytest.raises(KeyError, match="encoder.layer.1.output.dense.bias"):
        build_bert_onnx(prefixed, SMALL_BERT, tmp_path / "missing.onnx")
    with pytest.raises(ValueError, match="shape"):
        build_bert_onnx(weights, BertConfig(vocab_size=121, hidden=32, layers=2, heads=4,
                                            intermediate=64, max_positions=24),
                        tmp_path / "bad.onnx")


def test_quantized_bert_stays_close(tmp_path: Path) -> None:
    weights = random_bert_weights(SMALL_BERT, seed=8)
    src = build_bert_onnx(weights, SMALL_BERT, tmp_path / "fp32.onnx")
    dst = quantize_dynamic_model(src, tmp_path / "int8" / "model.onnx")
    assert "MatMulInteger" in {n.op_type for n in onnx.load(str(dst)).graph.node}
    ids = np.random.default_rng(2).integers(0, SMALL_BERT.vocab_size, (2, 9))
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids),
            "token_type_ids": np.zeros_like(ids)}
    a = session(src).run(None, feed)[0].mean(1)
    b = session(dst).run(None, feed)[0].mean(1)
    assert io_spec(session(dst)) == io_spec(session(src))
    assert (unit(a) * unit(b)).sum(-1).min() > 0.98


# --------------------------------------------------------------------------------------------
# CLIP
# --------------------------------------------------------------------------------------------


def test_clip_vision_matches_reference(tmp_path: Path) -> None:
    weights = random_clip_vision_weights(SMALL_VISION, seed=1)
    sess = session(build_clip_vision_onnx(weights, SMALL_VISION, tmp_path / "v.onnx"))
    inputs, outputs = io_spec(sess)
    assert inputs == [("pixel_values", "tensor(float)", ["batch_size", 3, 64, 64])]
    assert outputs == [("image_embeds", "tensor(float)", ["batch_size", 24]),
                       ("last_hidden_state", "tensor(float)", ["batch_size", 17, 32])]
    px = np.random.default_rng(0).standard_normal((3, 3, 64, 64)).astype(np.float32)
    emb, hidden = sess.run(None, {"pixel_values": px})
    ref_emb, ref_hidden = clip_vision_reference(weights, SMALL_VISION, px)
    assert emb.shape == (3, 24) and hidden.shape == (3, 17, 32)
    assert np.abs(emb - ref_emb).max() < 1e-4
    assert np.abs(hidden - ref_hidden).max() < 1e-4
    assert np.abs(emb).mean() > 0.01  # not normalised away to nothing
    assert not np.allclose(emb[0], emb[1], atol=1e-3)  # depends on the pixels


def _clip_text_batch() -> tuple[np.ndarray, np.ndarray]:
    eos, bos = SMALL_TEXT.eos_token_id, 57
    ids = np.full((2, 10), eos, np.int64)
    ids[0, :4] = [bos, 5, 6, eos]
    ids[1, :7] = [bos, 9, 10, 11, 12, 13, eos]
    mask = (np.arange(10)[None] <= np.array([[3], [6]])).astype(np.int64)
    return ids, mask


def test_clip_text_matches_reference(tmp_path: Path) -> None:
    weights = random_clip_text_weights(SMALL_TEXT, seed=2)
    sess = session(build_clip_text_onnx(weights, SMALL_TEXT, tmp_path / "t.onnx"))
    inputs, outputs = io_spec(sess)
    dyn = ["batch_size", "sequence_length"]
    assert inputs == [("input_ids", "tensor(int64)", dyn), ("attention_mask", "tensor(int64)", dyn)]
    assert outputs == [("text_embeds", "tensor(float)", ["batch_size", 24]),
                       ("last_hidden_state", "tensor(float)", [*dyn, 32])]
    ids, mask = _clip_text_batch()
    emb, hidden = sess.run(None, {"input_ids": ids, "attention_mask": mask})
    ref_emb, ref_hidden = clip_text_reference(weights, SMALL_TEXT, ids, mask)
    assert np.abs(emb - ref_emb).max() < 1e-4
    assert np.abs(hidden - ref_hidden).max() < 1e-4
    # pooled at the eos position (first maximum id) before the projection
    pooled = hidden[[0, 1], [3, 6]]
    assert np.allclose(emb, pooled @ weights["text_projection.weight"].T, atol=1e-5)
    assert np.abs(emb).mean() > 0.01


def test_clip_text_fixed_length_declares_the_dim(tmp_path: Path) -> None:
    weights = random_clip_text_weights(SMALL_TEXT, seed=2)
    sess = session(build_clip_text_onnx(weights, SMALL_TEXT, tmp_path / "t.onnx",
                                        fixed_length=10))
    inputs, outputs = io_spec(sess)
    assert [i[2] for i in inputs] == [["batch_size", 10], ["batch_size", 10]]
    assert outputs[1][2] == ["batch_size", 10, 32]
    ids, mask = _clip_text_batch()
    emb = sess.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    assert np.abs(emb - clip_text_reference(weights, SMALL_TEXT, ids, mask)[0]).max() < 1e-4
    with pytest.raises(ort.capi.onnxruntime_pybind11_state.InvalidArgument):
        sess.run(None, {"input_ids": ids[:, :5], "attention_mask": mask[:, :5]})
    with pytest.raises(ValueError):
        build_clip_text_onnx(weights, SMALL_TEXT, tmp_path / "x.onnx", fixed_length=17)


def test_clip_text_padding_after_eos_changes_nothing(tmp_path: Path) -> None:
    weights = random_clip_text_weights(SMALL_TEXT, seed=4)
    sess = session(build_clip_text_onnx(weights, SMALL_TEXT, tmp_path / "t.onnx"))
    eos = SMALL_TEXT.eos_token_id
    real = np.array([[57, 20, 21, 22, eos]])
    base = sess.run(None, {"input_ids": real, "attention_mask": np.ones_like(real)})[0]
    padded = np.concatenate([real, np.full((1, 11), eos)], axis=1)
    for mask in (np.ones_like(padded), (np.arange(16) < 5).astype(np.int64)[None]):
        emb = sess.run(None, {"input_ids": padded, "attention_mask": mask})[0]
        assert np.abs(emb - base).max() < 1e-5
    # while a different token before the eos does change it
    other = real.copy()
    other[0, 2] = 30
    changed = sess.run(None, {"input_ids": other, "attention_mask": np.ones_like(other)})[0]
    assert np.abs(changed - base).max() > 1e-3


@pytest.mark.slow
def test_full_size_vit_b32_vision_tower(tmp_path: Path) -> None:
    cfg = ClipVisionConfig()
    path = build_clip_vision_onnx(random_clip_vision_weights(cfg, seed=0), cfg,
                                  tmp_path / "vision_model.onnx")
    assert not list(tmp_path.glob("*.data"))  # one self-contained file
    assert 300e6 < path.stat().st_size < 400e6  # ~88M float32 parameters
    sess = session(path)
    inputs, outputs = io_spec(sess)
    assert inputs == [("pixel_values", "tensor(float)", ["batch_size", 3, 224, 224])]
    assert outputs == [("image_embeds", "tensor(float)", ["batch_size", 512]),
                       ("last_hidden_state", "tensor(float)", ["batch_size", 50, 768])]
    px = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    emb, hidden = sess.run(None, {"pixel_values": px})
    assert emb.shape == (1, 512) and hidden.shape == (1, 50, 768)
    assert np.isfinite(emb).all() and np.isfinite(hidden).all()
    assert 0.1 < np.linalg.norm(emb) < 100


# --------------------------------------------------------------------------------------------
# tokenizer files
# --------------------------------------------------------------------------------------------


def test_clip_tokenizer_file(tmp_path: Path) -> None:
    vocab = write_clip_tokenizer(tmp_path / "tokenizer.json", ["Red", "chart", "a", "red"])
    eos, bos = vocab["<|endoftext|>"], vocab["<|startoftext|>"]
    assert eos == max(vocab.values()) and vocab["<|unk|>"] == 0 and len(vocab) == 6
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert tok.padding["length"] == 77 and tok.padding["pad_id"] == eos
    assert tok.truncation["max_length"] == 77
    enc = tok.encode("A RED chart, zebra")
    assert enc.ids[:7] == [bos, vocab["a"], vocab["red"], vocab["chart"], 0, 0, eos]
    assert len(enc.ids) == 77 and sum(enc.attention_mask) == 7 and set(enc.ids[7:]) == {eos}
    assert len(tok.encode(" ".join(["red"] * 200)).ids) == 77

    write_clip_tokenizer(tmp_path / "plain.json", ["red"], pad_to=None)
    plain = Tokenizer.from_file(str(tmp_path / "plain.json"))
    assert plain.padding is None and plain.encode("red").ids == [2, 1, 3]
    with pytest.raises(ValueError):
        write_clip_tokenizer(tmp_path / "bad.json", ["two words"])


def test_bert_tokenizer_file_pads_like_minilm(tmp_path: Path) -> None:
    vocab = write_bert_tokenizer(tmp_path / "tokenizer.json", ["gold", "breakout", "Oil"])
    assert vocab["[PAD]"] == 0 and vocab["oil"] == 7
    data = json.loads((tmp_path / "tokenizer.json").read_text())
    assert data["padding"]["strategy"] == {"Fixed": 128}
    assert data["truncation"]["max_length"] == 128
    assert data["normalizer"]["type"] == "BertNormalizer" and data["normalizer"]["lowercase"]
    assert data["pre_tokenizer"]["type"] == "BertPreTokenizer"
    tok = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    enc = tok.encode("Gold breakout, OIL")
    assert enc.tokens[:6] == ["[CLS]", "gold", "breakout", "[UNK]", "oil", "[SEP]"]
    assert len(enc.ids) == 128 and sum(enc.attention_mask) == 6 and set(enc.ids[6:]) == {0}
    assert len(tok.encode(" ".join(["gold"] * 300)).ids) == 128
    assert tok.encode("gold", "oil").type_ids[:6] == [0, 0, 0, 1, 1, 0]

    write_bert_tokenizer(tmp_path / "plain.json", ["gold"], pad_to=None, max_length=None)
    plain = Tokenizer.from_file(str(tmp_path / "plain.json"))
    assert plain.padding is None and plain.truncation is None
    assert len(plain.encode(" ".join(["gold"] * 300)).ids) == 302


# --------------------------------------------------------------------------------------------
# toy models
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ort.InferenceSession,
                                                                  ort.InferenceSession, Tokenizer]:
    folder = build_toy_clip(tmp_path_factory.mktemp("toy") / "clip")
    return (folder, session(folder / "onnx" / "vision_model.onnx"),
            session(folder / "onnx" / "text_model.onnx"),
            Tokenizer.from_file(str(folder / "tokenizer.json")))


def test_toy_clip_interface(toy_clip: tuple) -> None:
    folder, vision, text, tok = toy_clip
    assert (folder / "preprocessor_config.json").is_file()
    assert io_spec(vision) == (
        [("pixel_values", "tensor(float)", ["batch_size", 3, 224, 224])],
        [("image_embeds", "tensor(float)", ["batch_size", 16]),
         ("last_hidden_state", "tensor(float)", ["batch_size", 50, 16])])
    dyn = ["batch_size", "sequence_length"]
    assert io_spec(text) == (
        [("input_ids", "tensor(int64)", dyn), ("attention_mask", "tensor(int64)", dyn)],
        [("text_embeds", "tensor(float)", ["batch_size", 16]),
         ("last_hidden_state", "tensor(float)", [*dyn, 16])])
    assert tok.padding["length"] == 77


def _text_embeds(text: ort.InferenceSession, tok: Tokenizer, queries: list[str],
                 padded: bool = True) -> np.ndarray:
    if not padded:
        tok = Tokenizer.from_str(tok.to_str())
        tok.no_padding()
        tok.enable_padding(pad_id=tok.token_to_id("<|endoftext|>"), pad_token="<|endoftext|>")
    encs = tok.encode_batch(queries)
    ids = np.array([e.ids for e in encs], np.int64)
    mask = np.array([e.attention_mask for e in encs], np.int64)
    return text.run(None, {"input_ids": ids, "attention_mask": mask})[0]


@pytest.mark.parametrize("kind", ["bar", "line", "pie"])
def test_toy_clip_ranks_the_chart_of_the_named_colour_first(toy_clip: tuple, kind: str) -> None:
    _, vision, text, tok = toy_clip
    names = list(COLOURS)
    pixels = np.stack([clip_preprocess(toy_chart_image(c, kind=kind, seed=7)) for c in names])
    images = unit(vision.run(None, {"pixel_values": pixels})[0])
    for template in ("{} chart", "a {} {} chart", "{}"):
        queries = [template.format(c, kind) for c in names]
        scores = unit(_text_embeds(text, tok, queries)) @ images.T  # query x image
        assert list(scores.argmax(axis=1)) == list(range(len(names))), (template, scores)
        margin = np.sort(scores, axis=1)[:, -1] - np.sort(scores, axis=1)[:, -2]
        assert margin.min() > 0.3


def test_toy_clip_image_colour_survives_background_and_size(toy_clip: tuple) -> None:
    _, vision, text, tok = toy_clip
    imgs = [toy_chart_image("blue", size=(300, 800), kind="bar", seed=1),
            toy_chart_image("blue", kind="line", seed=2, background=(245, 245, 245)),
            toy_chart_image("blue", kind="pie", seed=3, background="black")]
    emb = unit(vision.run(None, {"pixel_values": np.stack([clip_preprocess(i)
                                                          for i in imgs])})[0])
    queries = unit(_text_embeds(text, tok, [f"{c} chart" for c in COLOURS]))
    assert (emb @ queries.T).argmax(axis=1).tolist() == [list(COLOURS).index("blue")] * 3


def test_toy_clip_text_ignores_padding_and_uses_the_mask(toy_clip: tuple) -> None:
    _, _, text, tok = toy_clip
    queries = ["red chart", "a green line chart of oil prices"]
    fixed = _text_embeds(text, tok, queries)  # the file's fixed 77 padding
    natural = _text_embeds(text, tok, queries, padded=False)
    assert np.abs(fixed - natural).max() < 1e-6
    red = tok.encode("red chart")
    ids = np.array([red.ids], np.int64)
    masked = text.run(None, {"input_ids": ids, "attention_mask": np.zeros_like(ids)})[0]
    assert np.abs(masked).max() == 0.0  # every token masked: nothing left
    # unrelated words count little: "red" and "a red bar chart of sales" nearly agree
    a, b = unit(_text_embeds(text, tok, ["red", "a red bar chart of sales"]))
    assert a @ b > 0.9


def test_toy_clip_flat_layout_and_fixed_text_length(tmp_path: Path) -> None:
    folder = build_toy_clip(tmp_path / "flat", dim=8, layout="flat", fixed_text_length=77)
    assert sorted(p.name for p in folder.iterdir()) == [
        "preprocessor_config.json", "text_model.onnx", "tokenizer.json", "vision_model.onnx"]
    text = session(folder / "text_model.onnx")
    assert text.get_inputs()[0].shape == ["batch_size", 77]
    assert session(folder / "vision_model.onnx").get_outputs()[0].shape == ["batch_size", 8]
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert _text_embeds(text, tok, ["purple"]).shape == (1, 8)
    with pytest.raises(ValueError):
        build_toy_clip(tmp_path / "bad", layout="nested")


@pytest.fixture(scope="module")
def toy_text(tmp_path_factory: pytest.TempPathFactory) -> tuple[ort.InferenceSession, Tokenizer]:
    folder = build_toy_text_model(tmp_path_factory.mktemp("toytext") / "minilm")
    assert (folder / "onnx" / "model.onnx").is_file()
    return session(folder / "onnx" / "model.onnx"), Tokenizer.from_file(
        str(folder / "tokenizer.json"))


def _mean_pool(sess: ort.InferenceSession, tok: Tokenizer, texts: list[str],
               use_mask: bool = True) -> np.ndarray:
    encs = tok.encode_batch(texts)
    ids = np.array([e.ids for e in encs], np.int64)
    mask = np.array([e.attention_mask for e in encs], np.int64)
    hidden = sess.run(None, {"input_ids": ids, "attention_mask": mask,
                             "token_type_ids": np.zeros_like(ids)})[0]
    weights = mask[..., None] if use_mask else np.ones_like(mask)[..., None]
    return unit((hidden * weights).sum(1) / weights.sum(1))


def test_toy_text_model_similarity(toy_text: tuple) -> None:
    sess, tok = toy_text
    inputs, outputs = io_spec(sess)
    assert [i[0] for i in inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    assert outputs == [("last_hidden_state", "tensor(float)",
                        ["batch_size", "sequence_length", 32])]
    assert tok.padding["length"] == 128
    q, gold, oil, gold_rally = _mean_pool(sess, tok, ["gold breakout", "gold", "oil",
                                                      "gold rally"])
    assert q @ gold > q @ oil + 0.4
    assert q @ gold_rally > q @ oil
    assert q @ gold > 0.6


def test_toy_text_model_needs_mask_aware_pooling(toy_text: tuple) -> None:
    sess, tok = toy_text
    padded = _mean_pool(sess, tok, ["gold breakout"])  # fixed 128 padding, masked mean
    unpadded_tok = Tokenizer.from_str(tok.to_str())
    unpadded_tok.no_padding()
    natural = _mean_pool(sess, unpadded_tok, ["gold breakout"])
    assert np.abs(padded - natural).max() < 1e-5
    naive = _mean_pool(sess, tok, ["gold breakout"], use_mask=False)
    assert float(naive[0] @ natural[0]) < 0.5  # ignoring the mask drowns the text in padding


def test_toy_text_model_without_token_type_ids_flat(tmp_path: Path) -> None:
    folder = build_toy_text_model(tmp_path / "t", dim=12, layout="flat",
                                  with_token_type_ids=False, pad_to=None)
    sess = session(folder / "model.onnx")
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask"]
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    assert tok.padding is None
    ids = np.array([tok.encode("gold").ids], np.int64)
    out = sess.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0]
    assert out.shape == (1, 3, 12)


def test_custom_text_model_like_the_user_guide(tmp_path: Path) -> None:
    path = build_custom_text_onnx(tmp_path / "custom_text.onnx")
    sess = session(path)
    assert [(i.name, i.shape) for i in sess.get_inputs()] == [("input_ids", ["batch", "seq"])]
    assert [(o.name, o.shape) for o in sess.get_outputs()] == [("embeddings", ["batch", 768])]
    dummy = np.random.default_rng(0).integers(0, 1000, (1, 64)).astype(np.int64)
    out = sess.run(None, {"input_ids": dummy})[0]
    assert out.shape == (1, 768)
    again = session(build_custom_text_onnx(tmp_path / "again.onnx"))
    assert np.array_equal(again.run(None, {"input_ids": dummy})[0], out)  # deterministic
    big_ids = sess.run(None, {"input_ids": dummy + 5000})[0]  # any id works (modulo vocab)
    assert np.allclose(big_ids, out, atol=1e-6)

    masked = session(build_custom_text_onnx(
        tmp_path / "masked.onnx", dim=8, input_names=("ids", "attention_mask", "token_type_ids"),
        output_name="sentence_embedding"))
    assert [i.name for i in masked.get_inputs()] == ["ids", "attention_mask", "token_type_ids"]
    ids = np.array([[5, 6, 7, 0, 0]])
    mask = np.array([[1, 1, 1, 0, 0]])
    full = masked.run(None, {"ids": ids, "attention_mask": mask,
                             "token_type_ids": np.zeros_like(ids)})[0]
    short = masked.run(None, {"ids": ids[:, :3], "attention_mask": mask[:, :3],
                              "token_type_ids": np.ones_like(ids[:, :3])})[0]
    assert full.shape == (1, 8) and np.allclose(full, short, atol=1e-6)


def test_broken_models(tmp_path: Path) -> None:
    paths = build_broken_models(tmp_path)
    with pytest.raises(Exception, match="(?i)protobuf|parse|load|invalid"):
        session(paths["not_onnx"])
    wrong = session(paths["wrong_inputs"])
    assert [(i.name, i.type) for i in wrong.get_inputs()] == [("foo", "tensor(float)")]
    rank = session(paths["wrong_output_rank"])
    assert [i.name for i in rank.get_inputs()] == ["input_ids", "attention_mask"]
    assert len(rank.get_outputs()[0].shape) == 4
    ids = np.array([[1, 2, 3]])
    assert rank.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0].ndim == 4
    clip = paths["mismatched_clip"]
    vision = session(clip / "onnx" / "vision_model.onnx")
    text = session(clip / "onnx" / "text_model.onnx")
    assert vision.get_outputs()[0].shape == ["batch_size", 16]
    assert text.get_outputs()[0].shape == ["batch_size", 8]
    assert (clip / "tokenizer.json").is_file()
