"""The HNSW index is derived data: it must survive crashes, corruption and staleness."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vector_studio_gui.core import index as index_mod
from vector_studio_gui.core.index import VectorIndex


def _vectors(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


class FakeDb:
    """Stands in for the library: ids and vectors, fetched in chunks like Library.vectors."""

    def __init__(self, n: int, dim: int = 16) -> None:
        self.ids = np.arange(1, n + 1, dtype=np.int64)
        self.vecs = _vectors(n, dim)
        self.fetches = 0

    def fetch(self, ids):
        self.fetches += 1
        if ids is None:
            ids = self.live if hasattr(self, "live") else self.ids
        pos = np.searchsorted(self.ids, ids)
        yield self.ids[pos], self.vecs[pos]


def _open(tmp_path, db: FakeDb, lib_id: str = "lib-1") -> tuple[VectorIndex, str]:
    idx = VectorIndex(tmp_path, "space", 16, lib_id)
    what = idx.open(db.ids, db.fetch)
    return idx, what


def test_first_open_builds_and_search_finds_each_vector_first(tmp_path):
    db = FakeDb(200)
    idx, what = _open(tmp_path, db)
    assert "rebuilt" in what and "no saved index" in what
    for k in (0, 57, 199):
        ids, scores = idx.search(db.vecs[k], 3)[0]
        assert ids[0] == db.ids[k]
        assert scores[0] == pytest.approx(1.0, abs=1e-5)
        assert list(scores) == sorted(scores, reverse=True)


def test_saved_index_loads_without_rebuild(tmp_path):
    db = FakeDb(100)
    idx, _ = _open(tmp_path, db)
    idx.save()
    again, what = _open(tmp_path, db)
    assert what == "index loaded"
    assert len(again) == 100


def test_stale_index_catches_up_with_database_instead_of_rebuilding(tmp_path):
    """A crash after a commit but before the index save: the difference is applied."""
    db = FakeDb(120)
    db.live = db.ids[:100]
    idx = VectorIndex(tmp_path, "space", 16, "lib-1")
    idx.open(db.live, db.fetch)  # index knows 100 of them
    idx.save()
    db_ids_now = db.ids[5:120]  # 5 removed, 20 added since
    db.live = db_ids_now
    again = VectorIndex(tmp_path, "space", 16, "lib-1")
    what = again.open(db_ids_now, db.fetch)
    assert "+20 / -5" in what
    assert again.ids() == set(db_ids_now.tolist())
    ids, _ = again.search(db.vecs[110], 1)[0]
    assert ids[0] == db.ids[110]


@pytest.mark.parametrize("damage, reason", [
    ("truncate", "torn"),
    ("flip", "corrupt"),
    ("foreign", "another library"),
    ("no-stamp", "stamp missing"),
    ("bad-stamp", "stamp unreadable"),
])
def test_damaged_index_is_detected_and_rebuilt(tmp_path, damage, reason):
    db = FakeDb(150)
    idx, _ = _open(tmp_path, db)
    idx.save()
    data = idx.path.read_bytes()
    if damage == "truncate":
        idx.path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        mid = len(data) // 2
        idx.path.write_bytes(data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1 :])
    elif damage == "foreign":
        stamp = json.loads(idx.stamp_path.read_text())
        stamp["library_id"] = "someone-else"
        idx.stamp_path.write_text(json.dumps(stamp))
    elif damage == "no-stamp":
        idx.stamp_path.unlink()
    elif damage == "bad-stamp":
        idx.stamp_path.write_text("{not json")
    again, what = _open(tmp_path, db)
    assert reason in what
    assert again.ids() == set(db.ids.tolist())
    ids, _ = again.search(db.vecs[3], 1)[0]
    assert ids[0] == db.ids[3]


def test_save_leaves_no_temp_files_and_stamp_matches(tmp_path):
    db = FakeDb(50)
    idx, _ = _open(tmp_path, db)
    idx.save()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["space.hnsw", "space.json"]
    stamp = json.loads(idx.stamp_path.read_text())
    assert stamp["count"] == 50 and stamp["size"] == idx.path.stat().st_size


def test_removed_items_never_come_back_and_can_be_re_added(tmp_path):
    db = FakeDb(60)
    idx, _ = _open(tmp_path, db)
    idx.remove([1, 2, 3])
    ids, _ = idx.search(db.vecs[0], 60)[0]
    assert not {1, 2, 3} & set(ids.tolist())
    idx.save()
    again = VectorIndex(tmp_path, "space", 16, "lib-1")
    again.open(db.ids[3:], db.fetch)
    assert {1, 2, 3}.isdisjoint(again.ids())
    again.add([2], db.vecs[1:2])
    assert again.search(db.vecs[1], 1)[0][0][0] == 2


def test_capacity_grows_as_items_are_added(tmp_path):
    idx = VectorIndex(tmp_path, "space", 16, "lib-1")
    vecs = _vectors(3000)
    for start in range(0, 3000, 500):
        idx.add(np.arange(start, start + 500), vecs[start : start + 500])
    assert len(idx) == 3000
    assert idx.search(vecs[2999], 1)[0][0][0] == 2999


def test_graph_search_agrees_with_exact_search(tmp_path, monkeypatch):
    """Above the exact-search limit the HNSW graph answers; it must find the true neighbours."""
    monkeypatch.setattr(index_mod, "EXACT_LIMIT", 100)
    db = FakeDb(2000)
    idx, _ = _open(tmp_path, db)
    queries = _vectors(50, seed=9)
    hits = 0
    for q in queries:
        approx = set(idx.search(q, 10)[0][0].tolist())
        exact = set(idx.search(q, 10, exact=True)[0][0].tolist())
        hits += len(approx & exact)
    assert hits / 500 >= 0.98


def test_k_larger_than_library_returns_everything(tmp_path):
    db = FakeDb(5)
    idx, _ = _open(tmp_path, db)
    ids, _ = idx.search(db.vecs[0], 50)[0]
    assert sorted(ids.tolist()) == [1, 2, 3, 4, 5]
