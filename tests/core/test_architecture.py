"""The core (and modelgen) never import Qt; importing them downloads nothing and writes nothing."""

from __future__ import annotations

import ast
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import vector_studio_gui
import vector_studio_gui.core
import vector_studio_gui.modelgen

ROOT = Path(vector_studio_gui.__file__).resolve().parent.parent
QT_PACKAGES = ("PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "shiboken2", "qtpy")
QT_FREE_PACKAGES = (vector_studio_gui.core, vector_studio_gui.modelgen)


def module_names() -> list[str]:
    names = []
    for pkg in QT_FREE_PACKAGES:
        names.append(pkg.__name__)
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            names.append(info.name)
    return sorted(names)


def source_files() -> list[Path]:
    files = []
    for pkg in QT_FREE_PACKAGES:
        files += sorted(Path(pkg.__path__[0]).rglob("*.py"))
    return files


def test_every_core_module_is_found():
    names = module_names()
    for expected in ("encoders", "tokenization", "runtime", "models", "settings", "catalog",
                     "engine", "library", "index", "ingest", "imaging", "download"):
        assert f"vector_studio_gui.core.{expected}" in names
    assert "vector_studio_gui.modelgen.toy" in names
    assert len(source_files()) >= len(names)


def _qt_imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        mods: list[str] = []
        if isinstance(node, ast.Import):
            mods = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods = [node.module]
        elif isinstance(node, ast.Call):
            # importlib.import_module("PySide6...") / __import__("PySide6")
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if fname in ("import_module", "__import__") and node.args and isinstance(
                    node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                mods = [node.args[0].value]
        for mod in mods:
            if mod.split(".")[0] in QT_PACKAGES:
                found.append(f"line {node.lineno}: {mod}")
        # from vector_studio_gui.gui import ... would pull Qt in as well
        if isinstance(node, ast.ImportFrom) and node.module and (
                node.module == "vector_studio_gui.gui"
                or node.module.startswith("vector_studio_gui.gui.")):
            found.append(f"line {node.lineno}: {node.module}")
        if isinstance(node, ast.ImportFrom) and node.level > 0 and node.module and (
                node.module.split(".")[0] == "gui"):
            found.append(f"line {node.lineno}: relative .{node.module}")
    return found


@pytest.mark.parametrize("path", source_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_source_never_imports_qt(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    assert _qt_imports(tree) == [], f"{path.relative_to(ROOT)} imports Qt"


def test_the_scanner_catches_every_way_of_importing_qt():
    src = textwrap.dedent("""
        import PySide6
        from PySide6.QtCore import QObject
        import PyQt6.QtWidgets as w
        def later():
            import shiboken6
            importlib.import_module("PySide6.QtGui")
            __import__("PyQt5")
        from vector_studio_gui.gui.app import main
        from ..gui import thing
    """)
    assert len(_qt_imports(ast.parse(src))) == 8
    assert _qt_imports(ast.parse("import numpy\nfrom pathlib import Path\n")) == []


PROBE = r"""
import json, os, socket, sys

attempts = []

def _refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network disabled by test_architecture")

socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
socket.create_connection = _refuse
socket.getaddrinfo = _refuse

class _NoQt:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in QT:
            raise ImportError(f"Qt import of {name} from the core")
        return None

QT = set(json.loads(sys.argv[2]))
sys.meta_path.insert(0, _NoQt())

import importlib
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)

# what start-up does without being asked for a download: read settings, list models
from vector_studio_gui.core.paths import default_config_file, default_models_dir
from vector_studio_gui.core.settings import Settings
from vector_studio_gui.core.models import ModelStore
from vector_studio_gui.core.runtime import provider_table
Settings.load(default_config_file())
ModelStore(default_models_dir()).list()
provider_table()

print(json.dumps({"qt": sorted(m for m in sys.modules if m.split(".")[0] in QT),
                  "network": attempts,
                  "hub_loaded": "huggingface_hub" in sys.modules}))
"""


# environment variables that make ONNX Runtime keep quiet on its own (CI detection, opt-out):
# removed so the test sees what a user's desktop sees
_ORT_QUIETING = ("CI", "TF_BUILD", "GITHUB_ACTIONS", "JENKINS_URL", "CODEBUILD_BUILD_ID",
                 "ORT_RUNNING_UNIT_TESTS")


def _isolated_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VECTOR_STUDIO_", "XDG_", "HF_", "ORT_")) and k not in _ORT_QUIETING}
    env.update({
        "HOME": str(home), "USERPROFILE": str(home),
        "XDG_CONFIG_HOME": str(home / ".config"), "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
        "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1",
    })
    env.pop("QT_QPA_PLATFORM", None)
    return env


def test_importing_core_loads_no_qt_downloads_nothing_and_writes_nothing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    names = [vector_studio_gui.__name__, *module_names(), "vector_studio_gui.cli"]
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(names), json.dumps(QT_PACKAGES)],
        cwd=cwd, env=_isolated_env(home), capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["qt"] == []
    assert result["network"] == []
    # nothing created in the user's folders or the working directory
    assert sorted(p.relative_to(home).as_posix() for p in home.rglob("*")) == []
    assert list(cwd.iterdir()) == []


def test_core_import_alone_in_a_fresh_interpreter_has_no_qt():
    code = ("import sys, vector_studio_gui.core.engine, vector_studio_gui.core.models, "
            "vector_studio_gui.core.encoders, vector_studio_gui.core.settings; "
            "assert 'PySide6' not in sys.modules, 'PySide6 imported'; print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "ok"


def test_onnxruntime_loaded_only_through_core_runtime():
    """core.runtime opts out of ONNX Runtime's telemetry (a device-id file in ~/.cache and an
    upload) before loading it, so no other core module may import onnxruntime at load time."""
    offenders = []
    for path in source_files():
        if path.parent.name != "core" or path.name == "runtime.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:  # module level only; TYPE_CHECKING blocks are fine
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(n.split(".")[0] == "onnxruntime" for n in names):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


@pytest.mark.parametrize(("user_value", "expected"), [(None, "1"), ("0", "0")])
def test_onnxruntime_telemetry_off_unless_the_user_says_otherwise(tmp_path, user_value, expected):
    home = tmp_path / "home"
    home.mkdir()
    env = _isolated_env(home)
    if user_value is not None:
        env["ORT_DISABLE_TELEMETRY"] = user_value
    code = ("import os, vector_studio_gui.core.encoders as e, onnxruntime; "
            "print(os.environ['ORT_DISABLE_TELEMETRY'])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == expected
    if user_value is None:
        assert list(home.rglob("*")) == []
