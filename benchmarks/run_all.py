"""The whole benchmark suite, one command:

    .venv/bin/python benchmarks/run_all.py [--quick] [--only ingest,query] [--update-readme]

(full: ~1 h, of which ~12 min ingest 10,000 images for the memory target; first run of all: add
~1 h to build the 1M-item library and its graph)

Runs every bench_*.py in its own process (clean memory figures, no shared state), collects the
JSON object each prints, writes .bench/results-<time>.json and .bench/results-latest.json, and
prints one table: target, measured, ratio to the target, pass/fail, with rclip's figures from the
same run. The machine is shared: before each timing-sensitive benchmark it waits (up to
--wait-quiet seconds) for other processes to use less than --quiet-cores cores, and records the
foreign load that each benchmark ran under.

--quick: fewer images/runs (a smoke run, ~10 min); --update-readme: write the table into
benchmarks/README.md between the RESULTS markers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import log  # noqa: E402

HERE = Path(__file__).resolve().parent

BENCHES = {
    "rclip": ["bench_rclip.py", "--with-ocr"],
    "ingest": ["bench_ingest.py"],
    "query": ["bench_query.py"],
    "index": ["bench_index.py"],
    "memory": ["bench_memory.py", "--images", "10000"],
    "gui": ["bench_gui.py"],
}
QUICK_ARGS = {
    "rclip": ["--runs", "1"],
    "ingest": ["--runs", "2", "--images", "150"],
    "query": ["--queries", "100"],
    "index": ["--sizes", "100000"],
    "memory": ["--images", "600", "--skip-1m"],
    "gui": ["--images", "400"],
}


def wait_quiet(max_wait: float, cores: float) -> float:
    """Wait until other processes use < ``cores`` cores over 5 s; returns the last reading."""
    t_end = time.time() + max_wait
    while True:
        with common.ForeignLoad() as fl:
            time.sleep(5)
        if fl.cores < cores or time.time() >= t_end:
            return fl.cores
        log(f"  waiting for a quieter machine (others use {fl.cores:.2f} cores)...")


def run_bench(name: str, extra: list[str], timeout: int) -> dict:
    cmd = [sys.executable, str(HERE / BENCHES[name][0]), *(extra or BENCHES[name][1:])]
    log(f"== {name}: {' '.join(cmd[1:])}")
    t0 = time.time()
    with common.ForeignLoad() as fl:
        p = subprocess.run(cmd, cwd=common.ROOT, capture_output=True, text=True, timeout=timeout)
    sys.stderr.write(p.stderr[-6000:])
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        return {"bench": name, "error": f"exit {p.returncode}", "stderr": p.stderr[-2000:],
                "took_s": round(time.time() - t0)}
    res = json.loads(lines[-1])
    res["took_s"] = round(time.time() - t0)
    res["foreign_cores_during"] = round(fl.cores, 2)
    return res


def _f(x, n=2):
    return "-" if x is None else (f"{x:.{n}f}" if isinstance(x, float) else str(x))


def summary(results: dict) -> list[tuple]:
    """(target, measured, goal, ratio, pass, rclip) rows."""
    rows = []
    g = results.get
    if (i := g("ingest")) and "error" not in i:
        rows.append((f"1 ingest efficiency (vs ideal, median of {len(i['rounds'])})",
                     f"{i['efficiency']:.3f} ({i['images_per_s']} img/s of ideal "
                     f"{i['ideal_images_per_s']}; CPU {i['cpu_util']:.2f})",
                     ">= 0.93", i["efficiency"] / 0.93, i["pass"], ""))
        if i.get("int8"):
            q = i["int8"]
            rows.append(("  int8 model (reference)", f"{q['images_per_s']} img/s, eff "
                         f"{q['efficiency']}", "", None, None, ""))
        rows.append(("  naive serial loop (reference)", f"{i['naive_serial_images_per_s']} img/s, "
                     f"eff {i['naive_serial_efficiency']}", "", None, None, ""))
    if (c := g("rclip")) and "error" not in c:
        rows.append(("2 images/s vs rclip, same 240 charts",
                     f"{c['ours_images_per_s']} img/s = {c['ratio']:.2f}x rclip",
                     ">= 1.5x rclip", c["ratio"] / 1.5, c["pass"],
                     f"{c['rclip_images_per_s']} img/s (eff {c['rclip_efficiency']})"))
        if c.get("with_text_pass"):
            rows.append(("  ours with the default chart-text (OCR) pass",
                         f"{c['with_text_pass']['images_per_s_incl_text_pass']} img/s", "",
                         None, None, "(rclip reads no text)"))
    if (q := g("query")) and "error" not in q:
        rows.append(("3 query p50 at 100k, fp32 (p95)", f"{q['fp32']['p50_ms']} ms "
                     f"({q['fp32']['p95_ms']})", "<= 10 ms", 10 / q["fp32"]["p50_ms"],
                     q["pass_fp32"], ""))
        rows.append(("3 query p50 at 100k, int8 (p95)", f"{q['int8']['p50_ms']} ms "
                     f"({q['int8']['p95_ms']})", "<= 5 ms", 5 / q["int8"]["p50_ms"],
                     q["pass_int8"], ""))
    if (x := g("index")) and "error" not in x:
        for n, v in x["sizes"].items():
            rows.append((f"4 recall@10 at {int(n):,} (query p50)",
                         f"{v['recall10_k10']:.4f} ({v['query_p50_ms']} ms)", ">= 0.99",
                         v["recall10_k10"] / 0.99, v["recall10_k10"] >= 0.99, ""))
            rows.append((f"  build per 1k / add 1k in batches / open at {int(n):,}",
                         f"{v['build']['build_ms_per_1k']} ms / {v['add_1k_in_batches_of_8_ms']} "
                         f"ms / {v['load']['load_s']} s", "", None, None, ""))
    if (u := g("gui")) and "error" not in u:
        s, qq, st = u["window_shown"], u["queries"], u.get("stall")
        rows.append(("5 window shown after launch", f"{s['first_paint_s']} s", "<= 1.5 s",
                     1.5 / s["first_paint_s"], u["targets"]["window_shown_1.5s"], ""))
        rows.append(("5 Enter -> results painted, 100k (p95)",
                     f"{qq['enter_to_paint_p50_ms']} ms ({qq['enter_to_paint_p95_ms']})",
                     "<= 100 ms", 100 / qq["enter_to_paint_p50_ms"],
                     u["targets"]["enter_to_paint_100ms"], ""))
        worst = max(qq["scroll_frame_max_ms"], qq["jump_frame_max_ms"])
        rows.append(("5 scroll frame max (p99), 100k", f"{worst} ms "
                     f"({max(qq['scroll_frame_p99_ms'], qq['jump_frame_p99_ms'])})", "<= 33 ms",
                     33 / worst, u["targets"]["scroll_33ms"], ""))
        if st:
            rows.append((f"5 event-loop stall max during ingest of {st['images']}",
                         f"{st['max_stall_ms']} ms (p99 {st['p99_stall_ms']})", "<= 50 ms",
                         50 / max(st["max_stall_ms"], 1e-9), u["targets"]["stall_50ms"], ""))
    if (m := g("memory")) and "error" not in m:
        ing = m["ingest"]
        rr = m.get("rclip_peak_rss_mb") or (g("rclip") or {}).get("rclip_peak_rss_mb")
        rows.append((f"6 peak RSS ingesting {ing['images']} images", f"{ing['peak_rss_mb']} MB",
                     "< rclip", (rr or 900) / ing["peak_rss_mb"], m["targets"]["peak_below_rclip"],
                     f"{rr} MB" if rr else ""))
        rows.append(("6 RSS growth per 1k images", f"{ing['growth_mb_per_1k_images']} MB",
                     "~0", None, m["targets"]["no_growth"], ""))
        if m.get("library_1m"):
            lm = m["library_1m"]
            rows.append(("6 1M-item library open, peak RSS", f"{lm['peak_rss_mb']} MB "
                         f"({lm['load_s']} s)", "< 3072 MB", 3072 / lm["peak_rss_mb"],
                         m["targets"]["open_1m_below_3gb"], ""))
    for name, v in results.items():
        if "error" in v:
            rows.append((f"{name}", f"ERROR {v['error']}", "", None, False, ""))
    return rows


def table_md(rows: list[tuple]) -> str:
    out = ["| target | measured | goal | ratio to goal | pass | rclip (same run) |",
           "|---|---|---|---|---|---|"]
    for t, m, goal, ratio, ok, rc in rows:
        okc = "" if ok is None else ("PASS" if ok else "**FAIL**")
        out.append(f"| {t} | {m} | {goal} | {_f(ratio)} | {okc} | {rc} |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only", help="comma-separated: " + ",".join(BENCHES))
    ap.add_argument("--update-readme", action="store_true")
    ap.add_argument("--wait-quiet", type=float, default=300)
    ap.add_argument("--quiet-cores", type=float, default=0.3)
    a = ap.parse_args()
    names = a.only.split(",") if a.only else list(BENCHES)
    results: dict[str, dict] = {}
    t0 = time.time()
    for name in names:
        if name in ("rclip", "ingest", "query", "gui"):
            f = wait_quiet(a.wait_quiet, a.quiet_cores)
            log(f"  other processes use {f:.2f} cores")
        results[name] = run_bench(name, QUICK_ARGS[name] if a.quick else [], timeout=3600)
        if name == "rclip" and "error" not in results[name]:
            (common.BENCH_DIR / "last-rclip.json").write_text(json.dumps(results[name]))
    doc = {"when": time.strftime("%Y-%m-%d %H:%M"), "machine": common.machine(),
           "quick": a.quick, "took_s": round(time.time() - t0), "results": results}
    common.BENCH_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M")
    for p in (common.BENCH_DIR / f"results-{stamp}.json", common.BENCH_DIR / "results-latest.json"):
        p.write_text(json.dumps(doc, indent=1))
    rows = summary(results)
    md = table_md(rows)
    log("\n" + md)
    if a.update_readme:
        readme = HERE / "README.md"
        text = readme.read_text()
        head, _, rest = text.partition("<!-- RESULTS -->")
        _, _, tail = rest.partition("<!-- /RESULTS -->")
        mach = doc["machine"]
        block = (f"<!-- RESULTS -->\nLatest run: {doc['when']}, {mach['cpu']}, {mach['cores']} cores, "
                 f"Python {mach['python']}, ONNX Runtime {mach['onnxruntime']}, Pillow "
                 f"{mach['pillow']}; suite took {doc['took_s'] // 60} min"
                 f"{' (quick mode)' if a.quick else ''}.\n\n{md}\n<!-- /RESULTS -->")
        readme.write_text(head + block + tail)
    print(json.dumps({"suite": True, "rows": [list(x) for x in rows]}, default=str))
    os._exit(0)


if __name__ == "__main__":
    main()
