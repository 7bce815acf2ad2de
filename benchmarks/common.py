"""Shared helpers for the benchmark scripts: data and model caches, timers, CPU/RSS probes, output.

Everything large (charts, full-size random-weight models, vector sets, libraries) lives under
``.bench/`` in the repository root (gitignored) or ``$VS_BENCH_DIR``; it is built once and reused.

Costs do not depend on weight values, so the models are the real architectures (CLIP ViT-B/32
image tower 224 px, CLIP text tower 12x512, 77 positions) with random weights, built with the
project's own ``vector_studio_gui.modelgen``.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")

BENCH_DIR = Path(os.environ.get("VS_BENCH_DIR", ROOT / ".bench"))
CHARTS_DIR = BENCH_DIR / "charts-v2"
MODELS_SRC = BENCH_DIR / "model-src"
MODELS_DIR = BENCH_DIR / "models"
SCRATCH = BENCH_DIR / "scratch"

CLIP_NAME = "bench-clip-b32"
CLIP_INT8_NAME = "bench-clip-b32-int8"

W, H = 1600, 900

# Words for the CLIP-like tokenizer and for generated queries (2-8 words each).
_WORDS_TEXT = """
a an the of with and in on for to by from over under at chart graph plot diagram figure
line bar bars candle candles candlestick pie scatter area heatmap histogram price
prices sales revenue profit volume trend rising falling flat breakout breakdown support
resistance moving average gold silver oil gas copper bitcoin stocks bonds dollar euro
yen inflation rates yield curve weekly daily monthly yearly forecast red green blue
yellow orange purple black white dark light bright grid axis legend title label labels
quarterly annual growth decline crash rally peak bottom top high low open close spike
dip gap channel wedge triangle flag pattern momentum index market share comparison
budget cost energy temperature population emissions
"""
WORDS = _WORDS_TEXT.split()  # noqa: SIM905


def log(*args: object) -> None:
    print(*args, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ machine
def machine() -> dict:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    import onnxruntime
    import PIL

    return {
        "cpu": cpu or platform.processor(),
        "cores": cores(),
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "pillow": PIL.__version__,
        "numpy": numpy.__version__,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


# ------------------------------------------------------------------------------------ probes
def rss_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark (VmHWM) so peak_rss_mb() measures from now on."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def hwm_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return peak_rss_mb()


class CpuMeter:
    """Process CPU seconds and wall seconds between start() and stop(); util = cpu / (wall*cores)."""

    def __enter__(self) -> CpuMeter:
        self.t0 = time.perf_counter()
        self.c0 = sum(os.times()[:2])
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.t0
        self.cpu = sum(os.times()[:2]) - self.c0
        self.util = self.cpu / max(self.wall * cores(), 1e-9)


class RssSampler:
    """Samples this process's RSS every ``interval`` seconds in a background thread."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._t: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self.t0 = time.perf_counter()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter() - self.t0, rss_mb()))
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._t:
            self._t.join()
        self.samples.append((time.perf_counter() - self.t0, rss_mb()))

    @property
    def peak(self) -> float:
        return max(r for _, r in self.samples)


def pct(values: Iterable[float], q: float) -> float:
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q / 100
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def timeit(fn: Callable[[], object], *, repeat: int = 5, min_time: float = 0.0) -> list[float]:
    out = []
    t_start = time.perf_counter()
    while len(out) < repeat or time.perf_counter() - t_start < min_time:
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


