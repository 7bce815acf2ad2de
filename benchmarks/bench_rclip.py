"""Target 2: side by side with rclip on the same 240 charts, same machine, back to back.

    .venv/bin/python benchmarks/bench_rclip.py [--runs 3] [--with-ocr] [--rclip-json FILE]

1. ``../shared/peers/rclip-bench/rclip_bench.sh`` (rclip 3.3.0, offline, random-weight
   ViT-B-32-256): its own JSON (images/s, efficiency, prep/infer costs, peak RSS), with our CLI
   timed before and after it on the same folder (the "harness" figure);
2. the headline: interleaved pairs - ours on 1 image, ours on the 240 charts, rclip on 1 image,
   rclip on the 240 charts - each side timed like rclip's harness does it, images/s =
   (N - 1) / (t_N - t_1) (start-up and model load cancel out); a pair during which other
   processes used more than 0.2 cores is repeated; ratio = median of the pairs' ratios.
Ours is ``python -m vector_studio_gui ingest --no-ocr`` (the image index, which is what rclip
builds); ``--with-ocr`` also times the default CLI, whose second pass reads every chart's text.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import log, median, r  # noqa: E402

PEER = Path(os.environ.get("VS_RCLIP_BENCH", common.ROOT.parent / "shared" / "peers" /
                           "rclip-bench"))
RCLIP_WORK = Path(os.environ.get("WORK", Path(os.environ.get("XDG_CACHE_HOME",
                                                              Path.home() / ".cache")) / "rclip"))


def run_ours(folder: Path, lib: Path, cfg: Path, ocr: bool = False) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one ``vector-studio ingest`` on a fresh library.

    ``--no-ocr``: the image index only, which is what rclip builds (the default CLI then reads
    every chart's text in a second pass; ``ocr=True`` times that too)."""
    shutil.rmtree(lib, ignore_errors=True)
    env = dict(os.environ, VECTOR_STUDIO_CONFIG=str(cfg), HF_HUB_OFFLINE="1")
    cmd = [sys.executable, "-m", "vector_studio_gui", "ingest", "--library", str(lib),
           "--models-dir", str(common.MODELS_DIR), "--clip-model", common.CLIP_NAME,
           "--json", *([] if ocr else ["--no-ocr"]), str(folder)]
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=common.ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    out, err = p.communicate()
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"ingest failed ({p.returncode}): {err.decode()[-2000:]}")
    # communicate() reaped the child: use RUSAGE_CHILDREN's max as an upper bound
    import resource

    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, rss


def ours(charts: Path, runs: int) -> dict:
    common.ensure_models()
    one = common.fresh_dir("rclip-one")
    first = sorted(charts.glob("*.png"))[0]
    shutil.copy2(first, one / first.name)
    cfg = common.SCRATCH / "bench-settings.json"
    n = len(list(charts.glob("*.png")))
    run_ours(one, common.SCRATCH / "lib-warm", cfg)  # warm page cache for models and modules
    for p in charts.iterdir():
        p.read_bytes()
    t1s, tns = [], []
    rss = 0.0
    for i in range(runs):
        t1, _ = run_ours(one, common.SCRATCH / "lib-one", cfg)
        tn, rss = run_ours(charts, common.SCRATCH / "lib-all", cfg)
        t1s.append(t1)
        tns.append(tn)
        log(f"  ours run {i + 1}: 1 image {t1:.2f}s, {n} images {tn:.2f}s")
    return {"n": n, "t1": t1s, "tn": tns, "peak_rss_mb_max_child": round(rss)}


def rclip(runs: int) -> dict:
    env = dict(os.environ, RUNS=str(runs), WORK=str(RCLIP_WORK))
    log(f"running rclip: bash {PEER / 'rclip_bench.sh'} (WORK={RCLIP_WORK})")
    p = subprocess.run(["bash", str(PEER / "rclip_bench.sh")], env=env, capture_output=True,
                       text=True)
    if p.returncode != 0:
        raise SystemExit(f"rclip_bench.sh failed:\n{p.stderr[-3000:]}")
    for line in p.stderr.splitlines():
        if line.startswith("run "):
            log("  rclip " + line)
    return json.loads(p.stdout.strip().splitlines()[-1])


