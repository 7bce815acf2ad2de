"""Render the settings dialog offscreen into docs/settings.png (Models tab) and
docs/settings-runtime.png (Runtime tab after a speed test).

Reproducible without a network or real models: the toy CLIP and text models
(``vector_studio_gui.modelgen.toy``) are imported into a temporary models folder, so the catalog
models show as "Not installed" and the toy ones as imported and in use.

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/settings_screenshot.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    from PySide6.QtCore import QElapsedTimer
    from PySide6.QtWidgets import QApplication

    from vector_studio_gui.core.models import ModelStore
    from vector_studio_gui.core.settings import Settings
    from vector_studio_gui.gui import pyside_guard
    from vector_studio_gui.gui.settings_dialog import SettingsDialog
    from vector_studio_gui.modelgen.toy import build_toy_clip, build_toy_text_model

    app = QApplication.instance() or QApplication(sys.argv[:1])
    pyside_guard.apply()  # PySide6 6.12.0 + Python 3.11 reference-count bug (see that module)
    out = ROOT / "docs"
    out.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        store = ModelStore(tmp_path / "models")
        store.import_folder(build_toy_clip(tmp_path / "src" / "clip"), "toy-clip", "clip")
        store.import_folder(build_toy_text_model(tmp_path / "src" / "text"), "toy-text", "text")
        s = Settings()
        s.models_dir = str(store.root)
        s.embedding.clip_model = "toy-clip"
        s.embedding.text_model = "toy-text"
        s.library.path = str(Path.home() / "Charts library")
        dlg = SettingsDialog(s, tmp_path / "settings.json")
        dlg.show()
        app.processEvents()
        dlg.models_page.select("clip-vit-b32")
        app.processEvents()
        dlg.grab().save(str(out / "settings.png"))

        dlg.tabs.setCurrentWidget(dlg.runtime_page)
        dlg.runtime_page.test_button.click()
        timer = QElapsedTimer()
        timer.start()
        while not dlg.runtime_page.test_button.isEnabled() and timer.elapsed() < 30_000:
            app.processEvents()
        app.processEvents()
        dlg.grab().save(str(out / "settings-runtime.png"))
        dlg.close()
    print(f"wrote {out / 'settings.png'} and {out / 'settings-runtime.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
