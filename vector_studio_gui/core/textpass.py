"""The reading-text pass: OCR every chart not read yet, after the visual index is updated.

It is resumable: each chart gets an ``ocr_done`` marker in the same transaction as its lines,
its keyword-index text and (when the text model is installed) the embedding of its text, so a
cancelled or crashed pass continues where it stopped. A failure on one chart (an OCR error, a
file gone) is reported and the pass goes on. The next image is decoded in a helper thread while
the current one is read.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from PIL import Image

from vector_studio_gui.core import imaging, priority
from vector_studio_gui.core.encoders import TextEncoder
from vector_studio_gui.core.errors import ImageError, ModelError, VectorStudioError
from vector_studio_gui.core.ingest import read_file
from vector_studio_gui.core.ocr import OCR_ENGINE, OcrLine, OcrReader, text_for_embedding
from vector_studio_gui.core.types import FailedFile, OcrProgress, OcrReport

if TYPE_CHECKING:
    from vector_studio_gui.core.engine import Engine

log = logging.getLogger(__name__)

#: Charts committed per transaction (a cancel loses at most the one being read).
COMMIT_EVERY = 8
#: ... or after this many seconds, whichever comes first.
COMMIT_SECONDS = 2.0


def _open_first(paths: list[str]) -> tuple[Image.Image | None, str, str]:
    """The first readable file of an item: (image, path, error of the last failure)."""
    error = "the item has no file"
    last = ""
    for p in paths:
        last = p
        try:
            return imaging.open_image(read_file(p)), p, ""
        except ImageError as exc:
            error = str(exc)
        except Exception as exc:  # a decoder bug must not stop the pass
            log.exception("unexpected error decoding %s", p)
            error = f"cannot decode image: {exc}"
    return None, last, error


def run_text_pass(engine: Engine, reader: OcrReader, *,
                  progress: Callable[[OcrProgress], None] | None = None,
                  cancel: threading.Event | None = None, limit: int | None = None) -> OcrReport:
    cancel = cancel or threading.Event()
    lib = engine.library
    t0 = time.perf_counter()
    report = OcrReport()
    todo = lib.ids_without_ocr(limit)
    paths = lib.primary_paths(todo)
    total = len(todo)
    enc, space = _text_model(engine)
    batch: list[tuple[int, list[OcrLine], str]] = []
    last_commit = time.perf_counter()

    def commit() -> None:
        nonlocal batch, last_commit
        if not batch:
            return
        vectors = _embed(engine, enc, batch)
        lib.set_ocr(batch, OCR_ENGINE, space if vectors else None, vectors)
        report.embedded += len(vectors)
        batch = []
        last_commit = time.perf_counter()

    def tick(done: int, path: str) -> None:
        if progress is None:
            return
        el = max(time.perf_counter() - t0, 1e-6)
        rate = done / el
        progress(OcrProgress(done, total, path, rate, (total - done) / rate if rate else None,
                             len(report.failed)))

    tick(0, "")
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vs-ocr-loader",
                              initializer=priority.pool_initializer())
    try:
        nxt: Future | None = pool.submit(_open_first, paths.get(todo[0], [])) if todo else None
        for k, iid in enumerate(todo):
            if cancel.is_set():
                break
            assert nxt is not None
            img, path, error = nxt.result()
            nxt = (pool.submit(_open_first, paths.get(todo[k + 1], []))
                   if k + 1 < len(todo) else None)
            if img is None:
                # the file is gone or unreadable now: not marked, so a later pass retries it
                report.failed.append(FailedFile(path or f"item {iid}", error))
            else:
                try:
                    lines = reader.read(img)
                    batch.append((iid, lines, ""))
                    report.read += 1
                    report.lines += len(lines)
                    report.with_text += bool(lines)
                except VectorStudioError as exc:
                    report.failed.append(FailedFile(path, str(exc)))
                    batch.append((iid, [], str(exc)))
                except Exception as exc:  # an OCR bug on one chart must not stop the pass
                    log.exception("unexpected OCR error on %s", path)
                    report.failed.append(FailedFile(path, f"text recognition failed: {exc}"))
                    batch.append((iid, [], f"text recognition failed: {exc}"))
                finally:
                    img.close()
            if len(batch) >= COMMIT_EVERY or time.perf_counter() - last_commit > COMMIT_SECONDS:
                commit()
            tick(k + 1, path)
        commit()
        if not cancel.is_set() and enc is not None:
            report.embedded += _catch_up_embeddings(engine, enc, space, cancel)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    report.cancelled = cancel.is_set()
    report.pending = len(lib.ids_without_ocr())
    report.took_s = time.perf_counter() - t0
    report.charts_per_s = report.read / report.took_s if report.took_s > 0 else 0.0
    return report


def _text_model(engine: Engine) -> tuple[TextEncoder | None, str | None]:
    try:
        return engine.text_encoder(), engine.text_space()
    except ModelError as exc:
        engine.warn(f"chart text is matched by keywords only until the text model works: {exc}")
        return None, None


def _embed(engine: Engine, enc: TextEncoder | None, batch: list[tuple[int, list[OcrLine], str]]
           ) -> dict:
    if enc is None:
        return {}
    texts = [(iid, text_for_embedding(lines)) for iid, lines, _ in batch]
    texts = [(iid, t) for iid, t in texts if t]
    if not texts:
        return {}
    try:
        vecs = enc.encode_passages([t for _, t in texts])
    except VectorStudioError as exc:
        engine.warn(f"chart text could not be embedded (keywords still match it): {exc}")
        return {}
    return {iid: v for (iid, _), v in zip(texts, vecs, strict=True)}


def _catch_up_embeddings(engine: Engine, enc: TextEncoder, space: str | None,
                         cancel: threading.Event, chunk: int = 64) -> int:
    """Embed chart text read before the text model was installed (or changed)."""
    if space is None:
        return 0
    lib = engine.library
    done = 0
    todo = lib.ocr_without_embedding(space)
    for start in range(0, len(todo), chunk):
        if cancel.is_set():
            break
        part = todo[start:start + chunk]
        lines = lib.ocr_lines(part)
        texts = [(iid, text_for_embedding(lines.get(iid, []))) for iid in part]
        texts = [(iid, t) for iid, t in texts if t]
        if not texts:
            continue
        try:
            vecs = enc.encode_passages([t for _, t in texts])
        except VectorStudioError as exc:
            engine.warn(f"chart text could not be embedded (keywords still match it): {exc}")
            break
        lib.add_vectors(space, [iid for iid, _ in texts], vecs, source="ocr")
        done += len(texts)
    return done
