"""How reproducible is an end-to-end latency on this machine, by statistic and protocol?

Samples architectures, measures each program in several interleaved rounds, and reports how
often two rounds of the same program agree within +-10% (and +-5%) for: the median of a round,
its p10, its minimum, and the drift-corrected ratio to a reference program timed run by run
beside it (`measurements.time_paired`). This is the noise floor any latency predictor is
judged against. Writes benchmarks/results/timing_noise.json.

    python benchmarks/timing_noise.py --archs 12 --rounds 4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from distill import Workload  # noqa: E402
from measurements import time_callable, time_paired  # noqa: E402
from perfmodel.program import compile_local, concrete_args  # noqa: E402
from perfmodel.validate import parse_program  # noqa: E402
from search.space_v1 import SPACE_V1  # noqa: E402  (the space its committed results came from)


def agreement(v: np.ndarray, tol: float) -> float:
    P, R = v.shape
    return float(np.mean([abs(v[p, i] - v[p, j]) / min(v[p, i], v[p, j]) <= tol
                          for p in range(P) for i in range(R) for j in range(i + 1, R)]))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--archs", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--budget-s", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--reference", default="bert-mini@8,128")
    args = ap.parse_args()
    pairs = [(c, Workload.parse(w)) for c in SPACE_V1.sample(args.archs, args.seed)
             for w in ("1,128", "8,128")]
    progs = [(compile_local(c, w).executable, concrete_args(c, w)) for c, w in pairs]
    ref_cfg, ref_wl = parse_program(args.reference)
    ref = (compile_local(ref_cfg, ref_wl).executable, concrete_args(ref_cfg, ref_wl))
    stats = {k: np.zeros((len(pairs), args.rounds))
             for k in ("median", "p10", "min", "reference_ratio")}
    rng = np.random.default_rng(0)
    with tqdm(total=len(pairs) * args.rounds, desc="measuring") as bar:
        for r in range(args.rounds):
            for i in rng.permutation(len(pairs)):
                exe, a = progs[i]
                t = time_callable(exe, *a, budget_s=args.budget_s, min_runs=5)
                stats["median"][i, r] = t.median_s
                stats["p10"][i, r] = t.p10_s
                stats["min"][i, r] = min(t.samples_s)
                tp, tr = time_paired(exe, a, ref[0], ref[1], budget_s=args.budget_s, min_runs=5)
                stats["reference_ratio"][i, r] = np.median(tp) / np.median(tr)
                bar.update(1)
    table = {k: {"rounds_within_10pct": agreement(v, 0.10),
                 "rounds_within_5pct": agreement(v, 0.05)} for k, v in stats.items()}
    res = {"command": "python benchmarks/timing_noise.py " + " ".join(sys.argv[1:]),
           "programs": len(pairs), "rounds": args.rounds, "budget_s": args.budget_s,
           "reference": args.reference, "agreement": table}
    for k, v in table.items():
        print(f"{k:16s} rounds agree within ±10%: {v['rounds_within_10pct']:.2f}   "
              f"±5%: {v['rounds_within_5pct']:.2f}")
    print(f"wrote {write_result('timing_noise', res)}")


if __name__ == "__main__":
    main()
