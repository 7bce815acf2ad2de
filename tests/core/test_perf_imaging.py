"""Deterministic behaviour of the fast preprocessing path (speed is measured in benchmarks/)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw

from vector_studio_gui.core import imaging
from vector_studio_gui.core.imaging import load_image, open_image, to_clip_tensor


def thin_bars(n: int = 150, dark: bool = True, seed: int = 0) -> Image.Image:
    """A 1600x900 bar chart with bars a few pixels wide: the hardest case for a box reduction."""
    rng = np.random.default_rng(seed)
    im = Image.new("RGB", (1600, 900), (20, 22, 30) if dark else (255, 255, 255))
    d = ImageDraw.Draw(im)
    bw = 1500 / n
    for i, v in enumerate(rng.random(n)):
        x = 60 + i * bw
        d.rectangle([x, 850 - v * 760, x + 0.8 * bw, 850], fill=(200, 235, 180))
    return im


def encoded(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


def mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).mean())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_path_within_bound_on_thin_bars(seed):
    img = thin_bars(seed=seed)
    assert mad(to_clip_tensor(img), to_clip_tensor(img, fast=False)) < 0.02


@pytest.mark.parametrize("size", [(1600, 900), (1601, 901), (900, 1600), (3000, 1000)])
def test_fast_reduction_is_one_factor_and_keeps_geometry(size):
    img = thin_bars(n=60).resize(size)
    f = imaging._reduction(img.size, 224)
    assert min(img.size) // f >= 2 * 224
    assert mad(to_clip_tensor(img), to_clip_tensor(img, fast=False)) < 0.02


def test_ingest_tensor_equals_search_tensor_for_png():
    """load_image (ingest) and to_clip_tensor(open_image) (image search) agree exactly."""
    data = encoded(thin_bars(seed=3), "PNG")
    assert np.array_equal(load_image(data).pixels, to_clip_tensor(open_image(data)))


def test_jpeg_decoded_at_half_scale_for_16_9_charts():
    data = encoded(thin_bars(seed=4), "JPEG")
    rgb, width, height, fmt = imaging._open(data, draft_for=(224, 256))
    assert rgb.size == (800, 450) and (width, height, fmt) == (1600, 900, "JPEG")
    fast = load_image(data)
    assert (fast.width, fast.height) == (1600, 900)
    assert mad(fast.pixels, load_image(data, fast=False).pixels) < 0.02


def test_fast_thumbnail_matches_reference_thumbnail():
    img = thin_bars(seed=5, dark=False)
    data = encoded(img, "PNG")
    fast = Image.open(io.BytesIO(load_image(data).thumbnail))
    ref = Image.open(io.BytesIO(imaging.make_thumbnail(img, 256)))
    assert fast.size == ref.size == (256, 144) and fast.format == "JPEG"
    assert mad(np.asarray(fast.convert("RGB")), np.asarray(ref.convert("RGB"))) < 8


@pytest.mark.parametrize(("size", "image_size", "thumb_size"),
                         [((200, 100), 32, 256), ((1000, 1000), 64, 512), ((5000, 40), 224, 256)])
def test_fast_thumbnail_never_smaller_than_asked(size, image_size, thumb_size):
    img = thin_bars().resize(size)
    got = load_image(encoded(img, "PNG"), image_size=image_size, thumb_size=thumb_size)
    with Image.open(io.BytesIO(got.thumbnail)) as thumb:
        assert thumb.size == imaging._thumbnail_size(*size, thumb_size)
