"""Per-search values (item count, notes, OCR vector count) are cached until a commit, and the
lists that searches and index opens read come from covering indexes, not full-table scans."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from conftest import write_charts

from vector_studio_gui.core.engine import Engine
from vector_studio_gui.core.library import Library, NewItem


def _add(lib: Library, n: int, start: int = 0) -> list[int]:
    items = [NewItem(f"/c/{k}.png", f"hash{k}", 10, 1.0, 4, 4, "PNG", b"t")
             for k in range(start, start + n)]
    rng = np.random.default_rng(start)
    ids, _ = lib.add_items(items, "clip", rng.standard_normal((n, 4)).astype(np.float32))
    return ids


def _traced(lib: Library) -> list[str]:
    """SQL statements this thread's read connection runs from now on."""
    seen: list[str] = []
    lib._read.set_trace_callback(seen.append)
    return seen


def test_cached_values_follow_every_commit_of_the_writer_and_of_other_connections(tmp_path):
    writer = Library(tmp_path / "lib")
    writer.ensure_space("clip", "toy", "image", 4)
    reader = Library(tmp_path / "lib", read_only=True)  # as a second process would see it
    try:
        ids = _add(writer, 3)
        assert writer.count() == reader.count() == 3
        writer.set_note(ids[1], "gold breakout")
        assert writer.notes() == reader.notes() == ((ids[1], "gold breakout"),)
        _add(writer, 2, start=10)
        writer.set_note(ids[0], "pie of market share")
        writer.set_note(ids[1], "")
        assert writer.count() == reader.count() == 5
        assert reader.notes() == ((ids[0], "pie of market share"),)
        writer.remove_items([ids[0]])
        assert reader.count() == 4 and reader.notes() == ()
        # a raw connection commits behind the library's back: still seen
        raw = sqlite3.connect(writer.db_path)
        raw.execute("UPDATE items SET note='from outside' WHERE id=?", (ids[2],))
        raw.commit()
        raw.close()
        assert reader.notes() == ((ids[2], "from outside"),)
    finally:
        reader.close()
        writer.close()


def test_repeated_searches_do_not_rerun_the_per_search_queries(tmp_path):
    lib = Library(tmp_path / "lib")
    lib.ensure_space("clip", "toy", "image", 4)
    try:
        ids = _add(lib, 5)
        lib.set_note(ids[3], "gold")
        lib.count(), lib.notes(), lib.embedding_count("clip", "image")
        seen = _traced(lib)
        for _ in range(20):
            assert lib.count() == 5
            assert lib.notes() == ((ids[3], "gold"),)
            assert lib.embedding_count("clip", "image")[0] == 5
        assert not [s for s in seen if not s.startswith("PRAGMA data_version")]
        _add(lib, 1, start=50)
        assert lib.count() == 6
        assert any("COUNT(*) FROM items" in s for s in seen)
    finally:
        lib.close()


def test_id_and_note_lists_are_read_from_covering_indexes(tmp_path):
    lib = Library(tmp_path / "lib")
    try:
        db = lib._read

        def plan(sql: str, args: tuple = ()) -> str:
            return " ".join(r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql, args))

        # opening a 1M-item index lists every id: reading the 2 KB vector rows took 5.8 s
        assert "COVERING INDEX" in plan(
            "SELECT item_id FROM embeddings WHERE space=? AND source=?", ("a", "image"))
        # every search lists the notes: a scan of all items cost 9 ms at 100k
        assert "COVERING INDEX items_noted" in plan("SELECT id, note FROM items WHERE note != ''")
    finally:
        lib.close()


def test_a_library_from_before_the_covering_indexes_gets_them_when_opened_for_writing(tmp_path):
    lib = Library(tmp_path / "lib")
    lib.ensure_space("clip", "toy", "image", 4)
    ids = _add(lib, 3)
    lib.set_note(ids[0], "gold")
    lib.close()
    raw = sqlite3.connect(tmp_path / "lib" / "library.sqlite3")
    raw.executescript("DROP INDEX items_noted; DROP INDEX embeddings_space_item;"
                      "CREATE INDEX embeddings_space ON embeddings(space, source);")
    raw.close()
    old = Library(tmp_path / "lib", read_only=True)  # read-only: works without them
    assert old.notes() == ((ids[0], "gold"),)
    assert sorted(old.embedding_ids("clip").tolist()) == ids
    old.close()
    lib = Library(tmp_path / "lib")
    names = {r[0] for r in lib._read.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    lib.close()
    assert {"items_noted", "embeddings_space_item"} <= names
    assert "embeddings_space" not in names


def test_a_note_edited_between_searches_is_found_by_the_next(settings, tmp_path):
    folder = tmp_path / "c"
    write_charts(folder, colours=["red", "blue", "green"])
    with Engine(settings) as eng:
        eng.ingest([folder])
        blue = eng.item_by_path(folder / "blue-bar.png").id
        green = eng.item_by_path(folder / "green-bar.png").id
        assert all("note" not in r.signals for r in eng.search_text("gold breakout").results)
        eng.set_note(blue, "gold breakout")
        assert eng.search_text("gold breakout").results[0].item.id == blue
        eng.set_note(blue, "")
        eng.set_note(green, "gold breakout")
        top = eng.search_text("gold breakout").results[0]
        assert top.item.id == green and "note" in top.signals
        write_charts(folder, colours=["orange"])
        eng.ingest([folder])
        assert eng.search_text("orange", k=1).results[0].item.path == str(
            Path(folder / "orange-bar.png"))
