"""Turning what the user dropped (files, folders, symlinks) into a list of candidate images.

Folders are walked recursively with ``os.scandir`` (fast on huge folders), symlinked folders are
followed once (loops are detected by real path), and every problem becomes a reported entry
instead of an exception, so one unreadable folder never stops an ingest.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from vector_studio_gui.core.imaging import SUPPORTED_EXTENSIONS, UNSUPPORTED_EXTENSIONS


@dataclass
class ScanResult:
    files: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)


def scan(paths: Iterable[str | os.PathLike], cancel=None) -> ScanResult:
    out = ScanResult()
    seen_dirs: set[str] = set()
    seen_files: set[str] = set()

    def add_file(p: str, explicit: bool) -> None:
        ext = os.path.splitext(p)[1].lower()
        if ext in UNSUPPORTED_EXTENSIONS:
            out.problems.append((p, UNSUPPORTED_EXTENSIONS[ext]))
            return
        if ext not in SUPPORTED_EXTENSIONS and not explicit:
            return  # folders hold all sorts of files; only explicit files are sniffed
        key = os.path.abspath(p)
        if key not in seen_files:
            seen_files.add(key)
            out.files.append(key)

    def walk(d: str) -> None:
        real = os.path.realpath(d)
        if real in seen_dirs:
            return  # symlink loop, or the same folder dropped twice
        seen_dirs.add(real)
        try:
            entries = sorted(os.scandir(d), key=lambda e: e.name)
        except PermissionError:
            out.problems.append((d, "cannot read folder: permission denied"))
            return
        except OSError as exc:
            out.problems.append((d, f"cannot read folder: {exc.strerror or exc}"))
            return
        for entry in entries:
            if cancel is not None and cancel.is_set():
                return
            try:
                if entry.is_dir(follow_symlinks=True):
                    walk(entry.path)
                elif entry.is_file(follow_symlinks=True):
                    add_file(entry.path, explicit=False)
                elif entry.is_symlink():
                    out.problems.append((entry.path, "broken symbolic link"))
            except OSError as exc:
                out.problems.append((entry.path, f"cannot read: {exc.strerror or exc}"))

    for raw in paths:
        p = os.fspath(raw)
        if os.path.isdir(p):
            walk(p)
        elif os.path.isfile(p):
            add_file(p, explicit=True)
        elif os.path.lexists(p):
            out.problems.append((p, "not a regular file or folder (broken link?)"))
        else:
            out.problems.append((p, "no such file or folder"))
    return out


def to_abs(path: str | Path) -> str:
    return os.path.abspath(os.fspath(path))
