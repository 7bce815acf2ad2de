"""Ingest pipeline sizing (throughput itself is measured in benchmarks/bench_ingest.py)."""

from __future__ import annotations

import os

from vector_studio_gui.core import ingest


def test_one_loader_per_core(monkeypatch):
    for cores, want in ((1, 1), (2, 2), (4, 4), (16, 8)):
        monkeypatch.setattr(os, "cpu_count", lambda c=cores: c)
        assert ingest.default_loader_threads() == want
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert ingest.default_loader_threads() == 2
