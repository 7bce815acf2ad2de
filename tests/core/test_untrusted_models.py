"""Model files are untrusted input: a bad one is refused with a message and changes nothing.

Covers importing custom ONNX models (wrong inputs/outputs, wrong dims, not ONNX, a model that
fails when run, a model that asks for enormous inputs or outputs), a damaged downloaded model
never being used, a model of another dim never being mixed into a library, and a scan of the
package source for pickle and other code-executing loaders.
"""

from __future__ import annotations

import ast
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_cli
from conftest import TOY_CLIP, write_charts

import vector_studio_gui
from vector_studio_gui.core.engine import Engine
from vector_studio_gui.core.errors import LibraryError, ModelError, SpaceMismatchError
from vector_studio_gui.core.models import ModelStore
from vector_studio_gui.modelgen._graph import GraphBuilder
from vector_studio_gui.modelgen.toy import COLOURS, build_broken_models, build_toy_clip


# ----------------------------------------------------------------------------- bad models
def _vision(path: Path, build) -> Path:
    g = GraphBuilder()
    build(g)
    return g.save(path, "vision")


def crashing_vision(g: GraphBuilder) -> None:
    """Loads fine, declares the right shapes, fails in Reshape when run."""
    px = g.input("pixel_values", np.float32, ["batch", 3, 224, 224])
    x = g.op("Reshape", [px, g.const([5, -1], np.int64)])  # 3*224*224*B is never a multiple of 5
    y = g.op("ReduceMean", [x], axes=[1], keepdims=1)
    g.output(g.op("Mul", [y, g.const(np.ones((1, 16)))]), "image_embeds", np.float32,
             ["batch", 16])


def enormous_input_vision(g: GraphBuilder) -> None:
    """Asks for 20000x20000 pixel inputs: 4.8 GB per image as float32."""
    px = g.input("pixel_values", np.float32, ["batch", 3, 20000, 20000])
    m = g.op("ReduceMean", [px], axes=[2, 3], keepdims=0)
    g.output(g.op("MatMul", [m, g.weight(np.ones((3, 16)), "w")]), "image_embeds", np.float32,
             ["batch", 16])


def enormous_output_vision(g: GraphBuilder) -> None:
    """Outputs 4,000,000-d vectors: an index for them would need 16 GB per 1000 charts."""
    px = g.input("pixel_values", np.float32, ["batch", 3, 224, 224])
    m = g.op("ReduceMean", [px], axes=[1, 2, 3], keepdims=0)  # (B,)
    col = g.op("Unsqueeze", [m, g.const([1], np.int64)])  # (B, 1)
    wide = g.op("Tile", [col, g.const([1, 4_000_000], np.int64)])
    g.output(g.op("Add", [wide, g.const(1.0)]), "image_embeds", np.float32, ["batch", 4_000_000])


def enormous_output_text(g: GraphBuilder) -> None:
    ids = g.input("input_ids", np.int64, ["batch", "sequence"])
    m = g.op("ReduceMean", [g.op("Cast", [ids], to=1)], axes=[1], keepdims=1)  # (B, 1)
    wide = g.op("Tile", [m, g.const([1, 4_000_000], np.int64)])
    g.output(g.op("Add", [wide, g.const(1.0)]), "text_embeds", np.float32, ["batch", 4_000_000])


def three_d_output_vision(g: GraphBuilder) -> None:
    px = g.input("pixel_values", np.float32, ["batch", 3, 224, 224])
    m = g.op("ReduceMean", [px], axes=[2, 3], keepdims=1)  # (B,3,1,1)
    g.output(g.op("Squeeze", [m, g.const([3], np.int64)]), "image_embeds", np.float32,
             ["batch", 3, 1])


def clip_folder_with(tmp_path: Path, toy: Path, name: str, vision=None, vision_file=None) -> Path:
    """A hub-layout CLIP folder: the toy text tower and tokenizer, a replaced vision tower."""
    folder = tmp_path / name
    shutil.copytree(toy, folder)
    target = folder / "onnx" / "vision_model.onnx"
    if vision is not None:
        _vision(target, vision)
    elif vision_file is not None:
        shutil.copyfile(vision_file, target)
    return folder


