"""Model downloads against a fake hub on 127.0.0.1: what a user sees when downloading models."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

# tests/ (for hub_server) and the repo root, in case no conftest/pythonpath setting provides them
for _dir in (Path(__file__).resolve().parents[2], Path(__file__).resolve().parents[1]):
    if str(_dir) not in sys.path:
        sys.path.insert(0, str(_dir))

from hub_server import (  # noqa: E402
    FakeHub,
    SilentServer,
    closed_port_url,
    fake_model,
    isolate_from_real_hub,
)

from vector_studio_gui.core.download import (  # noqa: E402
    DownloadProgress,
    download_model,
    hub_endpoint,
    is_installed,
    read_manifest,
    verify_files,
)
from vector_studio_gui.core.errors import Cancelled, DownloadError, OfflineError  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_hub_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No real hub: clear HF_* variables and refuse to resolve any non-local host name."""
    isolate_from_real_hub(monkeypatch)


@pytest.fixture
def model():
    return fake_model("tiny-clip", size=300_000)


@pytest.fixture
def hub(model):
    spec, blobs = model
    with FakeHub({spec.repo: blobs}) as server:
        yield server


def _total(blobs: dict[str, bytes], paths) -> int:
    return sum(len(blobs[p]) for p in paths)


def test_full_download_writes_files_and_manifest(tmp_path, model, hub):
    spec, blobs = model
    hub.throttle(spec.repo, "onnx/vision_model.onnx", 2_000_000)  # a few progress reports
    reports: list[DownloadProgress] = []
    dest = tmp_path / "clip"

    result = download_model(spec, dest, endpoint=hub.url, progress=reports.append)

    assert result == dest
    paths = spec.files_for(False).values()
    for path in paths:
        assert (dest / path).read_bytes() == blobs[path]
    manifest = read_manifest(dest)
    assert manifest is not None
    assert manifest["name"] == "tiny-clip" and manifest["repo"] == spec.repo
    assert manifest["source"] == "hub" and manifest["quantized"] is False
    assert manifest["dim"] == spec.dim and manifest["role"] == "clip"
    assert manifest["revision"] == "main"
    assert abs(manifest["installed"] - time.time()) < 60
    assert set(manifest["files"]) == {"vision", "text", "tokenizer"}
    for part, path in spec.files_for(False).items():
        entry = manifest["files"][part]
        assert entry == {"path": path, "size": len(blobs[path]),
                         "sha256": hashlib.sha256(blobs[path]).hexdigest()}
    assert is_installed(dest)
    assert verify_files(dest) == []
    assert not (dest / ".partial").exists()
    assert not list(dest.glob(".manifest-*"))

    total = _total(blobs, paths)
    assert reports, "no progress reported"
    dones = [r.done for r in reports]
    assert dones == sorted(dones), "progress went backwards"
    assert all(r.total == total and 0 <= r.done <= r.total for r in reports)
    assert reports[-1].done == reports[-1].total == total
    assert reports[-1].file_index == 2 and reports[-1].file_count == 3
    assert {r.file for r in reports} == set(paths)
    assert all(0 <= r.file_done <= r.file_total for r in reports)
    # every file announces its end
    for path in paths:
        assert any(r.file == path and r.file_done == r.file_total == len(blobs[path])
                   for r in reports)


def test_quantized_variant_downloads_int8_files(tmp_path, model, hub):
    spec, blobs = model
    dest = tmp_path / "clip-q"
    download_model(spec, dest, quantized=True, endpoint=hub.url)
    manifest = read_manifest(dest)
    assert manifest["quantized"] is True
    assert manifest["files"]["vision"]["path"] == "onnx/vision_model_quantized.onnx"
    assert (dest / "onnx/vision_model_quantized.onnx").read_bytes() == \
        blobs["onnx/vision_model_quantized.onnx"]
    assert not (dest / "onnx/vision_model.onnx").exists()


def test_cancel_midway_then_resume(tmp_path, model, hub):
    spec, blobs = model
    vision = "onnx/vision_model.onnx"
    size = len(blobs[vision])
    hub.throttle(spec.repo, vision, 600_000)  # ~0.5 s for the file
    cancel = threading.Event()

    def on_progress(p: DownloadProgress) -> None:
        if p.file == vision and p.file_done >= 60_000:
            cancel.set()

    dest = tmp_path / "clip"
    started = time.monotonic()
    with pytest.raises(Cancelled, match="run it again to resume"):
        download_model(spec, dest, endpoint=hub.url, progress=on_progress, cancel=cancel)
    assert time.monotonic() - started < 5
    part = dest / ".partial" / (vision + ".part")
    assert 0 < part.stat().st_size < size, "the partial file was not kept for resume"
    assert not is_installed(dest) and read_manifest(dest) is None
    assert not (dest / vision).exists()
    kept = part.stat().st_size

    hub.throttle(spec.repo, vision, None)
    download_model(spec, dest, endpoint=hub.url)

    assert (dest / vision).read_bytes() == blobs[vision]
    assert is_installed(dest) and verify_files(dest) == []
    resumed = [r for r in hub.gets(vision) if r.range]
    assert [(r.range, r.status) for r in resumed] == [(f"bytes={kept}-", 206)]
    assert resumed[0].bytes_sent == size - kept
    assert hub.bytes_sent(vision) < 2 * size
    assert hub.bytes_sent() < 2 * _total(blobs, spec.files_for(False).values())


