"""Decoding chart images and turning them into CLIP input tensors and thumbnails.

Qt-free: the CLI, the indexer workers and the GUI all call these functions. Pillow releases the
GIL while it decodes and resizes, so the functions can run in a thread pool.

Every way a file can be unusable (empty, not an image, truncated, a decompression bomb, SVG or
PDF, unreadable) ends in :class:`ImageError` with a one-line message naming the file and the
problem; any other exception is a bug.

The CLIP preprocessing follows the user guide (``embeddings-and-models.md``, CLIP ViT-B/32,
"Preprocessing"): RGB, ``resize((S, S), BICUBIC)``, ``/ 255``, ``(x - mean) / std``, HWC -> CHW.
``to_clip_tensor(..., fast=False)`` reproduces it (to float32 rounding); the fast path first
shrinks large images with a cheap box reduction, which stays within a few thousandths of the
exact path on charts.
"""

from __future__ import annotations

import io
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ExifTags, Image, ImageFile

from vector_studio_gui.core.catalog import CLIP_MEAN, CLIP_STD
from vector_studio_gui.core.errors import ImageError

__all__ = [
    "CLIP_MEAN",
    "CLIP_STD",
    "MAX_PIXELS",
    "SUPPORTED_EXTENSIONS",
    "UNSUPPORTED_EXTENSIONS",
    "DecodedImage",
    "load_image",
    "make_thumbnail",
    "open_image",
    "preprocess_batch",
    "to_clip_tensor",
]

MAX_PIXELS = 100_000_000
"""Images with more decoded pixels than this are refused (decompression-bomb guard)."""

THUMBNAIL_QUALITY = 85

Image.init()


def _pillow_reads(ext: str) -> bool:
    fmt = Image.registered_extensions().get(ext)
    return fmt is not None and fmt in Image.OPEN


SUPPORTED_EXTENSIONS: frozenset[str] = frozenset(
    {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
    | ({".avif"} if _pillow_reads(".avif") else set())
)

_SVG_MESSAGE = "SVG vector images are not supported; export the chart as PNG"
_PDF_MESSAGE = "PDF files are not supported; export the page as PNG"

UNSUPPORTED_EXTENSIONS: dict[str, str] = {
    ".svg": _SVG_MESSAGE,
    ".svgz": _SVG_MESSAGE,
    ".pdf": _PDF_MESSAGE,
    **{
        ext: f"{ext[1:].upper()} images are not supported; convert the file to PNG or JPEG"
        for ext in (".heic", ".heif", ".avif")
        if not _pillow_reads(ext)
    },
}

_NOT_AN_IMAGE = "not an image file (content is not PNG/JPEG/WebP/GIF/BMP/TIFF)"

# Precomputed float32 normalisation: _LUT[c, v] == float32((float32(v) / 255 - mean[c]) / std[c]),
# exactly what the user guide's code computes (it divides in float32, normalises in float64).
# Normalising is then a single gather per channel instead of three passes over the pixels.
_LUT: np.ndarray = (
    (
        (np.arange(256, dtype=np.float32) / np.float32(255.0)).astype(np.float64)[None, :]
        - np.asarray(CLIP_MEAN, dtype=np.float64)[:, None]
    )
    / np.asarray(CLIP_STD, dtype=np.float64)[:, None]
).astype(np.float32)

# The fast path lets Pillow box-reduce an image by an integer factor while it stays at least
# this many times larger than the target size, then finishes with the same bicubic resize.
_FAST_REDUCING_GAP = 2.0
# JPEGs are decoded at 1/2, 1/4 or 1/8 scale (DCT scaling) while both sides stay at least
# this many times the largest size we need.
_DRAFT_MARGIN = 2

_ORIENTATION_TRANSPOSE: dict[int, Image.Transpose] = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# ``warnings.catch_warnings`` swaps the process-wide filter list; the lock keeps our own
# threads from interleaving those swaps (which could leave a filter behind). It is only held
# around header parsing and EXIF reading, never around pixel decoding.
_WARNINGS_LOCK = threading.Lock()


@contextmanager
def _quiet_pillow() -> Iterator[None]:
    """Silence Pillow's own warnings (bomb warning below our limit, corrupt EXIF...)."""
    with _WARNINGS_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


@dataclass(frozen=True)
class DecodedImage:
    """One decoded image, ready for the vision model and the library's thumbnail store."""

    pixels: np.ndarray
    """float32 (3, S, S) normalised CLIP input."""
    thumbnail: bytes
    """JPEG bytes, RGB, longest side <= thumb_size, aspect ratio kept."""
    width: int
    """Original width, after EXIF orientation."""
    height: int
    """Original height, after EXIF orientation."""
    format: str
    """Pillow's format name: "PNG", "JPEG", "WEBP", ..."""


# --------------------------------------------------------------------------------------------
# Opening


def _too_large(label: str, width: int, height: int) -> ImageError:
    if width * height > MAX_PIXELS:
        limit = f"limit {MAX_PIXELS // 1_000_000} megapixels"
    else:  # refused by a lower Image.MAX_IMAGE_PIXELS that someone set process-wide
        limit = f"Pillow's limit is {2 * (Image.MAX_IMAGE_PIXELS or 0):,} pixels"
    return ImageError(f"{label}: image is too large: {width}x{height} pixels ({limit})")


def _read_source(source: Path | str | bytes | bytearray | memoryview) -> tuple[bytes, str]:
    """Return the encoded bytes and a label for messages; refuse SVG/PDF by extension."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        label = "image bytes"
        if not data:
            raise ImageError(f"{label}: empty (0 bytes)")
        return data, label

    path = Path(source)
    label = str(path)
    message = UNSUPPORTED_EXTENSIONS.get(path.suffix.lower())
    if message is not None:
        raise ImageError(f"{label}: {message}")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{label}: file not found") from None
    except IsADirectoryError:
        raise ImageError(f"{label}: is a folder, not an image file") from None
    except PermissionError:
        raise ImageError(f"{label}: cannot read file: permission denied") from None
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise ImageError(f"{label}: cannot read file: {reason}") from None
    if not data:
        raise ImageError(f"{label}: file is empty (0 bytes)")
    return data, label


def _sniff_unsupported(data: bytes) -> str | None:
    """Name SVG/PDF content that arrives under another extension (or as bytes)."""
    head = data[:1024].lstrip().lower()
    if head.startswith(b"%pdf"):
        return _PDF_MESSAGE
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in head):
        return _SVG_MESSAGE
    return None


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Read the declared size without Pillow's bomb check (only to word the refusal)."""
    prefix = data[:16]
    for fmt in Image.ID:
        factory, accept = Image.OPEN[fmt]
        try:
            if accept is not None and not accept(prefix):
                continue
            im = factory(io.BytesIO(data), None)
        except Exception:  # noqa: BLE001 - any plugin may fail on foreign data
            continue
        w, h = im.size
        im.close()
        return w, h
    return None


def _open_lazy(data: bytes, label: str) -> ImageFile.ImageFile:
    """Parse the header (no pixels decoded yet) and apply our pixel limit."""
    try:
        with _quiet_pillow():
            im = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        with _quiet_pillow():
            size = _header_size(data)
        if size is not None:
            raise _too_large(label, *size) from None
        match = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(match.group(1)):,} pixels " if match else ""
        raise ImageError(
            f"{label}: image is too large: {pixels}(limit {MAX_PIXELS // 1_000_000} megapixels)"
        ) from None
    except Image.UnidentifiedImageError:
        message = _sniff_unsupported(data) or _NOT_AN_IMAGE
        raise ImageError(f"{label}: {message}") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        raise ImageError(f"{label}: corrupt image data ({_reason(exc)})") from None
    assert isinstance(im, ImageFile.ImageFile)
    width, height = im.size
    if width <= 0 or height <= 0:
        raise ImageError(f"{label}: corrupt image data (size {width}x{height})")
    if width * height > MAX_PIXELS:
        raise _too_large(label, width, height)
    return im


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:1].lower() + text[1:]


