"""``tokenizer.json`` files shaped like the real ones, for small vocabularies.

(Named ``tokenizer_files`` so it never shadows the ``tokenizers`` library.)

Both writers return the vocabulary (token -> id). Words are lower-cased; a word that the
pre-tokenizer would split (whitespace or punctuation inside it) is rejected.

* CLIP: ``<|startoftext|> ... <|endoftext|>``; ``<|endoftext|>`` has the HIGHEST id (the
  text tower pools at the ArgMax of the ids) and is the pad token; unknown words map to
  ``<|unk|>`` (id 0). With ``pad_to`` the file pads every encoding to that fixed length and
  truncates at 77, as a real export may: an engine should override that and run queries at
  their real length.
* BERT (all-MiniLM-L6-v2 style): ``[PAD]`` = 0, ``[UNK]`` = 1, ``[CLS]`` = 2, ``[SEP]`` = 3,
  ``[MASK]`` = 4, then the words; BertNormalizer(lowercase) + BertPreTokenizer + WordPiece;
  ``[CLS] $A [SEP]``. Like the real file, it truncates at ``max_length`` and (with ``pad_to``)
  pads to a fixed 128: the engine must override the padding.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

CLIP_MAX_LENGTH = 77

CLIP_UNK = "<|unk|>"
CLIP_BOS = "<|startoftext|>"
CLIP_EOS = "<|endoftext|>"

BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _clean_words(words: Iterable[str], specials: Iterable[str]) -> list[str]:
    from tokenizers import pre_tokenizers

    split = pre_tokenizers.BertPreTokenizer()
    reserved = set(specials)
    seen: set[str] = set()
    out: list[str] = []
    for raw in words:
        word = raw.strip().lower()
        if not word or word in seen or word in reserved:
            continue
        pieces = split.pre_tokenize_str(word)
        if len(pieces) != 1:
            raise ValueError(f"{raw!r} is not a single token (it would be split: {pieces})")
        seen.add(word)
        out.append(word)
    return out


def write_clip_tokenizer(path: str | Path, words: list[str], *,
                         pad_to: int | None = CLIP_MAX_LENGTH) -> dict[str, int]:
    """Write a CLIP-like WordLevel ``tokenizer.json`` to ``path``; return its vocabulary."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {CLIP_UNK: 0}
    for word in _clean_words(words, (CLIP_UNK, CLIP_BOS, CLIP_EOS)):
        vocab[word] = len(vocab)
    bos = vocab[CLIP_BOS] = len(vocab)
    eos = vocab[CLIP_EOS] = len(vocab)  # highest id: the text tower's ArgMax finds it

    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=CLIP_UNK))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tok.post_processor = processors.TemplateProcessing(
        single=f"{CLIP_BOS} $A {CLIP_EOS}",
        pair=f"{CLIP_BOS} $A {CLIP_EOS} $B {CLIP_EOS}",
        special_tokens=[(CLIP_BOS, bos), (CLIP_EOS, eos)],
    )
    tok.add_special_tokens([CLIP_UNK, CLIP_BOS, CLIP_EOS])
    if pad_to is not None:
        tok.enable_truncation(max_length=CLIP_MAX_LENGTH)
        tok.enable_padding(direction="right", pad_id=eos, pad_type_id=0, pad_token=CLIP_EOS,
                           length=pad_to)
    _save(tok, path)
    return dict(vocab)


def write_bert_tokenizer(path: str | Path, words: list[str], *, pad_to: int | None = 128,
                         max_length: int | None = 128) -> dict[str, int]:
    """Write a BERT-like WordPiece ``tokenizer.json`` to ``path``; return its vocabulary.

    ``max_length`` sets truncation (None: none); ``pad_to`` sets fixed padding (None: none).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    vocab = {tok: i for i, tok in enumerate(BERT_SPECIALS)}
    for word in _clean_words(words, BERT_SPECIALS):
        vocab[word] = len(vocab)

    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]",
                                     max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    tok.add_special_tokens(list(BERT_SPECIALS))
    if max_length is not None:
        tok.enable_truncation(max_length=max_length)
    if pad_to is not None:
        tok.enable_padding(direction="right", pad_id=vocab["[PAD]"], pad_type_id=0,
                           pad_token="[PAD]", length=pad_to)
    _save(tok, path)
    return dict(vocab)


def _save(tok: object, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # to_str + json round trip keeps the file pretty and deterministic
    data = json.loads(tok.to_str())  # type: ignore[attr-defined]
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