@pytest.fixture
def library_with_charts(engine, tmp_path):
    write_charts(tmp_path / "charts", size=(160, 90))
    engine.ingest([tmp_path / "charts"])
    return engine


def snapshot(*folders: Path) -> dict[str, bytes]:
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                out[str(p)] = p.read_bytes()
    return out


def cli(env, *args) -> subprocess.CompletedProcess:
    return run_cli(env, *args, check_rc=None)  # the tests read the status themselves


BAD_IMPORTS = {
    # name: (kind, builder(tmp_path, toy_clip_src, broken) -> folder, words in the message)
    "not an ONNX file": ("clip", lambda t, toy, b: clip_folder_with(
        t, toy, "x1", vision_file=b["not_onnx"]), ("not a valid ONNX",)),
    "text model as image tower (wrong inputs)": ("clip", lambda t, toy, b: clip_folder_with(
        t, toy, "x2", vision_file=b["wrong_inputs"]), ("pixel_values", "foo")),
    "wrong output rank": ("clip", lambda t, toy, b: clip_folder_with(
        t, toy, "x3", vision=three_d_output_vision), ("(batch, dim)",)),
    "towers of different dims": ("clip", lambda t, toy, b: b["mismatched_clip"], ("16-d", "8-d")),
    "fails when run": ("clip", lambda t, toy, b: clip_folder_with(
        t, toy, "x4", vision=crashing_vision), ("failed to run",)),
    "4-D text output": ("text", lambda t, toy, b: _text_folder(t, b["wrong_output_rank"]),
                        ("last_hidden_state",)),
    "text model without a tokenizer": ("text", lambda t, toy, b: _bare(t, b["wrong_output_rank"]),
                                       ("tokenizer.json",)),
}


def _text_folder(tmp_path: Path, model: Path) -> Path:
    folder = tmp_path / "textx"
    folder.mkdir()
    shutil.copyfile(model, folder / "model.onnx")
    shutil.copyfile(next(tmp_path.glob("toy-src/tokenizer.json")), folder / "tokenizer.json")
    return folder


def _bare(tmp_path: Path, model: Path) -> Path:
    folder = tmp_path / "bare"
    folder.mkdir()
    shutil.copyfile(model, folder / "model.onnx")
    return folder


@pytest.mark.parametrize("case", list(BAD_IMPORTS))
def test_bad_model_import_is_refused_and_changes_nothing(case, cli_env, settings, tmp_path,
                                                         models_dir, library_with_charts):
    kind, make, words = BAD_IMPORTS[case]
    toy = build_toy_clip(tmp_path / "toy-src")
    folder = make(tmp_path, toy, build_broken_models(tmp_path / "broken"))
    library_with_charts.close()
    before = snapshot(models_dir, Path(settings.library.path))
    proc = cli(cli_env, "models", "import", folder, "--name", "custom", "--kind", kind)
    assert proc.returncode == 1, proc.stdout
    err = proc.stderr.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err
    for w in words:
        assert w in err, err
    assert snapshot(models_dir, Path(settings.library.path)) == before  # no staging left over
    assert "custom" not in {m.name for m in ModelStore(models_dir).list()}


def _limited_import(folder: Path, models_dir: Path, limit_gb: float) -> subprocess.CompletedProcess:
    """Import in a child whose address space is capped, so a memory blow-up cannot hurt."""
    code = ("import sys; from pathlib import Path\n"
            "from vector_studio_gui.core.models import ModelStore\n"
            "from vector_studio_gui.core.errors import ModelError\n"
            "try:\n"
            "    ModelStore(Path(sys.argv[2])).import_folder(Path(sys.argv[1]), 'big', 'clip')\n"
            "except ModelError as exc:\n"
            "    print('refused:', exc); sys.exit(1)\n"
            "print('imported')\n")
    limit = int(limit_gb * 2**30)

    def cap() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run([sys.executable, "-c", code, str(folder), str(models_dir)],
                          capture_output=True, text=True, timeout=120, preexec_fn=cap)


