"""Tests for vector_studio_gui.core.imaging: decoding, CLIP preprocessing, thumbnails.

Every file is generated with Pillow in tmp_path; no binary fixtures are committed.
"""

from __future__ import annotations

import ast
import io
import math
import os
import struct
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile

from vector_studio_gui.core import imaging
from vector_studio_gui.core.catalog import CLIP_MEAN, CLIP_STD
from vector_studio_gui.core.errors import ImageError
from vector_studio_gui.core.imaging import (
    MAX_PIXELS,
    SUPPORTED_EXTENSIONS,
    UNSUPPORTED_EXTENSIONS,
    DecodedImage,
    load_image,
    make_thumbnail,
    open_image,
    preprocess_batch,
    to_clip_tensor,
)

RED = (255, 0, 0)
BLUE = (0, 0, 255)
WHITE = (255, 255, 255)


# --------------------------------------------------------------------------------------------
# Helpers


def user_guide_preprocess(image_path):
    """The user guide's code (embeddings-and-models.md, CLIP ViT-B/32), verbatim."""
    img = Image.open(image_path).convert("RGB")

    # Resize to 224x224
    img = img.resize((224, 224), Image.BICUBIC)

    # To numpy
    img = np.array(img).astype(np.float32) / 255.0

    # Normalize with CLIP stats
    mean = np.array([0.48145466, 0.4578275, 0.40821073])
    std = np.array([0.26862954, 0.26130258, 0.27577711])
    img = (img - mean) / std

    # CHW format, add batch dim
    img = img.transpose(2, 0, 1)
    img = np.expand_dims(img, 0)

    return img


