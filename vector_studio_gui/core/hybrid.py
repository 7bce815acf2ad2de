"""Hybrid text search: CLIP image similarity, text-model similarity over the charts' OCR text
and notes, and keyword (FTS5 BM25) matches over OCR text, notes and file names, fused.

Signals (``SearchResult.signals``):

* ``image``: cosine between the query's CLIP text embedding and the chart's image embedding;
* ``ocr``: cosine between the query and the chart's recognised text, with the text model;
* ``note``: the same against the user's note;
* ``keyword``: BM25 score of the query's words in the chart's text (higher is better).

A missing signal (no CLIP model, no text model, text not read yet) is left out and the others
are renormalised, so search degrades instead of failing. ``"quoted phrases"`` filter the
candidates to charts whose text contains them and ``-words`` remove charts whose text does
(see :mod:`vector_studio_gui.core.query`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from vector_studio_gui.core.errors import ModelError, VectorStudioError
from vector_studio_gui.core.query import (
    ParsedQuery,
    coverage,
    matched_lines,
    parse_query,
    term_match,
)
from vector_studio_gui.core.search import (
    DEFAULT_FUSION,
    FUSIONS,
    Ranked,
    exact_top,
    fuse,
    fuse_hybrid,
)
from vector_studio_gui.core.tokenization import clean_text
from vector_studio_gui.core.types import SearchResponse, SearchResult

if TYPE_CHECKING:
    from vector_studio_gui.core.engine import Engine

log = logging.getLogger(__name__)

SIGNALS = ("image", "ocr", "note", "keyword")
#: The OCR text counts as matching the query above this text-model cosine (MiniLM gives up to
#: ~0.35 between a purely visual query, "candlestick chart", and unrelated chart text).
OCR_MIN_COSINE = 0.25
#: Candidates each signal contributes before fusion.
PER_SIGNAL = 100

_EMPTY = Ranked(np.empty(0, np.int64), np.empty(0, np.float32))


@dataclass
class Gathered:
    """Every signal's candidates for one query, before fusion."""

    text: str
    query: ParsedQuery
    found: dict[str, Ranked] = field(default_factory=dict)
    models: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def gather(engine: Engine, query: str, k: int = 10, signals: Collection[str] | None = None
           ) -> Gathered | None:
    """Run the query's signals (restricted by its phrases and exclusions); None when nothing
    can match (empty library, or no chart contains the quoted phrases)."""
    q = clean_text(query)
    if not q:
        raise VectorStudioError("the query is empty: type a description of the chart")
    wanted = set(SIGNALS if signals is None else signals)
    if wanted - set(SIGNALS):
        raise VectorStudioError(f"unknown search signals: {sorted(wanted - set(SIGNALS))}")
    lib = engine.library
    pq = parse_query(q)
    g = Gathered(q, pq)
    if lib.count() == 0:
        g.warnings.append("the library is empty")
        return g
    engine._check_space()
    if not pq.positive:
        raise VectorStudioError(
            "the query only excludes (-word): add a word or a \"phrase\" to search for")
    text_ok = lib.has_text_index()
    if not text_ok and (pq.phrases or pq.excluded or "keyword" in wanted):
        g.warnings.append("this library's keyword index is not built yet (open it once for "
                          "writing to upgrade it): quoted phrases, -words and keywords are "
                          "ignored")
    allowed = lib.text_match_ids(pq.filter_match()) if text_ok and pq.phrases else None
    banned = lib.text_match_ids(pq.exclude_match()) if text_ok and pq.excluded else set()
    if allowed is not None:
        allowed -= banned
        if not allowed:
            return g

    sem = pq.semantic_text
    found = g.found
    if "image" in wanted:
        img = _image_signal(engine, sem, allowed, banned, max(k * 3, 50), g.warnings)
        if img is not None:
            found["image"] = img
            g.models.append(engine.clip_model)
    if "ocr" in wanted:
        ocr = _ocr_signal(engine, sem, allowed, banned)
        if ocr is not None:
            found["ocr"] = ocr
    if "note" in wanted:
        note = engine._note_ranked(sem, g.warnings)
        if note is not None:
            note = _restrict(note, allowed, banned)
            if len(note.ids):
                found["note"] = note
    if "keyword" in wanted and text_ok:
        match = pq.keyword_match()
        hits = lib.keyword_search(match, PER_SIGNAL * 2) if match else []
        found["keyword"] = _restrict(_keyword_ranked(lib, hits, pq), allowed, banned)
    if "ocr" in found or "note" in found:
        g.models.append(engine.text_model)
    if not found:
        raise VectorStudioError("no search signal is available: install the CLIP model "
                                "('vector-studio models install') or read the charts' text")
    return g


def fuse_gathered(found: dict[str, Ranked], k: int, min_score: float | None = None,
                  fusion: str | None = None, **kw) -> list[tuple[int, float, dict[str, float]]]:
    fusion = fusion or DEFAULT_FUSION
    if fusion not in FUSIONS:
        raise VectorStudioError(f"fusion must be one of {FUSIONS}, not {fusion!r}")
    active = [n for n, r in found.items() if len(r.ids)]
    if "image" in found and active in ([], ["image"]):
        # only the image matched: its cosine is the score, as in a plain CLIP search
        return fuse({"image": found["image"]}, k, min_score)
    return fuse_hybrid(found, k, method=fusion, min_score=min_score, **kw)


