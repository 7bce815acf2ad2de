"""The library database: SQLite in WAL mode, the single source of truth.

Every change is one transaction, so a crash (even SIGKILL or a power cut, thanks to
``synchronous=FULL``) leaves either the whole batch or none of it. The HNSW index files are derived
from the ``embeddings`` table and can always be rebuilt from it.

Threading: one write connection guarded by a lock (the single writer), and one read connection
per thread; WAL lets readers see the last committed state while a write is in progress.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vector_studio_gui.core.crashpoints import crashpoint
from vector_studio_gui.core.errors import LibraryError
from vector_studio_gui.core.locking import WriterLock
from vector_studio_gui.core.ocr import OcrLine, search_aliases
from vector_studio_gui.core.types import Item

#: 1: items, paths, thumbs, spaces, embeddings. 2: OCR lines, ocr_done markers, the text_fts
#: keyword index (FTS5) kept in sync by triggers; libraries of schema 1 are upgraded on open.
SCHEMA_VERSION = 2
DB_NAME = "library.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    hash TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    format TEXT NOT NULL DEFAULT '',
    added REAL NOT NULL,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS items_added ON items(added);
-- the few charts with a note, found without scanning every item on each search
CREATE INDEX IF NOT EXISTS items_noted ON items(note) WHERE note != '';
CREATE TABLE IF NOT EXISTS paths (
    path TEXT PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    size INTEGER NOT NULL,
    mtime REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS paths_item ON paths(item_id);
CREATE TABLE IF NOT EXISTS thumbs (
    item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS spaces (
    name TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    role TEXT NOT NULL,
    dim INTEGER NOT NULL,
    info TEXT NOT NULL DEFAULT '{}',
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS embeddings (
    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    space TEXT NOT NULL REFERENCES spaces(name),
    source TEXT NOT NULL DEFAULT 'image',
    vector BLOB NOT NULL,
    PRIMARY KEY (item_id, space, source)
);
-- covers item_id, so listing a space's ids (index open at 1M items) never reads the vectors
CREATE INDEX IF NOT EXISTS embeddings_space_item ON embeddings(space, source, item_id);
DROP INDEX IF EXISTS embeddings_space;
CREATE TABLE IF NOT EXISTS ocr_lines (
    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    line INTEGER NOT NULL,
    text TEXT NOT NULL,
    box TEXT NOT NULL,
    confidence REAL NOT NULL,
    PRIMARY KEY (item_id, line)
);
CREATE TABLE IF NOT EXISTS ocr_done (
    item_id INTEGER PRIMARY KEY REFERENCES items(id) ON DELETE CASCADE,
    engine TEXT NOT NULL,
    done REAL NOT NULL,
    error TEXT NOT NULL DEFAULT ''
);
"""

#: The file name of a path (after the last / or \), in SQL, for the keyword index's name column.
_BASENAME = ("substr(path, length(rtrim(path, replace(replace(path, '/', ''), '\\', ''))) + 1)")

#: Keyword index: one row per item (rowid = item id) over its OCR text, note and file names.
#: Triggers keep the note and the names in sync in the same transaction as every change to
#: items and paths (inserts, note edits, removals, relocations, cascades); the OCR column is
#: written with the OCR lines (``set_ocr``).
_TEXT_SCHEMA = f"""
CREATE VIRTUAL TABLE IF NOT EXISTS text_fts USING fts5(
    ocr, note, name, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER IF NOT EXISTS text_fts_item_ai AFTER INSERT ON items BEGIN
    INSERT INTO text_fts(rowid, ocr, note, name) VALUES (NEW.id, '', NEW.note, '');
END;
CREATE TRIGGER IF NOT EXISTS text_fts_item_au AFTER UPDATE OF note ON items BEGIN
    UPDATE text_fts SET note = NEW.note WHERE rowid = NEW.id;
END;
CREATE TRIGGER IF NOT EXISTS text_fts_item_ad AFTER DELETE ON items BEGIN
    DELETE FROM text_fts WHERE rowid = OLD.id;
END;
CREATE TRIGGER IF NOT EXISTS text_fts_path_ai AFTER INSERT ON paths BEGIN
    UPDATE text_fts SET name = (SELECT ifnull(group_concat({_BASENAME}, ' '), '') FROM paths
                                WHERE item_id = NEW.item_id) WHERE rowid = NEW.item_id;
END;
CREATE TRIGGER IF NOT EXISTS text_fts_path_ad AFTER DELETE ON paths BEGIN
    UPDATE text_fts SET name = (SELECT ifnull(group_concat({_BASENAME}, ' '), '') FROM paths
                                WHERE item_id = OLD.item_id) WHERE rowid = OLD.item_id;
END;
CREATE TRIGGER IF NOT EXISTS text_fts_path_au AFTER UPDATE OF path, item_id ON paths BEGIN
    UPDATE text_fts SET name = (SELECT ifnull(group_concat({_BASENAME}, ' '), '') FROM paths
                                WHERE item_id = OLD.item_id) WHERE rowid = OLD.item_id;
    UPDATE text_fts SET name = (SELECT ifnull(group_concat({_BASENAME}, ' '), '') FROM paths
                                WHERE item_id = NEW.item_id) WHERE rowid = NEW.item_id;
END;
"""


