"""RapidOCR settings on the labelled charts: seconds per chart vs words of the chart found.

    .venv/bin/python benchmarks/ocr_eval/ocr_settings.py [--n 36] [--threads 2]

"words found" = share of the distinct words of each chart's labelled texts (title, subtitle,
axis labels, legend, annotation, panel, categories) that OCR read, over the first N charts of
the evaluation set (run_eval.py renders it).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent.parent), str(HERE)]

import run_eval  # noqa: E402

from vector_studio_gui.core.ocr import _lines, _to_bgr, words  # noqa: E402

CONFIGS = {
    "default (det side >= 736, cls on)": {},
    "cls off": {"Global.use_cls": False},
    "det side <= 960, cls off": {"Global.use_cls": False, "Det.limit_type": "max",
                                 "Det.limit_side_len": 960},
    "det side <= 1280, cls off": {"Global.use_cls": False, "Det.limit_type": "max",
                                  "Det.limit_side_len": 1280},
}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=36)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    folder, specs, _ = run_eval.ensure_set(240, 1)
    specs = specs[: args.n]
    from rapidocr import RapidOCR

    rows = []
    for name, extra in CONFIGS.items():
        params = {"Global.log_level": "error",
                  "EngineConfig.onnxruntime.intra_op_num_threads": args.threads,
                  "EngineConfig.onnxruntime.inter_op_num_threads": 1, **extra}
        eng = RapidOCR(params=params)
        eng(_to_bgr(folder / specs[0].file))  # load
        times, found = [], []
        for s in specs:
            img = _to_bgr(folder / s.file)
            t0 = time.perf_counter()
            got = _lines(eng(img), 0.5)
            times.append(time.perf_counter() - t0)
            want = set(words(" ".join(s.texts())))
            have = set(words(" ".join(ln.text for ln in got)))
            found.append(len(want & have) / max(len(want), 1))
        rows.append({"config": name, "s_per_chart": statistics.fmean(times),
                     "words_found": statistics.fmean(found)})
        print(f"{name:<34} {statistics.fmean(times):.3f} s/chart  "
              f"words found {statistics.fmean(found):.3f}", flush=True)
    Path(run_eval.BENCH / "ocr_settings.json").write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
