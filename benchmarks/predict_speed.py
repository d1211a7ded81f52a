"""Warm prediction speed: the learned predictor over sampled architectures whose layer
signatures are already memoised, per architecture. Writes benchmarks/results/predict_speed.json.
(The full comparison with measuring is in latency_predictor.py.)

    python benchmarks/predict_speed.py --store benchmarks/store/cpu.db
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

from distill import Workload  # noqa: E402
from measurements import Store, detect  # noqa: E402
from perfmodel.hardware import probe_cpu  # noqa: E402
from perfmodel.latency_model import fit_from_store  # noqa: E402
from perfmodel.predict import Predictor  # noqa: E402
from search import DEFAULT_SPACE  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--store", default="benchmarks/store/cpu.db")
    ap.add_argument("--archs", type=int, default=20)
    ap.add_argument("--reps", type=int, default=1000)
    args = ap.parse_args()
    with Store(args.store, readonly=True) as s:
        model = fit_from_store(s, detect("cpu").id, probe_cpu())
    pred, wl = Predictor("cpu", model), Workload(8, 128)
    cfgs = DEFAULT_SPACE.sample(args.archs, 1)
    t0 = time.perf_counter()
    for c in cfgs:
        pred.predict(c, wl)
    cold = (time.perf_counter() - t0) / len(cfgs)
    t0 = time.perf_counter()
    for _ in range(args.reps):
        for c in cfgs:
            pred.predict(c, wl)
    warm = (time.perf_counter() - t0) / (args.reps * len(cfgs))
    res = {"command": "python benchmarks/predict_speed.py " + " ".join(sys.argv[1:]),
           "predict_warm_us_per_arch": warm * 1e6, "predict_cold_s_per_arch": cold,
           "archs": len(cfgs), "reps": args.reps, "workload": str(wl)}
    print(res)
    print(f"wrote {write_result('predict_speed', res)}")


if __name__ == "__main__":
    main()