@dataclass(frozen=True)
class NewItem:
    path: str
    content_hash: str
    size: int
    mtime: float
    width: int
    height: int
    format: str
    thumbnail: bytes


@dataclass(frozen=True)
class Space:
    name: str
    model: str
    role: str
    dim: int
    info: dict


class Library:
    """A library folder: ``library.sqlite3`` plus derived ``index/`` files and a writer lock."""

    def __init__(self, root: Path, *, read_only: bool = False) -> None:
        self.root = Path(root)
        self.read_only = read_only
        self.db_path = self.root / DB_NAME
        self.index_dir = self.root / "index"
        self._lock = WriterLock(self.root)
        self._write_lock = threading.RLock()
        # Read connections keyed by the OS thread id, not threading.local: PySide gives a QThread
        # a fresh Python thread state per slot call, which would open a new connection each time.
        # The value keeps the Python Thread object where there is one (None for foreign threads)
        # and the memo of values derived from the database (see _memo).
        self._readers: dict[int, tuple[sqlite3.Connection, threading.Thread | None, dict]] = {}
        self._readers_lock = threading.Lock()
        self._writer: sqlite3.Connection | None = None
        if read_only:
            if not self.db_path.exists():
                raise LibraryError(f"no library at {self.root}")
            return
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            self.index_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise LibraryError(f"cannot create the library folder {self.root}: {exc.strerror}") from exc
        self._lock.acquire()
        try:
            self._writer = self._connect(write=True)
            # executescript commits on its own; the schema is idempotent (IF NOT EXISTS)
            self._writer.executescript(_SCHEMA + _TEXT_SCHEMA)
            with self.transaction() as db:
                db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)",
                    (str(SCHEMA_VERSION),),
                )
                db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('created', ?)",
                    (str(time.time()),),
                )
                db.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('library_id', ?)",
                    (uuid.uuid4().hex,),
                )
            version = int(self._scalar("SELECT value FROM meta WHERE key='schema'"))
            if version > SCHEMA_VERSION:
                raise LibraryError(
                    f"the library at {self.root} was made by a newer Vector Studio "
                    f"(schema {version}); update the app to open it"
                )
            if version < SCHEMA_VERSION:
                self._upgrade(version)
        except sqlite3.DatabaseError as exc:
            self.close()
            raise LibraryError(f"the library database {self.db_path} is damaged: {exc}") from exc
        except BaseException:
            self.close()
            raise

    # ----------------------------------------------------------------- connections
    def _connect(self, write: bool) -> sqlite3.Connection:
        try:
            if write:
                db = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False,
                                     timeout=30)
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                # INSERT/UPDATE OR REPLACE on paths must fire the keyword index's delete trigger
                db.execute("PRAGMA recursive_triggers=ON")
            else:
                uri = self.db_path.resolve().as_uri() + "?mode=ro"
                if not os.access(self.root, os.W_OK) and not self.db_path.with_name(
                        DB_NAME + "-wal").exists():
                    # a read-only folder: SQLite cannot create the WAL's shared-memory file, and
                    # nothing can change the database, so it may be read as immutable
                    uri += "&immutable=1"
                db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False,
                                     timeout=30)
                db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # opens the file
        except sqlite3.Error as exc:
            raise LibraryError(f"cannot open the library database {self.db_path}: {exc}") from exc
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=30000")
        return db

    @property
    def _read(self) -> sqlite3.Connection:
        return self._reader()[0]

    def _reader(self) -> tuple[sqlite3.Connection, threading.Thread | None, dict]:
        """This thread's read connection, its owner and its memo of derived values."""
        tid = threading.get_native_id()
        entry = self._readers.get(tid)
        if entry is None:
            db = self._connect(write=False)
            current = threading.current_thread()
            owner = None if isinstance(current, threading._DummyThread) else current
            entry = (db, owner, {})
            with self._readers_lock:
                self._prune_readers()
                self._readers[tid] = entry
        return entry

    def _memo(self, key: tuple, compute: Callable[[sqlite3.Connection], object]) -> object:
        """A value derived from the database, recomputed only after a commit.

        Searches ask for the item count, the notes and the OCR vector count on every keystroke;
        at 100k items those queries cost more than the search itself. SQLite's data_version
        changes on a read connection whenever any connection (this process's writer or another
        process) commits, so a stale value is never served.
        """
        db, _, memo = self._reader()
        version = db.execute("PRAGMA data_version").fetchone()[0]
        hit = memo.get(key)
        if hit is not None and hit[0] == version:
            return hit[1]
        value = compute(db)
        memo[key] = (version, value)
        return value

    def _prune_readers(self) -> None:
        """Close the connections of threads that have ended (loader pools, finished tasks).

        A thread counts as ended only when that is certain: its Python Thread object says so, or
        (Linux) the OS no longer lists it. Threads started by Qt have no reliable Python object,
        so elsewhere their connections stay open until the library closes.
        """
        for tid, (db, owner, _) in list(self._readers.items()):
            if owner is not None:
                ended = not owner.is_alive()
            elif sys.platform.startswith("linux"):
                ended = not os.path.exists(f"/proc/self/task/{tid}")
            else:
                ended = False
            if ended:
                del self._readers[tid]
                with suppress(sqlite3.Error):
                    db.close()

    def open_connections(self) -> int:
        return len(self._readers) + (self._writer is not None)

    def close(self) -> None:
        with self._readers_lock:
            for db, _, _ in self._readers.values():
                with suppress(sqlite3.Error):
                    db.close()
            self._readers.clear()
        if self._writer is not None:
            with self._write_lock:
                with suppress(sqlite3.Error):
                    self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
                self._writer.close()
                self._writer = None
        self._lock.release()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        if self._writer is None:
            raise LibraryError("the library is open read-only")
        with self._write_lock:
            db = self._writer
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise LibraryError(f"cannot write to the library: {_why(exc)}") from exc
            try:
                yield db
                crashpoint("before_commit")
                db.execute("COMMIT")
            except BaseException as exc:
                with suppress(sqlite3.Error):  # SQLite may have rolled back already (disk full)
                    db.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise LibraryError(f"cannot save to the library: {_why(exc)}") from exc
                raise
            crashpoint("after_commit")

    def _scalar(self, sql: str, args: Sequence = ()) -> object:
        row = self._read.execute(sql, args).fetchone()
        return row[0] if row else None

    # ----------------------------------------------------------------- spaces
    def ensure_space(self, name: str, model: str, role: str, dim: int, info: dict | None = None
                     ) -> Space:
        existing = self.space(name)
        if existing is not None:
            if existing.dim != dim:
                raise LibraryError(
                    f"model {model} now produces {dim}-d vectors but this library holds "
                    f"{existing.dim}-d vectors for it; re-encode with "
                    f"'vector-studio library reencode --model {model}'"
                )
            return existing
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO spaces(name, model, role, dim, info, created) "
                "VALUES (?,?,?,?,?,?)",
                (name, model, role, dim, json.dumps(info or {}), time.time()),
            )
        space = self.space(name)
        assert space is not None
        return space

    def space(self, name: str) -> Space | None:
        row = self._read.execute(
            "SELECT name, model, role, dim, info FROM spaces WHERE name=?", (name,)
        ).fetchone()
        return Space(row[0], row[1], row[2], row[3], json.loads(row[4])) if row else None

    def spaces(self) -> list[Space]:
        rows = self._read.execute("SELECT name, model, role, dim, info FROM spaces").fetchall()
        return [Space(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def space_counts(self) -> dict[str, int]:
        rows = self._read.execute(
            "SELECT space, COUNT(*) FROM embeddings WHERE source='image' GROUP BY space"
        ).fetchall()
        return {r[0]: r[1] for r in rows}

    # ----------------------------------------------------------------- lookups
    def lookup_path(self, path: str) -> tuple[int, int, float] | None:
        row = self._read.execute(
            "SELECT item_id, size, mtime FROM paths WHERE path=?", (path,)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def lookup_hash(self, content_hash: str) -> int | None:
        row = self._read.execute("SELECT id FROM items WHERE hash=?", (content_hash,)).fetchone()
        return row[0] if row else None

    def has_embedding(self, item_id: int, space: str, source: str = "image") -> bool:
        row = self._read.execute(
            "SELECT 1 FROM embeddings WHERE item_id=? AND space=? AND source=?",
            (item_id, space, source),
        ).fetchone()
        return row is not None

    def count(self) -> int:
        return self._memo(("count",), lambda db: int(
            db.execute("SELECT COUNT(*) FROM items").fetchone()[0] or 0))

    def item(self, item_id: int) -> Item | None:
        items = self.items([item_id])
        return items[0] if items else None

    def items(self, ids: Sequence[int]) -> list[Item]:
        """Items in the order of ``ids``; ids no longer in the library are left out."""
        if not ids:
            return []
        found: dict[int, Item] = {}
        for chunk in _chunks([int(i) for i in ids], 500):
            marks = ",".join("?" * len(chunk))
            rows = self._read.execute(
                f"SELECT id, hash, size, width, height, added, note FROM items WHERE id IN ({marks})",
                chunk,
            ).fetchall()
            paths: dict[int, list[str]] = {}
            for pid, p in self._read.execute(
                f"SELECT item_id, path FROM paths WHERE item_id IN ({marks}) ORDER BY rowid", chunk
            ):
                paths.setdefault(pid, []).append(p)
            for r in rows:
                ps = tuple(paths.get(r[0], ()))
                found[r[0]] = Item(
                    id=r[0], path=ps[0] if ps else "", paths=ps, content_hash=r[1], size=r[2],
                    width=r[3], height=r[4], added=r[5], note=r[6],
                )
        return [found[i] for i in ids if i in found]

    def browse(self, offset: int = 0, limit: int = 100) -> list[Item]:
        """Items newest first, for showing the library with an empty query."""
        ids = [r[0] for r in self._read.execute(
            "SELECT id FROM items ORDER BY added DESC, id DESC LIMIT ? OFFSET ?", (limit, offset)
        )]
        return self.items(ids)

    def all_ids_newest_first(self) -> list[int]:
        return [r[0] for r in self._read.execute("SELECT id FROM items ORDER BY added DESC, id DESC")]

    def thumbnail(self, item_id: int) -> bytes | None:
        row = self._read.execute("SELECT data FROM thumbs WHERE item_id=?", (item_id,)).fetchone()
        return bytes(row[0]) if row else None

    def all_paths(self) -> list[tuple[str, int]]:
        return [(r[0], r[1]) for r in self._read.execute("SELECT path, item_id FROM paths")]

    def notes(self) -> tuple[tuple[int, str], ...]:
        """(id, note) of every chart with a note, in id order."""
        # sorted here: ORDER BY in SQL would make SQLite scan every item instead of the index
        return self._memo(("notes",), lambda db: tuple(sorted((r[0], r[1]) for r in db.execute(
            "SELECT id, note FROM items WHERE note != ''"))))

    # ----------------------------------------------------------------- embeddings
    def embedding_ids(self, space: str, source: str = "image") -> np.ndarray:
        rows = self._read.execute(
            "SELECT item_id FROM embeddings WHERE space=? AND source=?", (space, source)
        ).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def vectors(self, space: str, ids: Sequence[int] | None = None, source: str = "image",
                chunk: int = 20000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, matrix) chunks of a space's vectors, so a 1M-item rebuild stays in memory bounds."""
        sp = self.space(space)
        if sp is None:
            return
        dim = sp.dim
        if ids is None:
            cur = self._read.execute(
                "SELECT item_id, vector FROM embeddings WHERE space=? AND source=?", (space, source)
            )
            while True:
                rows = cur.fetchmany(chunk)
                if not rows:
                    break
                yield _to_arrays(rows, dim)
        else:
            # int(): sqlite3 binds numpy integers as BLOBs, which match no id at all
            for part in _chunks([int(i) for i in ids], 500):
                marks = ",".join("?" * len(part))
                rows = self._read.execute(
                    f"SELECT item_id, vector FROM embeddings WHERE space=? AND source=? "
                    f"AND item_id IN ({marks})", [space, source, *part],
                ).fetchall()
                if rows:
                    yield _to_arrays(rows, dim)

    def vector(self, item_id: int, space: str, source: str = "image") -> np.ndarray | None:
        row = self._read.execute(
            "SELECT vector FROM embeddings WHERE item_id=? AND space=? AND source=?",
            (item_id, space, source),
        ).fetchone()
        return np.frombuffer(row[0], dtype=np.float32).copy() if row else None

    def ids_missing_space(self, space: str, limit: int | None = None) -> list[int]:
        sql = ("SELECT id FROM items WHERE id NOT IN "
               "(SELECT item_id FROM embeddings WHERE space=? AND source='image') ORDER BY id")
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [r[0] for r in self._read.execute(sql, (space,))]

    def primary_paths(self, ids: Sequence[int]) -> dict[int, list[str]]:
        out: dict[int, list[str]] = {}
        for part in _chunks([int(i) for i in ids], 500):
            marks = ",".join("?" * len(part))
            for iid, p in self._read.execute(
                f"SELECT item_id, path FROM paths WHERE item_id IN ({marks}) ORDER BY rowid", part
            ):
                out.setdefault(iid, []).append(p)
        return out

    # ----------------------------------------------------------------- writes
    def add_items(self, items: Sequence[NewItem], space: str, vectors: np.ndarray
                  ) -> tuple[list[int], list[int]]:
        """Insert new items with their thumbnails, paths and vectors in ONE transaction.

        Returns the new ids and the ids of items that lost their last path to a new item (a file
        whose content changed) and were removed with it.
        """
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        ids: list[int] = []
        now = time.time()
        with self.transaction() as db:
            for k, it in enumerate(items):
                cur = db.execute(
                    "INSERT INTO items(hash, size, width, height, format, added) "
                    "VALUES (?,?,?,?,?,?)",
                    (it.content_hash, it.size, it.width, it.height, it.format, now + k * 1e-6),
                )
                iid = int(cur.lastrowid)
                ids.append(iid)
                db.execute("INSERT INTO thumbs(item_id, data) VALUES (?,?)", (iid, it.thumbnail))
                db.execute(
                    "INSERT OR REPLACE INTO paths(path, item_id, size, mtime) VALUES (?,?,?,?)",
                    (it.path, iid, it.size, it.mtime),
                )
                db.execute(
                    "INSERT INTO embeddings(item_id, space, source, vector) VALUES (?,?,?,?)",
                    (iid, space, "image", vectors[k].tobytes()),
                )
            removed = self._prune_orphans(db)
        return ids, removed

    def add_vectors(self, space: str, ids: Sequence[int], vectors: np.ndarray,
                    source: str = "image") -> None:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO embeddings(item_id, space, source, vector) "
                "SELECT ?,?,?,? WHERE EXISTS (SELECT 1 FROM items WHERE id=?)",
                [(int(i), space, source, vectors[k].tobytes(), int(i)) for k, i in enumerate(ids)],
            )

    def add_path(self, item_id: int, path: str, size: int, mtime: float) -> list[int]:
        """Record another path of an item; returns ids of items this path no longer shows."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO paths(path, item_id, size, mtime) VALUES (?,?,?,?)",
                (path, item_id, size, mtime),
            )
            return self._prune_orphans(db)

    def touch_path(self, path: str, size: int, mtime: float) -> None:
        with self.transaction() as db:
            db.execute("UPDATE paths SET size=?, mtime=? WHERE path=?", (size, mtime, path))

    def set_note(self, item_id: int, note: str, space: str | None = None,
                 vector: np.ndarray | None = None) -> None:
        """Save a note and (when given) its embedding together, so they never disagree."""
        with self.transaction() as db:
            cur = db.execute("UPDATE items SET note=? WHERE id=?", (note, item_id))
            if cur.rowcount == 0:
                raise LibraryError(f"item {item_id} is not in the library")
            db.execute("DELETE FROM embeddings WHERE item_id=? AND source='note'", (item_id,))
            if space is not None and vector is not None and note:
                db.execute(
                    "INSERT INTO embeddings(item_id, space, source, vector) VALUES (?,?,?,?)",
                    (item_id, space, "note", np.asarray(vector, np.float32).tobytes()),
                )

    def remove_items(self, ids: Sequence[int]) -> int:
        with self.transaction() as db:
            n = 0
            for part in _chunks([int(i) for i in ids], 500):
                marks = ",".join("?" * len(part))
                n += db.execute(f"DELETE FROM items WHERE id IN ({marks})", part).rowcount
        return n

    def remove_paths(self, paths: Sequence[str]) -> list[int]:
        """Forget paths; items left with no path are removed. Returns the removed item ids."""
        with self.transaction() as db:
            touched = set()
            for p in paths:
                row = db.execute("SELECT item_id FROM paths WHERE path=?", (p,)).fetchone()
                if row:
                    touched.add(row[0])
                    db.execute("DELETE FROM paths WHERE path=?", (p,))
            removed = []
            for iid in touched:
                if db.execute("SELECT 1 FROM paths WHERE item_id=?", (iid,)).fetchone() is None:
                    db.execute("DELETE FROM items WHERE id=?", (iid,))
                    removed.append(iid)
        return removed

    def relocate(self, old_prefix: str, new_prefix: str) -> int:
        with self.transaction() as db:
            rows = db.execute(
                "SELECT path FROM paths WHERE substr(path, 1, ?) = ?", (len(old_prefix), old_prefix)
            ).fetchall()
            for (p,) in rows:
                db.execute("UPDATE OR REPLACE paths SET path=? WHERE path=?",
                           (new_prefix + p[len(old_prefix):], p))
            self._prune_orphans(db)
        return len(rows)

    def drop_space(self, name: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM embeddings WHERE space=?", (name,))
            db.execute("DELETE FROM spaces WHERE name=?", (name,))

    def _prune_orphans(self, db: sqlite3.Connection) -> list[int]:
        # an INSERT OR REPLACE on paths can move the only path of an item to another item
        rows = db.execute(
            "DELETE FROM items WHERE id NOT IN (SELECT item_id FROM paths) RETURNING id"
        ).fetchall()
        return [r[0] for r in rows]

    # ----------------------------------------------------------------- text (OCR, keywords)
    def _upgrade(self, version: int) -> None:
        """Bring a library of an older schema up to date, in one transaction."""
        with self.transaction() as db:
            if version < 2:
                self._fill_text_index(db)
            db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))

    def _fill_text_index(self, db: sqlite3.Connection) -> None:
        """(Re)build every row of the keyword index from items, paths and OCR lines."""
        db.execute("DELETE FROM text_fts")
        db.execute(
            "INSERT INTO text_fts(rowid, ocr, note, name) SELECT i.id, '', i.note, "
            f"ifnull((SELECT group_concat({_BASENAME}, ' ') FROM paths WHERE item_id = i.id), '') "
            "FROM items i"
        )
        ids = [r[0] for r in db.execute("SELECT DISTINCT item_id FROM ocr_lines")]
        for part in _chunks(ids, 500):
            for iid, lines in self._ocr_lines(db, part).items():
                db.execute("UPDATE text_fts SET ocr=? WHERE rowid=?", (_fts_ocr_text(lines), iid))

    def rebuild_text_index(self) -> int:
        """Rebuild the keyword index from the tables; returns the number of items indexed."""
        with self.transaction() as db:
            self._fill_text_index(db)
        return self.count()

    def has_ocr_text(self) -> bool:
        """Whether any chart's text has been read (cheap: no count)."""
        try:
            return bool(self._scalar("SELECT EXISTS (SELECT 1 FROM ocr_lines)"))
        except sqlite3.OperationalError:  # an old library opened read-only: no OCR tables yet
            return False

    def has_text_index(self) -> bool:
        """False for an old library opened read-only before any writer upgraded it."""
        return self._scalar("SELECT 1 FROM sqlite_master WHERE name='text_fts'") is not None

    def text_index_count(self) -> int:
        return int(self._scalar("SELECT COUNT(*) FROM text_fts") or 0)

    def set_ocr(self, results: Sequence[tuple[int, Sequence[OcrLine], str]], engine: str,
                space: str | None = None, vectors: dict[int, np.ndarray] | None = None) -> None:
        """Store what OCR read for items: ``(item id, lines, error)`` each, marking them done,
        together with the keyword index's OCR text and (when given) the embeddings of the OCR
        text in ``space`` -- one transaction, so they never disagree. Items removed meanwhile
        are skipped."""
        now = time.time()
        vectors = vectors or {}
        with self.transaction() as db:
            for iid, lines, error in results:
                iid = int(iid)
                if db.execute("SELECT 1 FROM items WHERE id=?", (iid,)).fetchone() is None:
                    continue
                db.execute("DELETE FROM ocr_lines WHERE item_id=?", (iid,))
                db.executemany(
                    "INSERT INTO ocr_lines(item_id, line, text, box, confidence) VALUES (?,?,?,?,?)",
                    [(iid, k, ln.text, json.dumps([list(p) for p in ln.box]), float(ln.confidence))
                     for k, ln in enumerate(lines)],
                )
                db.execute("UPDATE text_fts SET ocr=? WHERE rowid=?", (_fts_ocr_text(lines), iid))
                db.execute(
                    "INSERT OR REPLACE INTO ocr_done(item_id, engine, done, error) VALUES (?,?,?,?)",
                    (iid, engine, now, error),
                )
                db.execute("DELETE FROM embeddings WHERE item_id=? AND source='ocr'", (iid,))
                vec = vectors.get(iid)
                if space is not None and vec is not None:
                    db.execute(
                        "INSERT INTO embeddings(item_id, space, source, vector) VALUES (?,?,?,?)",
                        (iid, space, "ocr", np.asarray(vec, np.float32).tobytes()),
                    )

    def ids_without_ocr(self, limit: int | None = None) -> list[int]:
        """Items whose text has not been read yet, oldest first."""
        sql = "SELECT id FROM items WHERE id NOT IN (SELECT item_id FROM ocr_done) ORDER BY id"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [r[0] for r in self._read.execute(sql)]

    def ocr_counts(self) -> dict[str, int]:
        total = self.count()
        if not self.has_text_index():  # an old library opened read-only: nothing read yet
            return {"items": total, "read": 0, "failed": 0, "pending": total, "with_text": 0}
        row = self._read.execute(
            "SELECT COUNT(*), COALESCE(SUM(error != ''), 0) FROM ocr_done"
        ).fetchone()
        return {"items": total, "read": int(row[0]), "failed": int(row[1]),
                "pending": max(0, total - int(row[0])),
                "with_text": int(self._scalar("SELECT COUNT(DISTINCT item_id) FROM ocr_lines") or 0)}

    def ocr_lines(self, ids: Sequence[int]) -> dict[int, list[OcrLine]]:
        """The recognised lines of items (top to bottom); items without text are left out."""
        out: dict[int, list[OcrLine]] = {}
        if not self.has_ocr_text():
            return out
        for part in _chunks([int(i) for i in ids], 500):
            out.update(self._ocr_lines(self._read, part))
        return out

    @staticmethod
    def _ocr_lines(db: sqlite3.Connection, ids: list[int]) -> dict[int, list[OcrLine]]:
        out: dict[int, list[OcrLine]] = {}
        if not ids:
            return out
        marks = ",".join("?" * len(ids))
        for iid, text, box, conf in db.execute(
            f"SELECT item_id, text, box, confidence FROM ocr_lines WHERE item_id IN ({marks}) "
            "ORDER BY item_id, line", ids,
        ):
            pts = tuple((float(x), float(y)) for x, y in json.loads(box))
            out.setdefault(iid, []).append(OcrLine(text, pts, float(conf)))  # type: ignore[arg-type]
        return out

    def ocr_without_embedding(self, space: str, limit: int | None = None) -> list[int]:
        """Items with recognised text but no OCR-text embedding in ``space``."""
        sql = ("SELECT DISTINCT item_id FROM ocr_lines WHERE item_id NOT IN "
               "(SELECT item_id FROM embeddings WHERE space=? AND source='ocr') ORDER BY item_id")
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [r[0] for r in self._read.execute(sql, (space,))]

    def embedding_count(self, space: str, source: str) -> tuple[int, int]:
        """(count, largest rowid) of a space's vectors of one source: changes whenever they do."""
        def compute(db: sqlite3.Connection) -> tuple[int, int]:
            row = db.execute(
                "SELECT COUNT(*), COALESCE(MAX(rowid), 0) FROM embeddings "
                "WHERE space=? AND source=?", (space, source),
            ).fetchone()
            return int(row[0]), int(row[1])
        return self._memo(("embedding_count", space, source), compute)

    def keyword_search(self, match: str, limit: int = 200,
                       weights: tuple[float, float, float] = (1.0, 1.0, 0.5)
                       ) -> list[tuple[int, float]]:
        """(item id, BM25 score, higher is better) for an FTS5 MATCH expression, best first."""
        if not match:
            return []
        w = ", ".join(str(float(x)) for x in weights)
        try:
            rows = self._read.execute(
                f"SELECT rowid, -bm25(text_fts, {w}) AS s FROM text_fts WHERE text_fts MATCH ? "
                "ORDER BY s DESC, rowid LIMIT ?", (match, int(limit)),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise LibraryError(f"cannot search the chart text for {match!r}: {exc}") from exc
        return [(int(r[0]), float(r[1])) for r in rows]

    def text_match_count(self, match: str) -> int:
        """How many items' text matches an FTS5 expression (a term's document frequency)."""
        try:
            return int(self._scalar("SELECT COUNT(*) FROM text_fts WHERE text_fts MATCH ?",
                                    (match,)) or 0)
        except sqlite3.OperationalError as exc:
            raise LibraryError(f"cannot search the chart text for {match!r}: {exc}") from exc

    def text_match_ids(self, match: str) -> set[int]:
        """Ids of every item whose text (OCR, note or file name) matches an FTS5 expression."""
        if not match:
            return set()
        try:
            return {int(r[0]) for r in self._read.execute(
                "SELECT rowid FROM text_fts WHERE text_fts MATCH ?", (match,))}
        except sqlite3.OperationalError as exc:
            raise LibraryError(f"cannot search the chart text for {match!r}: {exc}") from exc

    def texts(self, ids: Sequence[int]) -> dict[int, tuple[str, str, str]]:
        """(OCR text, note, file names) of items, as the keyword index holds them."""
        out: dict[int, tuple[str, str, str]] = {}
        for part in _chunks([int(i) for i in ids], 500):
            marks = ",".join("?" * len(part))
            for r in self._read.execute(
                f"SELECT rowid, ocr, note, name FROM text_fts WHERE rowid IN ({marks})", part
            ):
                out[int(r[0])] = (r[1], r[2], r[3])
        return out

    # ----------------------------------------------------------------- checks
    def integrity_problems(self) -> list[str]:
        """SQLite's own integrity and foreign-key checks, summed up in one line each."""
        try:
            rows = self._read.execute("PRAGMA integrity_check(100)").fetchall()
            fk = self._read.execute("PRAGMA foreign_key_check").fetchall()
        except sqlite3.DatabaseError as exc:
            return [f"the database is damaged: {exc}"]
        errors = [ln.strip() for r in rows if r[0] != "ok" for ln in str(r[0]).splitlines()
                  if ln.strip() and not ln.startswith("***")]
        msgs = []
        if errors:
            msgs.append(f"the database is damaged: {len(errors)} integrity errors "
                        f"(first: {errors[0]})")
        if fk:
            msgs.append(f"{len(fk)} rows point at missing items")
        return msgs

    def repair_indexes(self) -> bool:
        """REINDEX (damage confined to SQLite's indexes is fixed by it); True if now sound."""
        try:
            with self.transaction() as db:
                db.execute("REINDEX")
        except (sqlite3.DatabaseError, LibraryError):
            return False
        return not self.integrity_problems()

    def set_thumbnail(self, item_id: int, data: bytes) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO thumbs(item_id, data) VALUES (?,?)", (item_id, data))

    def meta(self, key: str) -> str | None:
        v = self._scalar("SELECT value FROM meta WHERE key=?", (key,))
        return None if v is None else str(v)

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?,?)", (key, value))


def _why(exc: sqlite3.Error) -> str:
    """The reason of a failed write, with what to do for the common ones."""
    text = str(exc)
    low = text.lower()
    if "full" in low:
        return f"{text} (the disk is full: free some space; nothing of this change was saved)"
    if "readonly" in low or "read-only" in low:
        return f"{text} (the library folder is read-only; nothing of this change was saved)"
    return text


def _fts_ocr_text(lines: Sequence[OcrLine]) -> str:
    """The keyword index's OCR column: the lines, then joined forms of split tickers."""
    text = "\n".join(ln.text for ln in lines)
    aliases = search_aliases(list(lines))
    return text + ("\n" + " ".join(aliases) if aliases else "")


def _chunks(seq: list, n: int) -> Iterator[list]:
    for i in range(0, len(seq), n):
        yield seq[i : i + n]


def _to_arrays(rows: list, dim: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
    return ids, mat