def make_chart(width: int = 1600, height: int = 900, seed: int = 0) -> Image.Image:
    """A synthetic chart: grid, bars, a noisy line, and text labels."""
    rng = np.random.default_rng(seed)
    img = Image.new("RGB", (width, height), WHITE)
    draw = ImageDraw.Draw(img)
    for x in range(0, width, 80):
        draw.line([(x, 0), (x, height)], fill=(220, 220, 220))
    for y in range(0, height, 60):
        draw.line([(0, y), (width, y)], fill=(220, 220, 220))
    for i in range(width // 40):
        x0 = 60 + i * 37
        top = int(rng.integers(100, height - 60))
        colour = (40, 120, 200) if i % 2 else (220, 80, 60)
        draw.rectangle([x0, top, x0 + 20, height - 50], fill=colour)
    phase = float(rng.uniform(0, 6))
    points = [
        (x, height / 2 + height / 4 * math.sin(x / 90 + phase) + float(rng.normal(0, 15)))
        for x in range(0, width, 4)
    ]
    draw.line(points, fill=(20, 20, 20), width=2)
    for y in range(20, height, 90):
        draw.text((10, y), f"{y * 3.7:.1f} USD", fill=(0, 0, 0))
    draw.text((width // 2 - 80, 10), "GOLD / USD daily chart, volume x1000", fill=(0, 0, 0))
    return img


def solid(colour, size=(32, 32), mode="RGB") -> Image.Image:
    return Image.new(mode, size, colour)


def save(img: Image.Image, path: Path, fmt: str | None = None, **params) -> Path:
    img.save(path, fmt, **params)
    return path


def encode(img: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, fmt, **params)
    return buffer.getvalue()


def denormalise(tensor: np.ndarray) -> np.ndarray:
    """(3, S, S) CLIP tensor -> (S, S, 3) float pixel values 0..255."""
    mean = np.asarray(CLIP_MEAN, dtype=np.float64)[:, None, None]
    std = np.asarray(CLIP_STD, dtype=np.float64)[:, None, None]
    return ((tensor * std + mean) * 255.0).transpose(1, 2, 0)


def centre(img: Image.Image) -> tuple[int, ...]:
    return img.getpixel((img.width // 2, img.height // 2))


def close_to(pixel, expected, tol=12) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(pixel, expected, strict=True))


def png_declaring(width: int, height: int) -> bytes:
    """A tiny, well-formed PNG header declaring a huge 1-bit image (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    rows = (b"\x00" * (1 + (width + 7) // 8)) * 64
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows, 9))
        + chunk(b"IEND", b"")
    )


@pytest.fixture(scope="module")
def chart() -> Image.Image:
    return make_chart()


@pytest.fixture
def strict_truncation(monkeypatch):
    """Truncated data must fail; set for this test only, restored afterwards."""
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", False)


# --------------------------------------------------------------------------------------------
# Module surface


def test_module_is_qt_free():
    tree = ast.parse(Path(imaging.__file__).read_text(encoding="utf-8"))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert "PySide6" not in imported
    assert imported >= {"numpy", "PIL"}


def test_constants():
    assert imaging.CLIP_MEAN is CLIP_MEAN and imaging.CLIP_STD is CLIP_STD
    assert MAX_PIXELS == 100_000_000
    base = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
    assert isinstance(SUPPORTED_EXTENSIONS, frozenset)
    assert base <= SUPPORTED_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in SUPPORTED_EXTENSIONS)
    assert UNSUPPORTED_EXTENSIONS[".svg"] == (
        "SVG vector images are not supported; export the chart as PNG"
    )
    assert UNSUPPORTED_EXTENSIONS[".pdf"] == "PDF files are not supported; export the page as PNG"
    assert not SUPPORTED_EXTENSIONS & UNSUPPORTED_EXTENSIONS.keys()


# --------------------------------------------------------------------------------------------
# Refused and broken files


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty \(0 bytes\)") as info:
        open_image(path)
    assert "empty.png" in str(info.value)
    assert "\n" not in str(info.value)


def test_zero_bytes_object():
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


def test_truncated_png(tmp_path, strict_truncation):
    noise = np.random.default_rng(1).integers(0, 256, (200, 300, 3), dtype=np.uint8)
    data = encode(Image.fromarray(noise), "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        open_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_jpeg(tmp_path, strict_truncation, chart):
    data = encode(chart.resize((400, 225)), "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(path)


def test_corrupt_header_bytes(strict_truncation):
    data = bytearray(encode(solid(RED), "PNG"))
    data[16:24] = b"\xff" * 8  # garbage width/height in IHDR
    with pytest.raises(ImageError):
        open_image(bytes(data))


def test_text_file_renamed_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("just some notes, not a chart\n" * 10, encoding="utf-8")
    with pytest.raises(ImageError, match=r"not an image file \(content is not PNG/JPEG"):
        open_image(path)


def test_svg_content_under_png_name_gets_svg_message(tmp_path):
    path = tmp_path / "chart.png"
    path.write_text('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')
    with pytest.raises(ImageError, match="SVG vector images are not supported"):
        open_image(path)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("chart.svg", "SVG vector images are not supported; export the chart as PNG"),
        ("CHART.SVG", "SVG vector images are not supported; export the chart as PNG"),
        ("report.pdf", "PDF files are not supported; export the page as PNG"),
    ],
)
def test_svg_and_pdf_refused_by_extension(tmp_path, name, message):
    path = tmp_path / name
    path.write_bytes(b"%PDF-1.4\n" if name.endswith("pdf") else b"<svg/>")
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert str(info.value) == f"{path}: {message}"


def test_decompression_bomb_refused_quickly(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(30000, 30000))
    assert path.stat().st_size < 10_000
    filters_before = list(warnings.filters)
    start = time.perf_counter()
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert time.perf_counter() - start < 2.0
    assert "image is too large: 30000x30000 pixels (limit 100 megapixels)" in str(info.value)
    assert warnings.filters == filters_before


def test_bomb_between_pillow_warning_and_our_limit(tmp_path):
    # 120 MP: Pillow only warns (its error starts at ~179 MP); our own check refuses it.
    path = tmp_path / "big.png"
    path.write_bytes(png_declaring(12000, 10000))
    start = time.perf_counter()
    with pytest.raises(ImageError, match="image is too large: 12000x10000 pixels"):
        open_image(path)
    assert time.perf_counter() - start < 2.0


def test_bomb_refused_even_when_pillow_guard_disabled(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    path = tmp_path / "bomb.png"
    path.write_bytes(png_declaring(30000, 30000))
    with pytest.raises(ImageError, match="30000x30000"):
        open_image(path)


def test_pillow_bomb_warning_below_our_limit_is_silenced(monkeypatch):
    # Pillow warns above MAX_IMAGE_PIXELS; with filterwarnings=error that would raise.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    filters_before = list(warnings.filters)
    img = open_image(encode(solid(RED, (40, 40)), "PNG"))
    assert img.size == (40, 40)
    assert warnings.filters == filters_before


def test_lower_pillow_limit_is_respected(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(ImageError, match=r"too large: 100x100 pixels \(Pillow's limit"):
        open_image(encode(solid(RED, (100, 100)), "PNG"))


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="file not found"):
        open_image(tmp_path / "nope.png")


def test_directory_is_not_an_image(tmp_path):
    folder = tmp_path / "folder.png"
    folder.mkdir()
    with pytest.raises(ImageError, match="folder"):
        open_image(folder)


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file"
)
def test_unreadable_file_chmod(tmp_path):
    path = save(solid(RED), tmp_path / "secret.png")
    path.chmod(0)
    try:
        with pytest.raises(ImageError, match="cannot read file: permission denied"):
            open_image(path)
    finally:
        path.chmod(0o644)


def test_unreadable_file_message(tmp_path, monkeypatch):
    path = save(solid(RED), tmp_path / "secret.png")

    def denied(self):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(ImageError) as info:
        open_image(path)
    assert str(info.value) == f"{path}: cannot read file: permission denied"


# --------------------------------------------------------------------------------------------
# Odd but valid images


def test_one_pixel_image(tmp_path):
    result = load_image(save(solid(RED, (1, 1)), tmp_path / "dot.png"))
    assert (result.width, result.height) == (1, 1)
    assert result.pixels.shape == (3, 224, 224)
    assert close_to(denormalise(result.pixels)[100, 100], RED, tol=1)
    assert Image.open(io.BytesIO(result.thumbnail)).size == (1, 1)


@pytest.mark.parametrize(("size", "thumb"), [((1, 5000), (1, 256)), ((5000, 1), (256, 1))])
def test_extreme_aspect_ratio(tmp_path, size, thumb):
    path = save(solid(BLUE, size), tmp_path / "sliver.png")
    for fast in (True, False):
        result = load_image(path, fast=fast)
        assert (result.width, result.height) == size
        assert result.pixels.shape == (3, 224, 224)
        assert np.isfinite(result.pixels).all()
        assert close_to(denormalise(result.pixels)[112, 112], BLUE, tol=1)
        assert Image.open(io.BytesIO(result.thumbnail)).size == thumb


def _red_then_blue(path: Path, fmt: str, **params) -> Path:
    red, blue = solid(RED, (48, 48)), solid(BLUE, (48, 48))
    red.save(path, fmt, save_all=True, append_images=[blue], **params)
    with Image.open(path) as check:
        assert getattr(check, "n_frames", 1) == 2, "the test file must really have 2 frames"
    return path


def _assert_red_dominant(result: DecodedImage) -> None:
    rgb = denormalise(result.pixels).reshape(-1, 3).mean(axis=0)
    assert rgb[0] > 200 and rgb[2] < 50, rgb


def test_animated_gif_uses_first_frame(tmp_path):
    path = _red_then_blue(tmp_path / "anim.gif", "GIF", duration=100, loop=0)
    result = load_image(path)
    assert result.format == "GIF"
    _assert_red_dominant(result)


def test_animated_webp_uses_first_frame(tmp_path):
    path = _red_then_blue(tmp_path / "anim.webp", "WEBP", duration=100, lossless=True)
    result = load_image(path)
    assert result.format == "WEBP"
    _assert_red_dominant(result)


def test_multipage_tiff_uses_first_page(tmp_path):
    path = _red_then_blue(tmp_path / "pages.tiff", "TIFF")
    result = load_image(path)
    assert result.format == "TIFF"
    _assert_red_dominant(result)


@pytest.mark.parametrize(
    ("cmyk", "rgb"),
    [((0, 255, 255, 0), RED), ((255, 0, 255, 0), (0, 255, 0)), ((0, 0, 0, 0), WHITE)],
)
def test_cmyk_jpeg_becomes_rgb(tmp_path, cmyk, rgb):
    path = save(solid(cmyk, (64, 64), "CMYK"), tmp_path / "print.jpg", quality=95)
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    img = open_image(path)
    assert img.mode == "RGB"
    assert close_to(centre(img), rgb, tol=16), centre(img)


def test_16bit_grayscale_png_keeps_range(tmp_path):
    ramp = np.linspace(0, 65535, 512).round().astype(np.uint16)
    path = save(Image.fromarray(np.tile(ramp, (8, 1))), tmp_path / "deep.png")
    with Image.open(path) as check:
        assert check.mode.startswith("I")
    img = open_image(path)
    assert img.mode == "RGB"
    row = np.asarray(img)[4, :, 0].astype(int)
    assert row.min() <= 1 and row.max() >= 254
    assert abs(int(row[256]) - 128) <= 2  # scaled, not clipped to 255
    assert (np.diff(row) >= 0).all()


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I", "F"])
def test_high_bit_depth_modes_scaled(mode):
    top = 1.0 if mode == "F" else 65535
    ramp = np.linspace(0, top, 256)
    dtype = {"I;16": "<u2", "I;16B": ">u2", "I": "<i4", "F": "<f4"}[mode]
    img = Image.fromarray(np.tile(ramp if mode == "F" else ramp.round(), (4, 1)).astype(dtype))
    assert img.mode == mode
    row = np.asarray(imaging._to_rgb(img))[0, :, 1].astype(int)
    assert row[0] == 0 and row[-1] == 255 and abs(row[128] - 128) <= 2


def test_palette_png_with_transparency_on_white(tmp_path):
    img = Image.new("P", (40, 40), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * (254 * 3))
    ImageDraw.Draw(img).rectangle([0, 0, 19, 39], fill=1)  # left half red, right half index 0
    path = save(img, tmp_path / "pal.png", transparency=0)
    out = open_image(path)
    assert out.mode == "RGB"
    assert out.getpixel((5, 20)) == RED
    assert out.getpixel((35, 20)) == WHITE  # transparent index -> white, not black


def test_rgba_png_transparent_background_on_white(tmp_path):
    img = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    ImageDraw.Draw(img).rectangle([10, 10, 29, 29], fill=(0, 0, 255, 255))
    img.putpixel((0, 39), (255, 0, 0, 128))  # half-transparent red over white
    path = save(img, tmp_path / "alpha.png")
    out = open_image(path)
    assert out.mode == "RGB"
    assert out.getpixel((0, 0)) == WHITE
    assert out.getpixel((20, 20)) == BLUE
    assert close_to(out.getpixel((0, 39)), (255, 127, 127), tol=2)
    background = denormalise(to_clip_tensor(out, fast=False))[2, 2]
    assert close_to(background, WHITE, tol=1)


@pytest.mark.parametrize("mode", ["LA", "L", "1", "P"])
def test_gray_and_palette_modes_become_rgb(mode):
    if mode == "LA":
        img = Image.new("LA", (8, 8), (0, 0))  # fully transparent -> white
        expected = WHITE
    elif mode == "P":
        img = solid(RED, (8, 8)).convert("P")
        expected = RED
    else:
        img = Image.new(mode, (8, 8), 0)
        expected = (0, 0, 0)
    out = open_image(encode(img, "PNG"))
    assert out.mode == "RGB"
    assert out.getpixel((4, 4)) == expected


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_6(tmp_path, fmt):
    stored = Image.new("RGB", (200, 100), RED)
    stored.paste(BLUE, (100, 0, 200, 100))  # left half red, right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = save(stored, tmp_path / f"phone.{fmt.lower()}", fmt, exif=exif)
    img = open_image(path)
    assert img.size == (100, 200)
    assert close_to(img.getpixel((50, 20)), RED)  # the left side ends up on top
    assert close_to(img.getpixel((50, 180)), BLUE)
    result = load_image(path)
    assert (result.width, result.height) == (100, 200)
    pixels = denormalise(result.pixels)
    assert close_to(pixels[20, 112], RED) and close_to(pixels[200, 112], BLUE)
    assert Image.open(io.BytesIO(result.thumbnail)).size == (100, 200)


def test_unicode_path(tmp_path):
    path = save(solid(RED), tmp_path / "графік 📈.png")
    result = load_image(path)
    assert result.format == "PNG" and (result.width, result.height) == (32, 32)
    assert close_to(centre(open_image(str(path))), RED, tol=0)


def test_very_long_filename(tmp_path):
    path = save(solid(BLUE), tmp_path / ("c" * 196 + ".png"))
    assert len(path.name) == 200
    assert load_image(path).width == 32


@pytest.mark.parametrize(("fmt", "ext"), [("BMP", "bmp"), ("WEBP", "webp"), ("JPEG", "jpeg")])
def test_other_formats_load(tmp_path, fmt, ext):
    path = save(solid(RED, (60, 30)), tmp_path / f"x.{ext}", fmt)
    result = load_image(path)
    assert result.format == fmt
    assert (result.width, result.height) == (60, 30)
    assert close_to(denormalise(result.pixels)[112, 112], RED, tol=12)


def test_bytes_source(chart):
    data = encode(chart.resize((320, 180)), "PNG")
    result = load_image(data)
    assert (result.width, result.height, result.format) == (320, 180, "PNG")
    assert open_image(bytearray(data)).size == (320, 180)


# --------------------------------------------------------------------------------------------
# CLIP tensor: exact path and fast path


def test_exact_path_matches_user_guide(tmp_path, chart):
    path = save(chart, tmp_path / "chart.png")
    expected = user_guide_preprocess(path)[0]
    tensor = to_clip_tensor(Image.open(path), fast=False)
    assert tensor.dtype == np.float32 and tensor.shape == (3, 224, 224)
    assert tensor.flags.c_contiguous
    assert np.abs(tensor - expected).max() < 1e-6
    loaded = load_image(path, fast=False).pixels
    assert np.abs(loaded - expected).max() < 1e-6


def test_exact_path_other_size():
    img = make_chart(300, 200, seed=3)
    expected = np.asarray(img.resize((336, 336), Image.BICUBIC), dtype=np.float32) / 255.0
    expected = ((expected - np.array(CLIP_MEAN)) / np.array(CLIP_STD)).transpose(2, 0, 1)
    tensor = to_clip_tensor(img, 336, fast=False)
    assert tensor.shape == (3, 336, 336)
    assert np.abs(tensor - expected).max() < 1e-6


def _mad(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float64) - b).mean())


@pytest.mark.parametrize("seed", [0, 7])
def test_fast_path_close_to_exact_on_chart(seed):
    img = make_chart(seed=seed)
    fast = to_clip_tensor(img, fast=True)
    assert fast.dtype == np.float32 and fast.shape == (3, 224, 224)
    assert _mad(fast, to_clip_tensor(img, fast=False)) < 0.02


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_fast_load_close_to_exact_load(tmp_path, chart, fmt):
    path = save(chart, tmp_path / f"chart.{fmt.lower()}", fmt)
    exact = load_image(path, fast=False)
    fast = load_image(path, fast=True)
    assert (fast.width, fast.height) == (exact.width, exact.height) == (1600, 900)
    assert _mad(fast.pixels, exact.pixels) < 0.02


def test_large_jpeg_draft_reports_original_size(tmp_path):
    img = make_chart(1600, 900, seed=5).resize((4000, 2250), Image.NEAREST)
    path = save(img, tmp_path / "big.jpg", quality=85)
    fast = load_image(path, fast=True)
    exact = load_image(path, fast=False)
    assert (fast.width, fast.height) == (4000, 2250)
    assert _mad(fast.pixels, exact.pixels) < 0.02
    with Image.open(path) as probe:  # the draft really reduces this file
        probe.draft("RGB", (512, 512))
        assert probe.size[0] < 4000


def test_fast_path_small_image_equals_exact():
    img = make_chart(300, 200, seed=2)
    assert np.array_equal(to_clip_tensor(img, fast=True), to_clip_tensor(img, fast=False))


def test_to_clip_tensor_composites_rgba_on_white():
    img = Image.new("RGBA", (50, 50), (0, 0, 0, 0))
    assert close_to(denormalise(to_clip_tensor(img))[10, 10], WHITE, tol=1)


# --------------------------------------------------------------------------------------------
# Thumbnails and batches


@pytest.mark.parametrize(("size", "thumb_size"), [((1600, 900), 256), ((900, 1600), 128)])
def test_thumbnail_is_jpeg_and_fits(size, thumb_size):
    img = make_chart(*size, seed=4)
    data = make_thumbnail(img, thumb_size)
    assert data[:3] == b"\xff\xd8\xff"
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "JPEG" and thumb.mode == "RGB"
        assert max(thumb.size) == thumb_size
        assert abs(thumb.width / thumb.height - size[0] / size[1]) < 0.02


def test_thumbnail_never_upscales():
    with Image.open(io.BytesIO(make_thumbnail(solid(RED, (40, 20))))) as thumb:
        assert thumb.size == (40, 20)


def test_load_image_result(tmp_path, chart):
    path = save(chart, tmp_path / "chart.png")
    result = load_image(path, image_size=112, thumb_size=64)
    assert isinstance(result, DecodedImage)
    assert result.pixels.shape == (3, 112, 112) and result.pixels.dtype == np.float32
    assert (result.width, result.height, result.format) == (1600, 900, "PNG")
    with Image.open(io.BytesIO(result.thumbnail)) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) == 64
    with pytest.raises(AttributeError):
        result.width = 5  # type: ignore[misc]


def test_preprocess_batch():
    tensors = [to_clip_tensor(solid(c, (20, 20)), 32) for c in (RED, BLUE, WHITE)]
    batch = preprocess_batch(tensors)
    assert batch.shape == (3, 3, 32, 32) and batch.dtype == np.float32
    assert batch.flags.c_contiguous
    assert np.array_equal(batch[1], tensors[1])
    with pytest.raises(ValueError):
        preprocess_batch([])
    with pytest.raises(ValueError):
        preprocess_batch([tensors[0], to_clip_tensor(solid(RED), 16)])


def test_threads_give_the_same_results(chart):
    blobs = [encode(make_chart(480, 270, seed=s), "PNG") for s in range(4)]
    serial = [load_image(b).pixels for b in blobs]
    with ThreadPoolExecutor(max_workers=2) as pool:
        parallel = [r.pixels for r in pool.map(load_image, blobs)]
    assert all(np.array_equal(a, b) for a, b in zip(serial, parallel, strict=True))
