"""BatchTokenizer pads to the longest text of a batch (never to the file's own fixed padding),
truncates at the model's limit and survives whatever text a user pastes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vector_studio_gui.core.errors import ModelError
from vector_studio_gui.core.tokenization import BatchTokenizer, clean_text
from vector_studio_gui.modelgen import write_bert_tokenizer, write_clip_tokenizer
from vector_studio_gui.modelgen.toy import TOY_CLIP_WORDS, TOY_TEXT_WORDS


@pytest.fixture
def clip_tok(tmp_path):
    path = tmp_path / "clip" / "tokenizer.json"
    vocab = write_clip_tokenizer(path, list(TOY_CLIP_WORDS), pad_to=77)
    return path, vocab


@pytest.fixture
def bert_tok(tmp_path):
    path = tmp_path / "bert" / "tokenizer.json"
    vocab = write_bert_tokenizer(path, list(TOY_TEXT_WORDS), pad_to=128, max_length=128)
    return path, vocab


def test_file_pads_to_fixed_lengths_but_batches_are_as_long_as_the_longest(clip_tok, bert_tok):
    cpath, cvocab = clip_tok
    bpath, bvocab = bert_tok
    assert json.loads(cpath.read_text())["padding"]["strategy"] == {"Fixed": 77}
    assert json.loads(bpath.read_text())["padding"]["strategy"] == {"Fixed": 128}

    ids, mask = BatchTokenizer(cpath, 77).encode(["red", "a red bar chart"])
    eos = cvocab["<|endoftext|>"]
    assert ids.shape == mask.shape == (2, 6)
    assert ids.dtype == mask.dtype == np.int64
    assert ids[0].tolist() == [cvocab["<|startoftext|>"], cvocab["red"], eos, eos, eos, eos]
    assert mask.tolist() == [[1, 1, 1, 0, 0, 0], [1] * 6]

    ids, mask = BatchTokenizer(bpath, 256).encode(["gold", "gold price chart"])
    assert ids.shape == (2, 5)
    assert ids[0].tolist() == [bvocab["[CLS]"], bvocab["gold"], bvocab["[SEP]"], 0, 0]
    assert mask.sum(axis=1).tolist() == [3, 5]


def test_pad_id_is_the_files_pad_token(clip_tok, bert_tok):
    # CLIP pads with <|endoftext|> (the highest id: the text tower pools at its first ArgMax)
    assert BatchTokenizer(clip_tok[0], 77).pad_id == clip_tok[1]["<|endoftext|>"]
    assert BatchTokenizer(bert_tok[0], 256).pad_id == bert_tok[1]["[PAD]"] == 0


def test_pad_id_found_without_a_padding_section(tmp_path):
    path = tmp_path / "tokenizer.json"
    vocab = write_clip_tokenizer(path, ["red", "chart"], pad_to=None)
    assert json.loads(path.read_text())["padding"] is None
    tok = BatchTokenizer(path, 77)
    assert tok.pad_id == vocab["<|endoftext|>"]
    ids, _ = tok.encode(["red chart", "red"])
    assert ids[1, -1] == vocab["<|endoftext|>"]


def test_fixed_length_model_is_padded_and_truncated_to_it(clip_tok):
    tok = BatchTokenizer(clip_tok[0], 77, fixed_length=8)
    assert tok.max_tokens == 8
    ids, mask = tok.encode(["red", "red " * 50])
    assert ids.shape == (2, 8)
    assert mask[0].sum() == 3 and mask[1].sum() == 8
    assert ids[1, -1] == clip_tok[1]["<|endoftext|>"]  # truncation keeps the end token


def test_truncation_at_max_tokens_keeps_special_tokens(bert_tok):
    tok = BatchTokenizer(bert_tok[0], 16)
    ids, mask = tok.encode(["gold " * 10_000])
    assert ids.shape == (1, 16)
    assert ids[0, 0] == bert_tok[1]["[CLS]"] and ids[0, -1] == bert_tok[1]["[SEP]"]
    # more than the file's own 128 when the model allows it
    ids, _ = BatchTokenizer(bert_tok[0], 256).encode(["gold " * 10_000])
    assert ids.shape == (1, 256)


def test_tokenizer_file_is_not_modified(bert_tok):
    before = bert_tok[0].read_bytes()
    BatchTokenizer(bert_tok[0], 16).encode(["gold"])
    assert bert_tok[0].read_bytes() == before


@pytest.mark.parametrize("text", ["", " ", "\x00\x01\x02", "黄金价格分析", "أسعار الذهب",
                                  "🚀📈", "a\u200bb", "x" * 100_000])
def test_any_text_tokenises(clip_tok, bert_tok, text):
    for path in (clip_tok[0], bert_tok[0]):
        ids, mask = BatchTokenizer(path, 77).encode([text])
        assert ids.shape[0] == 1 and 2 <= ids.shape[1] <= 77
        assert mask[0, 0] == 1


def test_empty_batch(bert_tok):
    ids, mask = BatchTokenizer(bert_tok[0], 16).encode([])
    assert ids.shape[0] == mask.shape[0] == 0


def test_clean_text():
    assert clean_text("  red\x00bar\x1b\tchart\n ") == "red bar chart"
    assert clean_text("e\u0301") == "\u00e9"  # NFC
    assert clean_text("\x85\x9f") == ""
    assert clean_text("黄金 价格") == "黄金 价格"


def test_missing_or_broken_tokenizer_is_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="tokenizer"):
        BatchTokenizer(tmp_path / "missing.json", 16)
    bad = tmp_path / "tokenizer.json"
    bad.write_text('{"version": "1.0"}')
    with pytest.raises(ModelError, match=str(bad.name)):
        BatchTokenizer(bad, 16)
