"""Index search breadth grows with the graph (recall); timings live in benchmarks/."""

from __future__ import annotations

import numpy as np

from vector_studio_gui.core import index as index_mod
from vector_studio_gui.core.index import VectorIndex, search_ef


def test_search_ef_grows_with_the_graph_and_covers_k():
    sizes = [1_000, 100_000, 250_000, 400_000, 1_000_000, 5_000_000]
    efs = [search_ef(n, 10) for n in sizes]
    assert efs == sorted(efs)
    assert efs[1] >= 64  # recall@10 1.0 at 100k (bench_index.py ef sweep)
    assert search_ef(1_000_000, 10) >= 200  # recall@10 >= 0.99 at 1M (bench_index.py)
    assert search_ef(100_000, 300) >= 300  # hnswlib refuses k > ef


def test_search_uses_the_size_dependent_ef(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((300, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    idx = VectorIndex(tmp_path, "s", 16, "lib")
    idx.add(np.arange(1, 301), vecs)
    seen = []
    monkeypatch.setattr(index_mod, "search_ef", lambda n, k: seen.append((n, k)) or 64)
    ids, _ = idx.search(vecs[5], 3, exact=False)[0]
    assert seen == [(300, 3)] and ids[0] == 6


def test_reopened_index_knows_its_ids(tmp_path):
    vecs = np.eye(8, dtype=np.float32)
    idx = VectorIndex(tmp_path, "s", 8, "lib")
    idx.add(np.arange(10, 18), vecs)
    idx.remove([11])
    idx.save()

    def fetch(ids):
        ids = np.arange(10, 18) if ids is None else np.asarray(ids)
        yield ids, vecs[ids - 10]

    again = VectorIndex(tmp_path, "s", 8, "lib")
    what = again.open(np.array([10, 12, 13, 14, 15, 16, 17], np.int64), fetch)
    assert what == "index loaded"
    assert again.ids() == {10, 12, 13, 14, 15, 16, 17}
    assert all(type(i) is int for i in again.ids())