# ------------------------------------------------------------------------------------ output
def emit(result: dict, rows: list[tuple], title: str) -> None:
    """Human table on stderr, one JSON object on stdout (last line)."""
    log(f"\n== {title} ==")
    if rows:
        widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
        for r in rows:
            log("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    print(json.dumps(result, default=_json_default), flush=True)
    out = os.environ.get("VS_BENCH_JSON")
    if out:
        Path(out).write_text(json.dumps(result, default=_json_default, indent=1))


def _json_default(o: object) -> object:
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def r(x: float, n: int = 2) -> float:
    return round(float(x), n)


# ------------------------------------------------------------------------------------ charts
def _chart(i: int):
    """A varied 1600x900 chart: lines, bars, candles, area or scatter, with text and a grid."""
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(5000 + i)
    kind = ("line", "bar", "candle", "area", "scatter", "heatmap")[i % 6]
    dark = i % 4 == 3
    bg = (20, 22, 30) if dark else (255, 255, 255)
    fg = (210, 210, 210) if dark else (30, 30, 30)
    grid = (50, 52, 62) if dark else (228, 228, 228)
    m = 90
    if kind == "heatmap":  # smooth field + pixel noise: poorly compressible, slow to decode
        gy, gx = np.mgrid[0:H, 0:W].astype(np.float32)
        f = np.sin(gx / rng.uniform(40, 200)) * np.cos(gy / rng.uniform(40, 200))
        f += rng.normal(0, 0.3, (H, W)).astype(np.float32)
        f = (f - f.min()) / (np.ptp(f) + 1e-9)
        rgb = np.stack([f, 1 - f, 0.5 + 0.5 * np.sin(6 * f)], -1) * (140 if dark else 255)
        im = Image.fromarray(rgb.clip(0, 255).astype(np.uint8))
    else:
        im = Image.new("RGB", (W, H), bg)
    d = ImageDraw.Draw(im)
    for x in range(m, W - 40, int(rng.integers(60, 140))):
        d.line([(x, 50), (x, H - m)], fill=grid, width=1)
    for y in range(50, H - m, int(rng.integers(50, 120))):
        d.line([(m, y), (W - 40, y)], fill=grid, width=1)
    d.line([(m, H - m), (W - 40, H - m)], fill=fg, width=2)
    d.line([(m, 50), (m, H - m)], fill=fg, width=2)
    for k in range(10):
        y = H - m - k * (H - m - 50) / 10
        d.text((20, y - 6), f"{k * int(rng.integers(5, 500))}", fill=fg)
        d.text((m + k * (W - m - 40) / 10, H - m + 12), f"2024-{k + 1:02d}", fill=fg)
    d.text((W // 2 - 120, 14), f"{rng.choice(WORDS).upper()} {rng.choice(WORDS)} #{i}", fill=fg)
    n = int(rng.integers(30, 300))
    ys = np.cumsum(rng.normal(0, 1, n))
    ys = (ys - ys.min()) / (np.ptp(ys) + 1e-9)
    xs = np.linspace(m + 10, W - 50, n)
    py = H - m - 10 - ys * (H - m - 80)
    col = tuple(int(c) for c in rng.integers(40, 255, 3))
    if kind == "line":
        for _ in range(int(rng.integers(1, 4))):
            d.line(list(zip(xs.tolist(), py.tolist(), strict=True)), fill=col,
                   width=int(rng.integers(1, 5)))
            py = np.clip(py + rng.normal(0, 40, n).cumsum() / 8, 60, H - m - 5)
            col = tuple(int(c) for c in rng.integers(40, 255, 3))
    elif kind == "bar":
        bw = (W - m - 60) / n
        for x, y in zip(xs.tolist(), py.tolist(), strict=True):
            d.rectangle([x, y, x + max(1.0, 0.8 * bw), H - m - 1], fill=col)
    elif kind == "candle":
        bw = max(2.0, (W - m - 60) / n * 0.7)
        prev = py[0]
        for x, y in zip(xs.tolist(), py.tolist(), strict=True):
            up = y < prev
            c = (30, 170, 80) if up else (210, 50, 50)
            hi, lo = min(y, prev) - rng.uniform(2, 30), max(y, prev) + rng.uniform(2, 30)
            d.line([(x + bw / 2, hi), (x + bw / 2, lo)], fill=c, width=1)
            d.rectangle([x, min(y, prev), x + bw, max(y, prev) + 1], fill=c)
            prev = y
    elif kind == "area":
        pts = list(zip(xs.tolist(), py.tolist(), strict=True))
        d.polygon([(xs[0], H - m), *pts, (xs[-1], H - m)], fill=col)
        d.line(pts, fill=fg, width=2)
    elif kind == "scatter":
        for _ in range(int(rng.integers(500, 4000))):
            x, y = rng.uniform(m + 5, W - 45), rng.uniform(55, H - m - 5)
            rr = rng.uniform(1.5, 5)
            d.ellipse([x - rr, y - rr, x + rr, y + rr], fill=col)
    for k in range(int(rng.integers(1, 4))):  # legend
        d.rectangle([W - 260, 60 + 24 * k, W - 244, 76 + 24 * k], fill=col)
        d.text((W - 236, 62 + 24 * k), " ".join(rng.choice(WORDS, 2)), fill=fg)
    return im


def ensure_charts(n: int = 300, jpeg_every: int = 5, folder: Path = CHARTS_DIR) -> list[Path]:
    """``n`` charts (every ``jpeg_every``-th a JPEG, the rest PNG), generated once and cached."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    made = 0
    for i in range(n):
        ext = ".jpg" if jpeg_every and i % jpeg_every == jpeg_every - 1 else ".png"
        p = folder / f"chart_{i:04d}{ext}"
        if not p.exists():
            im = _chart(i)
            tmp = p.with_suffix(".tmp" + ext)
            if ext == ".jpg":
                im.save(tmp, format="JPEG", quality=90)
            else:
                im.save(tmp, format="PNG")
            os.replace(tmp, p)
            made += 1
        out.append(p)
    if made:
        log(f"generated {made} charts in {folder}")
    return out


# ------------------------------------------------------------------------------------ models
def _build_sources() -> Path:
    """Full-size random-weight CLIP ViT-B/32 (vision + text) + tokenizer, and the int8 variant."""
    src = MODELS_SRC / "fp32"
    q = MODELS_SRC / "int8"
    if (src / "vision_model.onnx").exists() and (q / "text_model.onnx").exists():
        return MODELS_SRC
    from vector_studio_gui.modelgen import (
        ClipTextConfig,
        ClipVisionConfig,
        build_clip_text_onnx,
        build_clip_vision_onnx,
        quantize_dynamic_model,
        random_clip_text_weights,
        random_clip_vision_weights,
        write_clip_tokenizer,
    )

    t0 = time.perf_counter()
    src.mkdir(parents=True, exist_ok=True)
    q.mkdir(parents=True, exist_ok=True)
    vcfg, tcfg = ClipVisionConfig(), ClipTextConfig()
    log("building full-size random-weight CLIP ViT-B/32 (vision 88M, text 63M params)...")
    vocab = write_clip_tokenizer(src / "tokenizer.json", list(WORDS))
    tcfg.eos_token_id = max(vocab.values())
    build_clip_vision_onnx(random_clip_vision_weights(vcfg, seed=1), vcfg,
                           src / "vision_model.onnx")
    build_clip_text_onnx(random_clip_text_weights(tcfg, seed=2), tcfg, src / "text_model.onnx")
    log("quantizing to int8 (dynamic, per-channel)...")
    quantize_dynamic_model(src / "vision_model.onnx", q / "vision_model.onnx")
    quantize_dynamic_model(src / "text_model.onnx", q / "text_model.onnx")
    (q / "tokenizer.json").write_bytes((src / "tokenizer.json").read_bytes())
    log(f"models built in {time.perf_counter() - t0:.0f} s")
    return MODELS_SRC


def ensure_models() -> Path:
    """A models dir with the fp32 and int8 models imported (ModelStore.import_folder)."""
    from vector_studio_gui.core.models import ModelStore

    srcs = _build_sources()
    store = ModelStore(MODELS_DIR)
    for name, sub in ((CLIP_NAME, "fp32"), (CLIP_INT8_NAME, "int8")):
        if store.manifest(name) is None:
            log(f"importing {name} into {MODELS_DIR}")
            store.import_folder(srcs / sub, name, "clip")
    return MODELS_DIR


def settings(library: Path, *, quantized: bool = False, batch_size: int = 8, threads: int = 0):
    from vector_studio_gui.core.settings import Settings

    s = Settings()
    s.embedding.clip_model = CLIP_INT8_NAME if quantized else CLIP_NAME
    s.embedding.batch_size = batch_size
    s.embedding.threads = threads
    s.models_dir = str(ensure_models())
    s.library.path = str(library)
    return s


def fresh_dir(name: str) -> Path:
    import shutil

    p = SCRATCH / name
    shutil.rmtree(p, ignore_errors=True)
    p.mkdir(parents=True)
    return p


# ------------------------------------------------------------------------------------ vectors
def clustered_vectors(n: int, dim: int = 512, clusters: int = 1000, seed: int = 0,
                      spread: float = 0.35, chunk: int = 100_000, sample_seed: int | None = None):
    """Unit vectors drawn around ``clusters`` random centres (like real embeddings: clumped).

    The centres depend on ``seed`` only; ``sample_seed`` draws other points around the same
    centres (held-out queries)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    if sample_seed is not None:
        rng = np.random.default_rng(sample_seed)
    out = np.empty((n, dim), np.float32)
    for s in range(0, n, chunk):
        e = min(n, s + chunk)
        lab = rng.integers(0, clusters, e - s)
        x = rng.standard_normal((e - s, dim), dtype=np.float32)
        x *= np.float32(spread / np.sqrt(dim))
        x += centres[lab]
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        out[s:e] = x
    return out


def cached_vectors(n: int, dim: int = 512, seed: int = 0):
    import numpy as np

    BENCH_DIR.mkdir(parents=True, exist_ok=True)
    p = BENCH_DIR / f"vectors_{n}_{dim}_{seed}.npy"
    if p.exists():
        return np.load(p, mmap_mode="r")
    v = clustered_vectors(n, dim, seed=seed)
    np.save(p, v)
    return np.load(p, mmap_mode="r")


def queries_text(n: int, seed: int = 7) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, int(rng.integers(2, 9)))) for _ in range(n)]


