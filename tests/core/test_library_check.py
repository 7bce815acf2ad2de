"""``library check``: each kind of damage is made on purpose and must be detected (and, where the
data is derived, repaired): SQLite integrity, embeddings for the active model, index vs database
(ids and a sample of vectors), thumbnails, and files that moved or vanished (which
``library relocate`` and ``library prune-missing`` fix)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_charts

from vector_studio_gui.core.engine import Engine
from vector_studio_gui.core.errors import LibraryError
from vector_studio_gui.core.index import VectorIndex
from vector_studio_gui.modelgen.toy import COLOURS

N = len(COLOURS)


@pytest.fixture
def built(settings, tmp_path) -> tuple[object, Path, Path]:
    """(settings, library folder, charts folder) of a closed library of N charts."""
    charts = tmp_path / "charts"
    write_charts(charts, size=(160, 90))
    with Engine(settings) as eng:
        eng.ingest([charts])
        assert eng.check().ok
    return settings, Path(settings.library.path), charts


def raw(library: Path) -> sqlite3.Connection:
    db = sqlite3.connect(library / "library.sqlite3", isolation_level=None)
    db.execute("PRAGMA foreign_keys=OFF")
    return db


def cli(env, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vector_studio_gui", *map(str, args)],
                          env=env, capture_output=True, text=True, timeout=120)


# ----------------------------------------------------------------------------- SQLite itself
def _scribble_on(library: Path, name: str) -> None:
    """Garble the cell pointers of the b-tree page of table or index ``name``."""
    db = raw(library)
    root = db.execute("SELECT rootpage FROM sqlite_master WHERE name=?", (name,)).fetchone()[0]
    page = db.execute("PRAGMA page_size").fetchone()[0]
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    path = library / "library.sqlite3"
    data = bytearray(path.read_bytes())
    off = (root - 1) * page
    data[off + 8: off + 200] = bytes(range(192))
    path.write_bytes(bytes(data))


def test_damaged_sqlite_index_is_detected_and_rebuilt(built):
    settings, lib, _ = built
    _scribble_on(lib, "paths_item")
    with Engine(settings) as eng:
        report = eng.check(repair=False)
        assert not report.ok
        assert any("integrity errors" in p for p in report.problems)
        assert all("\n" not in p for p in report.problems)
        report = eng.check()
        assert report.ok, report.problems
        assert any("REINDEX" in r for r in report.repaired)


def test_damaged_sqlite_table_is_reported_not_a_crash(built, cli_env):
    settings, lib, _ = built
    _scribble_on(lib, "items")
    with Engine(settings) as eng:
        report = eng.check()
    assert not report.ok and "damaged" in report.problems[0]
    proc = cli(cli_env, "library", "check", "--json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert not json.loads(proc.stdout)["ok"]
    for args in (("search", "red"), ("library", "info"), ("ingest", lib.parent / "charts")):
        proc = cli(cli_env, *args)  # any command: at most one line, never a traceback
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) <= 1


def test_not_a_database_at_all(built):
    settings, lib, _ = built
    for extra in lib.glob("library.sqlite3-*"):
        extra.unlink()
    (lib / "library.sqlite3").write_bytes(b"this is not SQLite" * 100)
    with pytest.raises(LibraryError, match="not a database"):
        Engine(settings)


def test_rows_pointing_at_missing_items(built):
    settings, lib, _ = built
    db = raw(lib)
    db.execute("INSERT INTO thumbs(item_id, data) VALUES (9999, x'00')")
    db.close()
    with Engine(settings) as eng:
        report = eng.check()
    assert not report.ok and any("missing items" in p for p in report.problems)


# ----------------------------------------------------------------------------- embeddings
def test_item_without_embedding_for_the_active_model(built):
    settings, lib, charts = built
    db = raw(lib)
    db.execute("DELETE FROM embeddings WHERE item_id = (SELECT MIN(item_id) FROM embeddings)")
    db.close()
    with Engine(settings) as eng:
        report = eng.check()
        assert not report.ok
        assert any("1 items have no embedding" in p and "reencode --model toy-clip" in p
                   for p in report.problems), report.problems
        eng.reencode("toy-clip")  # what the message says fixes it
        assert eng.check().ok
        assert len(eng.index()) == N


# ----------------------------------------------------------------------------- index vs db
def _tamper_index(settings, lib: Path, change) -> None:
    with Engine(settings) as eng:
        space = eng.active_space()
        dim = eng.library.space(space).dim
        lib_id = eng.library.meta("library_id")
        db_ids = eng.library.embedding_ids(space)
    idx = VectorIndex(lib / "index", space, dim, lib_id)
    assert idx.open(db_ids, lambda ids: iter(())) == "index loaded"
    change(idx)
    idx.dirty = True
    idx.save()  # a well-formed, correctly stamped file that says something else


def test_index_with_an_extra_and_a_missing_item_is_brought_in_line(built):
    settings, lib, _ = built

    def change(idx):
        idx.add([424242], np.ones((1, idx.dim), np.float32) / np.sqrt(idx.dim))
        idx.remove([min(idx.ids() - {424242})])

    _tamper_index(settings, lib, change)
    with Engine(settings) as eng:
        report = eng.check()
        assert report.ok and any("+1 / -1" in r for r in report.repaired), report
        assert eng.index().ids() == set(eng.library.embedding_ids(eng.active_space()).tolist())


def test_index_vectors_that_differ_from_the_database(built):
    settings, lib, _ = built

    def change(idx):
        victim = sorted(idx.ids())[0]
        idx.remove([victim])
        idx._index.unmark_deleted(victim)  # same id, live again, with another vector
        idx._deleted.discard(victim)
        idx._live.add(victim)
        idx._index.add_items(-idx.get([victim]), np.array([victim]))

    _tamper_index(settings, lib, change)
    with Engine(settings) as eng:
        report = eng.check(repair=False)
        assert not report.ok and "index vectors differ from the database" in report.problems
        report = eng.check()
        assert report.ok and any("vectors differed" in r for r in report.repaired), report
    with Engine(settings) as eng:
        assert eng.check().repaired == []  # the repair was saved


@pytest.mark.parametrize("damage", ["truncate", "garbage", "foreign", "stamp"])
def test_damaged_or_foreign_index_file_is_rebuilt(built, tmp_path, damage):
    settings, lib, charts = built
    index_file = next((lib / "index").glob("*.hnsw"))
    if damage == "truncate":
        index_file.write_bytes(index_file.read_bytes()[:100])
    elif damage == "garbage":
        index_file.write_bytes(b"\x00" * index_file.stat().st_size)
    elif damage == "foreign":  # an index file copied from another library
        other = settings.__class__.from_dict(settings.to_dict())
        other.library.path = str(tmp_path / "other")
        with Engine(other) as eng:
            eng.ingest([charts / "red-bar.png"])
        shutil.rmtree(lib / "index")
        shutil.copytree(tmp_path / "other" / "index", lib / "index")
    else:
        next((lib / "index").glob("*.json")).write_text("{")
    with Engine(settings) as eng:
        report = eng.check()
        assert report.ok and any("index rebuilt" in r for r in report.repaired), report
        assert len(eng.index()) == N


# ----------------------------------------------------------------------------- thumbnails
def test_damaged_thumbnails_are_detected_and_made_again(built):
    settings, lib, charts = built
    db = raw(lib)
    ids = [r[0] for r in db.execute("SELECT item_id FROM thumbs ORDER BY item_id LIMIT 3")]
    db.execute("UPDATE thumbs SET data = substr(data, 1, 200) WHERE item_id = ?", (ids[0],))
    db.execute("UPDATE thumbs SET data = x'00' WHERE item_id = ?", (ids[1],))
    db.execute("UPDATE thumbs SET data = x'ffd8ff' WHERE item_id = ?", (ids[2],))
    path_of_third = db.execute("SELECT path FROM paths WHERE item_id=?", (ids[2],)).fetchone()[0]
    db.close()
    Path(path_of_third).unlink()  # this one cannot be made again
    with Engine(settings) as eng:
        report = eng.check(repair=False)
        assert any(p.startswith("3 thumbnails cannot be decoded") for p in report.problems)
        report = eng.check()
        assert any("2 damaged thumbnails made again" in r for r in report.repaired), report
        assert any(p.startswith("1 thumbnails cannot be decoded") for p in report.problems)
        assert report.missing_files == [path_of_third]
        assert eng.thumbnail(ids[0])[:2] == b"\xff\xd8"
        eng.remove_paths(report.missing_files)  # what prune-missing does
        assert eng.check().ok


# ----------------------------------------------------------------------------- files
def test_missing_files_reported_and_fixed_by_relocate_and_prune(built, cli_env, tmp_path):
    _, lib, charts = built
    moved = tmp_path / "moved"
    charts.rename(moved)
    check = json.loads(cli(cli_env, "library", "check", "--json").stdout)
    assert check["ok"] and len(check["missing_files"]) == N  # files elsewhere: not corruption
    out = cli(cli_env, "library", "relocate", charts, moved, "--json")
    assert out.returncode == 0 and json.loads(out.stdout)["relocated"] == N
    check = json.loads(cli(cli_env, "library", "check", "--json").stdout)
    assert check["missing_files"] == [] and check["ok"]
    (moved / "red-bar.png").unlink()
    (moved / "blue-bar.png").unlink()
    check = json.loads(cli(cli_env, "library", "check", "--json").stdout)
    assert sorted(Path(p).name for p in check["missing_files"]) == ["blue-bar.png", "red-bar.png"]
    out = json.loads(cli(cli_env, "library", "prune-missing", "--json").stdout)
    assert out["removed_items"] == 2
    check = json.loads(cli(cli_env, "library", "check", "--json").stdout)
    assert check["ok"] and check["missing_files"] == [] and check["items"] == N - 2
    res = json.loads(cli(cli_env, "search", "red", "-k", "10", "--json").stdout)
    assert all(Path(r["path"]).name != "red-bar.png" for r in res["results"])
