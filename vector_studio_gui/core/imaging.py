"""Decoding chart images and turning them into CLIP input tensors and thumbnails.

Qt-free: the CLI, the indexer workers and the GUI all call these functions. Pillow releases the
GIL while it decodes and resizes, so the functions can run in a thread pool.

Every way a file can be unusable (empty, not an image, truncated, a decompression bomb, SVG or
PDF, unreadable) ends in :class:`ImageError` with a one-line message naming the file and the
problem; any other exception is a bug.

The CLIP preprocessing follows the user guide (``embeddings-and-models.md``, CLIP ViT-B/32,
"Preprocessing"): RGB, ``resize((S, S), BICUBIC)``, ``/ 255``, ``(x - mean) / std``, HWC -> CHW.
``to_clip_tensor(..., fast=False)`` reproduces it (to float32 rounding); the fast path first
shrinks large images with a cheap box reduction by one integer factor on both axes, which stays
within a few thousandths of the exact path on charts (mean absolute difference <= 0.016 in
normalised units on the benchmark charts, bound 0.02; see benchmarks/README.md).
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

# The fast path box-reduces an image by one integer factor on both axes while both sides stay
# at least this many times the target size, then finishes with the same bicubic resize. (A
# per-axis factor, as Pillow's own reducing_gap picks, blurs 16:9 charts unevenly: up to 0.025
# mean absolute difference from the exact path on bar charts, against 0.016 with one factor.)
_FAST_REDUCING_GAP = 2.0
# JPEGs are decoded at 1/2, 1/4 or 1/8 scale (DCT scaling) while both sides stay at least
# this many times the size we need (the CLIP input, and the thumbnail's own sides).
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
    source: Path | str | bytes, *, draft_for: tuple[int, int] | None = None
) -> tuple[Image.Image, int, int, str]:
    """Open, guard, decode and normalise to RGB.

    Returns the RGB image, the ORIGINAL width and height (after EXIF orientation) and the
    format. ``draft_for`` = (image_size, thumb_size) lets JPEGs decode at a reduced scale while
    both sides stay ``_DRAFT_MARGIN`` times what the CLIP input and the thumbnail need.
    """
    data, label = _read_source(source)
    im = _open_lazy(data, label)
    fmt = im.format or "UNKNOWN"
    width, height = im.size
    orientation = _orientation(im)
    if orientation in (5, 6, 7, 8):
        width, height = height, width

    if draft_for is not None and fmt in ("JPEG", "MPO"):
        image_size, thumb_size = draft_for
        tw, th = _thumbnail_size(*im.size, thumb_size)  # stored orientation, as draft sees it
        im.draft("RGB", (_DRAFT_MARGIN * max(image_size, tw),
                         _DRAFT_MARGIN * max(image_size, th)))

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


def _reduction(size: tuple[int, int], image_size: int) -> int:
    """The box-reduction factor of the fast path: both sides stay >= gap * image_size."""
    return max(1, int(min(size) / (_FAST_REDUCING_GAP * image_size)))


def _reduced(rgb: Image.Image, factor: int) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """``rgb`` box-reduced by ``factor`` and the box that maps it back to the full image."""
    if factor <= 1:
        return rgb, (0.0, 0.0, float(rgb.width), float(rgb.height))
    # reduce() keeps a partial last row/column; the box keeps the geometry exact, as resize()
    # does internally for its own reducing_gap
    return rgb.reduce(factor), (0.0, 0.0, rgb.width / factor, rgb.height / factor)


def to_clip_tensor(img: Image.Image, image_size: int = 224, *, fast: bool = True) -> np.ndarray:
    """Resize to ``image_size`` square with bicubic filtering and normalise: float32 (3, S, S).

    ``fast=False`` is the user guide's code exactly. ``fast=True`` first box-reduces images
    much larger than ``image_size`` by one integer factor on both axes (see _FAST_REDUCING_GAP).
    Non-RGB input is converted like :func:`open_image` does (transparency on white).
    """
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    rgb = _to_rgb(img)
    size = (image_size, image_size)
    if fast:
        small, box = _reduced(rgb, _reduction(rgb.size, image_size))
        return _normalise(small.resize(size, Image.Resampling.BICUBIC, box=box))
    return _normalise(rgb.resize(size, Image.Resampling.BICUBIC))


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
    return _jpeg(rgb)


def _jpeg(rgb: Image.Image) -> bytes:
    buffer = io.BytesIO()
    rgb.save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
    return buffer.getvalue()


def _fast_thumbnail(rgb: Image.Image, small: Image.Image, box: tuple[float, float, float, float],
                    thumb_size: int) -> bytes:
    """The thumbnail from the fast path's reduced copy ``small`` of ``rgb`` (``box`` maps it
    back to the full image), so the full image is not resampled a second time.

    A box reduction to about the thumbnail's size plus a bicubic finish costs ~0.5 ms instead of
    ~5 ms for a Lanczos resize of a 1600x900 chart, and is indistinguishable at thumbnail size
    (mean difference ~1/255 per pixel).
    """
    size = _thumbnail_size(*rgb.size, thumb_size)
    if size == rgb.size:
        return _jpeg(rgb)
    if small.width < size[0] or small.height < size[1]:  # reduced below the thumbnail
        return make_thumbnail(rgb, thumb_size)
    return _jpeg(small.resize(size, Image.Resampling.BICUBIC, box=box, reducing_gap=1.0))


def load_image(
    source: Path | str | bytes,
    *,
    image_size: int = 224,
    thumb_size: int = 256,
    fast: bool = True,
) -> DecodedImage:
    """Decode once and produce both the CLIP tensor and the thumbnail.

    With ``fast=True`` large JPEGs are decoded at reduced scale (DCT scaling), and the tensor
    and the thumbnail are both made from one box-reduced copy; the reported width and height
    are always the original ones (after EXIF orientation).
    """
    if image_size < 1:
        raise ValueError(f"image_size must be positive, got {image_size}")
    if thumb_size < 1:
        raise ValueError(f"thumb_size must be positive, got {thumb_size}")
    if not fast:
        rgb, width, height, fmt = _open(source)
        return DecodedImage(to_clip_tensor(rgb, image_size, fast=False),
                            make_thumbnail(rgb, thumb_size), width, height, fmt)
    rgb, width, height, fmt = _open(source, draft_for=(image_size, thumb_size))
    small, box = _reduced(rgb, _reduction(rgb.size, image_size))
    pixels = _normalise(small.resize((image_size, image_size), Image.Resampling.BICUBIC, box=box))
    return DecodedImage(pixels, _fast_thumbnail(rgb, small, box, thumb_size), width, height, fmt)


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
