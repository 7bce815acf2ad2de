"""Nearest-neighbour index of one embedding space: HNSW (hnswlib), derived from the database.

The index file is never trusted blindly: a JSON stamp written after it records its size, CRC and
the library it belongs to. A missing, torn, foreign or corrupt file is rebuilt from SQLite, and a
stale one (the process died after a commit but before the save) is brought up to date by adding
and deleting the difference, so a crash costs seconds, not a full rebuild.

Small libraries are searched exactly (a matrix product is faster than the graph below ~20k
items, and exact by definition); the graph takes over above that.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import hnswlib
import numpy as np

from vector_studio_gui.core.crashpoints import crashpoint
from vector_studio_gui.core.errors import LibraryError

log = logging.getLogger(__name__)

EXACT_LIMIT = 20_000
STAMP_VERSION = 1
M = 16
EF_CONSTRUCTION = 200
EF_SEARCH = 96
#: Graphs grow harder to search with their size: the ef that keeps recall@10 >= 0.99 on
#: clustered 512-d data (benchmarks/bench_index.py, M=16, ef_construction=200): 96 reaches 1.0
#: at 100k but only 0.974 at 1M, where 128 gives 0.986, 200 gives 0.995 and 300 gives 0.997
#: (0.37 -> 0.46 ms per query); at 100k, 64 already gives 1.0 (32: 0.997) at 0.20 instead of
#: 0.25 ms, which matters for a typed query's budget. (items at most, ef) pairs; larger graphs
#: use the last ef.
EF_BY_SIZE = ((150_000, 64), (250_000, EF_SEARCH), (500_000, 160), (2_000_000, 224))
EF_HUGE = 320


def search_ef(items: int, k: int) -> int:
    """The HNSW search breadth for ``k`` results in a graph of ``items`` items."""
    ef = next((e for limit, e in EF_BY_SIZE if items <= limit), EF_HUGE)
    # hnswlib needs ef >= k; a deep request (fusion candidates, minus excluded charts) gets
    # some breadth beyond k so the tail of its list stays accurate
    return max(ef, k + k // 2)


def _crc(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            crc = zlib.crc32(chunk, crc)
    return crc


def _fsync_dir(path: Path) -> None:
    if os.name == "nt":  # pragma: no cover - directories cannot be fsynced on Windows
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def safe_name(space: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", space)


class VectorIndex:
    def __init__(self, directory: Path, space: str, dim: int, library_id: str) -> None:
        self.space = space
        self.dim = dim
        self.library_id = library_id
        self.path = directory / f"{safe_name(space)}.hnsw"
        self.stamp_path = directory / f"{safe_name(space)}.json"
        self._lock = threading.RLock()
        self._index: hnswlib.Index | None = None
        self._deleted: set[int] = set()
        self._live: set[int] = set()
        self._exact: tuple[np.ndarray, np.ndarray] | None = None
        self.dirty = False
        self.rebuilt_reason: str | None = None
        #: (added, removed) when open() found a stale index (saved before the last commits)
        self.caught_up: tuple[int, int] | None = None

    # ----------------------------------------------------------------- lifecycle
    def _new(self, capacity: int) -> hnswlib.Index:
        idx = hnswlib.Index(space="ip", dim=self.dim)
        idx.init_index(max_elements=max(capacity, 1024), ef_construction=EF_CONSTRUCTION, M=M)
        idx.set_ef(EF_SEARCH)
        return idx

    def open(self, db_ids: np.ndarray, fetch: Callable[[np.ndarray | None], object]) -> str:
        """Load the saved index and reconcile it with ``db_ids``; rebuild when unusable.

        ``fetch(ids)`` yields (ids, vectors) chunks from the database (``None`` = all).
        Returns what happened, for logs and ``library check``.
        """
        with self._lock:
            self.caught_up = None
            problem = self._load()
            if problem is None:
                added, removed = self._reconcile(db_ids, fetch)
                if added or removed:
                    self.dirty = True
                    self.caught_up = (added, removed)
                    return f"index updated from the database (+{added} / -{removed})"
                return "index loaded"
            self.rebuilt_reason = problem
            self._build(db_ids, fetch)
            self.dirty = True
            return f"index rebuilt from the database ({problem})"

    def _load(self) -> str | None:
        if not self.path.exists() or not self.stamp_path.exists():
            return "no saved index" if not self.path.exists() else "index stamp missing"
        try:
            stamp = json.loads(self.stamp_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "index stamp unreadable"
        checks = (
            (stamp.get("version") == STAMP_VERSION, "index format changed"),
            (stamp.get("library_id") == self.library_id, "index belongs to another library"),
            (stamp.get("space") == self.space and stamp.get("dim") == self.dim, "wrong space"),
            (stamp.get("size") == self.path.stat().st_size, "index file torn (size differs)"),
        )
        for ok, why in checks:
            if not ok:
                return why
        if _crc(self.path) != stamp.get("crc32"):
            return "index file corrupt (checksum differs)"
        try:
            idx = hnswlib.Index(space="ip", dim=self.dim)
            idx.load_index(str(self.path), max_elements=int(stamp["capacity"]))
            idx.set_ef(EF_SEARCH)
        except Exception as exc:  # hnswlib raises RuntimeError with varying texts
            return f"index unreadable ({exc})"
        self._index = idx
        self._deleted = {int(i) for i in stamp.get("deleted", [])}
        # set(list) of a million ids takes a third of the time of a set comprehension
        self._live = set(np.asarray(idx.get_ids_list(), dtype=np.int64).tolist()) - self._deleted
        self._exact = None
        return None

    def _reconcile(self, db_ids: np.ndarray, fetch: Callable) -> tuple[int, int]:
        want = set(np.asarray(db_ids, dtype=np.int64).tolist())
        extra = self._live - want
        for i in extra:
            self._index.mark_deleted(i)
        self._deleted |= extra
        self._live -= extra
        missing = np.array(sorted(want - self._live), dtype=np.int64)
        added = 0
        if missing.size:
            for ids, vecs in fetch(missing):
                self._add(ids, vecs)
                added += len(ids)
        return added, len(extra)

    def _build(self, db_ids: np.ndarray, fetch: Callable) -> None:
        self._index = self._new(int(len(db_ids) * 1.2) + 1024)
        self._deleted = set()
        self._live = set()
        self._exact = None
        for ids, vecs in fetch(None):
            self._add(ids, vecs)

    def rebuild(self, db_ids: np.ndarray, fetch: Callable) -> None:
        with self._lock:
            self._build(db_ids, fetch)
            self.dirty = True

    # ----------------------------------------------------------------- updates
    def _add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        idx = self._index
        need = idx.element_count + len(ids)
        if need > idx.get_max_elements():
            idx.resize_index(max(need, int(idx.get_max_elements() * 1.5)))
        idx.add_items(np.ascontiguousarray(vecs, dtype=np.float32), np.asarray(ids, np.int64))
        for i in ids:
            self._live.add(int(i))
            self._deleted.discard(int(i))
        self._exact = None

    def add(self, ids: np.ndarray | list[int], vecs: np.ndarray) -> None:
        with self._lock:
            if self._index is None:
                self._index = self._new(1024)
            self._add(np.asarray(ids, np.int64), vecs)
            self.dirty = True

    def remove(self, ids: list[int]) -> None:
        with self._lock:
            for i in ids:
                if int(i) in self._live:
                    self._index.mark_deleted(int(i))
                    self._live.discard(int(i))
                    self._deleted.add(int(i))
            self._exact = None
            self.dirty = True

    # ----------------------------------------------------------------- queries
    def __len__(self) -> int:
        return len(self._live)

    def ids(self) -> set[int]:
        with self._lock:
            return set(self._live)

    def get(self, ids: list[int]) -> np.ndarray:
        with self._lock:
            return np.asarray(self._index.get_items(ids), dtype=np.float32)

    def search(self, queries: np.ndarray, k: int, exact: bool | None = None
               ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query: (ids, cosine scores), best first."""
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        with self._lock:
            n = len(self._live)
            k = min(k, n)
            if k <= 0:
                return [(np.empty(0, np.int64), np.empty(0, np.float32)) for _ in queries]
            if exact if exact is not None else n <= EXACT_LIMIT:
                ids, mat = self._exact_matrix()
                scores = queries @ mat.T
                out = []
                for row in scores:
                    top = np.argpartition(-row, k - 1)[:k] if k < len(row) else np.arange(len(row))
                    top = top[np.argsort(-row[top], kind="stable")]
                    out.append((ids[top], row[top]))
                return out
            self._index.set_ef(search_ef(n, k))
            labels, dists = self._index.knn_query(queries, k=k)
        return [(labels[i].astype(np.int64), 1.0 - dists[i]) for i in range(len(queries))]

    def _exact_matrix(self) -> tuple[np.ndarray, np.ndarray]:
        if self._exact is None:
            ids = np.array(sorted(self._live), dtype=np.int64)
            mat = np.asarray(self._index.get_items(ids), dtype=np.float32).reshape(len(ids), self.dim)
            self._exact = (ids, mat)
        return self._exact

    # ----------------------------------------------------------------- persistence
    def save(self) -> None:
        """Write index then stamp via temp files, fsync and rename: never a torn file in place."""
        with self._lock:
            if self._index is None or not self.dirty:
                return
            tmp = self.path.with_suffix(".hnsw.tmp")
            stamp_tmp = self.stamp_path.with_suffix(".json.tmp")
            try:
                self._write(tmp, stamp_tmp)
            except (OSError, RuntimeError) as exc:  # hnswlib reports write errors as RuntimeError
                for t in (tmp, stamp_tmp):
                    with contextlib.suppress(OSError):
                        t.unlink(missing_ok=True)
                why = getattr(exc, "strerror", None) or str(exc)
                raise LibraryError(
                    f"cannot save the search index {self.path.name}: {why}; the library itself "
                    f"is intact and the index is rebuilt from it when next opened"
                ) from exc
            self.dirty = False

    def _write(self, tmp: Path, stamp_tmp: Path) -> None:
        self._index.save_index(str(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        crashpoint("index_written")
        stamp = {
            "version": STAMP_VERSION,
            "library_id": self.library_id,
            "space": self.space,
            "dim": self.dim,
            "count": len(self._live),
            "capacity": int(self._index.get_max_elements()),
            "deleted": sorted(self._deleted),
            "size": tmp.stat().st_size,
            "crc32": _crc(tmp),
        }
        with open(stamp_tmp, "w", encoding="utf-8") as fh:
            json.dump(stamp, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        crashpoint("index_replaced")
        os.replace(stamp_tmp, self.stamp_path)
        _fsync_dir(self.path.parent)
