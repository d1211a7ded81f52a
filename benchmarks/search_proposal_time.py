"""Seconds per proposal: ours vs BoTorch qLogNEHVI, on the same data, interleaved, same run.

For each problem and each data size n, the same n points (a seeded Sobol design, evaluated) are
given to both; one proposal (fit the GPs + maximise the acquisition, q=1) is timed for ours
(``search.Search.ask`` on a store holding the n finished trials) and for BoTorch
(``search_peers.qlognehvi_propose``, the tutorial's step), alternating ours/BoTorch for
``--rounds`` rounds so the machine's drift hits both alike. Both run with one BLAS/torch thread.
Reports the medians, the per-round ratio BoTorch/ours and its spread (the repeatability).

    python benchmarks/search_proposal_time.py --rounds 5
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402

from common import write_result  # noqa: E402
from search_peers import make_problem, qlognehvi_propose, ref_point  # noqa: E402


def ours_propose(problem, Z: np.ndarray, F: np.ndarray, ref) -> float:
    """Time one proposal of ours on the given finished evaluations."""
    from measurements import Store, Trial
    from search import Search, SearchConfig

    n = len(Z)
    cfg = SearchConfig(budget=n + 1, n_initial=n, seed=0, ref_point=tuple(ref), noise_var=0.0)
    with Store(":memory:") as store:
        s = Search(problem, cfg, store=store, run_id="timing")
        X = s.domain.decode(Z)
        store.put_trials([Trial(run_id="timing", index=i, x=s.domain.to_json(X[i]),
                                source="initial", round=0) for i in range(n)])
        for i in range(n):
            store.update_trial("timing", i, status="done",
                               values={f"f{j}": float(v) for j, v in enumerate(F[i])})
        t = time.perf_counter()
        batch = s.ask()
        dt = time.perf_counter() - t
        assert len(batch) == 1 and batch[0].index == n
    return dt


def botorch_propose(Z: np.ndarray, F: np.ndarray, ref) -> float:
    import torch

    torch.set_num_threads(1)
    x = torch.tensor(Z, dtype=torch.double)
    y = -torch.tensor(F, dtype=torch.double)
    t = time.perf_counter()
    qlognehvi_propose(x, y, (-np.asarray(ref)).tolist())
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--problems", default="zdt1,zdt2,dtlz2")
    ap.add_argument("--sizes", default="20,50,90", help="numbers of finished evaluations")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    import warnings

    from scipy.stats import qmc

    warnings.filterwarnings("ignore")
    rows = []
    for name in args.problems.split(","):
        p = make_problem(name)
        ref = ref_point(name)
        for n in map(int, args.sizes.split(",")):
            Z = qmc.Sobol(p.n_var, scramble=True, seed=n).random(n)
            F = p.evaluate(p.xl + Z * (p.xu - p.xl))
            ours, bo = [], []
            for r in range(args.rounds):
                ours.append(ours_propose(p, Z, F, ref))
                bo.append(botorch_propose(Z, F, ref))
            ratio = np.array(bo) / np.array(ours)
            row = {"problem": name, "n": n, "ours_s": ours, "qlognehvi_s": bo,
                   "ours_median_s": float(np.median(ours)),
                   "qlognehvi_median_s": float(np.median(bo)),
                   "ratio_median": float(np.median(ratio)),
                   "ratio_min": float(ratio.min()), "ratio_max": float(ratio.max())}
            rows.append(row)
            print(f"{name:6s} n={n:3d}  ours {row['ours_median_s']:6.2f} s  qLogNEHVI "
                  f"{row['qlognehvi_median_s']:6.2f} s  qLogNEHVI/ours {row['ratio_median']:.2f} "
                  f"(rounds {row['ratio_min']:.2f}-{row['ratio_max']:.2f})", flush=True)
    write_result("search_proposal_time", {
        "command": "python benchmarks/search_proposal_time.py " + " ".join(sys.argv[1:]),
        "rows": rows, "rounds": args.rounds, "threads": 1})


if __name__ == "__main__":
    main()
