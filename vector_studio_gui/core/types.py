"""Plain data passed between the engine, the CLI and the GUI.

They are frozen dataclasses of builtins so they cross threads (and Qt signals as ``object``)
without sharing mutable state.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Item:
    """One distinct image in the library (identical content under several paths is one item)."""

    id: int
    path: str  # the primary (first seen, still existing if possible) path
    paths: tuple[str, ...]
    content_hash: str
    size: int
    width: int
    height: int
    added: float  # unix time
    note: str = ""


@dataclass(frozen=True)
class SearchResult:
    item: Item
    score: float  # fused score, higher is better; cosine for single-signal searches
    #: per-signal cosine (or keyword) scores that contributed, e.g. {"image": 0.31, "note": 0.72}
    signals: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResponse:
    query: str
    model: str
    took_ms: float
    results: list[SearchResult]
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class IngestProgress:
    done: int  # files finished (added, unchanged, duplicate or failed)
    total: int  # files found so far (grows while folders are scanned)
    path: str  # file just finished
    rate: float  # files per second since start
    eta_s: float | None
    added: int
    failed: int


@dataclass(frozen=True)
class FailedFile:
    path: str
    error: str


@dataclass
class IngestReport:
    added: int = 0
    unchanged: int = 0
    duplicates: int = 0
    failed: list[FailedFile] = field(default_factory=list)
    took_s: float = 0.0
    images_per_s: float = 0.0
    cancelled: bool = False
    #: ids committed during this run, in commit order
    item_ids: list[int] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.added} added"]
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicates")
        if self.unchanged:
            parts.append(f"{self.unchanged} unchanged")
        parts.append(f"{len(self.failed)} skipped")
        text = ", ".join(parts)
        return text + (" (cancelled)" if self.cancelled else "")


@dataclass(frozen=True)
class CheckReport:
    ok: bool
    items: int
    problems: list[str]
    repaired: list[str] = field(default_factory=list)
    missing_files: list[str] = field(default_factory=list)
