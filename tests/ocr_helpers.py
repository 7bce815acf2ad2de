"""Small charts with a readable title, for the OCR tests (few and small: OCR is ~0.3 s each)."""

from __future__ import annotations

import glob
from pathlib import Path

from PIL import ImageDraw, ImageFont

from vector_studio_gui.modelgen.toy import toy_chart_image

SIZE = (480, 300)


def title_font(size: int = 26):
    found = sorted(glob.glob("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf")
                   + glob.glob("/usr/share/fonts/truetype/*/*Sans*Bold*.ttf"))
    if found:
        return ImageFont.truetype(found[0], size)
    return ImageFont.load_default(size=size)  # Pillow's built-in scalable font


def text_chart(colour: str, title: str, size: tuple[int, int] = SIZE, seed: int = 0):
    """A toy chart in ``colour`` (what the toy CLIP sees) with ``title`` written above it."""
    img = toy_chart_image(colour, size=size, seed=seed)
    draw = ImageDraw.Draw(img)
    draw.rectangle([0, 0, size[0], 44], fill="white")
    draw.text((12, 8), title, fill=(20, 20, 20), font=title_font())
    return img


def write_text_charts(folder: Path, charts: dict[str, tuple[str, str]]) -> dict[str, Path]:
    """{file stem: (colour, title)} -> {file stem: path} (PNG files)."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for stem, (colour, title) in charts.items():
        path = folder / f"{stem}.png"
        text_chart(colour, title).save(path)
        out[stem] = path
    return out
