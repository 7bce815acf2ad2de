"""Reading the text inside charts (titles, tickers, axis labels, legends) with RapidOCR.

``rapidocr`` ships the PP-OCR detection / recognition / orientation ONNX models inside its wheel
and runs them on ONNX Runtime, so reading text needs no network and no extra download. It is
imported and its sessions are created lazily, on the first chart read, with ONNX Runtime limited
to the configured number of threads.

OCR is roughly ten times slower per chart than the CLIP image tower, so the engine runs it as a
second, resumable pass after the visual index is updated (``Engine.read_text_pass``).
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from vector_studio_gui.core.errors import ImageError, VectorStudioError

log = logging.getLogger(__name__)

#: Identifies what produced the stored lines (kept with each item's ``ocr_done`` marker).
OCR_ENGINE = "rapidocr-ppocr"
#: Lines recognised with less confidence than this are dropped (RapidOCR's own default).
MIN_CONFIDENCE = 0.5

Point = tuple[float, float]


class OcrError(VectorStudioError):
    """The OCR engine is missing or failed on an image."""


@dataclass(frozen=True)
class OcrLine:
    """One line of text found in an image: its text, its box (4 corner points, clockwise from
    the top left, in the image's pixels) and the recogniser's confidence (0-1)."""

    text: str
    box: tuple[Point, Point, Point, Point]
    confidence: float

    @property
    def height(self) -> float:
        """Height of the box (the text's size; for rotated labels the shorter side)."""
        (x0, y0), (x1, y1), (x2, y2), _ = self.box
        w = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5
        h = ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
        return min(w, h) if w and h else max(w, h)

    def to_json(self) -> dict:
        return {"text": self.text, "confidence": round(self.confidence, 4),
                "box": [[round(x, 1), round(y, 1)] for x, y in self.box]}

    @classmethod
    def from_json(cls, data: dict) -> OcrLine:
        box = tuple((float(x), float(y)) for x, y in data["box"])
        return cls(str(data["text"]), box, float(data["confidence"]))  # type: ignore[arg-type]


class OcrReader:
    """A RapidOCR engine created on first use; one call at a time (its sessions are shared)."""

    def __init__(self, threads: int = 0, *, min_confidence: float = MIN_CONFIDENCE) -> None:
        self.threads = max(0, int(threads))
        self.min_confidence = min_confidence
        self._engine = None
        self._lock = threading.Lock()

    def _load(self):
        if self._engine is None:
            try:
                from rapidocr import RapidOCR
            except ImportError as exc:  # pragma: no cover - a dependency; only broken installs
                raise OcrError(
                    "reading chart text needs the 'rapidocr' package "
                    f"(pip install rapidocr): {exc}"
                ) from exc
            n = self.threads if self.threads > 0 else -1
            params = {
                "Global.log_level": "error",
                "Global.text_score": self.min_confidence,
                "EngineConfig.onnxruntime.intra_op_num_threads": n,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
            try:
                self._engine = RapidOCR(params=params)
            except Exception as exc:
                raise OcrError(f"cannot start the OCR engine: {exc}") from exc
            _quiet_rapidocr()
        return self._engine

    def read(self, image: str | os.PathLike | bytes | Image.Image | np.ndarray) -> list[OcrLine]:
        """The text lines found in ``image`` (a path, encoded bytes, a PIL image or an RGB array),
        top to bottom. Raises :class:`ImageError` for unreadable images and :class:`OcrError`
        when the OCR engine fails."""
        bgr = _to_bgr(image)
        with self._lock:
            engine = self._load()
            try:
                out = engine(bgr)
            except Exception as exc:
                raise OcrError(f"text recognition failed: {exc}") from exc
        return _lines(out, self.min_confidence)


_default: OcrReader | None = None
_default_lock = threading.Lock()


def default_reader(threads: int = 0) -> OcrReader:
    """A process-wide reader (the OCR models load once per process)."""
    global _default
    with _default_lock:
        if _default is None or _default.threads != max(0, int(threads)):
            _default = OcrReader(threads)
        return _default


def read_text(image: str | os.PathLike | bytes | Image.Image | np.ndarray, *, threads: int = 0
              ) -> list[OcrLine]:
    """Read the text of one chart with the process-wide reader."""
    return default_reader(threads).read(image)


# ----------------------------------------------------------------------------- helpers
def _to_bgr(image: str | os.PathLike | bytes | Image.Image | np.ndarray) -> np.ndarray:
    if isinstance(image, np.ndarray):
        arr = image
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        if arr.ndim != 3 or arr.shape[2] not in (3, 4):
            raise ImageError(f"expected an RGB image array, got shape {arr.shape}")
        arr = arr[:, :, :3]
    else:
        if isinstance(image, Image.Image):
            rgb = image if image.mode == "RGB" else image.convert("RGB")
        else:
            from vector_studio_gui.core.imaging import open_image

            src = image if isinstance(image, bytes) else Path(os.fspath(image))
            rgb = open_image(src)
        arr = np.asarray(rgb)
    return np.ascontiguousarray(arr[:, :, ::-1], dtype=np.uint8)


def _lines(out: object, min_confidence: float) -> list[OcrLine]:
    txts = getattr(out, "txts", None) or ()
    scores = getattr(out, "scores", None) or ()
    boxes = getattr(out, "boxes", None)
    if boxes is None or not len(txts):
        return []
    lines = []
    for text, score, box in zip(txts, scores, boxes, strict=False):
        text = " ".join(str(text).split())
        if not text or float(score) < min_confidence:
            continue
        pts = tuple((round(float(x), 1), round(float(y), 1)) for x, y in np.asarray(box)[:4])
        lines.append(OcrLine(text, pts, round(float(score), 4)))  # type: ignore[arg-type]
    lines.sort(key=lambda ln: (min(y for _, y in ln.box), min(x for x, _ in ln.box)))
    return lines


def _quiet_rapidocr() -> None:
    # RapidOCR logs every model load at INFO through its own handler; keep the CLI's stderr clean
    for name in ("RapidOCR", "rapidocr"):
        logging.getLogger(name).setLevel(logging.ERROR)


_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def words(text: str) -> list[str]:
    """Lower-case word tokens, split like SQLite FTS5's ``unicode61`` tokenizer splits them."""
    return [w.lower() for w in _WORD.findall(text)]


def text_for_embedding(lines: list[OcrLine], max_chars: int = 600) -> str:
    """The chart's words worth a sentence embedding: the largest text (the title) first, tick
    labels that are only numbers left out, duplicates once."""
    seen: set[str] = set()
    parts = []
    for ln in sorted(lines, key=lambda ln: -ln.height):
        t = ln.text.strip()
        key = t.lower()
        if key in seen or not re.search(r"[^\W\d_]{2,}", t):
            continue
        seen.add(key)
        parts.append(t)
    return ". ".join(parts)[:max_chars]


def search_aliases(lines: list[OcrLine]) -> list[str]:
    """Joined forms of split tickers, so ``XAUUSD`` finds a chart that reads ``XAU/USD``."""
    out = []
    for ln in lines:
        for m in re.finditer(r"\b[A-Za-z0-9]{2,}(?:[/\-.:_][A-Za-z0-9]{2,})+\b", ln.text):
            joined = re.sub(r"[/\-.:_]", "", m.group(0))
            if not joined.isdigit():
                out.append(joined)
    return out
