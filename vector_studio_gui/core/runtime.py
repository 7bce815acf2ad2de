"""ONNX Runtime sessions: execution providers, threads and a CPU fallback that never crashes.

A GPU provider can be listed yet fail at session creation (missing CUDA libraries, wrong device
id); the user then gets a warning and a working CPU session instead of an error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Recent official POSIX builds of ONNX Runtime (seen with 1.32) write a device id under
# ~/.cache/Microsoft/DeveloperTools and upload a usage event when the library is first loaded,
# unless told not to. A local, offline tool must neither touch the network nor write into the
# user's folders on import, so opt out before onnxruntime is imported (an explicit setting by the
# user wins). This module is the only one in the core that imports onnxruntime at load time.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import onnxruntime as ort  # noqa: E402

from vector_studio_gui.core.errors import ModelError  # noqa: E402

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"

#: Providers users may ask for, with what they need; used to explain why one is unavailable.
KNOWN_PROVIDERS: dict[str, str] = {
    "CPUExecutionProvider": "always available",
    "CUDAExecutionProvider": "needs an NVIDIA GPU and the onnxruntime-gpu package",
    "TensorrtExecutionProvider": "needs TensorRT and the onnxruntime-gpu package",
    "DmlExecutionProvider": "needs Windows and the onnxruntime-directml package",
    "CoreMLExecutionProvider": "needs macOS",
    "ROCMExecutionProvider": "needs an AMD GPU and onnxruntime-rocm",
    "OpenVINOExecutionProvider": "needs onnxruntime-openvino",
}

_SHORT_NAMES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "directml": "DmlExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
}


#: Providers whose options include ``device_id`` (CoreML, OpenVINO... reject unknown options).
_TAKES_DEVICE_ID = frozenset({
    "CUDAExecutionProvider",
    "TensorrtExecutionProvider",
    "DmlExecutionProvider",
    "ROCMExecutionProvider",
    "MIGraphXExecutionProvider",
})


@dataclass(frozen=True)
class ProviderInfo:
    name: str
    available: bool
    reason: str  # why it is unavailable, or what it is


def normalize_provider(name: str) -> str:
    """Accept 'cuda', 'CUDA', 'cudaexecutionprovider', 'CUDAExecutionProvider'... -> ORT name."""
    key = name.strip().lower()
    if key in _SHORT_NAMES:
        return _SHORT_NAMES[key]
    for full in (*KNOWN_PROVIDERS, *available_providers()):
        if full.lower() == key:
            return full
    return name.strip()


def available_providers() -> list[str]:
    return list(ort.get_available_providers())


def provider_table() -> list[ProviderInfo]:
    """Every known provider, whether this machine offers it and, if not, why."""
    avail = set(available_providers())
    names = list(dict.fromkeys([*KNOWN_PROVIDERS, *avail]))
    out = []
    for name in names:
        if name == "AzureExecutionProvider":
            continue
        ok = name in avail
        reason = "available" if ok else f"not available: {KNOWN_PROVIDERS.get(name, 'not built in')}"
        out.append(ProviderInfo(name, ok, reason))
    return out


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


def create_session(
    path: Path,
    *,
    provider: str = CPU,
    device_id: int = 0,
    threads: int = 0,
    warn: Callable[[str], None] | None = None,
    spin: bool = False,
) -> ort.InferenceSession:
    """An inference session on ``provider`` or, failing that, on the CPU with a warning.

    ``spin``: let idle intra-op threads spin (latency-bound sessions, see below)."""
    provider = normalize_provider(provider)
    opts = ort.SessionOptions()
    if threads > 0:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Idle intra-op threads block instead of spinning: a spinning pool burns the cores that the
    # image loaders (ingest) or the GUI need between operators, and on a busy machine each
    # parallel section waits for spinners that were preempted. Measured on 2 cores under load:
    # ingest uses ~12% less CPU per image; a typed query's text tower p50 28 -> 13 ms.
    # A typed query is the opposite case: one short run of ~200 small operators, where waking
    # a blocked thread for each costs more than the operator; spinning text towers answer a
    # query in 3.1-4.9 ms instead of 5.1-5.5 (int8) and 6.7-7.6 instead of 8.7-9.0 (fp32) on a
    # quiet 2-core machine, and no slower under load (benchmarks/README.md, target 3).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # ORT's own warnings and errors go to stderr unfiltered (a failing model printed a coloured
    # log line before our one-line message); we report both ourselves, as warnings or ModelError
    opts.log_severity_level = 4

    def _warn(msg: str) -> None:
        log.warning(msg)
        if warn:
            warn(msg)

    providers: list = [CPU]
    if provider != CPU:
        if provider in available_providers():
            options = {"device_id": str(device_id)} if provider in _TAKES_DEVICE_ID else {}
            providers = [(provider, options), CPU]
            if provider == "DmlExecutionProvider":
                # DirectML supports neither memory patterns nor parallel execution
                opts.enable_mem_pattern = False
                opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        else:
            why = KNOWN_PROVIDERS.get(provider, "not offered by this ONNX Runtime build")
            _warn(f"{provider} is not available ({why}); using the CPU instead")
    try:
        session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:
        if providers[0] == CPU:
            raise ModelError(_load_error(path, exc)) from exc
        try:
            session = ort.InferenceSession(str(path), sess_options=opts, providers=[CPU])
        except Exception as exc2:
            raise ModelError(_load_error(path, exc2)) from exc2
        _warn(f"{provider} failed to start for {path.name} ({_first_line(exc)}); "
              f"using the CPU instead")
        return session
    if providers[0] != CPU and session.get_providers()[0] != provider:
        # ORT logs a GPU provider that cannot start and quietly runs on the CPU
        _warn(f"{provider} could not run {path.name}; using the CPU instead")
    return session


def active_provider(session: ort.InferenceSession) -> str:
    return session.get_providers()[0]


def _load_error(path: Path, exc: BaseException) -> str:
    detail = _first_line(exc)
    if "INVALID_PROTOBUF" in detail or "No graph was found" in detail:
        return f"cannot load model {path.name}: it is not a valid ONNX file ({detail})"
    return f"cannot load model {path.name}: {detail}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