@pytest.mark.parametrize("builder,words", [
    (enormous_input_vision, ("20000x20000",)),
    (enormous_output_vision, ("4000000-d", "at most 8192")),
])
def test_model_asking_for_enormous_tensors_is_refused_before_allocating(builder, words, tmp_path,
                                                                        models_dir):
    folder = clip_folder_with(tmp_path, build_toy_clip(tmp_path / "toy-src"), "big", builder)
    if builder is enormous_output_vision:  # both towers agree: only the size is wrong
        _vision(folder / "onnx" / "text_model.onnx", enormous_output_text)
    proc = _limited_import(folder, models_dir, limit_gb=3)
    assert proc.returncode == 1, proc.stdout + proc.stderr[-2000:]
    assert "refused:" in proc.stdout and "MemoryError" not in proc.stderr
    for w in words:
        assert w in proc.stdout, proc.stdout
    assert not (models_dir / "big").exists()


def test_huge_file_that_is_not_a_model_is_refused_without_reading_it(tmp_path, models_dir):
    folder = clip_folder_with(tmp_path, build_toy_clip(tmp_path / "toy-src"), "sparse")
    with open(folder / "onnx" / "vision_model.onnx", "wb") as fh:
        fh.truncate(3 * 2**30)  # 3 GB of zeros, sparse on disk
    proc = _limited_import(folder, models_dir, limit_gb=2)
    assert proc.returncode == 1 and "not a valid ONNX" in proc.stdout, proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- downloads
def test_damaged_downloaded_model_is_never_used(settings, models_dir, tmp_path, chart_folder):
    """A model file that lost bytes after installing is not loaded: the engine says so."""
    vision = models_dir / TOY_CLIP / "onnx" / "vision_model.onnx"
    vision.write_bytes(vision.read_bytes()[:-100])  # truncated on disk (an interrupted copy)
    with Engine(settings) as eng:
        with pytest.raises(ModelError, match="not installed"):
            eng.ingest([chart_folder])
        assert eng.library.count() == 0
    problems = ModelStore(models_dir).verify(TOY_CLIP)
    assert any("vision_model.onnx" in p and "size" in p for p in problems)


# ----------------------------------------------------------------------------- dims never mix
def test_same_name_now_other_dim_is_refused_and_library_unchanged(settings, models_dir, tmp_path,
                                                                  chart_folder):
    with Engine(settings) as eng:
        eng.ingest([chart_folder / "red-bar.png"])
    store = ModelStore(models_dir)
    store.delete(TOY_CLIP)  # replaced by a model of the same name and another dim
    store.import_folder(build_toy_clip(tmp_path / "wide", dim=24), TOY_CLIP, "clip")
    before = snapshot(Path(settings.library.path))
    with Engine(settings) as eng:
        with pytest.raises(LibraryError, match="24-d vectors but this library holds 16-d"):
            eng.ingest([chart_folder])
        with pytest.raises(LibraryError, match="24-d"):
            eng.search_image(chart_folder / "blue-bar.png")
        assert eng.library.count() == 1
        assert eng.library.space(TOY_CLIP).dim == 16
        dims = {len(v) // 4 for (v,) in eng.library._read.execute(
            "SELECT vector FROM embeddings WHERE space=?", (TOY_CLIP,))}
        assert dims == {16}
    after = snapshot(Path(settings.library.path))
    assert {k: v for k, v in after.items() if "index" in k} == \
        {k: v for k, v in before.items() if "index" in k}


