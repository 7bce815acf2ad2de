"""Target 4: index quality and speed with the project's VectorIndex at 100k and 1M vectors.

    .venv/bin/python benchmarks/bench_index.py [--sizes 100000,1000000] [--rebuild]

For each size: clustered random 512-d unit vectors (cached .npy), 500 held-out queries drawn
around the same centres, exact top-10 ground truth (numpy, chunked). The index is built once
through VectorIndex.rebuild (the path a library rebuild takes; hnswlib on all cores) and saved;
later runs load it and report the cached build time. Reported: recall@10 of
VectorIndex.search(k=10) and of the top 10 of search(k=50) (what the text search asks for),
query p50/p95, exact numpy search p50, an ef sweep, build time per 1k items (bulk) and the cost
of adding 1k items in ingest-sized batches of 8, index load time and RSS (in a fresh process).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
import numpy as np  # noqa: E402
from common import log, median, pct, r  # noqa: E402

NQ = 500
SPACE = "bench-index"


def ground_truth(vecs: np.ndarray, q: np.ndarray, k: int = 10) -> np.ndarray:
    n = len(vecs)
    p = common.BENCH_DIR / f"gt_{n}_{len(q)}.npy"
    if p.exists():
        return np.load(p)
    best_s = np.full((len(q), k), -np.inf, np.float32)
    best_i = np.zeros((len(q), k), np.int64)
    for s in range(0, n, 100_000):
        block = np.asarray(vecs[s : s + 100_000])
        sc = q @ block.T
        top = np.argpartition(-sc, k - 1, axis=1)[:, :k]
        cand_s = np.concatenate([best_s, np.take_along_axis(sc, top, 1)], 1)
        cand_i = np.concatenate([best_i, top + s + 1], 1)  # ids are 1-based
        o = np.argsort(-cand_s, axis=1)[:, :k]
        best_s = np.take_along_axis(cand_s, o, 1)
        best_i = np.take_along_axis(cand_i, o, 1)
    np.save(p, best_i)
    return best_i


def fetcher(vecs: np.ndarray):
    def fetch(ids):
        if ids is None:
            for s in range(0, len(vecs), 20_000):
                e = min(len(vecs), s + 20_000)
                yield np.arange(s + 1, e + 1, dtype=np.int64), np.asarray(vecs[s:e])
        else:
            ids = np.asarray(ids, np.int64)
            yield ids, np.asarray(vecs[ids - 1])
    return fetch


def index_dir(n: int) -> Path:
    d = common.BENCH_DIR / f"index-{n}"
    d.mkdir(parents=True, exist_ok=True)
    return d


def ensure_index(n: int, vecs: np.ndarray, rebuild: bool) -> dict:
    from vector_studio_gui.core import index as index_mod
    from vector_studio_gui.core.index import VectorIndex

    d = index_dir(n)
    info_p = d / "bench-build.json"
    params = {"M": getattr(index_mod, "M", None),
              "ef_construction": getattr(index_mod, "EF_CONSTRUCTION", None)}
    if info_p.exists() and not rebuild:
        info = json.loads(info_p.read_text())
        if info.get("params") == params and (d / f"{SPACE}.hnsw").exists():
            info["cached"] = True
            return info
    log(f"building the {n:,}-vector index (hnswlib, all cores; once)...")
    idx = VectorIndex(d, SPACE, vecs.shape[1], "bench")
    ids = np.arange(1, n + 1, dtype=np.int64)
    with common.CpuMeter() as cm:
        idx.rebuild(ids, fetcher(vecs))
    t0 = time.perf_counter()
    idx.save()
    info = {"n": n, "params": params, "build_s": r(cm.wall, 1), "build_cpu_s": r(cm.cpu, 1),
            "build_ms_per_1k": r(1e3 * cm.wall / (n / 1000), 1), "save_s": r(time.perf_counter() - t0, 2),
            "load_avg": common.machine()["load_avg_1m"], "built_at": time.strftime("%Y-%m-%d %H:%M"),
            "cached": False}
    info_p.write_text(json.dumps(info))
    del idx
    return info


def load_probe(n: int) -> dict:
    """Run in a fresh process: open (load + verify + reconcile) the saved index, RSS."""
    from vector_studio_gui.core.index import VectorIndex

    vecs = common.cached_vectors(n)
    rss0 = common.rss_mb()
    ids = np.arange(1, n + 1, dtype=np.int64)
    idx = VectorIndex(index_dir(n), SPACE, vecs.shape[1], "bench")
    t0 = time.perf_counter()
    what = idx.open(ids, fetcher(vecs))
    load_s = time.perf_counter() - t0
    return {"what": what, "load_s": r(load_s, 2), "rss_before_mb": round(rss0),
            "rss_after_mb": round(common.rss_mb()), "peak_rss_mb": round(common.hwm_mb())}


def measure(n: int, rebuild: bool) -> dict:
    from vector_studio_gui.core.index import VectorIndex

    vecs = common.cached_vectors(n)
    q = common.clustered_vectors(NQ, vecs.shape[1], sample_seed=4242)
    gt = ground_truth(vecs, q)
    build = ensure_index(n, vecs, rebuild)
    probe = json.loads(subprocess.run(
        [sys.executable, __file__, "--load-probe", str(n)], capture_output=True, text=True,
        check=True).stdout.strip().splitlines()[-1])
    log(f"  {n:,}: load {probe['load_s']} s, RSS {probe['rss_after_mb']} MB ({probe['what']})")

    idx = VectorIndex(index_dir(n), SPACE, vecs.shape[1], "bench")
    idx.open(np.arange(1, n + 1, dtype=np.int64), fetcher(vecs))

    def run(k: int) -> tuple[float, list[float]]:
        hits, lat = 0, []
        for i in range(NQ):
            t = time.perf_counter()
            ids, _ = idx.search(q[i], k)[0]
            lat.append((time.perf_counter() - t) * 1e3)
            hits += len(set(ids[:10].tolist()) & set(gt[i].tolist()))
        return hits / (NQ * 10), lat

    rec10, lat10 = run(10)
    rec50, lat50 = run(50)
    # exact numpy search, for reference (what small libraries use)
    ex = []
    mat = np.asarray(vecs) if n <= 200_000 else None
    for i in range(20 if mat is None else 100):
        t = time.perf_counter()
        if mat is None:
            best = []
            for s in range(0, n, 200_000):
                sc = np.asarray(vecs[s : s + 200_000]) @ q[i]
                best.append(sc[np.argpartition(-sc, 9)[:10]])
        else:
            sc = mat @ q[i]
            np.argpartition(-sc, 9)[:10]
        ex.append((time.perf_counter() - t) * 1e3)
    # raw ef sweep on the same graph (hnswlib directly)
    sweep = {}
    raw = idx._index
    for ef in (32, 64, 96, 128, 200, 300):
        raw.set_ef(ef)
        t = time.perf_counter()
        labels, _ = raw.knn_query(q, k=10, num_threads=1)
        per_q = (time.perf_counter() - t) * 1e3 / NQ
        hits = sum(len(set(labels[i].tolist()) & set(gt[i].tolist())) for i in range(NQ))
        sweep[ef] = {"recall10": r(hits / (NQ * 10), 4), "ms": r(per_q, 3)}
    # incremental adds, as ingest does them (batches of 8)
    extra = common.clustered_vectors(1000, vecs.shape[1], sample_seed=777)
    t = time.perf_counter()
    for s in range(0, 1000, 8):
        idx.add(np.arange(n + 1 + s, n + 1 + min(1000, s + 8)), extra[s : s + 8])
    add_ms_1k = (time.perf_counter() - t) * 1e3
    return {
        "n": n,
        "recall10_k10": r(rec10, 4), "recall10_k50": r(rec50, 4),
        "query_p50_ms": r(median(lat10), 3), "query_p95_ms": r(pct(lat10, 95), 3),
        "query_k50_p50_ms": r(median(lat50), 3),
        "exact_numpy_p50_ms": r(median(ex), 2),
        "ef_sweep": sweep,
        "build": build,
        "add_1k_in_batches_of_8_ms": r(add_ms_1k, 1),
        "load": probe,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--rebuild", action="store_true")
    ap.add_argument("--load-probe", type=int)
    a = ap.parse_args()
    if a.load_probe:
        print(json.dumps(load_probe(a.load_probe)))
        return
    from vector_studio_gui.core import index as index_mod

    out = {}
    for n in (int(x) for x in a.sizes.split(",")):
        log(f"index at {n:,} vectors...")
        out[str(n)] = measure(n, a.rebuild)
    ok = all(v["recall10_k10"] >= 0.99 for v in out.values())
    res = {"bench": "index", "machine": common.machine(),
           "params": {k: getattr(index_mod, k, None) for k in
                      ("M", "EF_CONSTRUCTION", "EF_SEARCH", "EXACT_LIMIT")},
           "sizes": out, "target_recall10": 0.99, "pass": ok}
    rows = [("figure", *[f"{int(n):,}" for n in out])]
    for label, key in (("recall@10 (k=10)", "recall10_k10"), ("recall@10 (top 10 of k=50)",
                                                                "recall10_k50"),
                       ("query p50 ms", "query_p50_ms"), ("query p95 ms", "query_p95_ms"),
                       ("exact numpy p50 ms", "exact_numpy_p50_ms"),
                       ("add 1k items in batches of 8 ms", "add_1k_in_batches_of_8_ms")):
        rows.append((label, *[v[key] for v in out.values()]))
    rows.append(("bulk build ms per 1k items", *[v["build"]["build_ms_per_1k"] for v in out.values()]))
    rows.append(("load s (fresh process)", *[v["load"]["load_s"] for v in out.values()]))
    rows.append(("RSS after load MB", *[v["load"]["rss_after_mb"] for v in out.values()]))
    common.emit(res, rows, "index (target 4)")


if __name__ == "__main__":
    main()
