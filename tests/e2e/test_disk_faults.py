"""A real full disk and a real read-only disk, under the CLI (a small tmpfs; needs root).

Skipped where mounting is not allowed (not root, containers without CAP_SYS_ADMIN, macOS,
Windows); ``tests/core/test_write_failures.py`` injects the same failures everywhere.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli
from PIL import Image

from vector_studio_gui.core.engine import Engine
from vector_studio_gui.modelgen.toy import COLOURS, toy_chart_image


def _mount(point: Path, options: str) -> bool:
    if not shutil.which("mount") or not sys.platform.startswith("linux"):
        return False
    point.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)],
                          capture_output=True, text=True)
    return proc.returncode == 0


def _remount(point: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(point)], check=True,
                   capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    point = tmp_path / f"disk-{uuid.uuid4().hex[:8]}"
    if not _mount(point, "size=1m"):
        pytest.skip("cannot mount a small tmpfs here (needs root on Linux)")
    try:
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def cli(env, *args) -> subprocess.CompletedProcess:
    return run_cli(env, *args, check_rc=None)  # the tests read the status themselves


def one_line_error(proc: subprocess.CompletedProcess, *words: str) -> str:
    assert proc.returncode == 1, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error:")
    for w in words:
        assert w in err, err
    return err


def whole_items(settings, library: Path) -> int:
    s = settings.__class__.from_dict(settings.to_dict())
    s.library.path = str(library)
    with Engine(s) as eng:
        rep = eng.check()
        assert rep.ok, rep.problems
        q = eng.library._read.execute
        for sql in ("SELECT COUNT(*) FROM items WHERE id NOT IN (SELECT item_id FROM paths)",
                    "SELECT COUNT(*) FROM items WHERE id NOT IN (SELECT item_id FROM thumbs)",
                    "SELECT COUNT(*) FROM items WHERE id NOT IN "
                    "(SELECT item_id FROM embeddings WHERE source='image')"):
            assert q(sql).fetchone()[0] == 0, sql
        assert not list(eng.library.index_dir.glob("*.tmp"))
        assert eng.index().ids() == set(eng.library.embedding_ids(eng.active_space()).tolist())
        return eng.library.count()


@pytest.fixture
def many_charts(tmp_path) -> Path:
    """48 noisy 256x256 images: their thumbnails (~50 kB each) alone outgrow the 1 MB disk."""
    folder = tmp_path / "many"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(48):
        Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(
            folder / f"c{i:02d}.png", compress_level=1)
    return folder


def test_full_disk_is_a_clear_error_and_keeps_whole_batches(cli_env, settings, small_disk,
                                                            many_charts):
    lib = small_disk / "library"
    proc = cli(cli_env, "ingest", many_charts, "--library", lib, "--print-commits")
    one_line_error(proc.__class__(proc.args, proc.returncode, proc.stdout,
                                  "\n".join(ln for ln in proc.stderr.splitlines()
                                            if not ln.startswith('{"committed"'))),
                   "disk is full")
    committed = [c["id"] for ln in proc.stderr.splitlines() if ln.startswith('{"committed"')
                 for c in json.loads(ln)["committed"]]
    assert 0 < len(committed) < 48
    _remount(small_disk, "size=16m")  # room again: nothing half-written, and the rest completes
    assert whole_items(settings, lib) == len(committed)
    again = cli(cli_env, "ingest", many_charts, "--library", lib, "--json")
    assert again.returncode == 0, again.stderr
    out = json.loads(again.stdout)
    assert out["added"] == 48 - len(committed) and out["unchanged"] == len(committed)
    assert whole_items(settings, lib) == 48


def test_read_only_library_refuses_changes_clearly_and_still_searches(cli_env, settings,
                                                                       small_disk, tmp_path):
    _remount(small_disk, "size=16m")
    lib = small_disk / "library"
    charts = tmp_path / "charts"
    charts.mkdir()
    for colour in COLOURS:
        toy_chart_image(colour, size=(160, 90)).save(charts / f"{colour}.png")
    assert cli(cli_env, "ingest", charts, "--library", lib).returncode == 0
    before = {p.name: p.read_bytes() for p in lib.rglob("*") if p.is_file()}
    _remount(small_disk, "ro")
    one_line_error(cli(cli_env, "ingest", charts, "--library", lib), "read-only")
    one_line_error(cli(cli_env, "note", charts / "red.png", "x", "--library", lib), "read-only")
    one_line_error(cli(cli_env, "library", "remove", charts / "red.png", "--library", lib),
                   "read-only")
    res = cli(cli_env, "search", "red", "--json", "--library", lib)
    assert res.returncode == 0, res.stderr
    assert Path(json.loads(res.stdout)["results"][0]["path"]).name == "red.png"
    info = cli(cli_env, "library", "info", "--json", "--library", lib)
    assert info.returncode == 0 and json.loads(info.stdout)["items"] == len(COLOURS)
    check = cli(cli_env, "library", "check", "--no-repair", "--json", "--library", lib)
    assert check.returncode == 0 and json.loads(check.stdout)["ok"], check.stderr
    _remount(small_disk, "rw")
    assert {p.name: p.read_bytes() for p in lib.rglob("*") if p.is_file()} == before
    assert whole_items(settings, lib) == len(COLOURS)
