"""Crash safety: the real CLI, SIGKILLed at many points, never loses or corrupts a library.

Each kill point runs ``python -m vector_studio_gui ...`` in a subprocess against a fresh copy of
a library and kills it with SIGKILL, either deterministically at a named crash point
(``VECTOR_STUDIO_TEST_KILL_AT=after_commit:3``, see ``core/crashpoints.py``) or after a random
delay once the first batch was reported committed. Afterwards:

* the library opens (the writer lock died with the process) and ``library check`` reports it
  consistent; a stale or torn index is rebuilt from SQLite and reported as repaired;
* every item the killed ingest reported committed (``--print-commits``) is there, with its
  embedding, under its paths, and in the index;
* running the same command again completes the rest, without duplicates.

The operations: ingest (with a duplicate file), note editing, removal, relocation, index rebuild
(index save) and re-encoding with another model. Each test asserts how many kill points really
killed the process; ``KILLS`` collects the total for the README.
"""

from __future__ import annotations

import copy
import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runner import run_cli

from vector_studio_gui.core.crashpoints import ENV as KILL_ENV
from vector_studio_gui.core.engine import Engine
from vector_studio_gui.core.models import ModelStore
from vector_studio_gui.modelgen.toy import COLOURS, build_toy_clip, toy_chart_image

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

KINDS = ("bar", "line")
UNIQUE = len(COLOURS) * len(KINDS)  # 12 distinct charts, plus one duplicate file
KILLS: dict[str, int] = {}


