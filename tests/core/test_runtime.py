"""Execution providers: what this machine offers, and a CPU fallback with a visible warning
whenever the configured provider is missing or fails, never an exception."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from vector_studio_gui.core import runtime
from vector_studio_gui.core.encoders import RuntimeOptions, TextEncoder
from vector_studio_gui.core.errors import ModelError
from vector_studio_gui.core.runtime import (
    CPU,
    create_session,
    normalize_provider,
    provider_table,
)
from vector_studio_gui.modelgen import build_broken_models, build_toy_text_model


@pytest.fixture(scope="module")
def toy_text(tmp_path_factory) -> Path:
    return build_toy_text_model(tmp_path_factory.mktemp("toy"), dim=8)


@pytest.fixture
def model(toy_text) -> Path:
    return toy_text / "onnx" / "model.onnx"


def _works(session: ort.InferenceSession) -> bool:
    ids = np.array([[2, 10, 3]], np.int64)
    (out,) = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                "token_type_ids": np.zeros_like(ids)})
    return out.shape == (1, 3, 8)


class SessionSpy:
    """Replaces ort.InferenceSession: records the arguments, optionally fails for a provider."""

    def __init__(self, fail_for: str | None = None, silent_fallback: bool = False) -> None:
        self.calls: list[dict] = []
        self.fail_for = fail_for
        self.silent_fallback = silent_fallback
        self.real = ort.InferenceSession

    def __call__(self, path, sess_options=None, providers=None, **kw):
        self.calls.append({"path": path, "options": sess_options, "providers": providers})
        names = [p[0] if isinstance(p, tuple) else p for p in providers or []]
        if self.fail_for and names and names[0] == self.fail_for:
            if self.silent_fallback:
                # what ORT does when a GPU provider cannot start: logs and runs on the CPU
                return self.real(path, sess_options=sess_options, providers=[CPU])
            raise RuntimeError(f"{self.fail_for}: libcudart.so.12: cannot open shared object\nmore")
        return self.real(path, sess_options=sess_options, providers=[CPU])


def test_provider_table_lists_cpu_available_and_explains_missing_gpus():
    table = {p.name: p for p in provider_table()}
    assert table[CPU].available
    for name, hint in (("CUDAExecutionProvider", "NVIDIA"), ("DmlExecutionProvider", "directml"),
                       ("CoreMLExecutionProvider", "macOS")):
        assert name in table
        if name not in ort.get_available_providers():
            assert not table[name].available
            assert "not available" in table[name].reason
            assert hint.lower() in table[name].reason.lower()
    assert "AzureExecutionProvider" not in table


def test_provider_table_follows_what_onnxruntime_offers(monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers",
                        lambda: ["CUDAExecutionProvider", "FancyExecutionProvider", CPU])
    table = {p.name: p for p in provider_table()}
    assert table["CUDAExecutionProvider"].available
    assert table["FancyExecutionProvider"].available  # unknown to us, offered by ORT: listed
    assert not table["CoreMLExecutionProvider"].available


@pytest.mark.parametrize(("short", "full"), [
    ("cuda", "CUDAExecutionProvider"), ("CUDA", "CUDAExecutionProvider"),
    (" dml ", "DmlExecutionProvider"), ("directml", "DmlExecutionProvider"),
    ("coreml", "CoreMLExecutionProvider"), ("cpu", CPU), ("CPUExecutionProvider", CPU),
    ("cudaexecutionprovider", "CUDAExecutionProvider"), ("tensorrt", "TensorrtExecutionProvider"),
])
def test_short_provider_names_normalised(short, full):
    assert normalize_provider(short) == full


def test_unavailable_cuda_warns_and_gives_a_working_cpu_session(model, caplog):
    assert "CUDAExecutionProvider" not in ort.get_available_providers()
    warnings: list[str] = []
    with caplog.at_level(logging.WARNING):
        sess = create_session(model, provider="cuda", device_id=0, threads=1,
                              warn=warnings.append)
    assert sess.get_providers()[0] == CPU
    assert _works(sess)
    assert len(warnings) == 1
    assert "CUDAExecutionProvider" in warnings[0] and "CPU" in warnings[0]
    assert "onnxruntime-gpu" in warnings[0]  # says what would make it work
    assert warnings[0] in caplog.text


def test_unknown_provider_warns_not_crashes(model):
    warnings: list[str] = []
    sess = create_session(model, provider="WarpDriveExecutionProvider", warn=warnings.append)
    assert _works(sess)
    assert warnings and "WarpDriveExecutionProvider" in warnings[0]


def test_available_provider_failing_at_creation_falls_back_to_cpu(model, monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", CPU])
    spy = SessionSpy(fail_for="CUDAExecutionProvider")
    monkeypatch.setattr(ort, "InferenceSession", spy)
    warnings: list[str] = []
    sess = create_session(model, provider="CUDAExecutionProvider", device_id=1,
                          warn=warnings.append)
    assert _works(sess)
    # first try: CUDA on device 1 with the CPU behind it; then the CPU alone
    assert spy.calls[0]["providers"] == [("CUDAExecutionProvider", {"device_id": "1"}), CPU]
    assert spy.calls[1]["providers"] == [CPU]
    assert len(warnings) == 1
    assert "failed to start" in warnings[0] and "libcudart" in warnings[0]
    assert "\n" not in warnings[0]


def test_provider_silently_dropped_by_onnxruntime_is_reported(model, monkeypatch):
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", CPU])
    monkeypatch.setattr(ort, "InferenceSession",
                        SessionSpy(fail_for="CUDAExecutionProvider", silent_fallback=True))
    warnings: list[str] = []
    sess = create_session(model, provider="cuda", warn=warnings.append)
    assert _works(sess)
    assert len(warnings) == 1 and "CPU" in warnings[0]


@pytest.mark.parametrize(("provider", "options"), [
    ("DmlExecutionProvider", {"device_id": "2"}),
    ("CoreMLExecutionProvider", {}),  # CoreML rejects options it does not know
])
def test_device_id_passed_only_to_providers_that_take_it(model, monkeypatch, provider, options):
    monkeypatch.setattr(ort, "get_available_providers", lambda: [provider, CPU])
    spy = SessionSpy()
    monkeypatch.setattr(ort, "InferenceSession", spy)
    create_session(model, provider=provider, device_id=2)
    assert spy.calls[0]["providers"] == [(provider, options), CPU]
    if provider == "DmlExecutionProvider":
        assert spy.calls[0]["options"].enable_mem_pattern is False


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_setting_applied(model, monkeypatch, threads):
    spy = SessionSpy()
    monkeypatch.setattr(ort, "InferenceSession", spy)
    create_session(model, threads=threads)
    assert spy.calls[0]["options"].intra_op_num_threads == threads
    assert spy.calls[0]["providers"] == [CPU]


def test_zero_threads_lets_onnxruntime_choose(model, monkeypatch):
    spy = SessionSpy()
    monkeypatch.setattr(ort, "InferenceSession", spy)
    create_session(model, threads=0)
    assert spy.calls[0]["options"].intra_op_num_threads == 0


def test_encoder_with_unavailable_provider_still_encodes(toy_text):
    warnings: list[str] = []
    enc = TextEncoder(toy_text / "onnx" / "model.onnx", toy_text / "tokenizer.json",
                      RuntimeOptions("CUDAExecutionProvider", 0, 1), warn=warnings.append)
    assert enc.provider == CPU
    out = enc.encode(["gold", "oil"])
    assert out.shape == (2, 8)
    assert any("CUDAExecutionProvider" in w for w in warnings)


def test_cpu_session_of_a_bad_file_is_a_model_error_naming_it(tmp_path):
    bad = build_broken_models(tmp_path)["not_onnx"]
    with pytest.raises(ModelError, match=r"not_onnx\.onnx: it is not a valid ONNX file"):
        create_session(bad)


def test_gpu_fallback_of_a_bad_file_is_still_a_model_error(tmp_path, monkeypatch):
    bad = build_broken_models(tmp_path)["not_onnx"]
    monkeypatch.setattr(runtime, "available_providers", lambda: ["CUDAExecutionProvider", CPU])
    warnings: list[str] = []
    with pytest.raises(ModelError, match=r"not_onnx\.onnx: it is not a valid ONNX file"):
        create_session(bad, provider="cuda", warn=warnings.append)


def test_empty_file_is_not_a_valid_onnx_file(tmp_path):
    empty = tmp_path / "model.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelError, match=r"model\.onnx: it is not a valid ONNX file"):
        create_session(empty)
