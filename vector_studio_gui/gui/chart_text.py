"""Where a query's words are in a chart's recognised text: character spans and picture boxes.

The search engine says *which* lines matched (``SearchResult.matched``); the details pane also
needs *where*: the characters to highlight in the text area and the part of each line's box
(4 corner points in the original image's pixels, from the reading-text pass) to outline on the
preview. Words are compared the way the keyword index compares them (``core.query``: lower
case, punctuation splits words, a split ticker "XAU/USD" also matches "xauusd"), and accents
are ignored as SQLite FTS5's ``unicode61`` ignores them.

OCR stores one box per line, so a word's box is interpolated along the line's box by the width
its characters take in a proportional font (close for the sans-serif text of charts).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vector_studio_gui.core.query import parse_query

Point = tuple[float, float]
Box = tuple[Point, Point, Point, Point]

#: a word as the keyword index splits it (same pattern as ``core.ocr.words``)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def fold(word: str) -> str:
    """Lower case, accents removed ("Café" -> "cafe")."""
    decomposed = unicodedata.normalize("NFKD", word.lower())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def query_terms(query: str | None) -> list[list[str]]:
    """The token sequences of a typed query that count as text matches: its plain words
    (stopwords left out) and its "quoted phrases"; never the -excluded words."""
    if not query or not query.strip():
        return []
    return [[fold(t) for t in term] for term in parse_query(query).terms()]


def match_spans(terms: Sequence[Sequence[str]], text: str) -> list[tuple[int, int]]:
    """Character spans ``(start, end)`` of ``text`` where a term occurs as whole words (or, for
    a one-word term, as 2-3 adjacent words joined: "XAU/USD" for "xauusd"), merged, in order."""
    if not terms or not text:
        return []
    toks = [(m.start(), m.end(), fold(m.group(0))) for m in _WORD.finditer(text)]
    spans: list[tuple[int, int]] = []
    for term in terms:
        n = len(term)
        if n == 0:
            continue
        for i in range(len(toks) - n + 1):
            if all(toks[i + k][2] == term[k] for k in range(n)):
                spans.append((toks[i][0], toks[i + n - 1][1]))
        if n == 1:
            for i in range(len(toks)):
                for j in (i + 2, i + 3):
                    if j <= len(toks) and "".join(t[2] for t in toks[i:j]) == term[0]:
                        spans.append((toks[i][0], toks[j - 1][1]))
    spans.sort()
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def _lerp(a: Point, b: Point, t: float) -> Point:
    return (a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t)


def span_box(box: Box, text: str, start: int, end: int,
             advance: Callable[[str], float] | None = None, pad: float = 0.02) -> Box:
    """The part of a line's ``box`` (top-left, top-right, bottom-right, bottom-left) holding
    ``text[start:end]``: the box is cut along its reading direction at the characters' share of
    the line's width (``advance`` measures a string; by default every character counts the
    same), widened by ``pad`` of the line on each side. Works for rotated boxes too."""
    if not text or (start <= 0 and end >= len(text)):
        return box
    measure = advance or (lambda s: float(len(s)))
    total = max(measure(text), 1e-9)
    t0 = max(0.0, measure(text[:start]) / total - pad)
    t1 = min(1.0, measure(text[:end]) / total + pad)
    tl, tr, br, bl = box
    return (_lerp(tl, tr, t0), _lerp(tl, tr, t1), _lerp(bl, br, t1), _lerp(bl, br, t0))


@dataclass(frozen=True)
class LineMatch:
    """The matches in one recognised line: its number, character spans and their boxes."""

    line: int
    spans: tuple[tuple[int, int], ...]
    boxes: tuple[Box, ...]


def join_runs(spans: Sequence[tuple[int, int]], text: str) -> list[tuple[int, int]]:
    """Spans with only white space between them as one ("Gold price 2024" for a query naming
    all three words is one mark, not three side by side)."""
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if out and not text[out[-1][1]:s].strip():
            out[-1] = (out[-1][0], e)
        else:
            out.append((s, e))
    return out


def find_matches(terms: Sequence[Sequence[str]], lines: Sequence, *,
                 advance: Callable[[str], float] | None = None) -> list[LineMatch]:
    """Every match of ``terms`` in OCR ``lines`` (objects with ``text`` and ``box``), adjacent
    matched words joined."""
    out = []
    for k, ln in enumerate(lines):
        spans = join_runs(match_spans(terms, ln.text), ln.text)
        if spans:
            boxes = tuple(span_box(tuple(tuple(p) for p in ln.box), ln.text, s, e, advance)
                          for s, e in spans)
            out.append(LineMatch(k, tuple(spans), boxes))
    return out