def test_cancel_before_and_during_metadata(tmp_path, model):
    spec, _ = model
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        download_model(spec, tmp_path / "a", endpoint=closed_port_url(), cancel=cancel)

    cancel = threading.Event()
    with SilentServer() as silent:
        timer = threading.Timer(0.2, cancel.set)
        timer.start()
        started = time.monotonic()
        try:
            with pytest.raises(Cancelled, match="tiny-clip"):
                download_model(spec, tmp_path / "b", endpoint=silent.url, cancel=cancel,
                               offline_timeout=5)
        finally:
            timer.cancel()
        assert time.monotonic() - started < 1.5
    assert not (tmp_path / "b" / "manifest.json").exists()


def test_corrupted_file_is_rejected(tmp_path, model, hub):
    spec, blobs = model
    text = "onnx/text_model.onnx"
    hub.corrupt(spec.repo, text)
    dest = tmp_path / "clip"
    with pytest.raises(DownloadError, match="sha256 mismatch") as info:
        download_model(spec, dest, endpoint=hub.url)
    assert text in str(info.value)
    assert "partial file was deleted" in str(info.value)
    assert read_manifest(dest) is None and not is_installed(dest)
    assert not (dest / text).exists()
    assert not (dest / ".partial" / (text + ".part")).exists()

    hub.corrupt(spec.repo, text, enabled=False)  # the user tries again: it works
    download_model(spec, dest, endpoint=hub.url)
    assert (dest / text).read_bytes() == blobs[text] and is_installed(dest)


def test_dropped_connection_can_be_resumed(tmp_path, model, hub):
    spec, blobs = model
    vision = "onnx/vision_model.onnx"
    hub.drop_after(spec.repo, vision, 100_000)
    dest = tmp_path / "clip"
    with pytest.raises(DownloadError, match="resume") as info:
        download_model(spec, dest, endpoint=hub.url)
    assert vision in str(info.value)
    assert (dest / ".partial" / (vision + ".part")).stat().st_size == 100_000
    assert not is_installed(dest)

    download_model(spec, dest, endpoint=hub.url)
    assert (dest / vision).read_bytes() == blobs[vision]
    assert [r.range for r in hub.gets(vision)] == [None, "bytes=100000-"]
    assert hub.bytes_sent(vision) == len(blobs[vision])


def test_server_ignoring_range_restarts_from_zero(tmp_path, model, hub):
    spec, blobs = model
    vision = "onnx/vision_model.onnx"
    hub.drop_after(spec.repo, vision, 50_000)
    hub.ignore_range(spec.repo, vision)
    dest = tmp_path / "clip"
    with pytest.raises(DownloadError):
        download_model(spec, dest, endpoint=hub.url)
    download_model(spec, dest, endpoint=hub.url)
    assert (dest / vision).read_bytes() == blobs[vision]
    assert verify_files(dest) == []


def test_cdn_redirect_is_followed(tmp_path, model):
    spec, blobs = model
    with FakeHub({spec.repo: blobs}, redirect_lfs=True) as hub:
        dest = tmp_path / "clip"
        download_model(spec, dest, endpoint=hub.url)
        assert verify_files(dest) == []
        assert any(r.status == 302 for r in hub.requests)


def test_missing_file_gives_not_found(tmp_path, model, hub):
    spec, _ = model
    hub.remove_file(spec.repo, "tokenizer.json")
    dest = tmp_path / "clip"
    with pytest.raises(DownloadError, match="not found on the hub") as info:
        download_model(spec, dest, endpoint=hub.url)
    assert f"{spec.repo}/tokenizer.json" in str(info.value)
    assert not isinstance(info.value, OfflineError)
    assert read_manifest(dest) is None


def test_access_denied(tmp_path, model, hub):
    spec, _ = model
    hub.fail(spec.repo, "onnx/text_model.onnx", 403)
    with pytest.raises(DownloadError, match="access denied") as info:
        download_model(spec, tmp_path / "clip", endpoint=hub.url)
    assert "onnx/text_model.onnx" in str(info.value)


def test_closed_port_is_offline(tmp_path, model):
    spec, _ = model
    endpoint = closed_port_url()
    started = time.monotonic()
    with pytest.raises(OfflineError) as info:
        download_model(spec, tmp_path / "clip", endpoint=endpoint)
    assert time.monotonic() - started < 10
    message = str(info.value)
    assert message.startswith(f"Cannot reach the model hub ({endpoint}): connection refused")
    assert "vector-studio models import" in message
    assert not (tmp_path / "clip" / "manifest.json").exists()


