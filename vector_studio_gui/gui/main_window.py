"""The main window: search box, thumbnail grid, details pane, status bar.

All engine work runs off the GUI thread: searches, browsing and thumbnails on two long-lived
lanes (see ``lanes.py`` for why), ingest, reading chart text, notes and removals as
``TaskRunner`` tasks. Results carry the generation of the query that asked for them; only the
latest query's are shown.
"""

from __future__ import annotations

import copy
import gc
import logging
import os
import sqlite3
import sys
from pathlib import Path

from PySide6.QtCore import QByteArray, QObject, QProcess, QSize, Qt, QTimer, QUrl, Signal, Slot
from PySide6.QtGui import (
    QAction,
    QCloseEvent,
    QColor,
    QDesktopServices,
    QDragEnterEvent,
    QDragMoveEvent,
    QDropEvent,
    QGuiApplication,
    QIcon,
    QImage,
    QImageReader,
    QKeySequence,
    QPainter,
    QPixmap,
    QShowEvent,
)
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLayout,
    QMainWindow,
    QMenu,
    QMessageBox,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from vector_studio_gui.core.errors import LibraryLockedError, VectorStudioError
from vector_studio_gui.core.imaging import SUPPORTED_EXTENSIONS
from vector_studio_gui.core.settings import Settings
from vector_studio_gui.core.types import IngestReport, Item, OcrReport, SearchResponse
from vector_studio_gui.gui import pyside_guard
from vector_studio_gui.gui.details_pane import (
    PREVIEW_BOX,
    TEXT_OFF,
    TEXT_PENDING,
    TEXT_READ,
    DetailsPane,
)
from vector_studio_gui.gui.ingest_controller import IngestController
from vector_studio_gui.gui.lanes import Lane
from vector_studio_gui.gui.message_bar import MessageBar
from vector_studio_gui.gui.results_model import ResultsModel, load_thumbnails
from vector_studio_gui.gui.results_view import DROP_HINT, DROP_SUBHINT, ResultsView, local_paths
from vector_studio_gui.gui.search_box import SearchBox
from vector_studio_gui.gui.text_pass import TextPassController
from vector_studio_gui.gui.workers import TaskRunner

log = logging.getLogger(__name__)

TITLE = "Vector Studio"
#: results asked for per search
RESULTS_K = 100
#: library items per browse page (more are fetched while scrolling)
PAGE = 200
#: while an ingest runs, a shown search is re-run at most this often so new matches appear
REFRESH_MS = 700
#: at start-up, charts whose text is not read yet are read after this delay (the first
#: listing, thumbnails and search come first)
TEXT_PASS_DELAY_MS = 1500


# ----------------------------------------------------------------------------- worker side
def _browse(engine, offset: int, limit: int) -> list[Item]:
    return engine.browse(offset, limit)


def _items(engine, ids: list[int]) -> list[Item]:
    out = []
    for i in ids:
        it = engine.item(i)
        if it is not None:
            out.append(it)
    return out


def _status(engine) -> tuple[int, str]:
    return engine.library.count(), engine.provider()


def qimage_to_pil(img: QImage):
    """A QImage (e.g. pasted) as an RGB PIL image, transparency flattened onto white."""
    from PIL import Image

    flat = QImage(img.size(), QImage.Format.Format_RGB888)
    flat.fill(QColor(255, 255, 255))
    p = QPainter(flat)
    p.drawImage(0, 0, img)
    p.end()
    data = bytes(flat.constBits())
    return Image.frombuffer("RGB", (flat.width(), flat.height()), data, "raw", "RGB",
                            flat.bytesPerLine(), 1).copy()


def _search_image(engine, source, k: int) -> SearchResponse:
    if isinstance(source, QImage):
        source = qimage_to_pil(source)
    return engine.search_image(source, k)


def _load_preview(path: str, fallback: bytes | None, box: QSize) -> QImage | None:
    reader = QImageReader(path)
    reader.setAutoTransform(True)
    size = reader.size()
    if size.isValid() and (size.width() > box.width() or size.height() > box.height()):
        reader.setScaledSize(size.scaled(box, Qt.AspectRatioMode.KeepAspectRatio))
    img = reader.read()
    if img.isNull() and fallback:
        img = QImage.fromData(fallback)
    return None if img.isNull() else img


def _chart_text(engine, item_id: int, enabled: bool) -> tuple[int, list, str]:
    """The recognised lines of a chart and, when there are none, why (see details_pane)."""
    waiting = TEXT_PENDING if enabled else TEXT_OFF
    try:
        lines = engine.ocr_lines(item_id)
        if lines:
            return item_id, lines, TEXT_READ
        if item_id in set(engine.library.ids_without_ocr()):
            return item_id, [], waiting
    except sqlite3.Error:  # an old library opened read-only: no text tables yet
        return item_id, [], waiting
    return item_id, [], TEXT_READ  # read, and no text found


def _set_note(ctx, engine, item_id: int, note: str) -> Item | None:
    engine.set_note(item_id, note)
    return engine.item(item_id)


def _remove(ctx, engine, ids: list[int]) -> list[int]:
    engine.remove_items(ids)
    return ids


def _shortcuts(*keys: QKeySequence) -> list[QKeySequence]:
    out: list[QKeySequence] = []
    for k in keys:
        if not k.isEmpty() and k not in out:
            out.append(k)
    return out


def short_provider(name: str) -> str:
    return name.replace("ExecutionProvider", "") or name


class _WarnRelay(QObject):
    """Carries engine warnings (raised on worker threads) to the GUI thread as a signal."""

    warned = Signal(str)


# ----------------------------------------------------------------------------- the window
_heap_frozen = False


def freeze_startup_heap() -> None:
    """Leave start-up's objects (modules, Qt wrappers, models: ~50k) out of every later full
    garbage collection. Python runs those on whichever thread allocates, holding the GIL, and
    each took 22-28 ms with the window open (up to 70 ms while charts were added): stalls the
    user sees. Frozen, a full collection only walks what was made since. Once per process,
    after the first listing is on screen."""
    global _heap_frozen
    if _heap_frozen:
        return
    _heap_frozen = True
    gc.collect()
    gc.freeze()