def search_text(engine: Engine, query: str, k: int = 10, min_score: float | None = None, *,
                signals: Collection[str] | None = None, fusion: str | None = None
                ) -> SearchResponse:
    t0 = time.perf_counter()
    if fusion is not None and fusion not in FUSIONS:
        raise VectorStudioError(f"fusion must be one of {FUSIONS}, not {fusion!r}")
    g = gather(engine, query, k, signals)
    ranked = fuse_gathered(g.found, k, min_score, fusion) if g.found else []
    results = _results(engine, ranked, g.query)
    took = (time.perf_counter() - t0) * 1000
    model = " + ".join(g.models) or ("keywords" if g.found else engine.clip_model)
    return SearchResponse(g.text, model, took, results, tuple(g.warnings))


def _keyword_ranked(lib, hits: list[tuple[int, float]], pq: ParsedQuery) -> Ranked:
    """BM25 hits, with each chart's strength for the weighted sum: the IDF-weighted share of
    the query's words its text holds (0-1 whatever the library's size), plus a little of its
    BM25 relative to the best hit, to order charts holding the same words."""
    ids = np.array([i for i, _ in hits], np.int64)
    scores = np.array([s for _, s in hits], np.float32)
    if not hits:
        return Ranked(ids, scores, np.empty(0, np.float32))
    texts = lib.texts(ids.tolist())
    terms = pq.terms()
    n = max(lib.count(), 1)
    idf = []
    for t in terms:  # BM25's IDF, kept positive: common words weigh little
        df = lib.text_match_count(term_match(t))
        idf.append(math.log(1.0 + (n - df + 0.5) / (df + 0.5)))
    cov = np.array([coverage(terms, " ".join(texts.get(i, ("", "", ""))), idf)
                    for i in ids.tolist()], np.float32)
    top = max(float(scores.max()), 1e-9)
    return Ranked(ids, scores, 0.85 * cov + 0.15 * (scores / top))


def _restrict(r: Ranked, allowed: set[int] | None, banned: set[int]) -> Ranked:
    if allowed is None and not banned:
        return r
    keep = np.array([(allowed is None or i in allowed) and i not in banned
                     for i in r.ids.tolist()], dtype=bool)
    if not len(keep):
        return r
    return Ranked(r.ids[keep], r.scores[keep], None if r.norm is None else r.norm[keep])


def _image_signal(engine: Engine, text: str, allowed: set[int] | None, banned: set[int], n: int,
                  warnings: list[str]) -> Ranked | None:
    try:
        vec = engine.clip_text_encoder().encode([text])
    except ModelError as exc:
        warnings.append(f"image similarity is off: {exc}")
        return None
    if allowed is not None:  # exact over the few charts that contain the quoted phrases
        space = engine.active_space() or engine.clip_space()
        parts = list(engine.library.vectors(space, sorted(allowed)))
        if not parts:
            return _EMPTY
        ids = np.concatenate([i for i, _ in parts])
        mat = np.concatenate([m for _, m in parts])
        return exact_top(vec, ids, mat, n)
    return _restrict(engine._image_ranked(vec, n + len(banned)), None, banned)


def _ocr_signal(engine: Engine, text: str, allowed: set[int] | None, banned: set[int]
                ) -> Ranked | None:
    got = _ocr_matrix(engine)
    if got is None:
        return None
    enc, ids, mat = got
    if len(ids) == 0:
        return None
    qv = enc.encode_queries([text])
    r = exact_top(qv, ids, mat, len(ids) if (allowed or banned) else PER_SIGNAL, OCR_MIN_COSINE)
    r = _restrict(r, allowed, banned)
    return Ranked(r.ids[:PER_SIGNAL], r.scores[:PER_SIGNAL])


def _ocr_matrix(engine: Engine):
    """(text encoder, ids, matrix) of the OCR-text embeddings, cached until they change."""
    lib = engine.library
    if not lib.has_ocr_text():
        return None
    try:
        enc = engine.text_encoder()
    except ModelError:
        return None  # _note_ranked or the pass already says why
    space = engine.text_space()
    key = (space, *lib.embedding_count(space, "ocr"))
    cached = getattr(engine, "_ocr_matrix_cache", None)
    if cached is not None and cached[0] == key:
        return enc, cached[1], cached[2]
    parts = list(lib.vectors(space, source="ocr"))
    if parts:
        ids = np.concatenate([i for i, _ in parts])
        mat = np.ascontiguousarray(np.concatenate([m for _, m in parts]))
    else:
        ids, mat = np.empty(0, np.int64), np.empty((0, 1), np.float32)
    engine._ocr_matrix_cache = (key, ids, mat)
    return enc, ids, mat


def _results(engine: Engine, ranked: list[tuple[int, float, dict[str, float]]],
             pq: ParsedQuery) -> list[SearchResult]:
    ids = [r[0] for r in ranked]
    items = {it.id: it for it in engine.library.items(ids)}
    terms = pq.terms()
    lines = engine.library.ocr_lines(ids) if terms else {}
    notes = {it.id: it.note for it in items.values()}
    out = []
    for iid, score, sig in ranked:
        if iid not in items:
            continue
        matched: list[str] = []
        if terms:
            matched = matched_lines(terms, [ln.text for ln in lines.get(iid, [])])
            extra = [notes[iid], *(os.path.basename(p) for p in items[iid].paths)]
            matched += [t for t in matched_lines(terms, [t for t in extra if t])
                        if t not in matched]
        out.append(SearchResult(items[iid], score, sig, tuple(matched)))
    return out