def test_dns_failure_is_offline(tmp_path, model, monkeypatch):
    spec, _ = model
    started = time.monotonic()
    with pytest.raises(OfflineError, match="host name could not be resolved"):
        download_model(spec, tmp_path / "clip", endpoint="http://hub.invalid")
    assert time.monotonic() - started < 10


def test_hanging_dns_is_bounded(tmp_path, model, monkeypatch):
    spec, _ = model
    release = threading.Event()

    def hang(*args, **kwargs):  # type: ignore[no-untyped-def]
        release.wait(30)
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "getaddrinfo", hang)
    started = time.monotonic()
    try:
        with pytest.raises(OfflineError, match=r"no answer within 1 s"):
            download_model(spec, tmp_path / "clip", endpoint="http://hub.invalid",
                           offline_timeout=1)
        assert time.monotonic() - started < 3
    finally:
        release.set()


@pytest.mark.slow
def test_silent_server_is_offline_within_ten_seconds(tmp_path, model):
    spec, _ = model
    with SilentServer() as silent:
        started = time.monotonic()
        with pytest.raises(OfflineError, match="Cannot reach the model hub"):
            download_model(spec, tmp_path / "clip", endpoint=silent.url)  # default timeout
        elapsed = time.monotonic() - started
        assert silent.connections >= 1
    assert elapsed < 10


def test_hf_hub_offline_fails_fast(tmp_path, model, hub, monkeypatch):
    spec, _ = model
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    with pytest.raises(OfflineError, match="offline mode"):
        download_model(spec, tmp_path / "clip", endpoint=hub.url)
    assert time.monotonic() - started < 1
    assert hub.requests == []


def test_endpoint_from_environment(tmp_path, model, hub, monkeypatch):
    spec, blobs = model
    assert hub_endpoint() == "https://huggingface.co"
    monkeypatch.setenv("HF_ENDPOINT", hub.url + "/")
    assert hub_endpoint() == hub.url
    dest = download_model(spec, tmp_path / "clip")
    assert is_installed(dest)
    assert hub.gets()


def test_already_installed_makes_no_request(tmp_path, model, hub, monkeypatch):
    spec, _ = model
    dest = download_model(spec, tmp_path / "clip", endpoint=hub.url)
    hub.clear_log()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # would raise if it tried the network

    started = time.monotonic()
    assert download_model(spec, dest, endpoint=hub.url) == dest
    assert time.monotonic() - started < 1
    assert hub.requests == []


def test_other_variant_in_folder_is_not_taken_as_installed(tmp_path, model, hub):
    spec, _ = model
    dest = download_model(spec, tmp_path / "clip", endpoint=hub.url)
    hub.clear_log()
    download_model(spec, dest, quantized=True, endpoint=hub.url)
    assert read_manifest(dest)["quantized"] is True
    assert hub.gets("onnx/vision_model_quantized.onnx")
    # the unchanged tokenizer was already there and verified: not downloaded again
    assert not hub.gets("tokenizer.json")


def test_verify_files_detects_damage(tmp_path, model, hub):
    spec, blobs = model
    dest = download_model(spec, tmp_path / "clip", endpoint=hub.url)
    vision = dest / "onnx/vision_model.onnx"
    vision.write_bytes(blobs["onnx/vision_model.onnx"][:1000])  # truncated

    problems = verify_files(dest)
    assert len(problems) == 1
    assert "onnx/vision_model.onnx" in problems[0] and "size mismatch" in problems[0]
    assert not is_installed(dest)

    damaged = bytearray(blobs["onnx/vision_model.onnx"])
    damaged[10] ^= 0xFF
    vision.write_bytes(bytes(damaged))  # right size, wrong content
    assert is_installed(dest)  # sizes match, only Verify reads the bytes
    assert ["sha256" in p for p in verify_files(dest)] == [True]

    (dest / "tokenizer.json").unlink()
    problems = verify_files(dest)
    assert any("tokenizer.json" in p and "missing" in p for p in problems)

    (dest / "manifest.json").unlink()
    assert verify_files(dest) and not is_installed(dest)


def test_broken_manifest_is_not_installed(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json", encoding="utf-8")
    assert read_manifest(tmp_path) is None and not is_installed(tmp_path)
    (tmp_path / "manifest.json").write_text(json.dumps(
        {"files": {"x": {"path": "../outside.onnx", "size": 1}}}), encoding="utf-8")
    assert not is_installed(tmp_path)
    assert verify_files(tmp_path)


def test_import_is_light_and_qt_free():
    code = ("import sys, vector_studio_gui.core.download\n"
            "print(sorted(m for m in ('huggingface_hub', 'httpx2', 'PySide6') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "[]"
