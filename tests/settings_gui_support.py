"""Helpers for the settings dialog, model manager and first-run tests (tests/gui/).

``hub_env``: lets downloads reach a local FakeHub only (HF_HUB_OFFLINE cleared both in the
environment and in huggingface_hub's constants, which it reads once at import; every non-local
host name refused). ``serve_catalog_model`` puts look-alike files for a catalog model on a hub.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hub_server import isolate_from_real_hub

from vector_studio_gui.core.catalog import get_spec


@pytest.fixture
def hub_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    isolate_from_real_hub(monkeypatch)
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