# ------------------------------------------------------------------------------------ libraries
def _thumbs(tiny: bool) -> list[bytes]:
    from vector_studio_gui.core import imaging

    out = []
    for p in ensure_charts(60):
        img = imaging.open_image(p.read_bytes())
        out.append(imaging.make_thumbnail(img, 32 if tiny else 256))
    return out


def big_library(n: int, *, spaces: tuple[str, ...] = (CLIP_NAME,), tiny_thumbs: bool = False,
                batch: int = 5000) -> Path:
    """A library of ``n`` items with clustered random vectors (the same vectors in each space),
    built once through Library.add_items/add_vectors and cached; its index files are built by
    the Engine on first open (and saved). Returns the library folder."""
    import numpy as np

    from vector_studio_gui.core.engine import ACTIVE_SPACE
    from vector_studio_gui.core.library import Library, NewItem

    folder = BENCH_DIR / f"library-{n}"
    done = folder / "bench-complete.json"
    if done.exists() and json.loads(done.read_text()).get("spaces") == list(spaces):
        return folder
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
    vecs = cached_vectors(n)
    thumbs = _thumbs(tiny_thumbs)
    t0 = time.perf_counter()
    log(f"building a {n:,}-item library in {folder} (once)...")
    lib = Library(folder)
    try:
        for sp in spaces:
            lib.ensure_space(sp, sp, "clip", vecs.shape[1], {"quantized": "int8" in sp})
        lib.set_meta(ACTIVE_SPACE, spaces[0])
        for s in range(0, n, batch):
            e = min(n, s + batch)
            items = [NewItem(f"/bench/charts/{i // 1000:04d}/chart_{i:07d}.png", f"{i:064x}",
                             100_000 + i % 997, 1.7e9 + i, 1600, 900, "PNG",
                             thumbs[i % len(thumbs)]) for i in range(s, e)]
            ids, _ = lib.add_items(items, spaces[0], np.asarray(vecs[s:e]))
            for sp in spaces[1:]:
                lib.add_vectors(sp, ids, np.asarray(vecs[s:e]))
            if (s // batch) % 20 == 0:
                log(f"  {e:,} items ({time.perf_counter() - t0:.0f} s)")
    finally:
        lib.close()
    done.write_text(json.dumps({"n": n, "spaces": list(spaces),
                                "build_s": round(time.perf_counter() - t0, 1)}))
    return folder


def open_engine(library: Path, *, quantized: bool = False, read_only: bool = False):
    """An Engine on ``library`` with the bench CLIP model (fp32 or int8) as the active model."""
    from vector_studio_gui.core.engine import ACTIVE_SPACE, Engine
    from vector_studio_gui.core.library import Library

    want = CLIP_INT8_NAME if quantized else CLIP_NAME
    if not read_only:
        lib = Library(library)
        try:
            if lib.meta(ACTIVE_SPACE) != want:
                lib.set_meta(ACTIVE_SPACE, want)
        finally:
            lib.close()
    s = settings(library, quantized=quantized)
    return Engine(s, library_dir=library, read_only=read_only)


class DemandSampler:
    """Samples how many of this process's threads are runnable (state R: running or waiting for
    a core), every ``interval`` seconds, from /proc/self/task.

    On a shared machine our wall time depends on everybody else's load, but our demand does not:
    the fraction of samples with fewer runnable threads than cores estimates the idle share a
    quiet machine would see (pipeline bubbles). quiet_util = mean(min(runnable, cores)) / cores.
    """

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.counts: list[int] = []
        self._stop = threading.Event()

    def __enter__(self) -> DemandSampler:
        self._t = threading.Thread(target=self._run, daemon=True, name="demand-sampler")
        self._t.start()
        return self

    def _run(self) -> None:
        me = str(threading.get_native_id())
        task = Path("/proc/self/task")
        while not self._stop.is_set():
            n = 0
            try:
                for t in os.listdir(task):
                    if t == me:
                        continue
                    try:
                        stat = (task / t / "stat").read_bytes()
                    except OSError:
                        continue
                    if stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] == b"R":
                        n += 1
            except OSError:
                return
            self.counts.append(n)
            self._stop.wait(self.interval)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()

    def quiet_util(self, ncores: int | None = None) -> float:
        c = ncores or cores()
        if not self.counts:
            return float("nan")
        return sum(min(n, c) for n in self.counts) / (len(self.counts) * c)


