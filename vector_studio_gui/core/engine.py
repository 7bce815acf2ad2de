"""The engine: one object the CLI and the GUI drive, owning the library, models and indexes.

Models load lazily (the GUI window appears before any model is read, and re-ingesting unchanged
files loads none). Every method is safe to call from worker threads: the library has a single
writer connection, each index and each ONNX session has its own lock.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from vector_studio_gui.core import hybrid, imaging
from vector_studio_gui.core.catalog import get_spec
from vector_studio_gui.core.encoders import (
    ClipImageEncoder,
    ClipTextEncoder,
    RuntimeOptions,
    TextEncoder,
    orthonormal_projection,
)
from vector_studio_gui.core.errors import (
    Cancelled,
    ImageError,
    LibraryError,
    ModelError,
    SpaceMismatchError,
    VectorStudioError,
)
from vector_studio_gui.core.index import VectorIndex
from vector_studio_gui.core.ingest import Ingestor, read_file
from vector_studio_gui.core.library import Library
from vector_studio_gui.core.models import ModelStore
from vector_studio_gui.core.ocr import OcrLine, OcrReader, default_reader
from vector_studio_gui.core.paths import default_library_dir, default_models_dir
from vector_studio_gui.core.runtime import normalize_provider
from vector_studio_gui.core.search import (
    NOTE_MIN_COSINE,
    Ranked,
    drop_ids,
    exact_top,
    fuse,
)
from vector_studio_gui.core.settings import Settings
from vector_studio_gui.core.textpass import run_text_pass
from vector_studio_gui.core.types import (
    CheckReport,
    IngestProgress,
    IngestReport,
    Item,
    OcrProgress,
    OcrReport,
    SearchResponse,
    SearchResult,
)

log = logging.getLogger(__name__)

PROJECTION_SEED = 20240531
ACTIVE_SPACE = "active_space"


def clip_space_name(model: str, quantized: bool) -> str:
    return f"{model}-int8" if quantized else model


class Engine:
    def __init__(self, settings: Settings | None = None, *, library_dir: Path | None = None,
                 models_dir: Path | None = None, read_only: bool = False,
                 warn: Callable[[str], None] | None = None) -> None:
        self.settings = settings or Settings()
        problems = self.settings.problems()
        if problems:
            raise VectorStudioError("invalid settings: " + "; ".join(problems))
        lib = library_dir or (Path(self.settings.library.path) if self.settings.library.path
                              else default_library_dir())
        mdir = models_dir or (Path(self.settings.models_dir) if self.settings.models_dir
                              else default_models_dir())
        self.models = ModelStore(Path(mdir))
        self.library = Library(Path(lib), read_only=read_only)
        self.warnings: list[str] = []
        self._warn_cb = warn
        self._lock = threading.RLock()
        self._image_enc: ClipImageEncoder | None = None
        self._clip_text_enc: ClipTextEncoder | None = None
        self._text_enc: TextEncoder | None = None
        self._indexes: dict[str, VectorIndex] = {}
        self._notes_cache: tuple[tuple, np.ndarray, np.ndarray] | None = None

    # ----------------------------------------------------------------- basics
    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            log.warning(message)
            if self._warn_cb:
                self._warn_cb(message)

    @property
    def runtime(self) -> RuntimeOptions:
        e = self.settings.embedding
        return RuntimeOptions(normalize_provider(e.execution_provider), e.device_id, e.threads)

    @property
    def clip_model(self) -> str:
        return self.settings.embedding.clip_model

    @property
    def text_model(self) -> str:
        return self.settings.embedding.text_model

    def clip_space(self) -> str:
        return clip_space_name(self.clip_model, self.settings.embedding.quantized)

    def text_space(self) -> str:
        e = self.settings.embedding
        return f"{e.text_model}->{e.project_to}" if e.project_to else e.text_model

    def active_space(self) -> str | None:
        return self.library.meta(ACTIVE_SPACE)

    def provider(self) -> str:
        for enc in (self._image_enc, self._clip_text_enc, self._text_enc):
            if enc is not None:
                return enc.provider
        return normalize_provider(self.settings.embedding.execution_provider)

    def close(self) -> None:
        with self._lock:
            for idx in self._indexes.values():
                try:
                    if not self.library.read_only:
                        idx.save()
                except (OSError, LibraryError) as exc:
                    log.warning("could not save index %s: %s", idx.path, exc)
            self._indexes.clear()
        self.library.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------- encoders
    def _check_space(self) -> None:
        active = self.active_space()
        if active and active != self.clip_space() and self.library.count() > 0:
            sp = self.library.space(active)
            model = sp.model if sp else active
            raise SpaceMismatchError(
                f"this library was encoded with {model} ({sp.dim if sp else '?'}-d vectors) but "
                f"the active CLIP model is {self.clip_model}; re-encode it with "
                f"'vector-studio library reencode --model {self.clip_model}', or use "
                f"--clip-model {model}"
            )

    def image_encoder(self) -> ClipImageEncoder:
        with self._lock:
            if self._image_enc is None:
                files = self.models.clip_files(self.clip_model, self.settings.embedding.quantized)
                enc = ClipImageEncoder(files.vision, self.runtime, self.warn)
                self._register_clip_space(enc, files.name)
                self._image_enc = enc
            return self._image_enc

    def clip_text_encoder(self) -> ClipTextEncoder:
        with self._lock:
            if self._clip_text_enc is None:
                files = self.models.clip_files(self.clip_model, self.settings.embedding.quantized)
                self._clip_text_enc = ClipTextEncoder(
                    files.text, files.tokenizer, self.runtime, self.warn,
                    max_tokens=files.max_tokens,
                )
            return self._clip_text_enc

    def _register_clip_space(self, enc: ClipImageEncoder, model: str) -> None:
        if self.library.read_only:
            return
        self.library.ensure_space(self.clip_space(), model, "clip", enc.dim,
                                  {"quantized": self.settings.embedding.quantized})

    def text_encoder(self) -> TextEncoder:
        with self._lock:
            if self._text_enc is None:
                e = self.settings.embedding
                # int8 applies to the text model only where its int8 export is installed
                q = (e.quantized and get_spec(e.text_model) is not None
                     and self.models.is_installed(e.text_model, True))
                files = self.models.text_files(e.text_model, q, e.text_tokenizer)
                probe = TextEncoder(files.model, files.tokenizer, self.runtime, self.warn,
                                    max_tokens=files.max_tokens,
                                    query_prefix=files.query_prefix,
                                    passage_prefix=files.passage_prefix)
                dim = probe.dim
                if e.text_dim is not None and e.text_dim != dim:
                    raise ModelError(
                        f"{e.text_model} outputs {dim}-d vectors but the configuration says "
                        f"text_dim = {e.text_dim}; fix text_dim in the settings"
                    )
                if e.project_to and e.project_to != dim:
                    probe.projection = orthonormal_projection(dim, e.project_to, PROJECTION_SEED)
                    probe._dim = None  # the cached dim was measured before the projection
                    dim = e.project_to
                if not self.library.read_only:
                    info = {"project_to": e.project_to, "seed": PROJECTION_SEED} if (
                        e.project_to) else {}
                    self.library.ensure_space(self.text_space(), e.text_model, "text", dim, info)
                self._text_enc = probe
            return self._text_enc

    # ----------------------------------------------------------------- index
    def index(self, space: str | None = None) -> VectorIndex | None:
        space = space or self.active_space() or self.clip_space()
        with self._lock:
            idx = self._indexes.get(space)
            if idx is None:
                sp = self.library.space(space)
                if sp is None:
                    return None
                idx = VectorIndex(self.library.index_dir, space, sp.dim,
                                  self.library.meta("library_id") or "")
                what = idx.open(self.library.embedding_ids(space),
                                lambda ids: self.library.vectors(space, ids))
                log.info("%s: %s", space, what)
                if idx.rebuilt_reason and not self.library.read_only:
                    try:
                        idx.save()
                    except LibraryError as exc:  # the rebuilt index still works in memory
                        self.warn(str(exc))
                self._indexes[space] = idx
            return idx

    def rebuild_index(self) -> dict:
        space = self.active_space() or self.clip_space()
        idx = self.index(space)
        if idx is None:
            return {"space": space, "items": 0}
        t0 = time.perf_counter()
        idx.rebuild(self.library.embedding_ids(space), lambda ids: self.library.vectors(space, ids))
        idx.save()
        return {"space": space, "items": len(idx), "took_s": round(time.perf_counter() - t0, 3)}

    # ----------------------------------------------------------------- ingest
    def ingest(self, paths: Sequence[str | os.PathLike], *,
               progress: Callable[[IngestProgress], None] | None = None,
               cancel: threading.Event | None = None,
               on_batch: Callable[[list[int]], None] | None = None) -> IngestReport:
        self._check_space()
        space = self.clip_space()
        if self.active_space() is None:
            self.library.set_meta(ACTIVE_SPACE, space)
        spec = get_spec(self.clip_model)

        def factory() -> ClipImageEncoder:
            return self.image_encoder()

        idx = self._index_for_writing(space)
        ing = Ingestor(self.library, idx, space, factory,
                       batch_size=self.settings.embedding.batch_size,
                       thumb_size=self.settings.library.thumbnail_size,
                       image_size=spec.image_size if spec else self._image_size_probe)
        return ing.run([os.fspath(p) for p in paths], progress=progress, cancel=cancel,
                       on_batch=on_batch)

    def _image_size_probe(self) -> int:
        return self.image_encoder().image_size

    def _index_for_writing(self, space: str) -> VectorIndex:
        idx = self.index(space)
        if idx is None:
            enc = self.image_encoder()  # registers the space with its dim
            del enc
            idx = self.index(space)
        assert idx is not None
        return idx

    # ----------------------------------------------------------------- search
    def _items(self, ranked: list[tuple[int, float, dict[str, float]]]) -> list[SearchResult]:
        items = {it.id: it for it in self.library.items([r[0] for r in ranked])}
        return [SearchResult(items[i], s, sig) for i, s, sig in ranked if i in items]

    def _image_ranked(self, vec: np.ndarray, k: int) -> Ranked:
        idx = self.index()
        if idx is None:
            return Ranked(np.empty(0, np.int64), np.empty(0, np.float32))
        ids, scores = idx.search(vec, k)[0]
        return Ranked(ids, scores)

    def search_text(self, query: str, k: int = 10, min_score: float | None = None, *,
                    signals: Collection[str] | None = None, fusion: str | None = None
                    ) -> SearchResponse:
        """Hybrid search (core/hybrid.py): CLIP image similarity, text-model similarity over
        the charts' OCR text and notes, keyword (BM25) matches, fused; ``"phrase"`` filters and
        ``-word`` excludes. ``signals`` limits the signals used (for evaluation), ``fusion`` is
        "rrf" or "weighted" (default: core.search.DEFAULT_FUSION)."""
        return hybrid.search_text(self, query, k, min_score, signals=signals, fusion=fusion)

    # ----------------------------------------------------------------- chart text (OCR)
    def ocr_reader(self) -> OcrReader:
        """The OCR engine (loaded on first use, shared by the process), limited to the
        configured inference threads."""
        return default_reader(self.settings.embedding.threads)

    def read_text_pass(self, *, progress: Callable[[OcrProgress], None] | None = None,
                       cancel: threading.Event | None = None, limit: int | None = None,
                       force: bool = False) -> OcrReport:
        """Read the text of every chart not read yet (the second pass, after ``ingest``):
        resumable, each chart's failure reported without stopping the pass. Does nothing when
        ``settings.ocr.enabled`` is off, unless ``force``."""
        if self.library.read_only:
            return OcrReport(skipped="the library is open read-only (another process writes "
                                     "to it)")
        if not (self.settings.ocr.enabled or force):
            return OcrReport(pending=len(self.library.ids_without_ocr()),
                             skipped="reading chart text is switched off in the settings")
        return run_text_pass(self, self.ocr_reader(), progress=progress, cancel=cancel,
                             limit=limit)

    def ocr_lines(self, item_id: int) -> list[OcrLine]:
        """The text read in a chart (empty until the reading-text pass reached it)."""
        return self.library.ocr_lines([item_id]).get(item_id, [])

    def _note_ranked(self, query: str, warnings: list[str]) -> Ranked | None:
        notes = self.library.notes()
        if not notes:
            return None
        try:
            enc = self.text_encoder()
        except ModelError as exc:
            warnings.append(f"notes matched by keywords only: {exc}")
            return _keyword_notes(query, notes)
        ids, mat = self._note_matrix(enc, notes)
        qv = enc.encode_queries([query])
        return exact_top(qv, ids, mat, 100, NOTE_MIN_COSINE)

    def _note_matrix(self, enc: TextEncoder, notes: Sequence[tuple[int, str]]
                     ) -> tuple[np.ndarray, np.ndarray]:
        """Ids and vectors of the noted charts, kept until a note or the text model changes."""
        space = self.text_space()
        key = (space, tuple(notes))
        cached = self._notes_cache
        if cached is not None and cached[0] == key:
            return cached[1], cached[2]
        have: dict[int, np.ndarray] = {}
        for ids, mat in self.library.vectors(space, source="note"):
            for i, v in zip(ids.tolist(), mat, strict=True):
                have[i] = v
        missing = [(i, t) for i, t in notes if i not in have]
        if missing:
            vecs = enc.encode_passages([t for _, t in missing])
            for (i, t), v in zip(missing, vecs, strict=True):
                have[i] = v
                if not self.library.read_only:
                    self.library.set_note(i, t, space, v)
        ids = np.array([i for i, _ in notes], np.int64)
        mat = np.stack([have[i] for i in ids.tolist()])
        self._notes_cache = (key, ids, mat)
        return ids, mat

    def search_image(self, source: str | os.PathLike | bytes | Image.Image, k: int = 10,
                     min_score: float | None = None) -> SearchResponse:
        t0 = time.perf_counter()
        self._check_space()
        if self.library.count() == 0:
            return SearchResponse("<image>", self.clip_model, 0.0, [], ("the library is empty",))
        enc = self.image_encoder()
        if isinstance(source, Image.Image):
            img = source
            label = "<image>"
        else:
            data = source if isinstance(source, bytes) else read_file(os.fspath(source))
            label = "<image>" if isinstance(source, bytes) else os.fspath(source)
            img = imaging.open_image(data)
        pixels = imaging.to_clip_tensor(img, enc.image_size)[None]
        vec = enc.encode(pixels)
        ranked = fuse({"image": self._image_ranked(vec, k)}, k, min_score)
        return SearchResponse(label, self.clip_model, (time.perf_counter() - t0) * 1000,
                              self._items(ranked))

    def search_similar(self, item_id: int, k: int = 10, min_score: float | None = None
                       ) -> SearchResponse:
        t0 = time.perf_counter()
        self._check_space()
        space = self.active_space() or self.clip_space()
        vec = self.library.vector(item_id, space)
        if vec is None:
            raise LibraryError(f"item {item_id} is not in the library (or not encoded yet)")
        r = drop_ids(self._image_ranked(vec[None], k + 1), [item_id])
        ranked = fuse({"image": r}, k, min_score)
        return SearchResponse(f"<similar to {item_id}>", self.clip_model,
                              (time.perf_counter() - t0) * 1000, self._items(ranked))

    # ----------------------------------------------------------------- embed
    def embed_text(self, text: str, model: str | None = None) -> tuple[str, np.ndarray]:
        model = model or self.clip_model
        if self._is_clip(model):
            if model == self.clip_model:
                return model, self.clip_text_encoder().encode([text])[0]
            files = self.models.clip_files(model)
            enc = ClipTextEncoder(files.text, files.tokenizer, self.runtime, self.warn,
                                  max_tokens=files.max_tokens)
            return model, enc.encode([text])[0]
        if model == self.text_model:
            return model, self.text_encoder().encode_queries([text])[0]
        files = self.models.text_files(model)
        enc = TextEncoder(files.model, files.tokenizer, self.runtime, self.warn,
                          max_tokens=files.max_tokens, query_prefix=files.query_prefix)
        return model, enc.encode_queries([text])[0]

    def embed_image(self, path: str | os.PathLike, model: str | None = None
                    ) -> tuple[str, np.ndarray]:
        model = model or self.clip_model
        if not self._is_clip(model):
            raise ModelError(f"{model} is a text model; images need a CLIP model")
        if model == self.clip_model:
            enc = self.image_encoder()
        else:
            enc = ClipImageEncoder(self.models.clip_files(model).vision, self.runtime, self.warn)
        img = imaging.open_image(read_file(os.fspath(path)))
        return model, enc.encode(imaging.to_clip_tensor(img, enc.image_size)[None])[0]

    def _is_clip(self, model: str) -> bool:
        spec = get_spec(model)
        if spec is not None:
            return spec.role == "clip"
        man = self.models.manifest(model)
        if man is None:
            if model.endswith(".onnx"):
                return False
            raise ModelError(f"model {model} is not installed or imported")
        return man.get("role") == "clip"

    # ----------------------------------------------------------------- items
    def browse(self, offset: int = 0, limit: int = 200) -> list[Item]:
        return self.library.browse(offset, limit)

    def item(self, item_id: int) -> Item | None:
        return self.library.item(item_id)

    def item_by_path(self, path: str | os.PathLike) -> Item:
        p = os.path.abspath(os.fspath(path))
        known = self.library.lookup_path(p)
        if known is None:
            raise LibraryError(f"{p} is not in the library")
        item = self.library.item(known[0])
        assert item is not None
        return item

    def thumbnail(self, item_id: int) -> bytes | None:
        return self.library.thumbnail(item_id)

    def set_note(self, item_id: int, note: str) -> None:
        note = note.strip()
        vec = None
        space = None
        if note:
            try:
                enc = self.text_encoder()
                vec = enc.encode_passages([note])[0]
                space = self.text_space()
            except ModelError as exc:
                self.warn(f"note saved, but it is matched by keywords only until the text model "
                          f"works: {exc}")
        self.library.set_note(item_id, note, space, vec)

    def remove_items(self, ids: Sequence[int]) -> int:
        n = self.library.remove_items(list(ids))
        self._drop_from_indexes(list(ids))
        return n

    def remove_paths(self, paths: Sequence[str | os.PathLike]) -> dict:
        abs_paths = [os.path.abspath(os.fspath(p)) for p in paths]
        unknown = [p for p in abs_paths if self.library.lookup_path(p) is None]
        removed = self.library.remove_paths([p for p in abs_paths if p not in unknown])
        self._drop_from_indexes(removed)
        return {"removed_items": len(removed), "unknown": unknown}

    def _drop_from_indexes(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._lock:
            for idx in self._indexes.values():
                idx.remove(ids)
                idx.save()

    def relocate(self, old_prefix: str, new_prefix: str) -> int:
        n = self.library.relocate(old_prefix, new_prefix)
        self._resync_indexes()
        return n

    def _resync_indexes(self) -> None:
        with self._lock:
            for space, idx in list(self._indexes.items()):
                idx.open(self.library.embedding_ids(space),
                         lambda ids, s=space: self.library.vectors(s, ids))
                idx.save()

    # ----------------------------------------------------------------- re-encode
    def reencode(self, model: str, *, quantized: bool | None = None,
                 progress: Callable[[IngestProgress], None] | None = None,
                 cancel: threading.Event | None = None) -> dict:
        """Encode every item with ``model`` from its file; switch the library when complete.

        Until the new space is complete the old index keeps answering; a cancelled run keeps what
        it encoded and the next run continues from there.
        """
        quantized = self.settings.embedding.quantized if quantized is None else quantized
        if not self._is_clip(model):
            raise ModelError(f"{model} is a text model; the library's images need a CLIP model")
        files = self.models.clip_files(model, quantized)
        enc = ClipImageEncoder(files.vision, self.runtime, self.warn)
        space = clip_space_name(model, quantized)
        s = enc.image_size
        dim = int(enc.encode(np.zeros((1, 3, s, s), np.float32)).shape[1])
        self.library.ensure_space(space, model, "clip", dim, {"quantized": quantized})
        idx = self.index(space)
        assert idx is not None
        todo = self.library.ids_missing_space(space)
        paths = self.library.primary_paths(todo)
        t0 = time.perf_counter()
        done = encoded = 0
        missing: list[str] = []
        batch_ids: list[int] = []
        batch_px: list[np.ndarray] = []
        cancel = cancel or threading.Event()

        def flush() -> None:
            nonlocal batch_ids, batch_px, encoded
            if batch_ids:
                vecs = enc.encode(np.stack(batch_px))
                self.library.add_vectors(space, batch_ids, vecs)
                idx.add(batch_ids, vecs)
                encoded += len(batch_ids)
                batch_ids, batch_px = [], []

        try:
            for iid in todo:
                if cancel.is_set():
                    break
                img = None
                last = ""
                for p in paths.get(iid, []):
                    last = p
                    try:
                        img = imaging.open_image(read_file(p))
                        break
                    except ImageError:
                        continue
                done += 1
                if img is None:
                    missing.append(last or f"item {iid}")
                else:
                    batch_ids.append(iid)
                    batch_px.append(imaging.to_clip_tensor(img, s))
                    if len(batch_ids) >= self.settings.embedding.batch_size:
                        flush()
                if progress:
                    el = max(time.perf_counter() - t0, 1e-6)
                    rate = done / el
                    progress(IngestProgress(done, len(todo), last, rate,
                                            (len(todo) - done) / rate if rate else None,
                                            encoded, len(missing)))
            flush()  # also on cancel: what was read is kept, nothing is thrown away
        finally:
            idx.save()
        complete = not cancel.is_set()
        if complete:
            self.library.set_meta(ACTIVE_SPACE, space)
            with self._lock:
                self.settings.embedding.clip_model = model
                self.settings.embedding.quantized = quantized
                self._image_enc = None
                self._clip_text_enc = None
        if cancel.is_set():
            raise Cancelled(f"re-encoding cancelled after {encoded} items; run it again to "
                            f"continue (the current model keeps answering meanwhile)")
        return {"model": model, "space": space, "encoded": encoded, "missing_files": missing,
                "switched": complete, "took_s": round(time.perf_counter() - t0, 3)}

    # ----------------------------------------------------------------- check / info
    def check(self, repair: bool = True, sample: int = 50) -> CheckReport:
        """Verify the library (and with ``repair`` fix what is derived: index, thumbnails)."""
        try:
            return self._check(repair, sample)
        except sqlite3.DatabaseError as exc:  # a damaged table: nothing more can be read
            return CheckReport(ok=False, items=0, problems=[
                f"the library database is damaged ({exc}); copy the folder somewhere safe and "
                f"restore a backup, or start a new library and ingest the folders again"])

    def _check(self, repair: bool, sample: int) -> CheckReport:
        problems = list(self.library.integrity_problems())
        repaired: list[str] = []
        if problems and repair and not self.library.read_only and self.library.repair_indexes():
            repaired.append("the database's own indexes were damaged; rebuilt (REINDEX)")
            problems = list(self.library.integrity_problems())
        items = self.library.count()
        space = self.active_space()
        if space:
            lacking = self.library.ids_missing_space(space)
            if lacking:
                sp = self.library.space(space)
                problems.append(f"{len(lacking)} items have no embedding for {space} (run "
                                f"'vector-studio library reencode --model {sp.model if sp else space}')")
            with self._lock:
                self._indexes.pop(space, None)
            idx = self.index(space)
            if idx is not None:
                if idx.rebuilt_reason:
                    repaired.append(f"index rebuilt: {idx.rebuilt_reason}")
                elif idx.caught_up:
                    repaired.append("index was behind the database (+{} / -{} items); updated"
                                    .format(*idx.caught_up))
                db_ids = set(self.library.embedding_ids(space).tolist())
                if idx.ids() != db_ids:
                    if repair:
                        self.rebuild_index()
                        repaired.append("index and database disagreed on which items exist; "
                                        "rebuilt")
                    else:
                        problems.append("index and database disagree on which items exist")
                both = sorted(db_ids & idx.ids())
                ids = random.Random(0).sample(both, min(sample, len(both)))
                if ids:
                    got = idx.get(ids)
                    want = np.concatenate([m for _, m in self.library.vectors(space, ids)])
                    order = np.concatenate([i for i, _ in self.library.vectors(space, ids)])
                    pos = {int(i): k for k, i in enumerate(order)}
                    want = want[[pos[i] for i in ids]]
                    if not np.allclose(got, want, atol=1e-5):
                        if repair:
                            self.rebuild_index()
                            repaired.append("index vectors differed from the database; rebuilt")
                        else:
                            problems.append("index vectors differ from the database")
        if repair and not self.library.read_only:  # we hold the writer lock: nobody is saving
            for leftover in sorted(self.library.index_dir.glob("*.tmp")):
                leftover.unlink(missing_ok=True)
                repaired.append(f"removed {leftover.name}, left by an interrupted index save")
        if self.library.has_text_index() and self.library.text_index_count() != items:
            if repair and not self.library.read_only:
                self.library.rebuild_text_index()
                repaired.append("keyword index disagreed with the library; rebuilt")
            else:
                problems.append("the keyword index disagrees with the library")
        bad_thumbs: list[int] = []
        for iid in self.library.all_ids_newest_first():
            data = self.library.thumbnail(iid)
            try:
                with Image.open(io.BytesIO(data or b"")) as im:
                    im.load()  # a full decode: verify() misses truncated JPEG data
            except Exception:
                bad_thumbs.append(iid)
        if bad_thumbs and repair and not self.library.read_only:
            fixed = self._remake_thumbnails(bad_thumbs)
            if fixed:
                repaired.append(f"{len(fixed)} damaged thumbnails made again from their files")
            bad_thumbs = [i for i in bad_thumbs if i not in fixed]
        if bad_thumbs:
            problems.append(f"{len(bad_thumbs)} thumbnails cannot be decoded, and their files are "
                            f"gone or changed (ingest them again, or 'library prune-missing')")
        missing = [p for p, _ in self.library.all_paths() if not os.path.exists(p)]
        return CheckReport(ok=not problems, items=items, problems=problems, repaired=repaired,
                           missing_files=missing)

    def _remake_thumbnails(self, ids: list[int]) -> set[int]:
        """Thumbnails made again from files whose content is still the item's."""
        fixed: set[int] = set()
        hashes = {it.id: it.content_hash for it in self.library.items(ids)}
        for iid, paths in self.library.primary_paths(ids).items():
            for p in paths:
                try:
                    data = read_file(p)
                    if hashlib.sha256(data).hexdigest() != hashes.get(iid):
                        continue
                    thumb = imaging.make_thumbnail(imaging.open_image(data),
                                                   self.settings.library.thumbnail_size)
                except ImageError:
                    continue
                self.library.set_thumbnail(iid, thumb)
                fixed.add(iid)
                break
        return fixed

    def info(self) -> dict:
        counts = self.library.space_counts()
        spaces = {
            s.name: {"model": s.model, "role": s.role, "dim": s.dim,
                     "count": counts.get(s.name, 0)}
            for s in self.library.spaces()
        }
        return {
            "path": str(self.library.root),
            "items": self.library.count(),
            "models": spaces,
            "active_space": self.active_space(),
            "clip_model": self.clip_model,
            "text_model": self.text_model,
            "notes": len(self.library.notes()),
            "provider": self.provider(),
            "ocr": self.library.ocr_counts(),
        }


def _keyword_notes(query: str, notes: Sequence[tuple[int, str]]) -> Ranked:
    words = {w for w in query.lower().split() if len(w) > 1}
    scored = []
    for iid, text in notes:
        note_words = set(text.lower().split())
        hit = len(words & note_words) / max(len(words), 1)
        if hit > 0:
            scored.append((iid, hit))
    scored.sort(key=lambda t: -t[1])
    return Ranked(np.array([i for i, _ in scored], np.int64),
                  np.array([s for _, s in scored], np.float32))
