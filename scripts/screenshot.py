"""Render the main window with a populated library and a query into docs/screenshot.png.

Reproducible without a network or real models: 24 charts are drawn with
``vector_studio_gui.modelgen.toy.toy_chart_image`` (six colours, bar/line/pie) with a title and a
subtitle written on them, the toy CLIP and text models are imported into a temporary models
folder, the charts are ingested and their text is read (RapidOCR, offline), and the window is
shown with a typed query that names a chart's title: its results, thumbnails, and the details of
the best match with the recognised text, the query's words highlighted in it and outlined on the
preview.

    xvfb-run -a -s "-screen 0 1400x900x24" .venv/bin/python scripts/screenshot.py   # a real X
    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/screenshot.py               # no display

Options: --out FILE, --query TEXT, --dark (a dark palette, to check both), --size WxH,
--no-ocr (charts without their text read).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOPICS = ("revenue-by-region", "market-share", "monthly-active-users", "churn-rate",
          "gold-price", "support-tickets", "cloud-costs", "conversion-funnel")
#: what is written on each topic's charts: title, subtitle
TITLES = {
    "revenue-by-region": ("Revenue by region", "EMEA · APAC · Americas, USD m"),
    "market-share": ("Market share", "Top vendors, % of units"),
    "monthly-active-users": ("Monthly active users", "Mobile and web, millions"),
    "churn-rate": ("Churn rate", "Monthly, % of subscribers"),
    "gold-price": ("Gold price", "XAU/USD daily close"),
    "support-tickets": ("Support tickets", "Opened per week"),
    "cloud-costs": ("Cloud costs", "Compute and storage, USD k"),
    "conversion-funnel": ("Conversion funnel", "Visit to purchase"),
}
YEARS = ("2022", "2023", "2024")
KINDS = ("bar", "line", "pie")
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")


def _font(size: int, bold: bool):
    import glob

    from PIL import ImageFont

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    found = sorted(glob.glob(f"/usr/share/fonts/truetype/*/{name}")
                   + glob.glob("/usr/share/fonts/truetype/*/*Sans*.ttf"))
    return ImageFont.truetype(found[0], size) if found else ImageFont.load_default(size=size)


def make_charts(folder: Path) -> list[Path]:
    from PIL import ImageDraw

    from vector_studio_gui.modelgen.toy import toy_chart_image

    folder.mkdir(parents=True, exist_ok=True)
    title_font, sub_font = _font(30, True), _font(17, False)
    out = []
    for k in range(24):
        colour = COLOURS[k % len(COLOURS)]
        kind = KINDS[(k // len(COLOURS) + k) % len(KINDS)]
        topic = TOPICS[k % len(TOPICS)]
        year = YEARS[k // len(TOPICS)]
        # names like exported slides: only the text in the picture says what a chart shows
        path = folder / f"deck-slide-{k + 1:02d}-{colour}-{kind}.png"
        img = toy_chart_image(colour, size=(800, 450), kind=kind, seed=k)
        title, sub = TITLES[topic]
        d = ImageDraw.Draw(img)  # the title band replaces the toy chart's small caption
        d.rectangle([0, 0, img.width, 58], fill="white")
        d.text((64, 8), f"{title} {year}", fill=(25, 25, 25), font=title_font)
        d.text((66, 42), sub, fill=(95, 95, 95), font=sub_font)
        img.save(path)
        out.append(path)
    return out


def wait_until(app, condition, timeout_s: float = 20.0) -> bool:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        app.processEvents()
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def dark_palette():
    from PySide6.QtGui import QColor, QPalette

    p = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#2b2d31", QPalette.ColorRole.WindowText: "#e6e6e6",
        QPalette.ColorRole.Base: "#1f2023", QPalette.ColorRole.AlternateBase: "#2b2d31",
        QPalette.ColorRole.Text: "#e6e6e6", QPalette.ColorRole.Button: "#35373c",
        QPalette.ColorRole.ButtonText: "#e6e6e6", QPalette.ColorRole.Highlight: "#3d7bd9",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#35373c",
        QPalette.ColorRole.ToolTipText: "#e6e6e6", QPalette.ColorRole.PlaceholderText: "#8c8f96",
        QPalette.ColorRole.Mid: "#44464b", QPalette.ColorRole.Dark: "#17181a",
        QPalette.ColorRole.Light: "#4a4c52",
    }
    for role, colour in roles.items():
        p.setColor(role, QColor(colour))
    for role in (QPalette.ColorRole.WindowText, QPalette.ColorRole.Text,
                 QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor("#7a7d84"))
    return p


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    ap.add_argument("--query", default="gold price 2024")
    ap.add_argument("--dark", action="store_true")
    ap.add_argument("--size", default="1280x800")
    ap.add_argument("--empty", action="store_true", help="an empty library (the drop hint)")
    ap.add_argument("--no-ocr", action="store_true", help="do not read the charts' text")
    args = ap.parse_args(argv)
    width, height = (int(v) for v in args.size.lower().split("x"))

    from PySide6.QtWidgets import QApplication

    from vector_studio_gui.core.engine import Engine
    from vector_studio_gui.core.models import ModelStore
    from vector_studio_gui.core.settings import Settings
    from vector_studio_gui.gui import pyside_guard
    from vector_studio_gui.gui.app import make_app
    from vector_studio_gui.gui.main_window import MainWindow
    from vector_studio_gui.gui.results_model import ResultsModel
    from vector_studio_gui.modelgen.toy import build_toy_clip, build_toy_text_model

    pyside_guard.apply()
    app = make_app()
    if args.dark:
        app.setStyle("Fusion")
        app.setPalette(dark_palette())
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        store = ModelStore(tmp_path / "models")
        store.import_folder(build_toy_clip(tmp_path / "src" / "clip"), "toy-clip", "clip")
        store.import_folder(build_toy_text_model(tmp_path / "src" / "text"), "toy-text", "text")
        s = Settings()
        s.models_dir = str(store.root)
        s.embedding.clip_model = "toy-clip"
        s.embedding.text_model = "toy-text"
        s.embedding.threads = 1
        s.library.path = str(tmp_path / "library")
        s.ocr.enabled = not args.no_ocr
        if not args.empty:
            charts = make_charts(tmp_path / "Charts")
            with Engine(s) as engine:
                engine.ingest([charts[0].parent])
                if s.ocr.enabled:  # the window would read it in the background; done here so
                    # the picture does not depend on how far that got
                    print(engine.read_text_pass().summary())

        w = MainWindow(s, None)
        w.resize(width, height)
        w.splitter.setSizes([width - 360, 360])
        w.show()
        n = 0 if args.empty else 24
        wait_until(app, lambda: w.model.rowCount() == n and w.count_label.text() == f"{n} charts")
        if args.empty:
            app.processEvents()
            ok = w.grab().save(args.out)
            w.close()
            return 0 if ok else 1
        w.search.setText(args.query)
        w.search.search_now()
        wait_until(app, lambda: w.model.shown_generation == w.model.generation
                   and w.model.rowCount() > 0 and w.model.data(
                       w.model.index(0, 0), ResultsModel.ScoreRole) is not None)
        w.view.setCurrentIndex(w.model.index(0, 0))
        # a note typed in the details pane and saved to the library, as a user would
        w.details.note_edit.setPlainText("Q3 board deck: gold at a new high")
        w.details.save_note_button.click()
        saved = []
        w.noteSaved.connect(saved.append)
        wait_until(app, lambda: bool(saved))
        w.search.setFocus()
        w.search.deselect()
        w.search.end(False)
        app.processEvents()
        # every visible tile's thumbnail and the large preview must have arrived

        def loaded() -> bool:
            vp = w.view.viewport().rect()
            for r in range(w.model.rowCount()):
                idx = w.model.index(r, 0)
                if w.view.visualRect(idx).intersects(vp) and not w.model.data(
                        idx, ResultsModel.ThumbnailLoadedRole):
                    w.model.data(idx, 1)  # asks for it
                    return False
            return not w.details.preview.pixmap_size().isEmpty() and (
                args.no_ocr or bool(w.details.text_view.toPlainText()))

        wait_until(app, loaded)
        w.statusBar().clearMessage()
        app.processEvents()
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        ok = w.grab().save(str(out))
        print(f"{'wrote' if ok else 'FAILED to write'} {out} ({w.width()}x{w.height()}, "
              f"platform {QApplication.platformName()})")
        w.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
