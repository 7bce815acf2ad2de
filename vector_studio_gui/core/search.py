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


def fuse(signals: dict[str, Ranked], k: int, min_score: float | None = None
         ) -> list[tuple[int, float, dict[str, float]]]:
    """(item id, score, per-signal scores) best first.

    With one signal the score is its cosine. With several, items are ordered by reciprocal
    rank fusion and the score shown is the best cosine among the signals that matched.
    """
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
