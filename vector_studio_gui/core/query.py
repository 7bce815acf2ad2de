"""Search syntax: plain words, "quoted phrases" that must appear, and -excluded words.

    gold price 2024            plain words: semantic (CLIP, text model) and keyword (BM25) match
    "XAUUSD 4H" breakout       the chart's text (OCR, note or file name) must contain XAUUSD 4H
    rsi divergence -weekly     charts whose text contains "weekly" are left out
    -"head and shoulders"      an excluded phrase

Words are matched like the keyword index splits them (SQLite FTS5 ``unicode61``): case and
accents do not matter, punctuation separates words, so "XAU/USD" is the phrase "xau usd" (and
the joined ticker "xauusd", which the index also holds for split tickers).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from vector_studio_gui.core.ocr import words

#: Left out of the keyword match (they still reach the semantic models): English function
#: words, and words that describe any chart ("a red chart" is a colour query, not a keyword one).
STOPWORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "in", "into", "is", "it",
    "of", "on", "or", "the", "to", "with", "vs", "chart", "charts", "graph", "plot", "diagram",
    "image", "picture", "screenshot",
})

_TOKEN = re.compile(r'(?P<neg>-?)"(?P<phrase>[^"]*)"|(?P<wneg>-?)(?P<word>[^\s"]+)')


@dataclass(frozen=True)
class ParsedQuery:
    raw: str
    #: plain words, as typed
    words: tuple[str, ...] = ()
    #: "quoted phrases" the chart's text must contain
    phrases: tuple[str, ...] = ()
    #: -words and -"phrases" the chart's text must not contain
    excluded: tuple[str, ...] = ()

    @property
    def semantic_text(self) -> str:
        """What the embedding models see: the words and the phrases, without the syntax."""
        return " ".join([*self.words, *self.phrases]).strip()

    @property
    def positive(self) -> bool:
        return bool(self.semantic_text)

    def terms(self) -> list[list[str]]:
        """Token sequences that count as a keyword hit: each non-stopword, each phrase."""
        out: list[list[str]] = []
        for w in self.words:
            toks = words(w)
            if len(toks) == 1 and toks[0] in STOPWORDS:
                continue
            if toks:
                out.append(toks)
        out += [t for t in (words(p) for p in self.phrases) if t]
        return out

    def keyword_match(self) -> str:
        """FTS5 expression for ranking: any word or phrase (BM25 rewards charts with more)."""
        return " OR ".join(dict.fromkeys(term_match(t) for t in self.terms()))

    def filter_match(self) -> str:
        """FTS5 expression every result must match (all the quoted phrases), or ''."""
        parts = [fts_phrase(t) for t in (words(p) for p in self.phrases) if t]
        return " AND ".join(parts)

    def exclude_match(self) -> str:
        """FTS5 expression of the excluded words and phrases (any of them), or ''."""
        parts = [fts_phrase(t) for t in (words(x) for x in self.excluded) if t]
        return " OR ".join(dict.fromkeys(parts))


def term_match(tokens: list[str]) -> str:
    """FTS5 expression of one term: the phrase, and for "XAU/USD" also the joined ticker."""
    if len(tokens) > 1:
        return f"{fts_phrase(tokens)} OR {fts_phrase([''.join(tokens)])}"
    return fts_phrase(tokens)


def fts_phrase(tokens: list[str]) -> str:
    """An FTS5 phrase string; tokens from :func:`words` hold no quotes or operators."""
    return '"' + " ".join(t.replace('"', '""') for t in tokens) + '"'


def parse_query(text: str) -> ParsedQuery:
    text = " ".join(text.split())
    if text.count('"') % 2:  # an unclosed quote: treat it as closed at the end
        text += '"'
    plain: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    for m in _TOKEN.finditer(text):
        if m.group("phrase") is not None:
            phrase = " ".join(m.group("phrase").split())
            if not phrase:
                continue
            (excluded if m.group("neg") else phrases).append(phrase)
            continue
        word = m.group("word")
        if m.group("wneg") and words(word):
            excluded.append(word)
        elif words(word):
            plain.append(word)
    return ParsedQuery(text, tuple(plain), tuple(phrases), tuple(excluded))


def coverage(terms: list[list[str]], text: str, weights: list[float] | None = None) -> float:
    """The (weighted) share of the query's terms found, as whole words or joined tickers, in
    ``text``; with IDF weights a rare word ("XAUUSD") counts more than a common one ("price")."""
    if not terms:
        return 0.0
    weights = weights or [1.0] * len(terms)
    toks = words(text)
    joined = {"".join(toks[i:j]) for i in range(len(toks)) for j in (i + 2, i + 3)
              if j <= len(toks)}
    hit = 0.0
    for term, w in zip(terms, weights, strict=True):
        n = len(term)
        if any(toks[i:i + n] == term for i in range(len(toks) - n + 1)) or (
                n == 1 and term[0] in joined):
            hit += w
    return hit / max(sum(weights), 1e-12)


def matched_lines(terms: list[list[str]], lines: list[str]) -> list[str]:
    """The lines that contain any of the token sequences ``terms`` (as whole words)."""
    if not terms:
        return []
    out = []
    for line in lines:
        toks = words(line)
        joined = ["".join(toks[i:j]) for i in range(len(toks)) for j in (i + 2, i + 3)
                  if j <= len(toks)]
        for term in terms:
            n = len(term)
            if any(toks[i:i + n] == term for i in range(len(toks) - n + 1)) or (
                    n == 1 and term[0] in joined):
                out.append(line)
                break
    return out
