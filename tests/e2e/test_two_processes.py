"""Two processes on one library: a second writer is refused in one line, readers are served.

The "first" process is a long-lived engine in its own Python process (as the GUI holds one),
driven over stdin; the second is the real CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from cli_runner import run_cli

from vector_studio_gui.core.engine import Engine
from vector_studio_gui.core.errors import LibraryLockedError
from vector_studio_gui.modelgen.toy import COLOURS, toy_chart_image

HOLDER = r"""
import json, sys
from pathlib import Path
from vector_studio_gui.core.engine import Engine
from vector_studio_gui.core.settings import Settings
s = Settings.load(Path(sys.argv[1]))
s.library.path = sys.argv[2]
with Engine(s) as eng:
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "ingest":
            print(json.dumps({"added": eng.ingest([arg]).added}), flush=True)
        elif cmd == "quit":
            break
"""


class Holder:
    def __init__(self, env: dict, library: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, env["VECTOR_STUDIO_CONFIG"], str(library)],
            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True)
        assert self.proc.stdout.readline().strip() == "ready", self.proc.stderr.read()

    def send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def reply(self) -> dict:
        line = self.proc.stdout.readline()
        assert line, self.proc.stderr.read()
        return json.loads(line)

    def quit(self) -> None:
        self.send("quit")
        _, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err


def cli(env, *args) -> subprocess.CompletedProcess:
    return run_cli(env, *args, check_rc=None)  # the tests read the status themselves


def folder_of(tmp_path: Path, name: str, kinds: tuple[str, ...], n_seeds: int = 1) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for colour in COLOURS:
        for kind in kinds:
            for seed in range(n_seeds):
                toy_chart_image(colour, size=(160, 90), kind=kind, seed=seed).save(
                    folder / f"{name}-{colour}-{kind}-{seed}.png")
    return folder


def test_second_writer_refused_readers_served_nothing_corrupted(cli_env, settings, tmp_path):
    lib = tmp_path / "shared-library"
    a = folder_of(tmp_path, "a", ("bar",))
    b = folder_of(tmp_path, "b", ("line",))
    c = folder_of(tmp_path, "c", ("pie",), n_seeds=4)
    holder = Holder(cli_env, lib)
    try:
        holder.send(f"ingest {a}")
        assert holder.reply()["added"] == len(COLOURS)

        # a second writer, from the CLI: refused, one line, naming the other process
        proc = cli(cli_env, "ingest", b, "--library", lib)
        assert proc.returncode == 1
        err = proc.stderr.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert "being changed by another Vector Studio process" in err
        assert f"process {holder.proc.pid}" in err
        for args in (("note", a / "a-red-bar-0.png", "x"), ("library", "remove", a),
                     ("library", "check")):
            refused = cli(cli_env, *args, "--library", lib)
            assert refused.returncode == 1 and "another Vector Studio process" in refused.stderr

        # and a second writer in-process (two windows): refused too; read-only is served
        s = settings.__class__.from_dict(settings.to_dict())
        s.library.path = str(lib)
        with pytest.raises(LibraryLockedError, match="search read-only"):
            Engine(s)
        with Engine(s, read_only=True) as reader:
            assert reader.library.count() == len(COLOURS)

        # readers: search, info and a report-only check work meanwhile
        res = cli(cli_env, "search", "red", "--json", "--library", lib)
        assert res.returncode == 0, res.stderr
        assert Path(json.loads(res.stdout)["results"][0]["path"]).name == "a-red-bar-0.png"
        info = json.loads(cli(cli_env, "library", "info", "--json", "--library", lib).stdout)
        assert info["items"] == len(COLOURS)
        check = cli(cli_env, "library", "check", "--no-repair", "--json", "--library", lib)
        assert check.returncode == 0 and json.loads(check.stdout)["ok"], check.stderr

        # the writer commits more; a new reader sees it (its index file on disk is stale)
        holder.send(f"ingest {b}")
        assert holder.reply()["added"] == len(COLOURS)
        info = json.loads(cli(cli_env, "library", "info", "--json", "--library", lib).stdout)
        assert info["items"] == 2 * len(COLOURS)

        # a reader during an ingest sees only whole items (each has a file, a path, a vector)
        holder.send(f"ingest {c}")
        res = cli(cli_env, "search", "green chart", "-k", "50", "--json", "--library", lib)
        assert res.returncode == 0, res.stderr
        for r in json.loads(res.stdout)["results"]:
            assert Path(r["path"]).is_file()
        assert holder.reply()["added"] == 4 * len(COLOURS)
    finally:
        holder.quit()
    # the writer is gone: the CLI may write now, and everything is consistent
    again = cli(cli_env, "ingest", a, b, c, "--json", "--library", lib)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["unchanged"] == 6 * len(COLOURS)
    check = json.loads(cli(cli_env, "library", "check", "--json", "--library", lib).stdout)
    assert check["ok"] and check["items"] == 6 * len(COLOURS)


def test_two_cli_ingests_racing_on_a_new_library(cli_env, tmp_path):
    lib = tmp_path / "race"
    charts = folder_of(tmp_path, "r", ("bar", "line"), n_seeds=2)
    cmd = [sys.executable, "-m", "vector_studio_gui", "ingest", str(charts), "--library",
           str(lib), "--json"]
    procs = [subprocess.Popen(cmd, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    codes = [p.returncode for p in procs]
    assert 0 in codes, outs
    for code, (_, err) in zip(codes, outs, strict=True):
        if code != 0:  # the loser was refused cleanly; nobody crashed
            assert code == 1 and "another Vector Studio process" in err and "Traceback" not in err
    added = sum(json.loads(out)["added"] for code, (out, _) in zip(codes, outs, strict=True)
                if code == 0)
    assert added == 4 * len(COLOURS)  # no item was added twice
    check = json.loads(cli(cli_env, "library", "check", "--json", "--library", lib).stdout)
    assert check["ok"] and check["items"] == 4 * len(COLOURS)
