"""Tokenizers that pad to the longest text in a batch, never to a fixed length.

Shipped tokenizer.json files often pad every input to 77 or 128 tokens; inference cost grows
with length (4-12x for short queries), and CLIP's causal mask and BERT's attention mask make the
padding useless. Only a model whose graph declares a fixed sequence length is padded to it.
"""

from __future__ import annotations

import json
import re
import unicodedata
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from vector_studio_gui.core.errors import ModelError

_PAD_CANDIDATES = ("[PAD]", "<pad>", "<|endoftext|>", "</s>")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b]")
#: invisible format characters pasted along with text: soft hyphen, direction marks and
#: embeddings, word joiners, byte-order mark (zero-width joiners stay: scripts and emoji use them)
_INVISIBLE = re.compile("[\u00ad\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def clean_text(text: str) -> str:
    """Drop control characters and collapse whitespace; queries pasted from anywhere stay sane."""
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", _CONTROL.sub(" ", text))  # a zero-width space separates words
    return " ".join(text.split())


class BatchTokenizer:
    def __init__(self, path: Path, max_tokens: int, fixed_length: int | None = None) -> None:
        try:
            self._tok = Tokenizer.from_file(str(path))
        except Exception as exc:
            raise ModelError(f"cannot read tokenizer {path}: {str(exc)[:200]}") from exc
        self.path = path
        self.pad_id = self._find_pad_id(path)
        self.fixed_length = fixed_length
        limit = max_tokens if fixed_length is None else min(max_tokens, fixed_length)
        self.max_tokens = limit
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=limit)

    def _find_pad_id(self, path: Path) -> int:
        padding = self._tok.padding
        if padding and padding.get("pad_id") is not None:
            return int(padding["pad_id"])
        for token in _PAD_CANDIDATES:
            tid = self._tok.token_to_id(token)
            if tid is not None:
                return tid
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            pad = (data.get("padding") or {}).get("pad_id")
            if pad is not None:
                return int(pad)
        except (OSError, ValueError):
            pass
        return 0

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """ids and attention mask, int64, shape (batch, longest) or (batch, fixed_length)."""
        encs = self._tok.encode_batch([clean_text(t) for t in texts])
        longest = max((len(e.ids) for e in encs), default=1)
        width = self.fixed_length or max(1, longest)
        ids = np.full((len(encs), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for row, enc in enumerate(encs):
            n = min(len(enc.ids), width)
            ids[row, :n] = enc.ids[:n]
            mask[row, :n] = 1
        return ids, mask
