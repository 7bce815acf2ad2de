"""Ranking: nearest images from the index, fused with note matches by reciprocal rank fusion.

Cosine scores of different models live on different scales (CLIP text-image cosines sit around
0.2-0.35, sentence-model cosines much higher), so signals are fused by rank, not by score; each
result keeps its per-signal cosines so the user can see why it matched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RRF_K = 60
#: A note counts as matching a query above this cosine (sentence-model scale).
NOTE_MIN_COSINE = 0.35


@dataclass
class Ranked:
    ids: np.ndarray
    scores: np.ndarray
    #: optional 0-1 strength of each match, used by the weighted sum instead of ``scores``
    #: (the keyword signal's share of the query's words found in the chart's text)
    norm: np.ndarray | None = None


def fuse(signals: dict[str, Ranked], k: int, min_score: float | None = None
         ) -> list[tuple[int, float, dict[str, float]]]:
    """(item id, score, per-signal scores) best first.

    With one signal the score is its cosine. With several, items are ordered by reciprocal
    rank fusion and the score shown is the best cosine among the signals that matched.
    """
    if len(signals) == 1:  # one list (a plain image search): no fusion, no per-item dicts
        ((name, ranked),) = signals.items()
        return _single(name, ranked, k, min_score)
    per_item: dict[int, dict[str, float]] = {}
    rrf: dict[int, float] = {}
    for name, ranked in signals.items():
        for rank, (iid, score) in enumerate(zip(ranked.ids.tolist(), ranked.scores.tolist(),
                                                strict=True)):
            per_item.setdefault(iid, {})[name] = round(float(score), 6)
            rrf[iid] = rrf.get(iid, 0.0) + 1.0 / (RRF_K + rank + 1)
    active = [n for n, r in signals.items() if len(r.ids)]
    if len(active) <= 1:
        order = sorted(per_item, key=lambda i: -max(per_item[i].values()))
    else:
        order = sorted(per_item, key=lambda i: (-rrf[i], -max(per_item[i].values())))
    out = []
    for iid in order:
        sig = per_item[iid]
        score = max(sig.values())
        if min_score is not None and score < min_score:
            continue
        out.append((iid, score, sig))
        if len(out) >= k:
            break
    return out


def _single(name: str, ranked: Ranked, k: int, min_score: float | None
            ) -> list[tuple[int, float, dict[str, float]]]:
    scores = np.asarray(ranked.scores, np.float64)
    order = np.argsort(-scores, kind="stable") if np.any(scores[1:] > scores[:-1]) else None
    ids = ranked.ids if order is None else ranked.ids[order]
    scores = scores if order is None else scores[order]
    out: list[tuple[int, float, dict[str, float]]] = []
    seen: set[int] = set()
    for iid, score in zip(ids.tolist(), scores.tolist(), strict=True):
        if iid in seen:
            continue
        seen.add(iid)
        score = round(score, 6)
        if min_score is not None and score < min_score:
            continue
        out.append((iid, score, {name: score}))
        if len(out) >= k:
            break
    return out


def exact_top(query: np.ndarray, ids: np.ndarray, matrix: np.ndarray, k: int,
              min_cosine: float | None = None) -> Ranked:
    if len(ids) == 0:
        return Ranked(np.empty(0, np.int64), np.empty(0, np.float32))
    scores = matrix @ np.asarray(query, np.float32).ravel()
    order = np.argsort(-scores, kind="stable")[:k]
    if min_cosine is not None:
        order = order[scores[order] >= min_cosine]
    return Ranked(ids[order], scores[order])


def drop_ids(ranked: Ranked, exclude: Sequence[int]) -> Ranked:
    if not exclude:
        return ranked
    keep = ~np.isin(ranked.ids, np.asarray(list(exclude), np.int64))
    return Ranked(ranked.ids[keep], ranked.scores[keep])


# ----------------------------------------------------------------------------- hybrid text search
@dataclass(frozen=True)
class SignalScale:
    """How the calibrated weighted sum reads one signal, times ``weight``: a ``Ranked.norm``
    when the signal gives one (keyword: the share of the query's words the chart contains);
    else by ``mode``: "range": raw scores between ``lo`` and ``hi`` map linearly onto 0-1
    (clipped); "minmax": the score's place between the worst and best candidate of the query
    (CLIP cosines sit in a narrow band whose position depends on the model); "top": the score
    divided by the query's best."""

    lo: float
    hi: float
    weight: float
    mode: str = "range"


#: Calibrated on the labelled chart set of benchmarks/ocr_eval (a separate calibration split);
#: see the README's evaluation section. image: CLIP text-image cosine; ocr / note: text-model
#: cosine between the query and the chart's OCR text / note; keyword: FTS5 BM25.
SCALES: dict[str, SignalScale] = {
    "image": SignalScale(0.0, 1.0, 0.25, mode="minmax"),
    "ocr": SignalScale(0.25, 0.70, 1.0),  # below 0.25: any chart's text vs a visual query
    "note": SignalScale(0.25, 0.70, 1.0),  # not in the labelled set: as the OCR text
    "keyword": SignalScale(0.0, 1.0, 3.0, mode="top"),  # Ranked.norm: share of the words
}
#: Weights of the signals in reciprocal rank fusion (calibrated the same way).
RRF_WEIGHTS: dict[str, float] = {"image": 0.25, "ocr": 2.0, "note": 2.0, "keyword": 4.0}
#: The fusion search_text uses: "rrf" or "weighted" (chosen by the evaluation).
DEFAULT_FUSION = "weighted"
FUSIONS = ("rrf", "weighted")


def fuse_hybrid(signals: dict[str, Ranked], k: int, *, method: str = DEFAULT_FUSION,
                min_score: float | None = None, scales: dict[str, SignalScale] | None = None,
                rrf_weights: dict[str, float] | None = None,
                ) -> list[tuple[int, float, dict[str, float]]]:
    """(item id, fused score 0-1, per-signal raw scores) best first, for several signals.

    ``signals`` holds every signal that was available for the query, also those that found
    nothing: a missing signal (no CLIP model, no text model, no OCR yet) simply drops out and
    the others are renormalised, so scores stay comparable. ``method`` is ``"weighted"`` (the
    calibrated weighted sum of :data:`SCALES`) or ``"rrf"`` (weighted reciprocal rank fusion,
    normalised so an item ranked first by every signal scores 1).
    """
    if method not in FUSIONS:
        raise ValueError(f"fusion must be one of {FUSIONS}, not {method!r}")
    scales = scales or SCALES
    rrf_weights = rrf_weights or RRF_WEIGHTS
    per_item: dict[int, dict[str, float]] = {}
    fused: dict[int, float] = {}
    total = 0.0
    for name, ranked in signals.items():
        ids = ranked.ids.tolist()
        scores = ranked.scores.tolist()
        if method == "rrf":
            w = rrf_weights.get(name, 1.0)
            norm = None
            total += w / (RRF_K + 1)
        else:
            sc = scales.get(name, SignalScale(0.0, 1.0, 1.0))
            w = sc.weight
            total += w
            norm = _normalised(ranked, sc)
        for rank, (iid, score) in enumerate(zip(ids, scores, strict=True)):
            per_item.setdefault(iid, {})[name] = round(float(score), 6)
            part = w / (RRF_K + rank + 1) if method == "rrf" else w * float(norm[rank])
            fused[iid] = fused.get(iid, 0.0) + part
    total = max(total, 1e-12)
    order = sorted(per_item, key=lambda i: (-fused[i], i))
    out = []
    for iid in order:
        score = fused[iid] / total
        if min_score is not None and score < min_score:
            continue
        out.append((iid, round(score, 6), per_item[iid]))
        if len(out) >= k:
            break
    return out


def _normalised(ranked: Ranked, sc: SignalScale) -> np.ndarray:
    if ranked.norm is not None:
        return np.clip(np.asarray(ranked.norm, np.float64), 0.0, 1.0)
    x = np.asarray(ranked.scores, np.float64)
    if not len(x):
        return x
    if sc.mode == "minmax":
        lo, hi = float(x.min()), float(x.max())
        if hi - lo < 1e-9:
            return np.ones_like(x)
        return (x - lo) / (hi - lo)
    if sc.mode == "top":
        return np.clip(x / max(float(x.max()), 1e-9), 0.0, 1.0)
    return np.clip((x - sc.lo) / max(sc.hi - sc.lo, 1e-9), 0.0, 1.0)