def run_rclip_cli(folder: Path) -> float:
    """Wall seconds of one ``rclip`` indexing run of ``folder`` into a fresh data dir, the way
    rclip_bench.py runs it (its model files symlinked, offline, no progress bars)."""
    import tempfile

    models = RCLIP_WORK / "models"
    d = Path(tempfile.mkdtemp(prefix="datadir.", dir=RCLIP_WORK))
    try:
        for sub in models.iterdir():
            (d / sub.name).symlink_to(sub)
        env = dict(os.environ, RCLIP_DATADIR=str(d), HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
        t0 = time.perf_counter()
        subprocess.run([str(RCLIP_WORK / "venv" / "bin" / "rclip"), "a line chart"], cwd=folder,
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(d, ignore_errors=True)


def paired_rounds(charts: Path, rounds: int) -> list[dict]:
    """Rounds of [ours 1 image, ours N, rclip 1 image, rclip N], back to back; a round during
    which other processes used more than 0.2 cores is repeated (common.quiet_rounds)."""
    one = common.fresh_dir("rclip-one")
    first = sorted(charts.glob("*.png"))[0]
    shutil.copy2(first, one / first.name)
    n = len(list(charts.glob("*.png")))
    cfg = common.SCRATCH / "bench-settings.json"

    def one_round() -> dict:
        o1, _ = run_ours(one, common.SCRATCH / "lib-one", cfg)
        on, _ = run_ours(charts, common.SCRATCH / "lib-all", cfg)
        r1 = run_rclip_cli(one)
        rn = run_rclip_cli(charts)
        ours_ips, rclip_ips = (n - 1) / (on - o1), (n - 1) / (rn - r1)
        log(f"  ours {ours_ips:.2f} img/s ({on:.2f} s), rclip {rclip_ips:.2f} img/s ({rn:.2f} s)"
            f" -> {ours_ips / rclip_ips:.2f}x")
        return {"ours_images_per_s": r(ours_ips), "rclip_images_per_s": r(rclip_ips),
                "ratio": r(ours_ips / rclip_ips, 3), "ours_wall": [r(o1, 2), r(on, 2)],
                "rclip_wall": [r(r1, 2), r(rn, 2)]}

    run_ours(one, common.SCRATCH / "lib-warm", cfg)  # page cache: models, modules, charts
    run_rclip_cli(one)
    return common.quiet_rounds(one_round, rounds, max_foreign=0.2, max_tries=rounds * 2,
                               label="pair")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rclip-json", help="reuse an rclip result instead of running it")
    ap.add_argument("--with-ocr", action="store_true",
                    help="also time one default ingest with the chart-text (OCR) pass")
    a = ap.parse_args()
    charts = RCLIP_WORK / "charts"
    if not charts.is_dir() and not a.rclip_json:
        log("rclip charts missing: running rclip first to create them")
    if a.rclip_json:
        rc = json.loads(Path(a.rclip_json).read_text())
        before = ours(charts, a.runs)
        after = {"t1": [], "tn": []}
    else:
        if charts.is_dir():
            before = ours(charts, a.runs)
            rc = rclip(a.runs)
        else:
            rc = rclip(a.runs)
            before = ours(charts, a.runs)
        after = ours(charts, a.runs)
    n = before["n"]
    log("interleaved pairs (ours, rclip) ...")
    pairs = paired_rounds(charts, a.runs)
    ratio = median(p["ratio"] for p in pairs)
    ips = median(p["ours_images_per_s"] for p in pairs)
    rclip_ips = median(p["rclip_images_per_s"] for p in pairs)
    # the harness-style figure: our runs before and after rclip_bench.sh's own runs
    t1 = median(before["t1"] + after["t1"])
    tn = median(before["tn"] + after["tn"])
    ips_around = (n - 1) / (tn - t1)
    ocr = None
    if a.with_ocr:
        cfg = common.SCRATCH / "bench-settings.json"
        o1, _ = run_ours(common.SCRATCH / "rclip-one", common.SCRATCH / "lib-one", cfg, ocr=True)
        on, _ = run_ours(charts, common.SCRATCH / "lib-all", cfg, ocr=True)
        ocr = {"wall_all_s": r(on, 1), "images_per_s_incl_text_pass": r((n - 1) / (on - o1), 2)}
        log(f"  ours with the chart-text pass: {on:.1f} s for {n} images")
    res = {
        "bench": "rclip",
        "machine": common.machine(),
        "images": n,
        "ours_images_per_s": r(ips),
        "rclip_images_per_s": r(rclip_ips),
        "ratio": r(ratio, 3),
        "target_ratio": 1.5,
        "pass": ratio >= 1.5,
        "pairs": pairs,
        "rclip_efficiency": rc.get("efficiency"),
        "rclip_peak_rss_mb": rc.get("peak_rss_mb_all_images"),
        "rclip_prep_ms": rc.get("prep_ms"),
        "rclip_infer_ms": rc.get("infer_ms"),
        "harness": {"ours_images_per_s_around_rclip_bench": r(ips_around),
                    "rclip_bench_images_per_s": rc.get("images_per_s"),
                    "ratio": r(ips_around / rc["images_per_s"], 3),
                    "ours_wall_1_image_s": [r(x, 3) for x in before["t1"] + after["t1"]],
                    "ours_wall_all_s": [r(x, 3) for x in before["tn"] + after["tn"]]},
        "with_text_pass": ocr,
        "rclip": rc,
    }
    (common.BENCH_DIR / "last-rclip.json").write_text(json.dumps(res))
    rows = [("figure", "ours", "rclip"),
            (f"images/s, median of {len(pairs)} interleaved pairs", f"{ips:.2f}", f"{rclip_ips:.2f}"),
            ("ratio (target >= 1.5)", f"{ratio:.2f} {'PASS' if res['pass'] else 'FAIL'}",
             " ".join(str(p["ratio"]) for p in pairs)),
            ("foreign load per pair (cores)", " ".join(str(p["foreign_cores"]) for p in pairs), ""),
            ("rclip_bench.sh: images/s (ours around it)", f"{ips_around:.2f}",
             f"{rc['images_per_s']:.2f}"),
            ("rclip efficiency / prep ms / infer ms", "",
             f"{rc.get('efficiency')} / {rc.get('prep_ms')} / {rc.get('infer_ms')}")]
    if ocr:
        rows.append(("with the chart-text (OCR) pass, images/s", ocr["images_per_s_incl_text_pass"],
                     "(no text)"))
    common.emit(res, rows, "side by side with rclip (target 2)")


if __name__ == "__main__":
    main()