def _decode(im: ImageFile.ImageFile, label: str) -> None:
    """Decode the pixels of the current (first) frame; truncation is an error."""
    try:
        im.load()
    except (Image.DecompressionBombError, MemoryError):
        raise _too_large(label, *im.size) from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError) as exc:
        raise ImageError(f"{label}: truncated or corrupt image data ({_reason(exc)})") from None


def _orientation(im: Image.Image) -> int:
    try:
        with _quiet_pillow():
            value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except Exception:  # noqa: BLE001 - corrupt EXIF must not make the image unusable
        return 1
    return value if isinstance(value, int) and value in _ORIENTATION_TRANSPOSE else 1


def _to_8bit_gray(im: Image.Image) -> Image.Image:
    """Scale high-bit-depth grayscale (I;16*, I, F) to 8-bit by range, never by clipping."""
    arr = np.asarray(im)
    if im.mode.startswith("I;16"):
        wide = arr.astype(np.uint32)
        out = ((wide * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(out)
    values = arr.astype(np.float64)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if im.mode == "F" and lo >= 0.0 and hi <= 1.0:
        scaled = values * 255.0
    elif im.mode == "I" and lo >= 0 and (hi > 255 or im.format == "PNG") and hi <= 65535:
        scaled = values * (255.0 / 65535.0)  # 16-bit data that Pillow widened to 32-bit
    elif lo >= 0 and hi <= 255:
        scaled = values
    else:
        scaled = (values - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8))


def _to_rgb(im: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB; transparency is composited on white."""
    mode = im.mode
    if mode == "RGB" and "transparency" not in im.info:
        return im
    if mode.startswith("I;16") or mode in ("I", "F"):
        return _to_8bit_gray(im).convert("RGB")
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        mode in ("P", "1", "L", "RGB") and "transparency" in im.info
    )
    if not has_alpha:
        return im.convert("RGB")
    if mode != "RGBA":
        im = im.convert("RGBA")
    alpha = im.getchannel("A")
    if alpha.getextrema() == (255, 255):
        return im.convert("RGB")
    background = Image.new("RGB", im.size, (255, 255, 255))
    background.paste(im, mask=alpha)
    return background


def _open(
    source: Path | str | bytes, *, draft_to: int | None = None
) -> tuple[Image.Image, int, int, str]:
    """Open, guard, decode and normalise to RGB.

    Returns the RGB image, the ORIGINAL width and height (after EXIF orientation) and the
    format. ``draft_to`` lets JPEGs decode at a reduced scale while both sides stay at least
    that many pixels.
    """
    data, label = _read_source(source)
    im = _open_lazy(data, label)
    fmt = im.format or "UNKNOWN"
    width, height = im.size
    orientation = _orientation(im)
    if orientation in (5, 6, 7, 8):
        width, height = height, width

    if draft_to is not None and fmt in ("JPEG", "MPO"):
        im.draft("RGB", (draft_to, draft_to))

    try:
        _decode(im, label)
        rgb = _to_rgb(im)
    except BaseException:
        im.close()
        raise
    if rgb is not im:
        im.close()
    if orientation != 1:
        rgb = rgb.transpose(_ORIENTATION_TRANSPOSE[orientation])
    rgb.info.pop("exif", None)  # orientation is applied; do not let anyone apply it twice
    return rgb, width, height, fmt


def open_image(source: Path | str | bytes) -> Image.Image:
    """Open an image file (or encoded bytes) as a decoded RGB image.

    The first frame of animated GIF/WebP and multi-page TIFF is used, EXIF orientation is
    applied, transparency is composited on white, CMYK/16-bit/grayscale/palette become 8-bit
    RGB. Raises :class:`ImageError` for anything that is not a usable image.
    """
    rgb, _, _, _ = _open(source)
    return rgb


# --------------------------------------------------------------------------------------------
# Tensors and thumbnails


def _normalise(resized: Image.Image) -> np.ndarray:
    """uint8 RGB image -> float32 (3, H, W), normalised with the CLIP mean and std."""
    hwc = np.asarray(resized)
    out = np.empty((3, *hwc.shape[:2]), dtype=np.float32)
    for c in range(3):
        np.take(_LUT[c], hwc[..., c], out=out[c], mode="clip")
    return out


def to_clip_tensor(img: Image.Image, image_size: int = 224, *, fast: bool = True) -> np.ndarray:
    """Resize to ``image_size`` square with bicubic filtering and normalise: float32 (3, S, S).

    ``fast=False`` is the user guide's code exactly. ``fast=True`` lets Pillow box-reduce
    images much larger than ``image_size`` by an integer factor first (``reducing_gap``).
    Non-RGB input is converted like :func:`open_image` does (transparency on white).
    """
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    rgb = _to_rgb(img)
    size = (image_size, image_size)
    if fast:
        resized = rgb.resize(size, Image.Resampling.BICUBIC, reducing_gap=_FAST_REDUCING_GAP)
    else:
        resized = rgb.resize(size, Image.Resampling.BICUBIC)
    return _normalise(resized)


def _thumbnail_size(width: int, height: int, thumb_size: int) -> tuple[int, int]:
    if max(width, height) <= thumb_size:
        return width, height
    scale = thumb_size / max(width, height)
    return (
        max(1, min(thumb_size, round(width * scale))),
        max(1, min(thumb_size, round(height * scale))),
    )


def make_thumbnail(img: Image.Image, thumb_size: int = 256) -> bytes:
    """JPEG bytes (quality 85) of ``img`` with its longest side at most ``thumb_size``."""
    if thumb_size < 1:
        raise ValueError(f"thumb_size must be positive, got {thumb_size}")
    rgb = _to_rgb(img)
    size = _thumbnail_size(*rgb.size, thumb_size)
    if size != rgb.size:
        rgb = rgb.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()


def load_image(
    source: Path | str | bytes,
    *,
    image_size: int = 224,
    thumb_size: int = 256,
    fast: bool = True,
) -> DecodedImage:
    """Decode once and produce both the CLIP tensor and the thumbnail.

    With ``fast=True`` large JPEGs are decoded at reduced scale (DCT scaling); the reported
    width and height are always the original ones (after EXIF orientation).
    """
    draft_to = _DRAFT_MARGIN * max(image_size, thumb_size) if fast else None
    rgb, width, height, fmt = _open(source, draft_to=draft_to)
    return DecodedImage(
        pixels=to_clip_tensor(rgb, image_size, fast=fast),
        thumbnail=make_thumbnail(rgb, thumb_size),
        width=width,
        height=height,
        format=fmt,
    )


def preprocess_batch(images: list[np.ndarray]) -> np.ndarray:
    """Stack (3, S, S) tensors into one contiguous float32 (B, 3, S, S) batch."""
    if not images:
        raise ValueError("preprocess_batch needs at least one image")
    shape = images[0].shape
    if len(shape) != 3 or shape[0] != 3:
        raise ValueError(f"expected (3, S, S) tensors, got {shape}")
    for i, arr in enumerate(images):
        if arr.shape != shape:
            raise ValueError(f"image {i} has shape {arr.shape}, expected {shape}")
    return np.ascontiguousarray(np.stack(images).astype(np.float32, copy=False))
