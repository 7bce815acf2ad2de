"""Bad input at the level users meet it: through ``Engine.ingest`` and ``Engine.search_text``.

Every class of hostile or odd file goes through a real ingest next to good charts: the run
continues, the bad file is reported once with a reason a person understands, the good files
(and the odd-but-valid ones) are added. Decode-level details (pixel values, modes) are covered
in ``test_imaging.py``; this file proves the ingest pipeline around them. ``CLASSES`` is the
list the README counts.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vector_studio_gui.core import ingest as ingest_mod
from vector_studio_gui.core.engine import Engine
from vector_studio_gui.core.errors import VectorStudioError
from vector_studio_gui.modelgen.toy import toy_chart_image


# ----------------------------------------------------------------------------- file makers
def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_1bit(width: int, height: int, rows: int | None = None) -> bytes:
    """An all-white 1-bit PNG, compressed row by row: a 20000x20000 one is ~80 kB and never
    exists in memory. ``rows`` < height makes a bomb: a huge declared size, little data."""
    comp = zlib.compressobj(9)
    row = b"\x00" + b"\xff" * ((width + 7) // 8)
    body = b"".join(comp.compress(row) for _ in range(height if rows is None else rows))
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0,
                                                                 0, 0, 0))
            + _chunk(b"IDAT", body + comp.flush()) + _chunk(b"IEND", b""))


def chart(colour: str = "red", size=(160, 90), kind: str = "bar") -> Image.Image:
    return toy_chart_image(colour, size=size, kind=kind)


def encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def two_frames(fmt: str, **kw) -> bytes:
    first, second = chart("red").convert("RGB"), chart("blue").convert("RGB")
    return encoded(first, fmt, save_all=True, append_images=[second], **kw)


def exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    return encoded(chart("green", (200, 100)).convert("RGB"), "JPEG", exif=exif)


def sixteen_bit() -> bytes:
    ramp = np.linspace(0, 65535, 160 * 90).reshape(90, 160).astype(np.uint16)
    return encoded(Image.fromarray(ramp), "PNG")


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


#: class -> (file name, bytes, None if it must be ingested else words the reason must contain)
CLASSES: dict[str, tuple[str, object, tuple[str, ...] | None]] = {
    "zero-byte file": ("empty.png", lambda: b"", ("empty", "0 bytes")),
    "truncated PNG": ("cut.png", lambda: half(encoded(chart("orange", (320, 180)), "PNG")),
                      ("truncated",)),
    "truncated JPEG": ("cut.jpg", lambda: half(encoded(chart("orange", (320, 180)).convert("RGB"),
                                                       "JPEG")), ("truncated",)),
    "other content, image extension": ("page.jpg", lambda: b"<html>not a chart</html>",
                                       ("not an image",)),
    "PDF content, image extension": ("export.png", lambda: b"%PDF-1.4\n%\xe2\xe3\n",
                                     ("PDF", "not supported")),
    "decompression bomb": ("bomb.png", lambda: png_1bit(100_000, 100_000, rows=64),
                           ("too large", "100000x100000")),
    "enormous valid image 20000x20000": ("huge.png", lambda: png_1bit(20_000, 20_000),
                                         ("too large", "20000x20000")),
    "SVG": ("drawing.svg", lambda: b'<svg xmlns="http://www.w3.org/2000/svg"/>',
            ("SVG", "not supported")),
    "PDF": ("report.pdf", lambda: b"%PDF-1.4\n", ("PDF", "not supported")),
    "1x1 image": ("dot.png", lambda: encoded(Image.new("RGB", (1, 1), (220, 30, 30)), "PNG"),
                  None),
    "extreme aspect 1x5000": ("sliver.png",
                              lambda: encoded(Image.new("RGB", (1, 5000), (30, 60, 220)), "PNG"),
                              None),
    "animated GIF": ("anim.gif", lambda: two_frames("GIF"), None),
    "animated WebP": ("anim.webp", lambda: two_frames("WEBP", lossless=True), None),
    "multi-page TIFF": ("pages.tiff", lambda: two_frames("TIFF"), None),
    "CMYK JPEG": ("print.jpg", lambda: encoded(chart("yellow").convert("CMYK"), "JPEG"), None),
    "16-bit PNG": ("deep.png", sixteen_bit, None),
    "palette with transparency": ("palette.png", lambda: encoded(
        chart("purple").convert("RGB").quantize(16), "PNG", transparency=0), None),
    "EXIF rotation": ("rotated.jpg", exif_rotated, None),
    "unicode file name": ("图表 — золото 📈 ñ.png", lambda: encoded(chart("green"), "PNG"), None),
}
GOOD = ("red", "blue")


@pytest.fixture
def drop(tmp_path) -> Path:
    """One folder holding every class of CLASSES next to two good charts."""
    folder = tmp_path / "drop"
    folder.mkdir()
    for name, make, _ in CLASSES.values():
        (folder / name).write_bytes(make())
    for colour in GOOD:
        chart(colour, kind="line").save(folder / f"good-{colour}.png")
    return folder


def test_every_bad_input_class_is_reported_and_the_run_continues(engine, drop):
    report = engine.ingest([drop])
    reasons = {Path(f.path).name: f.error for f in report.failed}
    accepted = [c for c, (_, _, why) in CLASSES.items() if why is None]
    refused = {c: (name, why) for c, (name, _, why) in CLASSES.items() if why is not None}
    assert report.added == len(GOOD) + len(accepted), reasons
    assert len(report.failed) == len(refused)  # each bad file reported exactly once
    for cls, (name, words) in refused.items():
        assert name in reasons, f"{cls}: {name} was not reported"
        for w in words:
            assert w.lower() in reasons[name].lower(), f"{cls}: {reasons[name]!r}"
        assert "\n" not in reasons[name] and "Traceback" not in reasons[name]
        assert not reasons[name].startswith("image bytes"), reasons[name]
    for cls in accepted:
        name = CLASSES[cls][0]
        item = engine.item_by_path(drop / name)
        assert engine.thumbnail(item.id)[:2] == b"\xff\xd8", cls  # decoded and thumbnailed
    for colour in GOOD:
        good = engine.item_by_path(drop / f"good-{colour}.png")
        assert engine.library.has_embedding(good.id, engine.active_space())
        top = engine.search_text(colour, k=5).results
        assert good.id in [r.item.id for r in top if r.score > top[0].score - 1e-3]
    assert engine.item_by_path(drop / "rotated.jpg").height == 200  # stored upright
    assert engine.item_by_path(drop / "sliver.png").height == 5000
    assert engine.check().ok


def test_enormous_image_is_refused_without_decoding_it(cli_env, tmp_path):
    """20000x20000 would be 1.2 GB as RGB: the CLI refuses it at the header, in little memory."""
    folder = tmp_path / "one"
    folder.mkdir()
    (folder / "huge.png").write_bytes(png_1bit(20_000, 20_000))
    proc = subprocess.Popen([sys.executable, "-m", "vector_studio_gui", "ingest", str(folder),
                             "--json", "--library", str(tmp_path / "lib")],
                            env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.stdout.read(), proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == 1  # nothing could be added: exit 1, one line, no traceback
    assert b"too large" in out and b"Traceback" not in err
    peak_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    assert peak_mb < 400, f"peak memory {peak_mb:.0f} MB"


def test_unreadable_file_is_reported_and_the_run_continues(engine, tmp_path, monkeypatch):
    """Root reads any file whatever its mode, so permission is denied by a stand-in open()."""
    folder = tmp_path / "f"
    folder.mkdir()
    chart("red").save(folder / "ok.png")
    chart("blue").save(folder / "secret.png")
    real_open = open

    def guarded_open(path, *args, **kwargs):
        if str(path).endswith("secret.png"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(ingest_mod, "open", guarded_open, raising=False)
    report = engine.ingest([folder])
    assert report.added == 1
    assert [(Path(f.path).name, f.error) for f in report.failed] == [
        ("secret.png", "cannot read file: permission denied")]


def test_very_long_and_deep_paths(engine, tmp_path):
    deep = tmp_path
    for i in range(6):
        deep = deep / (f"{i}-" + "d" * 180)
    deep.mkdir(parents=True)
    path = deep / ("n" * 240 + ".png")
    chart("orange").save(path)
    assert len(str(path)) > 1200
    report = engine.ingest([tmp_path])
    assert report.added == 1 and not report.failed
    assert engine.item_by_path(path).path == str(path)
    assert engine.search_text("orange", k=1).results[0].item.path == str(path)


def test_symlink_loops_in_folders_are_walked_once(engine, tmp_path):
    root = tmp_path / "charts"
    (root / "a" / "b").mkdir(parents=True)
    chart("red").save(root / "a" / "b" / "red.png")
    os.symlink(root, root / "a" / "b" / "loop-to-root")
    os.symlink(root / "a", root / "a" / "b" / "loop-to-a")
    os.symlink(root / "self", root / "self")  # a link to itself
    os.symlink(root / "nowhere", root / "dangling.png")
    report = engine.ingest([root])
    assert report.added == 1
    assert engine.library.count() == 1 and len(engine.library.all_paths()) == 1
    reasons = {Path(f.path).name: f.error for f in report.failed}
    assert set(reasons) <= {"self", "dangling.png"} and "dangling.png" in reasons


def test_file_disappearing_during_ingest_is_reported(engine, tmp_path, monkeypatch):
    folder = tmp_path / "f"
    folder.mkdir()
    for colour in ("red", "green", "blue"):
        chart(colour).save(folder / f"{colour}.png")
    real = ingest_mod.Ingestor._prepare

    def vanishing(self, path):
        if path.endswith("green.png"):
            os.remove(path)  # scanned a moment ago, gone now
        return real(self, path)

    monkeypatch.setattr(ingest_mod.Ingestor, "_prepare", vanishing)
    report = engine.ingest([folder])
    assert report.added == 2
    assert [(Path(f.path).name, f.error) for f in report.failed] == [
        ("green.png", "file disappeared before it could be read")]


def test_file_changing_during_ingest_stores_what_was_read_and_catches_up(engine, tmp_path,
                                                                          monkeypatch):
    folder = tmp_path / "f"
    folder.mkdir()
    chart("red").save(folder / "early.png")  # rewritten after stat, before it is read
    chart("red", kind="line").save(folder / "late.png")  # rewritten right after it is read
    real_read = ingest_mod.read_file
    read: dict[str, bytes] = {}

    def racing_read(path):
        if path.endswith("early.png"):
            chart("blue").save(path)
        data = real_read(path)
        read[Path(path).name] = data
        if path.endswith("late.png"):
            chart("green").save(path)
            os.utime(path, (1, 1))
        return data

    monkeypatch.setattr(ingest_mod, "read_file", racing_read)
    assert engine.ingest([folder]).added == 2
    for name in ("early.png", "late.png"):  # the stored item is exactly the bytes decoded
        item = engine.item_by_path(folder / name)
        assert item.content_hash == hashlib.sha256(read[name]).hexdigest()
    monkeypatch.setattr(ingest_mod, "read_file", real_read)
    again = engine.ingest([folder])  # the next run sees the change and replaces the old content
    assert again.added == 1 and not again.failed
    assert engine.library.count() == 2
    late = engine.item_by_path(folder / "late.png")
    assert late.content_hash == hashlib.sha256((folder / "late.png").read_bytes()).hexdigest()
    assert engine.search_text("green", k=1).results[0].item.id == late.id
    assert engine.check().ok


def test_thousands_of_files_in_one_drop(engine, tmp_path):
    folder = tmp_path / "thousands"
    folder.mkdir()
    distinct = []
    for k in range(30):
        img = Image.new("RGB", (8, 8), (8 * k, 255 - 8 * k, 100))
        distinct.append(encoded(img, "PNG"))
    for i in range(3000):  # 3000 files, 30 distinct contents: 2970 duplicates to attach
        (folder / f"tiny-{i:04d}.png").write_bytes(distinct[i % 30])
    seen = []
    report = engine.ingest([folder], progress=seen.append)
    assert (report.added, report.duplicates, len(report.failed)) == (30, 2970, 0)
    assert seen[-1].done == seen[-1].total == 3000
    assert len(engine.library.all_paths()) == 3000 and engine.library.count() == 30
    again = engine.ingest([folder])
    assert again.unchanged == 3000 and again.added == 0


def test_a_folder_with_nothing_usable_reports_every_file(engine, tmp_path):
    folder = tmp_path / "junk"
    folder.mkdir()
    for name in ("a.png", "b.jpg", "c.webp"):
        (folder / name).write_bytes(b"junk")
    (folder / "notes.txt").write_text("ignored: not an image extension")
    report = engine.ingest([folder])
    assert report.added == 0 and len(report.failed) == 3


# ----------------------------------------------------------------------------- text input
@pytest.fixture
def searchable(engine, tmp_path) -> Engine:
    for colour in ("red", "green", "blue"):
        chart(colour).save(tmp_path / f"{colour}.png")
    engine.ingest([tmp_path / f"{c}.png" for c in ("red", "green", "blue")])
    return engine


@pytest.mark.parametrize("query", ["", "   ", "\x00\x01\x1b", "\u200b\u200b", "\t\n"])
def test_empty_queries_are_a_clear_error(searchable, query):
    with pytest.raises(VectorStudioError, match="empty"):
        searchable.search_text(query)


@pytest.mark.parametrize("query", [
    "red " + "very " * 5000 + "chart",  # far beyond 77 tokens: truncated, not an error
    "x" * 100_000,                      # one enormous word
    "黄金价格 red", "красный red", "أحمر red", "लाल red", "🔴📈 red",  # other scripts
    "red\x00chart", "\x1b[31mred\x1b[0m", "red\u200bchart\ufeff", "red\r\n\tchart\x7f",
])
def test_long_foreign_and_control_character_queries_work(searchable, query):
    resp = searchable.search_text(query, k=3)
    assert resp.results  # answered
    if "red" in query and "x" * 50 not in query:
        assert Path(resp.results[0].item.path).name == "red.png", query


def test_long_query_by_the_cli(cli_env, tmp_path):
    chart("red").save(tmp_path / "red.png")
    env = dict(cli_env)
    run = [sys.executable, "-m", "vector_studio_gui", "--library", str(tmp_path / "lib")]
    assert subprocess.run([*run, "ingest", str(tmp_path / "red.png")], env=env,
                          capture_output=True).returncode == 0
    proc = subprocess.run([*run, "search", "red " * 20000, "--json"], env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_zero_byte_and_missing_files_given_explicitly(engine, tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    chart("red").save(tmp_path / "ok.png")
    shutil.copy(tmp_path / "ok.png", tmp_path / "ok-copy.png")
    report = engine.ingest([tmp_path / "empty.png", tmp_path / "gone.png", tmp_path / "ok.png",
                            tmp_path / "ok-copy.png"])
    assert (report.added, report.duplicates) == (1, 1)
    assert {Path(f.path).name for f in report.failed} == {"empty.png", "gone.png"}