def test_other_model_is_refused_until_reencoded(settings, models_dir, tmp_path, chart_folder):
    with Engine(settings) as eng:
        eng.ingest([chart_folder])
    ModelStore(models_dir).import_folder(build_toy_clip(tmp_path / "w", dim=24), "wide", "clip")
    settings.embedding.clip_model = "wide"
    with Engine(settings) as eng:
        for call in (lambda: eng.ingest([chart_folder]), lambda: eng.search_text("red"),
                     lambda: eng.search_image(chart_folder / "red-bar.png")):
            with pytest.raises(SpaceMismatchError, match="reencode --model wide"):
                call()
        assert eng.library.space_counts() == {TOY_CLIP: len(COLOURS)}
        assert eng.index(TOY_CLIP).dim == 16


def test_text_model_with_another_dim_never_mixes_notes(settings, models_dir, tmp_path,
                                                       chart_folder):
    from vector_studio_gui.modelgen.toy import build_toy_text_model

    with Engine(settings) as eng:
        eng.ingest([chart_folder / "red-bar.png"])
        item = eng.item_by_path(chart_folder / "red-bar.png")
        eng.set_note(item.id, "gold breakout")
    store = ModelStore(models_dir)
    store.delete("toy-text")
    store.import_folder(build_toy_text_model(tmp_path / "t", dim=48), "toy-text", "text")
    with Engine(settings) as eng:
        with pytest.raises(LibraryError, match="48-d"):
            eng.set_note(item.id, "silver breakdown")
        assert eng.item(item.id).note == "gold breakout"
        vec = eng.library.vector(item.id, eng.text_space(), source="note")
        assert vec.shape == (32,)


# ----------------------------------------------------------------------------- no code loading
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal",
                     "shelve", "torch", "tensorflow", "keras"}
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__"}


def _problems_in(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    out = []
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            out += [f"{where} imports {a.name}" for a in node.names
                    if a.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in FORBIDDEN_MODULES:
                out.append(f"{where} imports from {node.module}")
        elif isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) \
                else ""
            if isinstance(f, ast.Name) and name in FORBIDDEN_CALLS:
                out.append(f"{where} calls {name}()")
            kw = {k.arg: k.value for k in node.keywords}
            if name == "load" and "allow_pickle" in kw and not (
                    isinstance(kw["allow_pickle"], ast.Constant) and not kw["allow_pickle"].value):
                out.append(f"{where} np.load(allow_pickle=...)")
            if name == "load" and isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) \
                    and f.value.id in {"yaml", "torch", "pickle", "joblib"}:
                out.append(f"{where} {f.value.id}.load()")
            if name in {"register_custom_ops_library", "load_library", "CDLL", "LoadLibrary"}:
                out.append(f"{where} loads native code: {name}()")
            if name == "import_module" and node.args and not isinstance(node.args[0],
                                                                         ast.Constant):
                out.append(f"{where} imports a module named at run time")
    return out


def test_no_pickle_or_code_executing_loaders_in_the_package():
    root = Path(vector_studio_gui.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert len(files) > 20
    problems = [p for f in files for p in _problems_in(f)]
    assert problems == []


def test_the_scan_itself_catches_what_it_looks_for(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nfrom torch import load\nimport numpy as np\n"
                   "np.load('x.npy', allow_pickle=True)\neval('1')\nexec('x=1')\n"
                   "import yaml\nyaml.load(open('f'))\n"
                   "so.register_custom_ops_library('x.so')\n"
                   "np.load('x.npy', allow_pickle=False)\n")
    found = _problems_in(bad)
    assert len(found) == 7, found


def test_library_and_model_folders_hold_only_inert_formats(library_with_charts, settings,
                                                           models_dir):
    library_with_charts.set_note(library_with_charts.browse()[0].id, "gold")
    library_with_charts.close()
    allowed = {".sqlite3", ".sqlite3-wal", ".sqlite3-shm", ".hnsw", ".json", ".lock", ".onnx"}
    for folder in (Path(settings.library.path), models_dir):
        for p in folder.rglob("*"):
            if p.is_file():
                suffix = p.name[p.name.index("."):] if "." in p.name else p.name
                assert suffix in allowed, p
