"""Ingest: scan, hash, decode and encode images in batches, committing each batch atomically.

The pipeline keeps the model busy: loader threads read, hash and decode the next images (Pillow
and numpy release the GIL) while the calling thread runs inference on the current batch. Files
are hashed before decoding, so unchanged files and duplicates cost no decoding and no inference.
Each batch is one SQLite transaction, added to the index only after it is committed; a cancel or
a crash keeps every committed batch.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from vector_studio_gui.core import priority
from vector_studio_gui.core.errors import ImageError, LibraryError, VectorStudioError
from vector_studio_gui.core.imaging import DecodedImage, load_image
from vector_studio_gui.core.index import VectorIndex
from vector_studio_gui.core.library import Library, NewItem
from vector_studio_gui.core.scanning import scan
from vector_studio_gui.core.types import FailedFile, IngestProgress, IngestReport

log = logging.getLogger(__name__)

ProgressFn = Callable[[IngestProgress], None]
BatchFn = Callable[[list[int]], None]


@dataclass
class _Job:
    path: str
    kind: str  # "new", "dup", "unchanged", "failed", "encode_existing"
    size: int = 0
    mtime: float = 0.0
    content_hash: str = ""
    item_id: int | None = None
    decoded: DecodedImage | None = None
    error: str = ""


def default_loader_threads() -> int:
    """One image loader per core (up to 8). Inference runs on every core too, but the loaders
    must be able to take all of them whenever the model waits for images: with one loader
    fewer than cores, int8 ingest (where decoding is a larger share) ran 11% slower on 2 cores
    (29.5 vs 32.8 images/s) and fp32 was no faster (benchmarks/bench_ingest.py)."""
    return max(1, min(8, os.cpu_count() or 2))


def read_file(path: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise ImageError("file disappeared before it could be read") from None
    except PermissionError:
        raise ImageError("cannot read file: permission denied") from None
    except IsADirectoryError:
        raise ImageError("is a folder, not a file") from None
    except OSError as exc:
        raise ImageError(f"cannot read file: {exc.strerror or exc}") from None


class Ingestor:
    def __init__(self, library: Library, index: VectorIndex, space: str,
                 encoder_factory: Callable[[], object], *, batch_size: int = 8,
                 thumb_size: int = 256, image_size: int | Callable[[], int] = 224,
                 loaders: int | None = None) -> None:
        self.library = library
        self.index = index
        self.space = space
        self._encoder_factory = encoder_factory
        self.batch_size = max(1, batch_size)
        self.thumb_size = thumb_size
        self.image_size = image_size
        self.loaders = loaders or default_loader_threads()

    # ----------------------------------------------------------------- per-file work
    def _quick_unchanged(self, path: str) -> _Job | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        known = self.library.lookup_path(path)
        if (known and known[1] == st.st_size and known[2] == st.st_mtime
                and self.library.has_embedding(known[0], self.space)):
            return _Job(path, "unchanged", st.st_size, st.st_mtime, item_id=known[0])
        return None

    def _prepare(self, path: str) -> _Job:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return _Job(path, "failed", error="file disappeared before it could be read")
        except OSError as exc:
            return _Job(path, "failed", error=f"cannot read file: {exc.strerror or exc}")
        try:
            data = read_file(path)
        except ImageError as exc:
            return _Job(path, "failed", error=str(exc))
        if not data:
            return _Job(path, "failed", error="empty file (0 bytes)")
        digest = hashlib.sha256(data).hexdigest()
        job = _Job(path, "new", len(data), st.st_mtime, digest)
        existing = self.library.lookup_hash(digest)
        if existing is not None:
            job.item_id = existing
            if self.library.has_embedding(existing, self.space):
                job.kind = "dup"
                return job
            job.kind = "encode_existing"
        try:
            job.decoded = load_image(data, image_size=self.image_size, thumb_size=self.thumb_size)
        except ImageError as exc:  # decoded from bytes: the report names the file already
            return _Job(path, "failed", error=str(exc).removeprefix("image bytes: "))
        except MemoryError:
            return _Job(path, "failed", error="image is too large to decode in memory")
        except Exception as exc:  # a decoder bug must not stop the whole run
            log.exception("unexpected error decoding %s", path)
            return _Job(path, "failed", error=f"cannot decode image: {exc}")
        return job

    # ----------------------------------------------------------------- the run
    def run(self, paths: Iterable[str], *, progress: ProgressFn | None = None,
            cancel: threading.Event | None = None, on_batch: BatchFn | None = None
            ) -> IngestReport:
        cancel = cancel or threading.Event()
        t0 = time.perf_counter()
        report = IngestReport()
        scanned = scan(paths, cancel)
        for p, why in scanned.problems:
            report.failed.append(FailedFile(p, why))
        total = len(scanned.files) + len(scanned.problems)
        done = len(scanned.problems)
        encoder = None
        pending: list[_Job] = []
        run_hashes: dict[str, int | None] = {}  # hashes seen this run -> item id once committed
        waiting_dups: list[_Job] = []

        def tick(path: str) -> None:
            if progress is None:
                return
            elapsed = max(time.perf_counter() - t0, 1e-6)
            rate = done / elapsed
            eta = (total - done) / rate if rate > 0 else None
            progress(IngestProgress(done, total, path, rate, eta, report.added, len(report.failed)))

        def flush() -> None:
            nonlocal encoder, pending, waiting_dups
            if not pending:
                return
            batch, pending = pending, []
            if encoder is None:
                encoder = self._encoder_factory()
            pixels = np.stack([j.decoded.pixels for j in batch])
            vectors = encoder.encode(pixels)
            new = [j for j in batch if j.kind == "new"]
            existing = [j for j in batch if j.kind == "encode_existing"]
            new_vecs = vectors[[k for k, j in enumerate(batch) if j.kind == "new"]]
            ids: list[int] = []
            if new:
                ids, removed = self.library.add_items([
                    NewItem(j.path, j.content_hash, j.size, j.mtime, j.decoded.width,
                            j.decoded.height, j.decoded.format, j.decoded.thumbnail)
                    for j in new
                ], self.space, new_vecs)
                self.index.add(ids, new_vecs)
                if removed:
                    self.index.remove(removed)
                for j, iid in zip(new, ids, strict=True):
                    run_hashes[j.content_hash] = iid
            if existing:
                ex_vecs = vectors[[k for k, j in enumerate(batch) if j.kind == "encode_existing"]]
                ex_ids = [j.item_id for j in existing]
                self.library.add_vectors(self.space, ex_ids, ex_vecs)
                for j in existing:
                    self.library.add_path(j.item_id, j.path, j.size, j.mtime)
                self.index.add(ex_ids, ex_vecs)
                ids += ex_ids
                for j in existing:
                    run_hashes[j.content_hash] = j.item_id
            report.added += len(new) + len(existing)
            report.item_ids += ids
            still_waiting = []
            for j in waiting_dups:
                iid = run_hashes.get(j.content_hash)
                if iid is None:
                    still_waiting.append(j)
                else:
                    self._attach(j, iid)
            waiting_dups = still_waiting
            if on_batch and ids:
                on_batch(ids)

        work: list[str] = []
        for path in scanned.files:
            quick = self._quick_unchanged(path)
            if quick is not None:
                report.unchanged += 1
                done += 1
            else:
                work.append(path)
        tick("")

        if work and callable(self.image_size):
            self.image_size = self.image_size()  # only now: unchanged files load no model
        # loaders run at this thread's priority (lowered when a GUI runs the ingest)
        pool = ThreadPoolExecutor(max_workers=self.loaders, thread_name_prefix="vs-loader",
                                  initializer=priority.pool_initializer())
        window: deque[Future] = deque()
        save_error: LibraryError | None = None
        it = iter(work)
        try:
            def top_up() -> None:
                while len(window) < self.batch_size * 2 + self.loaders:
                    nxt = next(it, None)
                    if nxt is None:
                        return
                    window.append(pool.submit(self._prepare, nxt))

            top_up()
            while window and not cancel.is_set():
                job = window.popleft().result()
                top_up()
                if job.kind == "failed":
                    report.failed.append(FailedFile(job.path, job.error))
                elif job.kind == "dup":
                    if self._attach(job, job.item_id):
                        report.duplicates += 1
                    else:  # same file, same content, only its timestamp changed
                        report.unchanged += 1
                elif job.content_hash in run_hashes:
                    report.duplicates += 1
                    iid = run_hashes[job.content_hash]
                    if iid is None:
                        waiting_dups.append(job)
                    else:
                        self._attach(job, iid)
                else:
                    run_hashes[job.content_hash] = None
                    pending.append(job)
                    if len(pending) >= self.batch_size:
                        flush()
                done += 1
                tick(job.path)
            flush()  # on cancel too: images already decoded are kept, not thrown away
            tick("")  # the final figures, after the last batch is committed
            report.cancelled = cancel.is_set()
        finally:
            for f in window:
                f.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            try:
                self.index.save()
            except LibraryError as exc:  # raised below, unless an earlier error is on its way
                save_error = exc
        if save_error is not None:
            raise save_error
        report.took_s = time.perf_counter() - t0
        report.images_per_s = report.added / report.took_s if report.took_s > 0 else 0.0
        return report

    def _attach(self, job: _Job, item_id: int) -> bool:
        """Record ``job.path`` as a path of ``item_id``; False when it already was one."""
        known = self.library.lookup_path(job.path)
        if known and known[0] == item_id:
            self.library.touch_path(job.path, job.size, job.mtime)
            return False
        removed = self.library.add_path(item_id, job.path, job.size, job.mtime)
        if removed:
            self.index.remove(removed)
        return True


def ensure_no_error(report: IngestReport) -> None:
    if report.added == 0 and report.failed and not (report.unchanged or report.duplicates):
        raise VectorStudioError(
            f"nothing could be ingested: {len(report.failed)} files failed "
            f"(first: {report.failed[0].path}: {report.failed[0].error})"
        )
