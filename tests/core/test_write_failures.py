"""Write failures injected in-process (any platform, any user): a clear error, no partial state.

The database and the index file each get a failure in the middle of a write (disk full), and the
library afterwards holds exactly what was committed before, nothing half-written, and a re-run
completes it. ``tests/e2e/test_disk_faults.py`` does the same with a real full and a real
read-only file system where the machine allows mounting one.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest
from conftest import write_charts

from vector_studio_gui.core.engine import Engine
from vector_studio_gui.core.errors import LibraryError
from vector_studio_gui.core.locking import WriterLock
from vector_studio_gui.modelgen.toy import COLOURS

N = 2 * len(COLOURS)


@pytest.fixture
def charts(tmp_path) -> Path:
    write_charts(tmp_path / "charts", kinds=("bar", "line"), size=(160, 90))
    return tmp_path / "charts"


class FullDisk:
    """Stands in for the writer connection; fails the n-th statement matching ``match``."""

    def __init__(self, db: sqlite3.Connection, match: str, nth: int = 1) -> None:
        self._db, self._match, self._left = db, match, nth

    def execute(self, sql: str, *args):
        if self._match in sql:
            self._left -= 1
            if self._left == 0:
                raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._db, name)


def no_partial_rows(eng: Engine) -> None:
    """Every item is whole: a path, a thumbnail and an image embedding, and vice versa."""
    q = eng.library._read.execute
    space = eng.active_space()
    assert q("SELECT COUNT(*) FROM items WHERE id NOT IN (SELECT item_id FROM paths)").fetchone()[0] == 0
    assert q("SELECT COUNT(*) FROM items WHERE id NOT IN (SELECT item_id FROM thumbs)").fetchone()[0] == 0
    assert q("SELECT COUNT(*) FROM items WHERE id NOT IN (SELECT item_id FROM embeddings "
             "WHERE space=? AND source='image')", (space,)).fetchone()[0] == 0
    assert q("SELECT COUNT(*) FROM paths WHERE item_id NOT IN (SELECT id FROM items)").fetchone()[0] == 0


@pytest.mark.parametrize("statement,nth", [
    ("INSERT INTO items", 5),        # mid-batch: items 1-4 committed, the 3rd batch fails
    ("INSERT INTO thumbs", 6),
    ("INSERT INTO embeddings", 3),
    ("COMMIT", 4),                   # the commit itself fails
])
def test_database_full_mid_ingest_keeps_committed_batches_only(settings, charts, statement, nth):
    settings.embedding.batch_size = 2
    with Engine(settings) as eng:
        eng.ingest([charts / "red-bar.png"])  # the model's space exists; counts start at 1
        committed: list[int] = []
        eng.library._writer = FullDisk(eng.library._writer, statement, nth)
        with pytest.raises(LibraryError, match="disk is full") as err:
            eng.ingest([charts], on_batch=committed.extend)
        assert "nothing of this change was saved" in str(err.value)
        eng.library._writer = eng.library._writer._db
        assert eng.library.count() == 1 + len(committed)
        assert eng.index().ids() == set(eng.library.embedding_ids(eng.active_space()).tolist())
        no_partial_rows(eng)
        assert eng.check().ok
        again = eng.ingest([charts])  # the disk has room again: the rest is added, once
        assert again.added == N - 1 - len(committed)
        assert eng.library.count() == N and len(eng.index()) == N
        no_partial_rows(eng)


def test_database_full_on_note_and_removal_changes_nothing(settings, charts):
    with Engine(settings) as eng:
        eng.ingest([charts])
        item = eng.item_by_path(charts / "red-bar.png")
        eng.set_note(item.id, "before")
        real = eng.library._writer
        eng.library._writer = FullDisk(real, "INSERT INTO embeddings")
        with pytest.raises(LibraryError, match="disk is full"):
            eng.set_note(item.id, "after")
        eng.library._writer = FullDisk(real, "DELETE FROM items")
        with pytest.raises(LibraryError, match="disk is full"):
            eng.remove_paths([charts / "red-bar.png", charts / "blue-bar.png"])
        eng.library._writer = real
        assert eng.item(item.id).note == "before"
        assert eng.library.vector(item.id, eng.text_space(), source="note") is not None
        assert eng.library.count() == N
        assert eng.library.lookup_path(str(charts / "red-bar.png")) is not None
        assert eng.check().ok


class HalfWritingIndex:
    """Wraps the hnswlib index: save_index writes half a file, then the disk is full."""

    def __init__(self, index) -> None:
        self._index = index

    def save_index(self, path: str) -> None:
        self._index.save_index(path)
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name):
        return getattr(self._index, name)


def test_index_save_failing_midway_leaves_the_old_index_and_no_temp_files(settings, charts):
    with Engine(settings) as eng:
        eng.ingest([charts / "red-bar.png", charts / "red-line.png"])
        idx = eng.index()
        before = {p.name: p.read_bytes() for p in idx.path.parent.iterdir()}
        idx._index = HalfWritingIndex(idx._index)
        with pytest.raises(LibraryError, match="No space left on device") as err:
            eng.ingest([charts])
        msg = str(err.value)
        assert "search index" in msg and "intact" in msg and "\n" not in msg
        # the old index and stamp are untouched, and no temp file is left behind
        assert {p.name: p.read_bytes() for p in idx.path.parent.iterdir()} == before
        assert eng.library.count() == N  # every batch was committed before the save failed
        idx._index = idx._index._index  # room on the disk again: closing saves the index
    with Engine(settings) as eng:
        rep = eng.check()
        assert rep.ok and rep.problems == [], rep
        assert len(eng.index()) == N
        assert Path(eng.search_text("blue", k=1).results[0].item.path).name == "blue-bar.png"


def test_index_stamp_rename_failing_is_a_torn_index_that_is_rebuilt(settings, charts, monkeypatch):
    with Engine(settings) as eng:
        eng.ingest([charts / "red-bar.png"])
        real_replace = os.replace

        def replace(src, dst):
            if str(dst).endswith(".json"):
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            return real_replace(src, dst)

        monkeypatch.setattr(os, "replace", replace)
        with pytest.raises(LibraryError, match="search index"):
            eng.ingest([charts])
        assert not list(eng.library.index_dir.glob("*.tmp"))
    # closing could not save either: on disk, the new index file sits beside the old stamp
    monkeypatch.setattr(os, "replace", real_replace)
    with Engine(settings) as eng:
        rep = eng.check()
        assert rep.ok and any("torn" in r or "corrupt" in r for r in rep.repaired), rep
        assert len(eng.index()) == N


def test_lock_file_that_cannot_be_created_is_a_clear_read_only_error(tmp_path, monkeypatch):
    from vector_studio_gui.core.errors import LibraryReadOnlyError

    real_open = os.open

    def ro_open(path, flags, *args):
        if str(path).endswith("writer.lock"):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", ro_open)
    with pytest.raises(LibraryReadOnlyError, match="read-only") as err:
        WriterLock(tmp_path).acquire()
    assert "searched read-only" in str(err.value)
