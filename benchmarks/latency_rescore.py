"""Re-score a committed held-out run with the latency model as it is now, on the same
measurements: nothing is timed, so a modelling change can be judged on the programs and the
day of an earlier `benchmarks/latency_predictor.py` run before the machine is spent on a new
one. The scores say which run's measurements they use; a new goal run still needs the machine.

    python benchmarks/latency_rescore.py benchmarks/results/latency_predictor.json \
        [--op-scale log1p] [--cache build/oplists_rescore]

Writes benchmarks/results/latency_rescore.json: overall and per workload (MAPE, within +-10%,
Spearman) for the run's own predictions and for the current model, against the drift-corrected
measurements, and the 90% interval coverage: the model's own (out of fold) and, estimated by
two-fold cross-fitting over the run's architectures, that of intervals calibrated on held-out
validations (:mod:`perfmodel.heldout_intervals`: each half's intervals calibrated on the other
half's programs). CPU-bound (compiles the programs' op lists), not timed: it may run beside
other work, on any machine (the model is the run's machine's, fitted from its store).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import held_out_run, op_list_cache, write_result  # noqa: E402

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from measurements import Store  # noqa: E402
from perfmodel.heldout_intervals import held_out_table  # noqa: E402
from perfmodel.intervals import interval_for  # noqa: E402
from perfmodel.latency_model import fit_from_store  # noqa: E402
from perfmodel.op_scale import OP_SCALES  # noqa: E402
from perfmodel.predict import Predictor  # noqa: E402
from perfmodel.validate import score  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("result", help="a latency_predictor.json with per_program measurements")
    ap.add_argument("--store", help="profile store to fit from (default: this machine's)")
    ap.add_argument("--op-scale", default="roofline", choices=OP_SCALES)
    ap.add_argument("--cache", default="build/oplists_rescore",
                    help="op-list disk cache for the compiles ('none': no cache)")
    ap.add_argument("--name", default="latency_rescore",
                    help="results file name (keep an earlier re-score beside a new one)")
    args = ap.parse_args(argv)
    h = held_out_run(args.result)
    run, rows, fp_id, pairs, y, wl = (h[k] for k in (
        "run", "rows", "fingerprint", "pairs", "measured", "workloads"))
    store = args.store or str(h["store"])
    with Store(store, readonly=True) as st:
        model = fit_from_store(st, fp_id, op_scale=args.op_scale)
    print(f"model: {model.summary['programs']} programs, op scale {model.op_scale}, spec "
          f"{model.summary['spec_source']}; CV e2e MAPE {model.summary['cv_e2e_mape']:.3f}")
    pred = Predictor("cpu", model, cache=op_list_cache(args.cache))
    preds = [pred.predict(c, w) for c, w in tqdm(pairs, desc="predict")]
    now = np.array([p.latency_ms for p in preds])
    lo = np.array([p.interval_ms[0] for p in preds])
    hi = np.array([p.interval_ms[1] for p in preds])
    then = np.array([r["learned_op_model"] for r in rows])
    preset = np.array([r["preset"] is not None for r in rows])
    out = {"overall": {"then": score(then, y), "now": score(now, y)}, "by_workload": {},
           "presets": {"then": score(then[preset], y[preset]),
                       "now": score(now[preset], y[preset])},
           "sampled": {"then": score(then[~preset], y[~preset]),
                       "now": score(now[~preset], y[~preset])}}
    for w in dict.fromkeys(wl):
        m = wl == w
        out["by_workload"][w] = {"then": score(then[m], y[m]), "now": score(now[m], y[m])}
    inside = (y >= lo) & (y <= hi)
    out["interval_90_coverage_now"] = float(inside.mean()) if np.isfinite(lo).all() else None
    out["interval_90_coverage_by_workload"] = (
        {str(w): float(inside[wl == w].mean()) for w in dict.fromkeys(wl)}
        if np.isfinite(lo).all() else None)
    out["interval_90_median_width"] = float(np.median((hi - lo) / now))
    out["interval_90_held_out_2fold"] = held_out_two_fold(model, rows, now, y, wl)
    result = {"command": "python benchmarks/latency_rescore.py " + " ".join(sys.argv[1:]),
              "measurements_of": {"result": args.result, "command": run.get("command"),
                                  "date": run.get("machine", {}).get("date")},
              "programs": len(rows), "model": {**{k: model.summary[k] for k in (
                  "programs", "op_scale", "spec_source", "cv_e2e_mape", "cv_e2e_within_10pct",
                  "interval")}, "trained_workloads": sorted(model.summary["interval"][
                      "programs"])},
              "scores": out,
              "per_program": [{"workload": r["workload"], "preset": r["preset"],
                               "measured_ms": r["measured_ms"], "then_ms": r["learned_op_model"],
                               "now_ms": float(n)} for r, n in zip(rows, now)]}
    path = write_result(args.name, result)
    for k in ("overall", "presets", "sampled"):
        t, n = out[k]["then"], out[k]["now"]
        print(f"{k:10s} then MAPE {t['mape']:.3f} ±10% {t['within_10pct']:.2f} | now MAPE "
              f"{n['mape']:.3f} ±10% {n['within_10pct']:.2f} Spearman {n['spearman']:.4f}")
    for w, v in out["by_workload"].items():
        print(f"  {w:16s} then MAPE {v['then']['mape']:.3f} | now {v['now']['mape']:.3f}  ±10% "
              f"{v['then']['within_10pct']:.2f} -> {v['now']['within_10pct']:.2f}")
    print(f"90% interval coverage now: {out['interval_90_coverage_now']} (by workload "
          f"{out['interval_90_coverage_by_workload']}), median width "
          f"{out['interval_90_median_width']:.2f}x the prediction")
    h = out["interval_90_held_out_2fold"]
    print(f"calibrated on held-out validations (two-fold over architectures, {h['splits']} "
          f"random halvings): coverage {h['coverage']:.3f} ({h['coverage_min']:.3f} to "
          f"{h['coverage_max']:.3f}; by workload {h['coverage_by_workload']}), median width "
          f"{h['median_width']:.2f}x; wrote {path}")


def held_out_two_fold(model, rows, now, y, wl, splits: int = 20) -> dict:
    """Coverage of intervals calibrated on held-out programs, estimated without testing on a
    program they were calibrated on: the run's architectures in two random halves (every
    workload of an architecture in the same half), each half's intervals from the other's
    ratios; ``splits`` random halvings, their mean, min and max."""
    key = [json.dumps(r["arch"], sort_keys=True) for r in rows]
    archs = sorted(set(key))
    ratios = np.log(y / now)
    cov, width, by_wl = [], [], []
    for seed in range(splits):
        half = {a: i % 2 for i, a in enumerate(
            np.random.default_rng(seed).permutation(archs).tolist())}
        fold = np.array([half[k] for k in key])
        lo, hi = np.full(len(rows), np.nan), np.full(len(rows), np.nan)
        for k in (0, 1):
            cal = fold != k
            table = held_out_table(model.summary["interval"], ratios[cal], wl[cal].tolist())
            for i in np.flatnonzero(fold == k):
                lo[i], hi[i] = interval_for(table, str(wl[i]), now[i])
        inside = (y >= lo) & (y <= hi)
        cov.append(float(inside.mean()))
        width.append(float(np.median((hi - lo) / now)))
        by_wl.append({str(w): float(inside[wl == w].mean()) for w in dict.fromkeys(wl)})
    return {"splits": splits, "coverage": float(np.mean(cov)), "coverage_min": min(cov),
            "coverage_max": max(cov),
            "coverage_by_workload": {w: round(float(np.mean([b[w] for b in by_wl])), 3)
                                     for w in by_wl[0]},
            "median_width": float(np.mean(width)), "archs": len(archs)}

if __name__ == "__main__":
    main()
