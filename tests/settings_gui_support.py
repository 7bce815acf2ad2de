"""Helpers for the settings dialog, model manager and first-run tests (tests/gui/).

``hub_env``: lets downloads reach a local FakeHub only (HF_HUB_OFFLINE cleared both in the
environment and in huggingface_hub's constants, which it reads once at import; every non-local
host name refused). ``serve_catalog_model`` puts look-alike files for a catalog model on a hub.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from vector_studio_gui.core.catalog import get_spec

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("HF_ENDPOINT", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_HUB_DISABLE_IMPLICIT_TOKEN", "1")
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", False)
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if host not in LOCAL_HOSTS:
            raise socket.gaierror(socket.EAI_NONAME, f"test blocked DNS lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    yield


def serve_catalog_model(hub, name: str, size: int = 200_000) -> dict[str, bytes]:
    """Serve filler files at the catalog model ``name``'s repo paths (not a runnable model)."""
    from hub_server import fake_model

    spec = get_spec(name)
    assert spec is not None
    _fake, blobs = fake_model(name, role=spec.role, repo=spec.repo, size=size)
    for path, data in blobs.items():
        hub.add_file(spec.repo, path, data)
    return blobs
