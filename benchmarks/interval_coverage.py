"""Coverage of the 90% prediction intervals on held-out programs measured on another day.

The intervals (:mod:`perfmodel.intervals`) are split-conformal bounds from the profiled programs
predicted out of fold. This checks them against held-out programs that a committed
``latency_predictor`` run measured (its ``per_program`` records: real timings, drift-corrected
and uncorrected) on the machine whose profile the store holds: the model is fitted again on that
store (same seed), the run's own predictions are checked to be the ones the refitted model gives
(where the shipped op-list table makes that instant: 8x128), and each program's interval is its
prediction times the bounds of its workload. No timing runs here.

    python benchmarks/interval_coverage.py [--result benchmarks/results/latency_predictor.json]

Writes benchmarks/results/interval_coverage.json. Goal (issue 15): 88-92% coverage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import profile_store, write_result  # noqa: E402

import numpy as np  # noqa: E402

from distill import StudentConfig, Workload  # noqa: E402
from measurements import Store  # noqa: E402
from perfmodel.hardware import HardwareSpec  # noqa: E402
from perfmodel.intervals import interval_for  # noqa: E402
from perfmodel.latency_model import fit_from_store  # noqa: E402
from perfmodel.predict import Predictor  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--result", default=str(Path(__file__).parent / "results" /
                                             "latency_predictor.json"))
    ap.add_argument("--store", help="profile store of the machine the result was measured on "
                                    "(default: its store in benchmarks/store/)")
    args = ap.parse_args(argv)
    res = json.loads(Path(args.result).read_text())
    fp_id = res["machine"]["fingerprint"]
    with Store(args.store or profile_store(fp_id), readonly=True) as st:
        # the op target and scale the run's model was fitted with (results before they were
        # recorded: traced op times, log1p)
        model = fit_from_store(st, fp_id, HardwareSpec(**res["cpu_spec"]),
                               op_target=res["train"].get("op_target", "traced"),
                               op_scale=res["train"].get("op_scale", "log1p"))
    table = model.summary["interval"]
    progs = res["per_program"]
    pred = np.array([p["learned_op_model"] for p in progs])
    wl = [p["workload"] for p in progs]
    # the run's predictions are the refitted model's (checked where it is instant: 8x128)
    check = Predictor("cpu", model)
    same = [(check.predict(StudentConfig.from_dict(p["arch"]), Workload.parse("8,128"))
             .latency_ms, p["learned_op_model"]) for p in progs if p["workload"].startswith("8x128")]
    rel = max(abs(a / b - 1) for a, b in same)
    lo = np.array([interval_for(table, w, p)[0] for w, p in zip(wl, pred)])
    hi = np.array([interval_for(table, w, p)[1] for w, p in zip(wl, pred)])
    out = {"command": "python benchmarks/interval_coverage.py " + " ".join(sys.argv[1:]),
           "held_out_from": {"result": Path(args.result).name, "measured": res["machine"]["date"],
                             "fingerprint": fp_id, "programs": len(progs),
                             "measurement": res["measurement"]},
           "interval_table": table,
           "refit_vs_run_predictions_max_rel_diff_8x128": rel, "coverage": {}}
    for name in ("measured_ms", "uncorrected_ms"):
        y = np.array([p[name] for p in progs])
        inside = (y >= lo) & (y <= hi)
        by = {w: float(inside[np.array(wl) == w].mean()) for w in sorted(set(wl))}
        below = float(np.mean(y < lo))
        out["coverage"][name] = {"all": float(inside.mean()), "by_workload": by,
                                 "below_interval": below, "above_interval": float(np.mean(y > hi))}
    out["median_width_over_prediction"] = float(np.median((hi - lo) / pred))
    c = out["coverage"]["measured_ms"]["all"]
    out["goal_0.88_to_0.92"] = bool(0.88 <= c <= 0.92)
    path = write_result("interval_coverage", out)
    for name, v in out["coverage"].items():
        print(f"{name:15s} coverage {v['all']:.2f} (" + ", ".join(
            f"{w} {x:.2f}" for w, x in v["by_workload"].items()) +
            f"); below {v['below_interval']:.2f}, above {v['above_interval']:.2f}")
    print(f"bounds: {table['by_workload']}; median width "
          f"{out['median_width_over_prediction']:.2f} x prediction; refit vs run predictions "
          f"max rel diff {rel:.1e}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
