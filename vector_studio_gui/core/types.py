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
    #: the chart's text that matched the query's words: OCR lines, then the note and file name
    matched: tuple[str, ...] = ()


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
class OcrProgress:
    """Progress of the reading-text pass (the second pass, after the visual index)."""

    done: int  # charts finished (read, or failed)
    total: int  # charts this pass set out to read
    path: str  # chart just finished
    rate: float  # charts per second since start
    eta_s: float | None
    failed: int

    @property
    def message(self) -> str:
        return f"Reading chart text: {self.done}/{self.total}"


@dataclass
class OcrReport:
    read: int = 0  # charts whose text was read (also those with no text in them)
    with_text: int = 0  # of those, charts where some text was found
    lines: int = 0
    embedded: int = 0  # OCR texts embedded with the text model
    failed: list[FailedFile] = field(default_factory=list)
    pending: int = 0  # charts still waiting to be read (cancelled, or limited)
    took_s: float = 0.0
    charts_per_s: float = 0.0
    cancelled: bool = False
    skipped: str = ""  # why the pass did nothing (switched off in the settings), or ""

    def summary(self) -> str:
        if self.skipped:
            return f"chart text not read: {self.skipped}"
        text = (f"read the text of {self.read} charts ({self.with_text} with text, "
                f"{len(self.failed)} failed)")
        if self.pending:
            text += f"; {self.pending} still to read"
        return text + (" (cancelled)" if self.cancelled else "")


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