# ----------------------------------------------------------------------------- helpers
def cli(env: dict, *args, kill_at: str | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess:
    env = dict(env)
    env.pop(KILL_ENV, None)
    if kill_at:
        env[KILL_ENV] = kill_at
    return run_cli(env, *args, check_rc=None, timeout=timeout)


def reported_commits(stderr: str) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for line in stderr.splitlines():
        if line.startswith('{"committed"'):
            for c in json.loads(line)["committed"]:
                out[c["id"]] = c["paths"]
    return out


def was_killed(proc: subprocess.CompletedProcess | subprocess.Popen) -> bool:
    return proc.returncode == -signal.SIGKILL


def count_kill(name: str, killed: int) -> None:
    KILLS[name] = KILLS.get(name, 0) + killed


@pytest.fixture
def crash_env(settings, cli_env, tmp_path):
    """(env, settings) for small batches: 12 charts make 6 commits."""
    settings = copy.deepcopy(settings)
    settings.embedding.batch_size = 2
    cfg = tmp_path / "crash-settings.json"
    settings.save(cfg)
    env = dict(cli_env, VECTOR_STUDIO_CONFIG=str(cfg))
    return env, settings


@pytest.fixture
def charts(tmp_path) -> Path:
    folder = tmp_path / "charts"
    folder.mkdir()
    for colour in COLOURS:
        for kind in KINDS:
            toy_chart_image(colour, size=(160, 90), kind=kind).save(folder / f"{colour}-{kind}.png")
    shutil.copy(folder / "red-bar.png", folder / "zz-copy-of-red-bar.png")
    return folder


def at(settings, library: Path):
    s = copy.deepcopy(settings)
    s.library.path = str(library)
    return s


def cli_check(env: dict, library: Path) -> dict:
    proc = cli(env, "library", "check", "--json", "--library", library)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


def assert_consistent(settings, library: Path, committed: dict[int, list[str]] | None = None
                      ) -> Engine:
    """Open (the lock died with the killer's victim), check, and find every committed item."""
    eng = Engine(at(settings, library))
    try:
        rep = eng.check()
        assert rep.ok, rep.problems
        space = eng.active_space()
        if space is not None:
            db_ids = set(eng.library.embedding_ids(space).tolist())
            idx = eng.index(space)  # None: killed before the model's space was recorded
            assert (idx.ids() if idx is not None else set()) == db_ids
            assert not eng.library.ids_missing_space(space)
        for iid, paths in (committed or {}).items():
            assert eng.library.item(iid) is not None, f"committed item {iid} lost"
            assert eng.library.has_embedding(iid, space)
            assert iid in idx.ids()
            for p in paths:
                assert eng.library.lookup_path(p)[0] == iid
    except BaseException:
        eng.close()
        raise
    return eng


def assert_complete_ingest(eng: Engine, charts: Path) -> None:
    before = eng.library.count()
    report = eng.ingest([charts])
    assert not report.failed
    assert report.added == UNIQUE - before
    assert eng.library.count() == UNIQUE
    assert len(eng.index()) == UNIQUE
    # the duplicate file is one item with two paths, whatever the kill did
    item = eng.item_by_path(charts / "zz-copy-of-red-bar.png")
    assert set(item.paths) == {str(charts / "red-bar.png"), str(charts / "zz-copy-of-red-bar.png")}
    hashes = [it.content_hash for it in eng.library.items(eng.library.all_ids_newest_first())]
    assert len(hashes) == len(set(hashes)) == UNIQUE


# ----------------------------------------------------------------------------- ingest
INGEST_POINTS = (
    [f"after_commit:{n}" for n in range(1, 11)]
    + [f"before_commit:{n}" for n in (3, 5, 9)]
    + ["index_written:1", "index_replaced:1", "index_written:2", "index_replaced:2"]
)


def test_ingest_killed_at_every_commit_and_index_save(crash_env, charts, tmp_path):
    env, settings = crash_env
    killed = 0
    for n, point in enumerate(INGEST_POINTS):
        lib = tmp_path / f"lib-{n}"
        proc = cli(env, "ingest", charts, "--library", lib, "--json", "--print-commits",
                   kill_at=point)
        if not was_killed(proc):  # this run had fewer such points: it must have completed
            assert proc.returncode == 0, proc.stderr
            continue
        killed += 1
        assert proc.stdout == ""  # no final report: it really died mid-way
        committed = reported_commits(proc.stderr)
        if point.startswith("index_"):  # a torn or missing index file: check says it repaired it
            rep = cli_check(env, lib)
            assert rep["ok"] and rep["problems"] == [], rep
            assert any("index" in r for r in rep["repaired"]), rep
        eng = assert_consistent(settings, lib, committed)
        with eng:
            assert_complete_ingest(eng, charts)
    count_kill("ingest (crash points)", killed)
    assert killed >= 16, f"only {killed} kill points were reached"


def test_ingest_killed_after_random_delays_then_rerun_by_the_cli(crash_env, charts, tmp_path):
    env, settings = crash_env
    rng = random.Random(20240601)
    lib = tmp_path / "lib"
    killed = 0
    for _ in range(5):  # each run continues on the library the previous kill left behind
        # remove the items again so every run has work to do
        if lib.exists():
            with Engine(at(settings, lib)) as eng:
                eng.remove_paths([p for p, _ in eng.library.all_paths()
                                  if rng.random() < 0.6])
        proc = subprocess.Popen(
            [sys.executable, "-m", "vector_studio_gui", "ingest", str(charts), "--library",
             str(lib), "--print-commits"],
            env={k: v for k, v in env.items() if k != KILL_ENV},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        lines = []
        for line in proc.stderr:  # the first committed batch: the ingest is under way
            lines.append(line)
            if line.startswith('{"committed"'):
                break
        time.sleep(rng.uniform(0.0, 0.06))
        proc.send_signal(signal.SIGKILL)
        _, rest = proc.communicate(timeout=30)
        committed = reported_commits("".join(lines) + (rest or ""))
        killed += was_killed(proc)
        assert_consistent(settings, lib, committed).close()
    count_kill("ingest (random delays)", killed)
    assert killed >= 1  # the others may have finished before the signal: also fine
    rerun = cli(env, "ingest", charts, "--library", lib, "--json")
    assert rerun.returncode == 0, rerun.stderr
    with assert_consistent(settings, lib) as eng:
        assert eng.library.count() == UNIQUE
        assert len(eng.library.all_paths()) == UNIQUE + 1


# ----------------------------------------------------------------------------- other changes
@pytest.fixture
def base_library(crash_env, charts, tmp_path) -> Path:
    _, settings = crash_env
    lib = tmp_path / "base"
    with Engine(at(settings, lib)) as eng:
        eng.ingest([charts])
        eng.set_note(eng.item_by_path(charts / "blue-bar.png").id, "old note")
    return lib


def fresh_copy(base: Path, tmp_path: Path, name: str) -> Path:
    return Path(shutil.copytree(base, tmp_path / name))


def test_note_editing_killed(crash_env, charts, base_library, tmp_path):
    env, settings = crash_env
    target = charts / "blue-bar.png"
    killed = 0
    # commits: open (1), the note with its embedding (2)
    for n, point in enumerate(["before_commit:1", "after_commit:1", "before_commit:2",
                               "after_commit:2"]):
        lib = fresh_copy(base_library, tmp_path, f"note-{n}")
        proc = cli(env, "note", target, "breakout above the range", "--library", lib,
                   kill_at=point)
        if not was_killed(proc):
            assert proc.returncode == 0, proc.stderr
            continue
        killed += 1
        with assert_consistent(settings, lib) as eng:
            item = eng.item_by_path(target)
            assert item.note in ("old note", "breakout above the range")  # old or new, never torn
            vec = eng.library.vector(item.id, eng.text_space(), source="note")
            assert vec is not None  # a note never loses its embedding
            eng.set_note(item.id, "breakout above the range")
            top = eng.search_text("breakout range", k=1).results[0]
            assert top.item.id == item.id and "note" in top.signals
    count_kill("note editing", killed)
    assert killed >= 3


def test_removal_and_relocation_killed(crash_env, charts, base_library, tmp_path):
    env, settings = crash_env
    gone = [charts / "red-bar.png", charts / "green-line.png", charts / "purple-bar.png"]
    killed = 0
    # commits: open (1), the removal (2); the index file is brought up to date on next open
    for n, point in enumerate(["before_commit:2", "after_commit:2"]):
        lib = fresh_copy(base_library, tmp_path, f"remove-{n}")
        proc = cli(env, "library", "remove", *gone, "--library", lib, kill_at=point)
        assert was_killed(proc), proc.stderr
        killed += 1
        with assert_consistent(settings, lib) as eng:
            known = [eng.library.lookup_path(str(p)) is not None for p in gone]
            assert all(known) or not any(known)  # one transaction: all or nothing
            removed = not any(known)
            assert eng.library.count() == UNIQUE - (2 if removed else 0)  # red-bar has a copy
            names = {Path(r.item.path).name for r in eng.search_text("green", k=20).results}
            assert ("green-line.png" in names) != removed
    moved = tmp_path / "moved-charts"
    shutil.copytree(charts, moved)
    for n, point in enumerate(["before_commit:2", "after_commit:2"]):
        lib = fresh_copy(base_library, tmp_path, f"relocate-{n}")
        proc = cli(env, "library", "relocate", charts, moved, "--library", lib, kill_at=point)
        assert was_killed(proc), proc.stderr
        killed += 1
        with assert_consistent(settings, lib) as eng:
            paths = [p for p, _ in eng.library.all_paths()]
            under_new = [p.startswith(str(moved)) for p in paths]
            assert all(under_new) or not any(under_new)
            assert len(paths) == UNIQUE + 1
    count_kill("removal / relocation", killed)
    assert killed >= 4


def test_index_save_killed_during_rebuild(crash_env, base_library, tmp_path):
    env, settings = crash_env
    killed = 0
    for n, point in enumerate(["index_written:1", "index_replaced:1"]):
        lib = fresh_copy(base_library, tmp_path, f"rebuild-{n}")
        index_dir = lib / "index"
        proc = cli(env, "library", "rebuild-index", "--library", lib, kill_at=point)
        assert was_killed(proc), proc.stderr
        killed += 1
        rep = cli_check(env, lib)
        assert rep["ok"], rep
        if point == "index_replaced:1":  # new index file, old stamp: torn pair on disk
            assert any("torn" in r or "corrupt" in r for r in rep["repaired"]), rep
        with assert_consistent(settings, lib) as eng:
            assert len(eng.index()) == UNIQUE
        if point == "index_written:1":
            assert any(".tmp" in r for r in rep["repaired"]), rep
        assert not list(index_dir.glob("*.tmp"))  # no partial file is left behind
    count_kill("index save", killed)


def test_reencode_killed_then_resumed(crash_env, charts, base_library, tmp_path, models_dir):
    env, settings = crash_env
    ModelStore(models_dir).import_folder(build_toy_clip(tmp_path / "wide-src", dim=24),
                                         "wide", "clip")
    killed = 0
    # commits: open (1), new space (2), six batches of two (3-8), switch (9)
    for n, point in enumerate(["after_commit:2", "before_commit:3", "after_commit:5",
                               "after_commit:8", "before_commit:9", "after_commit:9",
                               "index_replaced:1", "index_written:2"]):
        lib = fresh_copy(base_library, tmp_path, f"reencode-{n}")
        proc = cli(env, "library", "reencode", "--model", "wide", "--library", lib,
                   kill_at=point)
        if not was_killed(proc):
            assert proc.returncode == 0, proc.stderr
            continue
        killed += 1
        with assert_consistent(settings, lib) as eng:
            active = eng.active_space()
            assert active in ("toy-clip", "wide")
            if active == "toy-clip":  # not switched: the old model still answers everything
                top = eng.search_image(charts / "red-bar.png", k=1).results[0]
                assert Path(top.item.path).name.startswith("red-") and top.score > 0.99
            else:  # switched only once every item had its new vector
                assert eng.library.space_counts()["wide"] == UNIQUE
            if n % 4 != 0:  # resume in-process (the same engine call), to keep the loop fast
                out = eng.reencode("wide")
        if n % 4 == 0:  # resume with the CLI, which also switches the config
            rerun = cli(env, "library", "reencode", "--model", "wide", "--library", lib, "--json")
            assert rerun.returncode == 0, rerun.stderr
            out = json.loads(rerun.stdout)
        assert out["switched"] and out["missing_files"] == []
        wide = at(settings, lib)
        wide.embedding.clip_model = "wide"
        with assert_consistent(wide, lib) as eng:
            assert eng.active_space() == "wide"
            assert eng.library.space_counts()["wide"] == UNIQUE
            top = eng.search_image(charts / "red-bar.png", k=1).results[0]
            assert Path(top.item.path).name.startswith("red-") and top.score > 0.99
    count_kill("re-encoding", killed)
    assert killed >= 6


def test_report_kill_counts():
    """Runs last in this file: the kill points that really killed a process, in total."""
    total = sum(KILLS.values())
    print(f"kill points that SIGKILLed the CLI: {total} {KILLS}")
    if len(KILLS) == 6:  # the whole file ran
        assert total >= 36