def thaw_startup_heap() -> None:
    """Make frozen objects collectable again (the engine was replaced: its models and
    connections must not outlive it); the next listing freezes what is alive then."""
    global _heap_frozen
    _heap_frozen = False
    gc.unfreeze()


class MainWindow(QMainWindow):
    #: a search's results are on screen (SearchResponse)
    searchShown = Signal(object)
    #: a browse listing of the library is on screen
    browseShown = Signal()
    #: a query failed (message)
    queryFailed = Signal(str)
    #: thumbnails arrived for these rows
    thumbnailsShown = Signal()
    noteSaved = Signal(int)
    itemsRemoved = Signal(list)
    #: the status bar's item count changed
    countChanged = Signal(int)
    engineReplaced = Signal()

    def __init__(self, settings: Settings, config_path: Path | None = None, *,
                 engine=None, read_only: bool = False, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        pyside_guard.apply()
        self.settings = settings
        self.config_path = Path(config_path) if config_path else None
        self.read_only = read_only
        self._closed = False
        self._query: tuple | None = None  # None = browsing the library
        self._rebrowse = False
        self._count = -1
        self._query_error_shown = False
        self.open_url = QDesktopServices.openUrl  # replaced in tests
        self.settings_dialog = None
        self.first_run_dialog = None
        self.setWindowTitle(TITLE + (" (read-only)" if read_only else ""))
        self.setAcceptDrops(True)

        self._relay = _WarnRelay()
        self._relay.warned.connect(self._on_engine_warning)
        self.engine = engine if engine is not None else self._open_engine(settings, read_only)

        self.runner = TaskRunner(self)
        self.search_lane = Lane("search", self)
        self.thumb_lane = Lane("thumbs", self)

        self.model = ResultsModel(self)
        self.model.thumbnailsWanted.connect(self._load_thumbnails)
        self.model.moreWanted.connect(self._fetch_more)

        self._build_ui()
        # The window's size limits are fixed here rather than derived from the layout each
        # time a status widget appears (some platform plugins cannot update them live).
        self.layout().setSizeConstraint(QLayout.SizeConstraint.SetNoConstraint)
        self.setMinimumSize(720, 460)
        self._build_actions()
        self.ingest = IngestController(self.runner, lambda: self.engine, self)
        self.text_pass = TextPassController(self.runner, lambda: self.engine, self._ocr_enabled,
                                            self)
        self._build_status_bar()
        self.ingest.batchAdded.connect(self._on_batch)
        self.ingest.finished.connect(self._on_ingest_finished)
        self.ingest.reencoded.connect(self._on_reencoded)
        self.ingest.failed.connect(self._on_ingest_failed)
        self.ingest.started.connect(self._update_actions)
        self.ingest.idle.connect(self._update_actions)
        self.ingest.started.connect(self._on_ingest_started)
        self.ingest.idle.connect(self._on_ingest_idle)
        self._resume_text = False  # a text pass was paused for an ingest
        self._text_due = False  # an ingest finished: read the new charts' text
        self.text_pass.finished.connect(self._on_text_read)
        self.text_pass.failed.connect(self._on_text_failed)
        self._text_timer = QTimer(self)
        self._text_timer.setSingleShot(True)
        self._text_timer.setInterval(TEXT_PASS_DELAY_MS)
        self._text_timer.timeout.connect(self.read_chart_text)

        self._refresh_timer = QTimer(self)
        self._refresh_timer.setSingleShot(True)
        self._refresh_timer.setInterval(REFRESH_MS)
        self._refresh_timer.timeout.connect(self._refresh_query)

        self._restore_gui_state()
        self._apply_read_only()
        self._update_models_label()
        self.browse()
        self._refresh_status()
        if self._ocr_enabled():
            self._text_timer.start()

    # ----------------------------------------------------------------- engine
    def _open_engine(self, settings: Settings, read_only: bool):
        from vector_studio_gui.core.engine import Engine

        return Engine(settings, read_only=read_only, warn=self._relay.warned.emit)

    @Slot(str)
    def _on_engine_warning(self, message: str) -> None:
        if not self._closed:
            self.statusBar().showMessage(message, 10000)

    # ----------------------------------------------------------------- layout
    def _build_ui(self) -> None:
        central = QWidget(self)
        outer = QVBoxLayout(central)
        outer.setContentsMargins(10, 10, 10, 0)
        outer.setSpacing(8)

        top = QHBoxLayout()
        top.setSpacing(6)
        self.search = SearchBox(central)
        self.search.setMinimumHeight(self.search.sizeHint().height() + 8)
        f = self.search.font()
        if f.pointSizeF() > 0:
            f.setPointSizeF(f.pointSizeF() * 1.15)
        self.search.setFont(f)
        self.search.textQuery.connect(self.search_text)
        self.search.imageQuery.connect(self.search_image)
        self.query_chip = QPushButton(central)
        self.query_chip.setToolTip("Searching by this image; click to go back to the library")
        self.query_chip.setIconSize(QSize(28, 20))
        self.query_chip.clicked.connect(self._clear_image_query)
        self.query_chip.hide()
        top.addWidget(self.query_chip)
        top.addWidget(self.search, 1)
        outer.addLayout(top)

        self.message_bar = MessageBar(central)
        outer.addWidget(self.message_bar)

        self.splitter = QSplitter(Qt.Orientation.Horizontal, central)
        self.splitter.setChildrenCollapsible(False)
        self.view = ResultsView(self.splitter)
        self.view.setModel(self.model)
        self.view.filesDropped.connect(self.add_paths)
        # thumbnails are loaded at the tiles' box, so painting them is a copy, not a rescale
        # (scaling 25 thumbnails per frame cost ~2 ms of every scroll frame); after a resize
        # settles they are loaded again at the new size (until then they are scaled)
        self._thumb_box_timer = QTimer(self, singleShot=True, interval=250)
        self._thumb_box_timer.timeout.connect(self._apply_thumb_box)
        self.view.thumbBoxChanged.connect(lambda _box: self._thumb_box_timer.start())
        self.view.openRequested.connect(self.open_selected)
        self.view.deleteRequested.connect(self.remove_selected)
        self.view.customContextMenuRequested.connect(self._context_menu)
        self.view.selectionModel().currentChanged.connect(self._current_changed)
        self.view.selectionModel().selectionChanged.connect(lambda *_: self._update_actions())
        self.details = DetailsPane(self.splitter)
        self.details.openRequested.connect(lambda it: self.open_items([it]))
        self.details.showInFolderRequested.connect(lambda it: self.show_in_folder(it))
        self.details.findSimilarRequested.connect(lambda it: self.find_similar(it))
        self.details.removeRequested.connect(lambda it: self.remove_items([it]))
        self.details.saveNoteRequested.connect(self.save_note)
        self.splitter.addWidget(self.view)
        self.splitter.addWidget(self.details)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 0)
        self.splitter.setSizes([860, 320])
        outer.addWidget(self.splitter, 1)
        self.setCentralWidget(central)

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        a = QAction(text, self)
        if shortcut is not None:
            if isinstance(shortcut, list):
                a.setShortcuts(shortcut)
            else:
                a.setShortcut(shortcut)
        if tip:
            a.setStatusTip(tip)
        a.triggered.connect(lambda _checked=False: slot())
        return a

    def _build_actions(self) -> None:
        SK = QKeySequence.StandardKey  # noqa: N806
        self.act_add_files = self._action("Add files…", self.add_files_dialog, QKeySequence("Ctrl+O"),
                                          "Add chart images to the library")
        self.act_add_folder = self._action("Add folder…", self.add_folder_dialog,
                                           QKeySequence("Ctrl+Shift+O"),
                                           "Add every chart image in a folder (and its subfolders)")
        self.act_settings = self._action("Settings…", self.open_settings,
                                         _shortcuts(QKeySequence("Ctrl+,"),
                                                    QKeySequence(SK.Preferences)))
        self.act_quit = self._action("Quit", self.close, QKeySequence(SK.Quit))
        self.act_find = self._action("Find", self.focus_search, QKeySequence(SK.Find))
        self.act_paste = self._action("Search by pasted image", self.paste_image_query,
                                      QKeySequence(SK.Paste))
        self.act_open = self._action("Open", self.open_selected)
        self.act_reveal = self._action("Show in folder", self.reveal_selected)
        self.act_similar = self._action("Find similar", self.find_similar_selected)
        self.act_copy_path = self._action("Copy path", self.copy_paths, QKeySequence(SK.Copy))
        self.act_copy_path.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.view.addAction(self.act_copy_path)
        self.act_copy_image = self._action("Copy image", self.copy_image)
        self.act_remove = self._action("Remove from library…", self.remove_selected,
                                       QKeySequence(SK.Delete))
        self.act_remove.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.view.addAction(self.act_remove)
        self.act_show_library = self._action("Show library", self.show_library,
                                             tip="Clear the query and show every chart")
        self.act_cancel_ingest = self._action("Cancel adding", self.ingest_cancel)
        self.act_about = self._action("About Vector Studio", self._about)

        mb = self.menuBar()
        m = mb.addMenu("&File")
        m.addActions([self.act_add_files, self.act_add_folder, self.act_cancel_ingest])
        m.addSeparator()
        m.addAction(self.act_settings)
        m.addSeparator()
        m.addAction(self.act_quit)
        m = mb.addMenu("&Edit")
        m.addActions([self.act_find, self.act_paste, self.act_show_library])
        m.addSeparator()
        m.addActions([self.act_open, self.act_reveal, self.act_similar])
        m.addSeparator()
        m.addActions([self.act_copy_path, self.act_copy_image])
        m.addSeparator()
        m.addAction(self.act_remove)
        m = mb.addMenu("&Help")
        m.addAction(self.act_about)

    def _build_status_bar(self) -> None:
        sb = self.statusBar()
        sb.setSizeGripEnabled(True)
        self.results_label = QLabel("", self)
        self.results_label.setContentsMargins(4, 0, 4, 0)
        sb.addWidget(self.results_label)
        self.count_label = QLabel("", self)
        self.models_label = QLabel("", self)
        self.time_label = QLabel("", self)
        self.time_label.setToolTip("Time of the last query")
        self.time_label.setMinimumWidth(
            self.time_label.fontMetrics().horizontalAdvance("query 000.0 ms") + 20)
        sb.addPermanentWidget(self.ingest.progress_widget)
        sb.addPermanentWidget(self.ingest.summary_widget)
        sb.addPermanentWidget(self.text_pass.progress_widget)
        for w in (self.count_label, self.models_label, self.time_label):
            w.setContentsMargins(10, 0, 10, 0)
            sb.addPermanentWidget(w)

    def _apply_read_only(self) -> None:
        self.details.set_read_only(self.read_only)
        self._update_actions()
        if self.read_only:
            self.view.set_hint("This library is empty", "It is open read-only")

    def _update_actions(self) -> None:
        if self._closed:
            return
        sel = self.selected_items()
        writable = not self.read_only
        self.act_add_files.setEnabled(writable)
        self.act_add_folder.setEnabled(writable)
        self.act_cancel_ingest.setEnabled(self.ingest.running)
        for a in (self.act_open, self.act_reveal, self.act_copy_path, self.act_copy_image):
            a.setEnabled(bool(sel))
        self.act_similar.setEnabled(len(sel) == 1)
        self.act_remove.setEnabled(bool(sel) and writable)

    # ----------------------------------------------------------------- gui state
    def _restore_gui_state(self) -> None:
        g = self.settings.gui
        restored = False
        if g.geometry:
            restored = self.restoreGeometry(QByteArray.fromBase64(g.geometry.encode("ascii")))
        if not restored:
            screen = QGuiApplication.primaryScreen()
            avail = screen.availableGeometry().size() if screen else QSize(1400, 900)
            self.resize(min(1280, int(avail.width() * 0.9)), min(820, int(avail.height() * 0.9)))
        if g.splitter:
            self.splitter.restoreState(QByteArray.fromBase64(g.splitter.encode("ascii")))

    def gui_state(self) -> tuple[str, str]:
        geo = bytes(self.saveGeometry().toBase64().data()).decode("ascii")
        split = bytes(self.splitter.saveState().toBase64().data()).decode("ascii")
        return geo, split

    def _save_gui_state(self) -> None:
        geo, split = self.gui_state()
        self.settings.gui.geometry = geo
        self.settings.gui.splitter = split
        if self.config_path is None:
            return
        # Re-read the file so options given on the command line (--library, --clip-model...)
        # are not written into it; only the window state changes.
        try:
            on_disk = Settings.load(self.config_path)
            on_disk.gui.geometry = geo
            on_disk.gui.splitter = split
            on_disk.save(self.config_path)
        except (OSError, VectorStudioError) as exc:
            log.warning("could not save the window state to %s: %s", self.config_path, exc)

    def showEvent(self, event: QShowEvent) -> None:  # noqa: N802
        super().showEvent(event)
        self._apply_thumb_box()

    def _apply_thumb_box(self) -> None:
        self.model.set_thumbnail_size(self.view.delegate.thumb, self.devicePixelRatioF())

    # ----------------------------------------------------------------- queries
    def browse(self) -> None:
        """Show the library, newest first (the empty query)."""
        if self._closed:
            return
        self._query = None
        self._set_chip(None)
        gen = self.model.begin_query()
        self.search_lane.submit(_browse, self.engine, 0, PAGE, key="query",
                                on_result=lambda items, g=gen: self._on_browse(g, items),
                                on_error=lambda m, d, u, g=gen: self._on_query_error(g, m, d, u))

    def show_library(self) -> None:
        self.search.set_text_silently("")
        self.browse()

    def _on_browse(self, gen: int, items: object) -> None:
        if not self.model.set_items(gen, items, more=len(items) >= PAGE):  # type: ignore[arg-type]
            return
        self._after_rows_shown(preserve=None)
        self._describe_rows()
        if self._rebrowse:
            self._rebrowse = False
            self.browse()
            return
        self._update_hint()
        self.browseShown.emit()
        QTimer.singleShot(0, freeze_startup_heap)

    def _fetch_more(self) -> None:
        gen = self.model.generation
        offset = self.model.rowCount()
        self.search_lane.submit(
            _browse, self.engine, offset, PAGE, key="more",
            on_result=lambda items, g=gen: self.model.append_items(
                g, items, more=len(items) >= PAGE),  # type: ignore[arg-type]
            on_error=lambda m, d, u, g=gen: self._on_query_error(g, m, d, u))

    @Slot(str)
    def search_text(self, text: str) -> None:
        text = text.strip()
        if not text:
            self.browse()
            return
        self._query = ("text", text)
        self._set_chip(None)
        self._submit_query(lambda: (self.engine.search_text, (text, RESULTS_K)))

    @Slot(object)
    def search_image(self, source: object) -> None:
        """Search by an image: a QImage (pasted/dropped data) or the path of an image file."""
        if isinstance(source, QImage):
            label = "pasted image"
            icon = QPixmap.fromImage(source.scaled(56, 40, Qt.AspectRatioMode.KeepAspectRatio,
                                                   Qt.TransformationMode.SmoothTransformation))
        else:
            source = str(source)
            label = os.path.basename(source)
            icon = QPixmap.fromImage(QImage(source).scaled(
                56, 40, Qt.AspectRatioMode.KeepAspectRatio,
                Qt.TransformationMode.SmoothTransformation))
        self._query = ("image", source)
        self.search.set_text_silently("")
        self._set_chip(f"Like {label}", icon)
        self._submit_query(lambda: (_search_image, (self.engine, source, RESULTS_K)))

    def find_similar(self, item: Item) -> None:
        self._query = ("similar", item)
        self.search.set_text_silently("")
        self._set_chip(f"Similar to {os.path.basename(item.path)}",
                       self.model.thumbnail(item.id) if self.model.has_thumbnail(item.id) else None)
        self._submit_query(lambda: (self.engine.search_similar, (item.id, RESULTS_K)))

    def _submit_query(self, make, preserve: tuple[list[int], int | None] | None = None) -> None:
        if self._closed:
            return
        fn, args = make()
        gen = self.model.begin_query()
        self.search_lane.submit(
            fn, *args, key="query",
            on_result=lambda resp, g=gen, keep=preserve: self._on_search(g, resp, keep),
            on_error=lambda m, d, u, g=gen: self._on_query_error(g, m, d, u))

    def _on_search(self, gen: int, resp: object, preserve) -> None:
        assert isinstance(resp, SearchResponse)
        if not self.model.set_results(gen, resp.results):
            return  # an older query's answer: a newer one is on its way
        if self._query_error_shown:  # the previous query failed; this one worked
            self.message_bar.hide()
            self._query_error_shown = False
        self.time_label.setText(f"query {resp.took_ms:.1f} ms")
        self.time_label.setToolTip(f"Last query: {resp.took_ms:.1f} ms with {resp.model}")
        for w in resp.warnings:
            if w != "the library is empty":
                self.statusBar().showMessage(w, 8000)
        self._after_rows_shown(preserve)
        self._describe_rows()
        self._update_hint()
        self._update_models_label()
        self.searchShown.emit(resp)

    def _on_query_error(self, gen: int, message: str, details: str, user: bool) -> None:
        if gen != self.model.generation or self._closed:
            return
        self.model.set_rows(gen, [])
        self.results_label.setText("")
        self.view.set_hint("No results", "The query could not be run; see the message above")
        self._show_error(message, details, user)
        self._query_error_shown = True
        self.queryFailed.emit(message)

    def _refresh_query(self) -> None:
        """Run the shown query again (new charts were added), keeping the selection."""
        if self._closed or self._query is None:
            return
        keep = ([it.id for it in self.selected_items()], self._current_id())
        kind = self._query[0]
        if kind == "text":
            text = self._query[1]
            self._submit_query(lambda: (self.engine.search_text, (text, RESULTS_K)), keep)
        elif kind == "image":
            source = self._query[1]
            self._submit_query(lambda: (_search_image, (self.engine, source, RESULTS_K)), keep)
        elif kind == "similar":
            item = self._query[1]
            self._submit_query(lambda: (self.engine.search_similar, (item.id, RESULTS_K)), keep)

    def _after_rows_shown(self, preserve) -> None:
        sm = self.view.selectionModel()
        if preserve:
            ids, current = preserve
            for i in ids:
                r = self.model.row_of(i)
                if r is not None:
                    sm.select(self.model.index(r, 0), sm.SelectionFlag.Select)
            if current is not None and self.model.row_of(current) is not None:
                sm.setCurrentIndex(self.model.index(self.model.row_of(current), 0),
                                   sm.SelectionFlag.NoUpdate)
        self._current_changed()
        self._update_actions()

    def _describe_rows(self) -> None:
        """Left of the status bar: what the grid shows."""
        n = self.model.rowCount()
        if self._query is None:
            text = "Library, newest first" if n else ""
        else:
            what = {"text": lambda q: f"“{q[1]}”", "image": lambda q: "the image",
                    "similar": lambda q: os.path.basename(q[1].path)}[self._query[0]](self._query)
            label = "similar to" if self._query[0] == "similar" else "for"
            text = f"{n} result{'' if n == 1 else 's'} {label} {what}"
        self.results_label.setText(text)

    def _update_hint(self) -> None:
        if self.model.rowCount() > 0:
            return
        if self._query is None:
            if self.read_only:
                self.view.set_hint("This library is empty", "It is open read-only")
            else:
                self.view.set_hint(DROP_HINT, DROP_SUBHINT)
        elif self._count == 0:
            self.view.set_hint(DROP_HINT, "The library is empty: add charts, then search")
        else:
            self.view.set_hint("No matching charts", "Try other words, or another image")

    def _set_chip(self, text: str | None, icon: QPixmap | None = None) -> None:
        if text is None:
            self.query_chip.hide()
            return
        self.query_chip.setText(f"{text}  \u2715")
        self.query_chip.setIcon(QIcon(icon) if icon is not None and not icon.isNull() else QIcon())
        self.query_chip.show()

    def _clear_image_query(self) -> None:
        self.show_library()

    def focus_search(self) -> None:
        self.search.setFocus(Qt.FocusReason.ShortcutFocusReason)
        self.search.selectAll()

    def paste_image_query(self) -> None:
        if not self.search.paste_image():
            self.statusBar().showMessage("The clipboard holds no image to search with", 5000)

    # ----------------------------------------------------------------- thumbnails / details
    def _load_thumbnails(self, ids: list) -> None:
        if self._closed:
            return
        engine = self.engine
        box, dpr = QSize(self.model.thumb_size), self.model.dpr
        self.thumb_lane.submit(load_thumbnails, engine.thumbnail, list(ids), box, dpr,
                               on_result=lambda images: self._on_thumbnails(images, box, dpr),
                               on_error=lambda *_: self.model.forget_thumbnail_requests())

    def _on_thumbnails(self, images: object, box: QSize | None = None,
                       dpr: float | None = None) -> None:
        self.model.set_thumbnails(images, box, dpr)  # type: ignore[arg-type]
        cur = self.details.item
        if cur is not None and cur.id in images and self.model.has_thumbnail(cur.id) and (  # type: ignore[operator]
                self.details.preview.pixmap_size().isEmpty()):
            self.details.set_preview(cur.id, self.model.thumbnail(cur.id))
        self.thumbnailsShown.emit()

    def _current_id(self) -> int | None:
        idx = self.view.currentIndex()
        return idx.data(ResultsModel.IdRole) if idx.isValid() else None

    def _current_changed(self, *_args) -> None:
        idx = self.view.currentIndex()
        row = self.model.row(idx.row()) if idx.isValid() else None
        if row is None:
            self.details.show_item(None)
            return
        same = self.details.item is not None and self.details.item.id == row.item.id
        thumb = self.model.thumbnail(row.item.id) if self.model.has_thumbnail(row.item.id) else None
        self.details.set_query(self._text_query())
        self.details.show_item(row.item, row.score, row.signals, thumb, row.matched)
        if not same:
            self._load_chart_text(row.item.id)
            dpr = self.devicePixelRatioF()
            box = QSize(round(PREVIEW_BOX.width() * dpr), round(PREVIEW_BOX.height() * dpr))
            item_id = row.item.id
            self.thumb_lane.submit(_load_preview, row.item.path, None, box, key="preview",
                                   on_result=lambda img, i=item_id: self.details.set_preview(i, img))

    def _text_query(self) -> str | None:
        """The typed query the grid answers (None when browsing or searching by image)."""
        return self._query[1] if self._query is not None and self._query[0] == "text" else None

    def _load_chart_text(self, item_id: int) -> None:
        if self._closed:
            return
        self.thumb_lane.submit(_chart_text, self.engine, item_id, self.settings.ocr.enabled,
                               key="chart-text",
                               on_result=lambda res: self.details.set_chart_text(*res))

    def selected_items(self) -> list[Item]:
        sm = self.view.selectionModel()
        if sm is None:
            return []
        rows = sorted(i.row() for i in sm.selectedIndexes())
        out = []
        for r in rows:
            row = self.model.row(r)
            if row is not None:
                out.append(row.item)
        if not out:
            cur = self.view.currentIndex()
            row = self.model.row(cur.row()) if cur.isValid() else None
            if row is not None and sm.isSelected(cur):
                out.append(row.item)
        return out

    # ----------------------------------------------------------------- item actions
    def open_items(self, items: list[Item]) -> None:
        for it in items[:20]:
            if not os.path.exists(it.path):
                self._show_error(f"{it.path} no longer exists (moved or deleted?)", "", True)
                continue
            self.open_url(QUrl.fromLocalFile(it.path))

    def open_selected(self) -> None:
        items = self.selected_items()
        if not items:
            idx = self.view.currentIndex()
            row = self.model.row(idx.row()) if idx.isValid() else None
            items = [row.item] if row else []
        self.open_items(items)

    def show_in_folder(self, item: Item) -> None:
        path = item.path
        if not os.path.exists(path):
            self._show_error(f"{path} no longer exists (moved or deleted?)", "", True)
            return
        if sys.platform == "win32":
            QProcess.startDetached("explorer", ["/select,", os.path.normpath(path)])
        elif sys.platform == "darwin":
            QProcess.startDetached("open", ["-R", path])
        else:
            self.open_url(QUrl.fromLocalFile(os.path.dirname(path)))

    def reveal_selected(self) -> None:
        for it in self.selected_items()[:5]:
            self.show_in_folder(it)

    def find_similar_selected(self) -> None:
        items = self.selected_items()
        if items:
            self.find_similar(items[0])

    def copy_paths(self) -> None:
        items = self.selected_items()
        if items:
            QGuiApplication.clipboard().setText("\n".join(it.path for it in items))
            self.statusBar().showMessage(
                f"Copied {len(items)} path(s)" if len(items) > 1 else f"Copied {items[0].path}", 4000)

    def copy_image(self) -> None:
        items = self.selected_items()
        if not items:
            return
        img = QImage(items[0].path)
        if img.isNull() and self.model.has_thumbnail(items[0].id):
            img = self.model.thumbnail(items[0].id).toImage()
        if img.isNull():
            self._show_error(f"cannot read {items[0].path}", "", True)
            return
        QGuiApplication.clipboard().setImage(img)
        self.statusBar().showMessage(f"Copied the image of {os.path.basename(items[0].path)}", 4000)

    def build_context_menu(self, pos) -> QMenu:
        """The grid's context menu at ``pos`` (viewport coordinates)."""
        idx = self.view.indexAt(pos)
        if idx.isValid() and not self.view.selectionModel().isSelected(idx):
            self.view.setCurrentIndex(idx)
        self._update_actions()
        menu = QMenu(self)
        if self.selected_items():
            menu.addActions([self.act_copy_path, self.act_copy_image])
            menu.addSeparator()
            menu.addActions([self.act_open, self.act_reveal, self.act_similar])
            menu.addSeparator()
            menu.addAction(self.act_remove)
        else:
            menu.addActions([self.act_add_files, self.act_add_folder, self.act_paste])
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        return menu

    def _context_menu(self, pos) -> None:
        self.build_context_menu(pos).popup(self.view.viewport().mapToGlobal(pos))

    # ----------------------------------------------------------------- notes / removal
    def save_note(self, item_id: int, note: str) -> None:
        if self.read_only or self._closed:
            return
        self.runner.start("note", _set_note, self.engine, item_id, note,
                          on_result=self._on_note_saved,
                          on_error=lambda m, d, u: (self.details.note_failed(m),
                                                    self._show_error(m, d, u)))

    def _on_note_saved(self, item: object) -> None:
        if self._closed or not isinstance(item, Item):
            return
        self.model.update_item(item)
        self.details.note_saved(item)
        self.statusBar().showMessage(f"Note saved for {os.path.basename(item.path)}", 4000)
        self.noteSaved.emit(item.id)

    def confirm(self, title: str, text: str) -> bool:
        answer = QMessageBox.question(self, title, text,
                                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
                                      QMessageBox.StandardButton.No)
        return answer == QMessageBox.StandardButton.Yes

    def remove_selected(self) -> None:
        self.remove_items(self.selected_items())

    def remove_items(self, items: list[Item]) -> None:
        if not items or self.read_only or self._closed:
            return
        what = (f"“{os.path.basename(items[0].path)}”" if len(items) == 1
                else f"{len(items)} charts")
        if not self.confirm("Remove from library",
                            f"Remove {what} from the library?\n\nThe files on disk are not "
                            f"deleted; adding them again brings them back."):
            return
        ids = [it.id for it in items]
        self.runner.start("remove", _remove, self.engine, ids, on_result=self._on_removed,
                          on_error=lambda m, d, u: self._show_error(m, d, u))

    def _on_removed(self, ids: object) -> None:
        if self._closed:
            return
        ids = list(ids)  # type: ignore[call-overload]
        n = self.model.remove_ids(ids)
        self.statusBar().showMessage(f"Removed {len(ids)} chart(s) from the library", 5000)
        self._current_changed()
        self._update_actions()
        self._refresh_status()
        if n and self.model.rowCount() == 0:
            self._update_hint()
        self.itemsRemoved.emit(ids)

    # ----------------------------------------------------------------- ingest
    def add_paths(self, paths: list) -> None:
        paths = [str(p) for p in paths]
        if not paths or self._closed:
            return
        if self.read_only:
            self._show_error("This library is open read-only (another Vector Studio is changing "
                             "it); charts cannot be added now.", "", True)
            return
        self.ingest.add(paths)

    def add_files_dialog(self) -> None:
        exts = " ".join(f"*{e}" for e in sorted(SUPPORTED_EXTENSIONS))
        files, _ = QFileDialog.getOpenFileNames(self, "Add chart images", "",
                                                f"Images ({exts});;All files (*)")
        self.add_paths(files)

    def add_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of charts")
        if folder:
            self.add_paths([folder])

    def ingest_cancel(self) -> None:
        self.ingest.cancel()

    def _on_batch(self, ids: list) -> None:
        if self._closed:
            return
        self._refresh_status()
        if self._query is None:
            if self.model.shown_generation == self.model.generation:
                self.search_lane.submit(_items, self.engine, list(ids),
                                        on_result=self._prepend_new)
            else:
                self._rebrowse = True  # a browse is in flight: run it again when it lands
        elif not self._refresh_timer.isActive():
            self._refresh_timer.start()

    def _prepend_new(self, items: object) -> None:
        if self._query is not None or self._closed:
            return
        items = sorted(items, key=lambda it: (it.added, it.id), reverse=True)  # type: ignore[arg-type]
        if self.model.prepend_items(items):
            self._update_actions()
            self.browseShown.emit()

    def _on_ingest_finished(self, report: object) -> None:
        if self._closed or not isinstance(report, IngestReport):
            return
        self._refresh_status()  # the summary itself is on the right of the status bar
        self._update_models_label()
        if self._query is not None:
            self._refresh_timer.stop()
            self._refresh_query()
        elif self.model.rowCount() == 0:
            self._update_hint()

    def _on_ingest_failed(self, message: str, details: str, user: bool) -> None:
        if not self._closed:
            self._show_error(message, details, user)
            self._refresh_status()

    # ----------------------------------------------------------------- chart text (OCR)
    def _ocr_enabled(self) -> bool:
        return bool(self.settings.ocr.enabled) and not self.read_only

    def read_chart_text(self) -> bool:
        """Read the text of the charts not read yet, in the background (if switched on);
        after an ingest it waits for the ingest. True if a pass runs or will."""
        self._text_timer.stop()
        if self._closed or not self._ocr_enabled():
            return False
        if self.ingest.running:
            self._text_due = True  # after the ingest
            return True
        return self.text_pass.start()

    def _on_ingest_started(self) -> None:
        if self.text_pass.pause():  # adding charts first; the pass resumes afterwards
            self._resume_text = True

    def _on_ingest_idle(self) -> None:
        if self._closed:
            return
        report = self.ingest.last_report
        if report is not None and not report.cancelled:
            self._text_due = True
        if self._text_due or self._resume_text:
            self._text_due = self._resume_text = False
            self.read_chart_text()

    def _on_text_read(self, report: object) -> None:
        """A reading-text pass ended: show what was read in the shown search and details."""
        if self._closed or not isinstance(report, OcrReport):
            return
        if report.read or report.failed:
            self.statusBar().showMessage(report.summary()[:1].upper() + report.summary()[1:],
                                         8000)
        if report.read:
            if self._query is not None and self._query[0] == "text":
                self._refresh_timer.stop()
                self._refresh_query()
            item = self.details.item
            if item is not None:
                self._load_chart_text(item.id)

    def _on_text_failed(self, message: str, details: str, user: bool) -> None:
        if not self._closed:
            self._show_error(f"Reading chart text stopped: {message}", details, user)

    # ----------------------------------------------------------------- status
    def _refresh_status(self) -> None:
        if self._closed:
            return
        self.search_lane.submit(_status, self.engine, key="status", on_result=self._on_status)

    def _on_status(self, value: object) -> None:
        count, provider = value  # type: ignore[misc]
        self._count = count
        self.count_label.setText(f"{count} chart" + ("" if count == 1 else "s"))
        self._update_models_label(provider)
        if count == 0 and self.model.rowCount() == 0:
            self._update_hint()
        self.countChanged.emit(count)

    def _update_models_label(self, provider: str | None = None) -> None:
        e = self.settings.embedding
        prov = short_provider(provider or self.engine.provider())
        self.models_label.setText(f"{e.clip_model} + {e.text_model} · {prov}")
        self.models_label.setToolTip(
            f"CLIP model: {e.clip_model}{' (int8)' if e.quantized else ''}\n"
            f"Text model (notes): {e.text_model}\nExecution provider: {provider or prov}")

    def check_models(self) -> bool:
        """Warn (non-blocking) when the active CLIP model is missing; True when it is installed."""
        e = self.settings.embedding
        store = self.engine.models
        if store.is_installed(e.clip_model) or store.is_installed(e.clip_model, True):
            return True
        self.message_bar.show_message(
            f"The CLIP model {e.clip_model} is not installed yet, so charts cannot be added or "
            f"searched. Download or import it in Settings; browsing works meanwhile.",
            "warning", action=("Settings…", self.open_settings))
        return False

    def _show_error(self, message: str, details: str = "", user: bool = True) -> None:
        if self._closed:
            return
        log.info("shown to the user: %s", message)
        action = None
        low = message.lower()
        about_models = "not installed" in low or "re-encode" in low or "encoded with" in low or (
            "model" in low and ("import" in low or "download" in low))
        if about_models:
            action = ("Settings…", self.open_settings)
        text = message if user else f"Something went wrong: {message}"
        self.message_bar.show_message(text, "error", action=action, details=details)

    # ----------------------------------------------------------------- drops anywhere
    def _drag_paths(self, event: QDragEnterEvent | QDragMoveEvent | QDropEvent) -> list[str]:
        if event.source() is not None:
            return []  # dragged from inside this window (a tile): nothing to add
        return local_paths(event.mimeData())

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802
        if self._drag_paths(event):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:  # noqa: N802
        if self._drag_paths(event):
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
        else:
            event.ignore()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802
        paths = self._drag_paths(event)
        if paths:
            event.setDropAction(Qt.DropAction.CopyAction)
            event.accept()
            self.add_paths(paths)
        else:
            event.ignore()

    # ----------------------------------------------------------------- settings
    def _dialog_config_path(self) -> Path:
        from vector_studio_gui.core.paths import default_config_file

        return self.config_path or default_config_file()

    def open_settings(self) -> None:
        """The settings dialog (modal); re-creates the engine if models or library changed."""
        if self._closed:
            return
        try:
            from vector_studio_gui.gui.settings_dialog import SettingsDialog
        except ImportError as exc:
            log.info("settings dialog unavailable: %s", exc)
            self.message_bar.show_message(
                f"The settings dialog is not available in this build; edit "
                f"{self._dialog_config_path()} and restart.", "info")
            return
        work = copy.deepcopy(self.settings)
        dlg = SettingsDialog(work, self._dialog_config_path(), self, runner=self.runner,
                             engine_provider=lambda: None if self._closed else self.engine)
        self.settings_dialog = dlg
        reencode: list[str] = []
        dlg.reencode_requested.connect(reencode.append)
        try:
            accepted = dlg.exec() == QDialog.DialogCode.Accepted
        finally:
            self.settings_dialog = None
            dlg.deleteLater()
        if accepted and not self._closed:
            self.apply_settings(work)
            if reencode and not self.read_only:
                self.ingest.reencode(reencode[-1], dlg.reencode_quantized)

    def maybe_first_run(self) -> bool:
        """First start without the CLIP model: offer the download/import dialog (non-modal, so
        browsing goes on). Returns True if it was shown."""
        try:
            from vector_studio_gui.gui.first_run import FirstRunDialog, needs_first_run
        except ImportError:
            self.check_models()
            return False
        if not needs_first_run(self.settings):
            self.check_models()
            return False
        work = copy.deepcopy(self.settings)
        dlg = FirstRunDialog(work, self._dialog_config_path(), self, runner=self.runner)
        dlg.models_ready.connect(lambda: self._first_run_done(work))
        dlg.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        self.first_run_dialog = dlg
        dlg.finished.connect(lambda _r: (setattr(self, "first_run_dialog", None),
                                         self.check_models() if not self._closed else None))
        dlg.show()
        return True

    def _first_run_done(self, work: Settings) -> None:
        if self._closed:
            return
        self.message_bar.hide()
        self.apply_settings(work)
        self.statusBar().showMessage("Models ready: drop chart images or folders to add them",
                                     8000)

    def _on_reencoded(self, result: object) -> None:
        """Engine.reencode switched the library (and ``settings.embedding``): persist the model."""
        if self._closed or not isinstance(result, dict):
            return
        e = self.engine.settings.embedding
        if self.config_path is not None:
            try:
                on_disk = Settings.load(self.config_path)
                on_disk.embedding.clip_model = e.clip_model
                on_disk.embedding.quantized = e.quantized
                on_disk.save(self.config_path)
            except (OSError, VectorStudioError) as exc:
                self._show_error(f"The library now uses {e.clip_model}, but the settings file "
                                 f"could not be updated: {exc}", "", True)
        self._update_models_label()
        if self._query is not None:
            self._refresh_query()

    def apply_settings(self, new: Settings) -> None:
        """Use ``new`` settings; re-create the engine if models or library changed."""
        old = self.settings
        new.gui = old.gui  # the window owns its geometry
        needs_engine = (new.embedding != old.embedding or new.library != old.library
                        or new.models_dir != old.models_dir)
        was_reading = old.ocr.enabled  # (the engine may share ``old``: read it first)
        self.settings = new
        if needs_engine:
            self.replace_engine(previous=old)
        else:
            self.engine.settings.ocr = copy.deepcopy(new.ocr)
            self._update_models_label()
        if new.ocr.enabled and not was_reading:
            self.read_chart_text()
        elif was_reading and not new.ocr.enabled:
            self._text_timer.stop()
            self.text_pass.cancel()
        if new.ocr.enabled != was_reading and self.details.item is not None:
            self._load_chart_text(self.details.item.id)  # "off" / "not read yet"

    def replace_engine(self, previous: Settings | None = None) -> None:
        """Stop every worker, close the engine, open a new one with the current settings.

        If the new settings cannot open a library, ``previous`` settings are used again.
        """
        previous = previous or self.settings
        self.ingest.cancel()
        resume_text = self.text_pass.pause()
        self._text_timer.stop()
        self._refresh_timer.stop()
        self.runner.shutdown(5000)
        for lane in (self.search_lane, self.thumb_lane):
            lane.shutdown(5000)
            lane.deleteLater()
        self.engine.close()
        read_only = self.read_only
        try:
            try:
                engine = self._open_engine(self.settings, read_only)
            except LibraryLockedError as exc:
                engine = self._open_engine(self.settings, True)
                read_only = True
                self._show_error(f"{exc}. It is open read-only for now.", "", True)
        except VectorStudioError as exc:
            log.warning("new settings unusable: %s", exc)
            self.settings = previous
            engine = self._open_engine(previous, read_only)
            self._show_error(f"The new settings cannot be used, so the previous ones stay in "
                             f"effect: {exc}", "", True)
        self.engine = engine
        self.read_only = read_only
        thaw_startup_heap()  # the old engine may sit in a cycle: let the collector free it
        self.setWindowTitle(TITLE + (" (read-only)" if read_only else ""))
        self.search_lane = Lane("search", self)
        self.thumb_lane = Lane("thumbs", self)
        self.model.set_thumbnail_size(QSize(), self.model.dpr)
        self._apply_thumb_box()
        self._apply_read_only()
        self._update_models_label()
        self._refresh_status()
        if self._query is None:
            self.browse()
        else:
            self._refresh_query()
        if resume_text or self._ocr_enabled():
            self.read_chart_text()  # the new library's charts not read yet
        self.engineReplaced.emit()

    def _about(self) -> None:
        from vector_studio_gui import __version__

        QMessageBox.about(self, "About Vector Studio",
                          f"<b>Vector Studio</b> {__version__}<br>Local visual semantic search "
                          f"over chart images.<br><br>Library: {self.engine.library.root}")

    # ----------------------------------------------------------------- closing
    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802
        if not self._closed:
            self._save_gui_state()
            # gone from the screen at once, even while a worker finishes the step it is in
            # (a chart being read cannot be interrupted)
            self.hide()
            self.shutdown()
        event.accept()

    def shutdown(self) -> None:
        """Cancel and join every worker, then close the engine (which saves the index)."""
        if self._closed:
            return
        for dlg in (self.first_run_dialog, self.ingest.dialog):
            if dlg is not None:
                dlg.close()  # their own work stops with them
        self._closed = True
        self._refresh_timer.stop()
        self._text_timer.stop()
        self.ingest.stop()
        self.text_pass.stop()
        if not self.runner.shutdown(2000):
            log.warning("background work is still finishing; waiting for it before closing")
            self.runner.shutdown(15000)
        for lane in (self.search_lane, self.thumb_lane):
            lane.shutdown(5000)
        try:
            self.engine.close()
        except Exception:  # closing must never crash; the library is transactional
            log.exception("closing the library failed")
