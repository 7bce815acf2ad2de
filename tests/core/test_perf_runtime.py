"""Session options that matter for throughput and latency (timings live in benchmarks/)."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from vector_studio_gui.core import runtime


@pytest.fixture
def captured(monkeypatch):
    seen: list[ort.SessionOptions] = []

    class Spy(ort.InferenceSession):
        def __init__(self, path, sess_options=None, providers=None, **kw):
            seen.append(sess_options)
            super().__init__(path, sess_options=sess_options, providers=providers, **kw)

    monkeypatch.setattr(runtime.ort, "InferenceSession", Spy)
    return seen


def test_image_tower_threads_block_and_query_towers_spin(tmp_path, captured):
    from vector_studio_gui.modelgen.toy import build_toy_clip

    folder = build_toy_clip(tmp_path / "clip")
    runtime.create_session(next(folder.rglob("vision_model.onnx")), threads=2)
    (opts,) = captured
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1
    # the towers that answer typed queries spin (one short run of many tiny operators)
    from vector_studio_gui.core.encoders import ClipImageEncoder, ClipTextEncoder

    ClipImageEncoder(next(folder.rglob("vision_model.onnx")))
    ClipTextEncoder(next(folder.rglob("text_model.onnx")), next(folder.rglob("tokenizer.json")))
    image_opts, text_opts = captured[1:]
    assert image_opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert text_opts.get_session_config_entry("session.intra_op.allow_spinning") == "1"
    assert text_opts.get_session_config_entry("session.inter_op.allow_spinning") == "0"
