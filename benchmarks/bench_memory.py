"""Target 6: memory. Peak RSS while ingesting many images (and whether it grows with their
number), and the RSS of opening a 1M-item library.

    .venv/bin/python benchmarks/bench_memory.py [--images 2000] [--skip-1m]

1. ``python -m vector_studio_gui ingest`` (the CLI, a fresh process: what a user runs) on a folder
   of distinct charts; its RSS is sampled from /proc every 0.2 s together with the number of
   items committed so far (read from the library database). Reported: peak RSS (the kernel's
   high-water mark from wait4), RSS after the first batches, and the growth per 1,000 images
   over the rest of the run (least-squares slope). --images 10000 runs the issue's full size.
2. The 1M-item library (built by bench_index.py, which this reuses) opened in a fresh process:
   library + index loaded, one query; RSS.
rclip's peak RSS on 240 charts comes from the last bench_rclip.py run, if any.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import log, r  # noqa: E402


def _rss_of(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _count(db: Path) -> int | None:
    if not db.exists():
        return None
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
        try:
            return con.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return None


def ingest_memory(n: int) -> dict:
    folder = common.distinct_charts(n)
    lib = common.fresh_dir(f"mem-lib-{n}")
    cfg = common.SCRATCH / "mem-settings.json"
    s = common.settings(lib)
    s.ocr.enabled = False
    s.save(cfg)
    env = dict(os.environ, VECTOR_STUDIO_CONFIG=str(cfg), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "vector_studio_gui", "ingest", "--library", str(lib),
           "--models-dir", str(common.MODELS_DIR), "--clip-model", common.CLIP_NAME, "--json",
           str(folder)]
    samples: list[tuple[float, float, int]] = []
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=common.ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    db = lib / "library.sqlite3"
    last_count = 0
    k = 0
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            p.returncode = os.waitstatus_to_exitcode(status)
            break
        rss = _rss_of(p.pid)
        if k % 5 == 0:
            last_count = _count(db) or last_count
        if rss is not None:
            samples.append((time.perf_counter() - t0, rss, last_count))
        k += 1
        time.sleep(0.2)
    out, err = p.stdout.read(), p.stderr.read()
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"ingest failed ({p.returncode}): {err.decode()[-2000:]}")
    peak = max(ru.ru_maxrss / 1024, max(x[1] for x in samples))
    report = json.loads(out.decode().strip().splitlines()[-1]) if out.strip() else {}
    # growth: RSS against committed items, after the first 10% of the images
    pts = [(c, m) for _, m, c in samples if c >= max(50, n // 10)]
    slope = None
    if len(pts) >= 5:
        xs = [c for c, _ in pts]
        ys = [m for _, m in pts]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        den = sum((x - mx) ** 2 for x in xs)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den * 1000 if den else 0
    first = next((m for _, m, c in samples if c >= 50), None)
    return {"images": n, "added": report.get("added"), "wall_s": r(wall, 1),
            "peak_rss_mb": round(peak), "rss_after_first_batches_mb": round(first) if first else None,
            "rss_at_end_mb": round(samples[-1][1]) if samples else None,
            "growth_mb_per_1k_images": r(slope, 2) if slope is not None else None,
            "samples": len(samples),
            "curve": [(r(t, 1), round(m), c) for t, m, c in samples[:: max(1, len(samples) // 40)]]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--skip-1m", action="store_true")
    a = ap.parse_args()
    common.ensure_models()
    log(f"ingesting {a.images} distinct charts with the CLI, sampling its RSS...")
    ing = ingest_memory(a.images)
    log(f"  peak {ing['peak_rss_mb']} MB, growth {ing['growth_mb_per_1k_images']} MB per 1k")
    lib1m = None
    if not a.skip_1m:
        import bench_index

        if (common.BENCH_DIR / "library-1000000" / "bench-index-build.json").exists():
            log("opening the 1M-item library in a fresh process...")
            lib1m = bench_index.probe_in_subprocess(1_000_000)
        else:
            log("the 1M library is not built yet: run benchmarks/bench_index.py first")
    rclip_rss = None
    last = common.BENCH_DIR / "last-rclip.json"
    if last.exists():
        rclip_rss = json.loads(last.read_text()).get("rclip_peak_rss_mb")
    ok_peak = ing["peak_rss_mb"] < (rclip_rss or 900)
    ok_growth = ing["growth_mb_per_1k_images"] is not None and ing["growth_mb_per_1k_images"] < 5
    ok_1m = lib1m is not None and lib1m["peak_rss_mb"] < 3072
    res = {"bench": "memory", "machine": common.machine(), "ingest": ing, "library_1m": lib1m,
           "rclip_peak_rss_mb": rclip_rss,
           "targets": {"peak_below_rclip": ok_peak, "no_growth": ok_growth, "open_1m_below_3gb": ok_1m},
           "pass": ok_peak and ok_growth and ok_1m}
    rows = [("figure", "measured", "target"),
            (f"peak RSS ingesting {a.images} images MB", ing["peak_rss_mb"],
             f"< rclip {rclip_rss or '~900'}"),
            ("RSS after first batches / at end MB", f"{ing['rss_after_first_batches_mb']} / "
             f"{ing['rss_at_end_mb']}", ""),
            ("growth MB per 1k images (after 10%)", ing["growth_mb_per_1k_images"], "~0 (< 5)")]
    if lib1m:
        rows.append(("1M library open: peak RSS MB", lib1m["peak_rss_mb"], "< 3072"))
        rows.append(("1M library open: library + index s", lib1m["load_s"], ""))
    common.emit(res, rows, "memory (target 6)")


if __name__ == "__main__":
    main()
