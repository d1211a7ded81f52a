"""For each TPU generation: compile sampled students ahead-of-time through libtpu on this
CPU-only host and compare our analytic (roofline) latency prediction with the TPU compiler's
own estimate (sum of per-op estimated_cycles): Spearman over the same architectures.
Writes benchmarks/results/tpu_agreement.json.

    python benchmarks/tpu_agreement.py --archs 10
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

from scipy import stats  # noqa: E402

from distill import Workload  # noqa: E402
from perfmodel.hardware import TPU_SPECS  # noqa: E402
from perfmodel.predict import Predictor  # noqa: E402
from search.space_v1 import SPACE_V1  # noqa: E402  (the space its committed results came from)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--archs", type=int, default=10)
    ap.add_argument("--workload", default="8,128,bfloat16")
    ap.add_argument("--seed", type=int, default=2)
    args = ap.parse_args()
    wl = Workload.parse(args.workload)
    cfgs = SPACE_V1.sample(args.archs, args.seed)
    out = {}
    for target in TPU_SPECS:
        t0 = time.time()
        try:
            pred = Predictor(target)
            ps = [pred.predict(c, wl) for c in cfgs]
        except Exception as e:  # report a generation libtpu cannot compile for, keep going
            out[target] = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
            print(target, out[target])
            continue
        ours = [p.latency_ms for p in ps]
        xla = [p.xla_estimated_cycles for p in ps]
        out[target] = {"spearman_ours_vs_xla": float(stats.spearmanr(ours, xla).statistic),
                       "kendall_tau": float(stats.kendalltau(ours, xla).statistic),
                       "predicted_ms": ours, "xla_estimated_cycles": xla,
                       "compile_s": time.time() - t0}
        print(f"{target}: Spearman {out[target]['spearman_ours_vs_xla']:.3f} "
              f"({time.time() - t0:.0f}s)")
    res = {"command": "python benchmarks/tpu_agreement.py " + " ".join(sys.argv[1:]),
           "workload": str(wl), "archs": [c.to_dict() for c in cfgs], "targets": out}
    print(f"wrote {write_result('tpu_agreement', res)}")


if __name__ == "__main__":
    main()