def _busy_jiffies() -> int:
    f = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    v = [int(x) for x in f]
    # user nice system idle iowait irq softirq steal ...: busy = all but idle and iowait
    return sum(v) - v[3] - v[4]


def _own_jiffies() -> int:
    s = Path("/proc/self/stat").read_text()
    f = s[s.rindex(")") + 2 :].split()
    return int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])  # utime stime cutime cstime


class ForeignLoad:
    """CPU used by OTHER processes while the block runs, in cores (0 = we had the machine).

    The machine is shared: a round disturbed by someone else's test run is repeated (see
    quiet_rounds), and every figure carries the foreign load it was measured under."""

    def __enter__(self) -> ForeignLoad:
        self.t0 = time.perf_counter()
        self.b0, self.o0 = _busy_jiffies(), _own_jiffies()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self.t0
        hz = os.sysconf("SC_CLK_TCK")
        busy = (_busy_jiffies() - self.b0) / hz
        own = (_own_jiffies() - self.o0) / hz
        self.cores = max(0.0, busy - own) / max(wall, 1e-9)


def quiet_rounds(fn: Callable[[], dict], rounds: int, *, max_foreign: float = 0.15,
                 max_tries: int | None = None, label: str = "round") -> list[dict]:
    """Run ``fn`` until ``rounds`` results were measured with less than ``max_foreign`` cores of
    other processes' load (or ``max_tries`` attempts; then the quietest ones are kept)."""
    tries = max_tries or rounds * 3
    got: list[dict] = []
    for i in range(tries):
        with ForeignLoad() as fl:
            res = fn()
        res["foreign_cores"] = round(fl.cores, 3)
        got.append(res)
        log(f"  {label} {i + 1}: foreign load {fl.cores:.2f} cores"
            + ("" if fl.cores <= max_foreign else " (disturbed: repeated)"))
        if sum(r["foreign_cores"] <= max_foreign for r in got) >= rounds:
            break
    quiet = [r for r in got if r["foreign_cores"] <= max_foreign]
    if len(quiet) < rounds:
        quiet = sorted(got, key=lambda r: r["foreign_cores"])[:rounds]
    return quiet


def distinct_charts(n: int) -> Path:
    """``n`` distinct chart files (the cached charts, each copy made unique by a few trailing
    bytes after the image data, which decoders ignore): a big folder without n renders."""
    base = ensure_charts(300)
    folder = BENCH_DIR / f"distinct-{n}"
    done = BENCH_DIR / f"distinct-{n}.complete"
    if done.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    blobs = [(p.suffix, p.read_bytes()) for p in base]
    for i in range(n):
        ext, data = blobs[i % len(blobs)]
        (folder / f"c{i:06d}{ext}").write_bytes(data + f"VSBENCH{i:08d}".encode())
    done.write_text(str(n))
    return folder
