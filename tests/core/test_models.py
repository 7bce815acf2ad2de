"""ModelStore: importing local folders (and refusing bad ones by name), the user guide's bare
ONNX file workflow, verify, delete, list, int8 variants; plus text_dim/project_to via the
Engine."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from vector_studio_gui.core import download
from vector_studio_gui.core.catalog import CATALOG, get_spec
from vector_studio_gui.core.encoders import orthonormal_projection
from vector_studio_gui.core.errors import ModelError, ModelNotInstalledError
from vector_studio_gui.core.models import ModelStore
from vector_studio_gui.core.settings import Settings
from vector_studio_gui.modelgen import (
    BertConfig,
    build_bert_onnx,
    build_broken_models,
    build_custom_text_onnx,
    build_toy_clip,
    build_toy_text_model,
    random_bert_weights,
    write_bert_tokenizer,
)
from vector_studio_gui.modelgen._graph import GraphBuilder

# ------------------------------------------------------------------------------ helpers


def snapshot(root: Path) -> set[str]:
    """Every path under ``root`` (hidden staging folders included)."""
    return {p.relative_to(root).as_posix() for p in root.rglob("*")} if root.exists() else set()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def install_catalog_model(root: Path, name: str, source: Path, *, quantized: bool = False) -> Path:
    """Lay out ``source`` (a toy hub-layout folder) as a downloaded catalog model would be,
    with the manifest download.py writes, without any network."""
    spec = get_spec(name)
    assert spec is not None
    dest = root / name / "int8" if quantized else root / name
    files = {}
    # the toy folder's file for each part of the catalog's layout
    toy = {"model": "onnx/model.onnx", "vision": "onnx/vision_model.onnx",
           "text": "onnx/text_model.onnx", "tokenizer": "tokenizer.json"}
    for part, repo_path in spec.files_for(quantized).items():
        target = dest / repo_path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / toy[part], target)
        files[part] = {"path": repo_path, "size": target.stat().st_size, "sha256": sha(target)}
    (dest / "manifest.json").write_text(json.dumps({
        "name": name, "role": spec.role, "repo": spec.repo, "revision": "main", "commit": None,
        "quantized": quantized, "dim": spec.dim, "files": files, "source": "hub",
        "installed": 0.0,
    }))
    assert download.is_installed(dest)
    return dest


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("sources")
    out = {
        "clip_hub": build_toy_clip(root / "clip_hub", dim=16, layout="hub"),
        "clip_flat": build_toy_clip(root / "clip_flat", dim=16, layout="flat"),
        "text_hub": build_toy_text_model(root / "text_hub", dim=32, layout="hub"),
        "text_flat": build_toy_text_model(root / "text_flat", dim=32, layout="flat"),
    }
    out.update({f"broken_{k}": v for k, v in build_broken_models(root / "broken").items()})
    return {k: Path(v) for k, v in out.items()}


@pytest.fixture
def store(tmp_path) -> ModelStore:
    return ModelStore(tmp_path / "models")


def text_folder_with(tmp_path: Path, model: Path, name: str = "bad") -> Path:
    """A text model folder: ``model`` as model.onnx + a real tokenizer.json."""
    folder = tmp_path / "src" / name
    folder.mkdir(parents=True)
    shutil.copyfile(model, folder / "model.onnx")
    write_bert_tokenizer(folder / "tokenizer.json", ["gold", "chart"])
    return folder


# ------------------------------------------------------------------------------ import


@pytest.mark.parametrize("layout", ["clip_hub", "clip_flat"])
def test_import_clip_folder_in_hub_and_flat_layout(store, sources, layout):
    man = store.import_folder(sources[layout], "my-clip", "clip")
    assert man["role"] == "clip" and man["dim"] == 16 and man["source"] == "import"
    files = store.clip_files("my-clip")
    assert files.vision.name == "vision_model.onnx" and files.vision.is_file()
    assert files.text.name == "text_model.onnx" and files.text.is_file()
    assert files.tokenizer.name == "tokenizer.json" and files.tokenizer.is_file()
    assert files.max_tokens == 77
    assert store.is_installed("my-clip")
    # the source folder is copied, not referenced
    assert sources[layout] not in files.vision.parents
    assert store.verify("my-clip") == []
    info = {m.name: m for m in store.list()}["my-clip"]
    assert (info.installed, info.source, info.role, info.dim) == (True, "import", "clip", 16)


@pytest.mark.parametrize("layout", ["text_hub", "text_flat"])
def test_import_text_folder(store, sources, layout):
    man = store.import_folder(sources[layout], "notes-model", "text")
    assert man["role"] == "text" and man["dim"] == 32
    files = store.text_files("notes-model")
    assert files.model.is_file() and files.tokenizer.is_file()
    # the tokenizer.json truncates at 128 (like MiniLM's): that is the limit recorded
    assert files.max_tokens == 128
    assert store.verify("notes-model") == []


def test_import_text_model_shorter_than_256_tokens(tmp_path, store):
    """A BERT with 24 positions: refused when its tokenizer would allow 256 tokens (long notes
    would fail later), accepted when the tokenizer truncates in time."""
    cfg = BertConfig(vocab_size=40, hidden=16, layers=1, heads=2, intermediate=32,
                     max_positions=24)
    folder = tmp_path / "short"
    folder.mkdir()
    build_bert_onnx(random_bert_weights(cfg), cfg, folder / "model.onnx")
    write_bert_tokenizer(folder / "tokenizer.json", ["gold", "chart"], pad_to=None,
                         max_length=None)
    with pytest.raises(ModelError, match=r"fails on a 256-token input"):
        store.import_folder(folder, "short", "text")
    assert snapshot(store.root) == set()
    write_bert_tokenizer(folder / "tokenizer.json", ["gold", "chart"], pad_to=None, max_length=16)
    assert store.import_folder(folder, "short", "text")["max_tokens"] == 16


def _refusal_cases(sources: dict[str, Path], tmp_path: Path):
    no_tok = tmp_path / "src" / "no_tokenizer"
    shutil.copytree(sources["clip_hub"], no_tok)
    (no_tok / "tokenizer.json").unlink()
    return {
        "missing tokenizer": (no_tok, "x", "clip", r"missing tokenizer\.json"),
        "non-ONNX file": (text_folder_with(tmp_path, sources["broken_not_onnx"], "n"), "x", "text",
                          r"model\.onnx: it is not a valid ONNX file"),
        "wrong inputs": (text_folder_with(tmp_path, sources["broken_wrong_inputs"], "w"), "x",
                         "text", r"input_ids.*foo"),
        "4-D output": (text_folder_with(tmp_path, sources["broken_wrong_output_rank"], "r"), "x",
                       "text", r"last_hidden_state.*2, 8"),
        "dim mismatch": (sources["broken_mismatched_clip"], "x", "clip", r"16-d.*8-d"),
        "catalog name": (sources["text_hub"], "minilm-l6", "text", r"minilm-l6 is a catalog"),
        "slash in name": (sources["text_hub"], "a/b", "text", r"invalid model name 'a/b'"),
        "backslash": (sources["text_hub"], "a\\b", "text", r"invalid model name"),
        "dot name": (sources["text_hub"], "..", "text", r"invalid model name"),
        "onnx name": (sources["text_hub"], "model.onnx", "text", r"invalid model name"),
        "empty name": (sources["text_hub"], "", "text", r"invalid model name"),
        "clip as text": (sources["clip_hub"], "x", "text", r"missing model\.onnx"),
        "text as clip": (sources["text_hub"], "x", "clip",
                         r"missing vision_model\.onnx, text_model\.onnx"),
        "bad kind": (sources["text_hub"], "x", "audio", r"--kind must be clip or text"),
        "not a folder": (tmp_path / "nowhere", "x", "text", r"nowhere is not a folder"),
    }


@pytest.mark.parametrize("case", [
    "missing tokenizer", "non-ONNX file", "wrong inputs", "4-D output", "dim mismatch",
    "catalog name", "slash in name", "backslash", "dot name", "onnx name", "empty name",
    "clip as text", "text as clip", "bad kind", "not a folder",
])
def test_bad_import_refused_naming_the_problem_and_leaves_nothing(store, sources, tmp_path,
                                                                  case):
    store.import_folder(sources["text_flat"], "existing", "text")
    before = snapshot(store.root)
    source, name, kind, message = _refusal_cases(sources, tmp_path)[case]
    with pytest.raises(ModelError, match=message):
        store.import_folder(source, name, kind)
    assert snapshot(store.root) == before
    assert [m.name for m in store.list() if m.source != "catalog"] == ["existing"]


def test_bad_import_into_a_fresh_models_dir_creates_nothing(store, sources):
    with pytest.raises(ModelError):
        store.import_folder(sources["broken_mismatched_clip"], "x", "clip")
    assert not store.root.exists()


def test_existing_name_refused(store, sources):
    store.import_folder(sources["text_hub"], "mine", "text")
    before = snapshot(store.root)
    with pytest.raises(ModelError, match=r"mine is already installed.*delete"):
        store.import_folder(sources["clip_hub"], "mine", "clip")
    assert snapshot(store.root) == before
    assert store.manifest("mine")["role"] == "text"


# ------------------------------------------------------------------------------ user guide


@pytest.fixture
def guide_models(tmp_path, sources) -> Path:
    """The user guide's models dir: custom/my_model.onnx (768-d, only input_ids ->
    embeddings) and custom_text.onnx (512-d) at the root, plus an installed minilm-l6."""
    root = tmp_path / "models"
    build_custom_text_onnx(root / "custom" / "my_model.onnx", dim=768)
    build_custom_text_onnx(root / "custom_text.onnx", dim=512, seed=1)
    install_catalog_model(root, "minilm-l6", sources["text_hub"])
    return root


def test_bare_onnx_file_uses_the_default_text_models_tokenizer(guide_models):
    store = ModelStore(guide_models)
    files = store.text_files("custom/my_model.onnx")
    assert files.model == guide_models / "custom" / "my_model.onnx"
    assert files.tokenizer == guide_models / "minilm-l6" / "tokenizer.json"
    assert store.is_installed("custom/my_model.onnx")
    assert store.verify("custom/my_model.onnx") == []
    assert store.verify("custom_text.onnx") == []


def test_bare_file_prefers_a_tokenizer_beside_it_or_the_configured_one(guide_models, tmp_path):
    store = ModelStore(guide_models)
    write_bert_tokenizer(guide_models / "custom" / "tokenizer.json", ["gold"])
    assert store.text_files("custom/my_model.onnx").tokenizer == (
        guide_models / "custom" / "tokenizer.json")
    mine = tmp_path / "elsewhere" / "tok.json"
    write_bert_tokenizer(mine, ["gold"])
    assert store.text_files("custom/my_model.onnx", tokenizer=str(mine)).tokenizer == mine
    with pytest.raises(ModelError, match="tokenizer nope.json not found"):
        store.text_files("custom/my_model.onnx", tokenizer="nope.json")


def test_bare_file_without_any_tokenizer_names_the_fix(tmp_path):
    root = tmp_path / "models"
    build_custom_text_onnx(root / "custom" / "my_model.onnx", dim=64)
    store = ModelStore(root)
    with pytest.raises(ModelError) as err:
        store.text_files("custom/my_model.onnx")
    msg = str(err.value)
    assert "my_model.onnx needs a tokenizer" in msg
    assert "vector-studio models install minilm-l6" in msg
    assert "tokenizer.json" in msg and "embedding.text_tokenizer" in msg
    assert store.verify("custom/my_model.onnx") == [msg]


def test_bare_file_uses_an_int8_only_default_model_tokenizer(tmp_path, sources):
    root = tmp_path / "models"
    build_custom_text_onnx(root / "custom" / "my_model.onnx", dim=64)
    install_catalog_model(root, "minilm-l6", sources["text_hub"], quantized=True)
    tok = ModelStore(root).text_files("custom/my_model.onnx").tokenizer
    assert tok == root / "minilm-l6" / "int8" / "tokenizer.json"


def test_missing_bare_file_is_not_installed(store):
    with pytest.raises(ModelNotInstalledError, match=r"custom/nope\.onnx not found"):
        store.text_files("custom/nope.onnx")
    assert not store.is_installed("custom/nope.onnx")
    assert "not found" in store.verify("custom/nope.onnx")[0]


def _engine(settings: Settings, tmp_path: Path):
    from vector_studio_gui.core.engine import Engine

    settings.library.path = str(tmp_path / "library")
    settings.embedding.threads = 1
    return Engine(settings)


@pytest.mark.parametrize(("config", "dim"), [
    ({"embedding": {"text_model": "custom_text.onnx", "text_dim": 512}}, 512),
    ({"embedding": {"text_model": "custom/my_model.onnx", "text_dim": 768}}, 768),
    ({"embedding": {"text_model": "custom_768dim.onnx", "text_dim": 768, "project_to": 512}}, 512),
])
def test_user_guide_configs_through_the_engine(guide_models, tmp_path, config, dim):
    shutil.copyfile(guide_models / "custom" / "my_model.onnx", guide_models / "custom_768dim.onnx")
    s = Settings.from_dict({**config, "models_dir": str(guide_models)})
    eng = _engine(s, tmp_path)
    try:
        enc = eng.text_encoder()
        vecs = enc.encode_queries(["gold price", "oil"])
        assert vecs.shape == (2, dim)
        np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
        space = eng.library.space(eng.text_space())
        assert space is not None and space.dim == dim and space.role == "text"
        assert space.model == config["embedding"]["text_model"]
    finally:
        eng.close()


def test_project_to_applies_the_recorded_seeded_projection(guide_models, tmp_path):
    from vector_studio_gui.core.encoders import TextEncoder
    from vector_studio_gui.core.engine import PROJECTION_SEED

    s = Settings.from_dict({"models_dir": str(guide_models), "embedding": {
        "text_model": "custom/my_model.onnx", "text_dim": 768, "project_to": 512}})
    eng = _engine(s, tmp_path)
    try:
        projected = eng.text_encoder().encode(["gold price", "oil crash", "copper"])
        space = eng.library.space(eng.text_space())
        assert space.info == {"project_to": 512, "seed": PROJECTION_SEED}
        assert eng.text_space() != "custom/my_model.onnx"  # never mixed with the raw space
    finally:
        eng.close()
    files = ModelStore(guide_models).text_files("custom/my_model.onnx")
    raw = TextEncoder(files.model, files.tokenizer).encode(["gold price", "oil crash", "copper"])
    p = orthonormal_projection(768, 512, PROJECTION_SEED)
    expected = raw @ p
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(projected, expected, atol=1e-5)
    # cosines between texts are roughly those of the raw model
    np.testing.assert_allclose(projected @ projected.T, raw @ raw.T, atol=0.15)


def test_text_dim_mismatch_is_a_clear_error(guide_models, tmp_path):
    s = Settings.from_dict({"models_dir": str(guide_models), "embedding": {
        "text_model": "custom/my_model.onnx", "text_dim": 512}})
    eng = _engine(s, tmp_path)
    try:
        with pytest.raises(ModelError, match=r"768-d.*text_dim = 512"):
            eng.text_encoder()
    finally:
        eng.close()


# ------------------------------------------------------------------------------ verify


@pytest.fixture
def imported(store, sources) -> ModelStore:
    store.import_folder(sources["clip_hub"], "c", "clip")
    store.import_folder(sources["text_hub"], "t", "text")
    return store


def test_verify_detects_a_truncated_file(imported):
    vision = imported.clip_files("c").vision
    data = vision.read_bytes()
    vision.write_bytes(data[: len(data) // 2])
    problems = imported.verify("c")
    assert len(problems) == 1
    assert "onnx/vision_model.onnx" in problems[0] and "size mismatch" in problems[0]


def test_verify_detects_a_corrupted_file_of_the_right_size(imported):
    tok = imported.text_files("t").tokenizer
    data = bytearray(tok.read_bytes())
    data[10] ^= 0xFF
    tok.write_bytes(bytes(data))
    problems = imported.verify("t")
    assert problems == ["tokenizer.json (tokenizer): sha256 mismatch, the file is corrupted"]


def test_verify_detects_a_missing_file(imported):
    imported.clip_files("c").text.unlink()
    assert any("text_model.onnx" in p and "missing" in p for p in imported.verify("c"))


def _nan_text_model(path: Path) -> Path:
    g = GraphBuilder()
    ids = g.input("input_ids", np.int64, ["batch", "seq"])
    x = g.op("Cast", [ids], to=1)
    x = g.op("Log", [g.op("Neg", [g.op("Add", [x, g.const(1.0)])])])  # log of a negative: NaN
    x = g.op("Unsqueeze", [x, g.const([2], np.int64)])
    g.output(g.op("Tile", [x, g.const([1, 1, 4], np.int64)]), "last_hidden_state", np.float32,
             ["batch", "seq", 4])
    return g.save(path, "nan_model")


def test_verify_detects_a_model_that_fails_inference(imported, tmp_path):
    # the files are intact (manifest updated), but the model produces NaN
    folder = imported.folder("t")
    model = imported.text_files("t").model
    _nan_text_model(model)
    man = json.loads((folder / "manifest.json").read_text())
    man["files"]["model"].update(size=model.stat().st_size, sha256=sha(model))
    (folder / "manifest.json").write_text(json.dumps(man))
    problems = imported.verify("t")
    assert len(problems) == 1 and "NaN" in problems[0] and "model.onnx" in problems[0]


def test_verify_detects_a_model_too_short_for_its_token_limit(tmp_path, store):
    cfg = BertConfig(vocab_size=40, hidden=16, layers=1, heads=2, intermediate=32,
                     max_positions=24)
    folder = tmp_path / "short"
    folder.mkdir()
    build_bert_onnx(random_bert_weights(cfg), cfg, folder / "model.onnx")
    write_bert_tokenizer(folder / "tokenizer.json", ["gold"], pad_to=None, max_length=16)
    store.import_folder(folder, "short", "text")
    man_path = store.folder("short") / "manifest.json"
    man = json.loads(man_path.read_text())
    man["max_tokens"] = 256
    man_path.write_text(json.dumps(man))
    problems = store.verify("short")
    assert len(problems) == 1 and "256-token input" in problems[0]


def test_verify_of_a_model_not_installed(store):
    assert "vector-studio models install clip-vit-b32" in store.verify("clip-vit-b32")[0]
    assert "not installed" in store.verify("never-imported")[0]


# ------------------------------------------------------------------------------ delete / list


def test_delete_removes_the_model(imported):
    imported.delete("c")
    assert not imported.folder("c").exists()
    assert not imported.is_installed("c")
    assert "c" not in {m.name for m in imported.list()}
    assert not [p for p in imported.root.iterdir() if p.name.startswith(".")]
    with pytest.raises(ModelNotInstalledError):
        imported.clip_files("c")
    with pytest.raises(ModelNotInstalledError, match="c is not installed"):
        imported.delete("c")
    assert imported.is_installed("t")  # the other one is untouched


def test_delete_bare_file_and_refuse_paths_outside(guide_models, tmp_path):
    store = ModelStore(guide_models)
    store.delete("custom/my_model.onnx")
    assert not (guide_models / "custom" / "my_model.onnx").exists()
    with pytest.raises(ModelNotInstalledError):
        store.delete("custom/my_model.onnx")
    outside = tmp_path / "keep.onnx"
    outside.write_bytes(b"x")
    with pytest.raises(ModelError, match="not in the models folder"):
        store.delete(str(outside))
    with pytest.raises(ModelError):
        store.delete("../keep.onnx")
    with pytest.raises(ModelError):
        store.delete("..")
    assert outside.exists() and guide_models.exists()


def test_list_marks_catalog_imported_and_bare_file_models(guide_models, sources):
    store = ModelStore(guide_models)
    store.import_folder(sources["clip_flat"], "my-clip", "clip")
    # leftovers of an interrupted import/delete are not models
    stale = guide_models / ".import-x-123" / "onnx"
    stale.mkdir(parents=True)
    shutil.copyfile(guide_models / "custom_text.onnx", stale / "model.onnx")
    rows = {m.name: m for m in store.list()}
    assert set(rows) == {s.name for s in CATALOG} | {"my-clip", "custom/my_model.onnx",
                                                     "custom_text.onnx"}
    assert rows["minilm-l6"].installed and rows["minilm-l6"].source == "catalog"
    assert not rows["clip-vit-b32"].installed and not rows["clip-vit-b32"].quantized_installed
    assert rows["clip-vit-b32"].role == "clip" and rows["clip-vit-b32"].dim == 512
    assert (rows["my-clip"].source, rows["my-clip"].installed) == ("import", True)
    bare = rows["custom/my_model.onnx"]
    assert (bare.source, bare.role, bare.installed) == ("file", "text", True)
    assert bare.path == guide_models / "custom" / "my_model.onnx"


def test_list_on_an_empty_or_missing_models_dir(store):
    rows = store.list()
    assert [r.name for r in rows] == [s.name for s in CATALOG]
    assert not any(r.installed for r in rows)
    assert not store.root.exists()  # listing creates nothing


# ------------------------------------------------------------------------------ int8 variants


def test_int8_variant_resolves_to_its_own_folder(tmp_path, sources):
    root = tmp_path / "models"
    install_catalog_model(root, "clip-vit-b32", sources["clip_hub"])
    install_catalog_model(root, "clip-vit-b32", sources["clip_hub"], quantized=True)
    store = ModelStore(root)
    fp32, int8 = store.clip_files("clip-vit-b32"), store.clip_files("clip-vit-b32", True)
    assert fp32.vision == root / "clip-vit-b32" / "onnx" / "vision_model.onnx"
    assert int8.vision == root / "clip-vit-b32" / "int8" / "onnx" / "vision_model_quantized.onnx"
    assert int8.text.name == "text_model_quantized.onnx"
    assert int8.tokenizer == root / "clip-vit-b32" / "int8" / "tokenizer.json"
    row = {m.name: m for m in store.list()}["clip-vit-b32"]
    assert row.installed and row.quantized_installed
    assert store.verify("clip-vit-b32", quantized=True) == []


def test_int8_missing_when_only_fp32_installed_says_so(tmp_path, sources):
    root = tmp_path / "models"
    install_catalog_model(root, "clip-vit-b32", sources["clip_hub"])
    install_catalog_model(root, "minilm-l6", sources["text_hub"])
    store = ModelStore(root)
    for call in (lambda: store.clip_files("clip-vit-b32", True),
                 lambda: store.text_files("minilm-l6", True)):
        with pytest.raises(ModelNotInstalledError, match=r"int8 variant .*only the fp32") as e:
            call()
        assert "--quantized" in str(e.value) and "turn quantized off" in str(e.value)
    assert "int8 variant" in store.verify("minilm-l6", quantized=True)[0]


def test_int8_only_installed_catalog_model(tmp_path, sources):
    root = tmp_path / "models"
    install_catalog_model(root, "minilm-l6", sources["text_hub"], quantized=True)
    store = ModelStore(root)
    assert store.text_files("minilm-l6", True).model.name == "model_quantized.onnx"
    with pytest.raises(ModelNotInstalledError, match="vector-studio models install minilm-l6"):
        store.text_files("minilm-l6")
    row = {m.name: m for m in store.list()}["minilm-l6"]
    assert not row.installed and row.quantized_installed


def test_imported_model_has_no_int8_variant(imported):
    with pytest.raises(ModelNotInstalledError, match="imported model and has no int8 variant"):
        imported.clip_files("c", quantized=True)


def test_role_mismatch_and_unknown_models(imported):
    with pytest.raises(ModelError, match="t is a text model, not a CLIP model"):
        imported.clip_files("t")
    with pytest.raises(ModelError, match="c is a CLIP model, not a text model"):
        imported.text_files("c")
    with pytest.raises(ModelError, match="minilm-l6 is a text model"):
        imported.clip_files("minilm-l6")
    with pytest.raises(ModelNotInstalledError, match="models install clip-vit-l14"):
        imported.clip_files("clip-vit-l14")
    with pytest.raises(ModelError, match="unknown model nope"):
        imported.install("nope")
