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


def ensure_index(n: int, rebuild: bool = False) -> dict:
    """The library of ``n`` items (common.big_library) with its index built by the Engine, the
    way a real library gets it (VectorIndex built from the database, then saved); the build time
    is recorded beside the library the first time."""
    lib = common.big_library(n, spaces=(common.CLIP_NAME, common.CLIP_INT8_NAME) if n <= 100_000
                             else (common.CLIP_NAME,), tiny_thumbs=n > 100_000)
    info_p = lib / "bench-index-build.json"
    from vector_studio_gui.core import index as index_mod

    params = {"M": getattr(index_mod, "M", None),
              "ef_construction": getattr(index_mod, "EF_CONSTRUCTION", None)}
    if info_p.exists() and not rebuild:
        info = json.loads(info_p.read_text())
        if info.get("params") == params:
            info["cached"] = True
            return info
    eng = common.open_engine(lib)
    try:
        for f in (lib / "index").glob("*"):  # build from scratch, to time it
            f.unlink()
        log(f"building the {n:,}-item index from the library (hnswlib, all cores; once)...")
        with common.CpuMeter() as cm, common.ForeignLoad() as fl:
            idx = eng.index()
        assert idx is not None and len(idx) == n, (len(idx) if idx else None)
        info = {"n": n, "params": params, "build_s": r(cm.wall, 1), "build_cpu_s": r(cm.cpu, 1),
                "build_ms_per_1k": r(1e3 * cm.wall / (n / 1000), 1),
                "foreign_cores": r(fl.cores, 2), "built_at": time.strftime("%Y-%m-%d %H:%M"),
                "how": idx.rebuilt_reason or "loaded", "cached": False}
    finally:
        eng.close()
    info_p.write_text(json.dumps(info))
    return info


def load_probe(n: int) -> dict:
    """Run in a fresh process: open the library and its index as the app does; time and RSS."""
    lib = common.big_library(n, spaces=(common.CLIP_NAME, common.CLIP_INT8_NAME) if n <= 100_000
                             else (common.CLIP_NAME,), tiny_thumbs=n > 100_000)
    rss0 = common.rss_mb()
    t0 = time.perf_counter()
    eng = common.open_engine(lib)
    t1 = time.perf_counter()
    idx = eng.index()
    t2 = time.perf_counter()
    eng.search_similar(1, k=10)  # first query: touches the graph
    t3 = time.perf_counter()
    out = {"items": len(idx), "open_library_s": r(t1 - t0, 3), "load_index_s": r(t2 - t1, 2),
           "first_similar_query_ms": r((t3 - t2) * 1e3, 1), "load_s": r(t3 - t0, 2),
           "how": "rebuilt: " + idx.rebuilt_reason if idx.rebuilt_reason else "loaded",
           "rss_before_mb": round(rss0), "rss_after_mb": round(common.rss_mb()),
           "peak_rss_mb": round(common.hwm_mb())}
    eng.close()
    return out


def probe_in_subprocess(n: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--load-probe", str(n)], capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise SystemExit(f"load probe failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(n: int, rebuild: bool) -> dict:
    vecs = common.cached_vectors(n)
    q = common.clustered_vectors(NQ, vecs.shape[1], sample_seed=4242)
    gt = ground_truth(vecs, q)
    build = ensure_index(n, rebuild)
    t = time.perf_counter()  # a library made by an older version gains its indexes once
    common.open_engine(common.BENCH_DIR / f"library-{n}").close()
    if time.perf_counter() - t > 2:
        log(f"  {n:,}: library upgraded on first open ({time.perf_counter() - t:.0f} s, once)")
    probe = probe_in_subprocess(n)
    log(f"  {n:,}: open {probe['load_s']} s, RSS {probe['rss_after_mb']} MB ({probe['how']})")

    eng = common.open_engine(common.BENCH_DIR / f"library-{n}")
    idx = eng.index()  # item ids are 1..n in vector order (the library was filled in order)

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
    # incremental adds, as ingest does them (batches of 8); not saved (the engine is closed
    # without saving: the library's saved index stays as it was)
    extra = common.clustered_vectors(1000, vecs.shape[1], sample_seed=777)
    t = time.perf_counter()
    for s in range(0, 1000, 8):
        idx.add(np.arange(n + 1 + s, n + 1 + min(1000, s + 8)), extra[s : s + 8])
    add_ms_1k = (time.perf_counter() - t) * 1e3
    idx.dirty = False  # keep the saved index of the benchmark library unchanged
    eng._indexes.clear()
    eng.close()
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
