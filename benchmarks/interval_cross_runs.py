"""Held-out-calibrated 90% intervals across validation runs: calibrate on one run, cover another.

Nothing is timed. Each argument is a results file of ``benchmarks/latency_predictor.py`` (its
measurements and the model's predictions, ``learned_op_model``) or of
``benchmarks/latency_rescore.py`` (the same measurements predicted by a later model, ``now_ms``;
the architectures come from the results file it re-scored). Give runs predicted by the same
model: the script prints each run's model so that a mismatch shows.

For every ordered pair of runs it calibrates the intervals (:func:`perfmodel.heldout_intervals
.held_out_table`, as ``latency_predictor.py`` does) on the first run's sampled architectures and
scores their coverage of every program of the second: how well one day's validations stand in
for another day's. Then all runs pooled, split in two halves by architecture, each half
calibrating the other (``--halvings`` random splits).

    python benchmarks/interval_cross_runs.py \\
        benchmarks/results/latency_rescore_4c2259b77454_opweights.json \\
        benchmarks/results/latency_predictor_4c2259b77454.json \\
        benchmarks/results/latency_predictor_4c2259b77454_seed4.json

Writes benchmarks/results/interval_cross_runs.json (``--name``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

from perfmodel.heldout_intervals import held_out_table  # noqa: E402
from perfmodel.intervals import interval_for  # noqa: E402

ROOT = Path(__file__).parents[1]


def load_run(path: str | Path) -> dict:
    """{"name", "date", "model_cv_e2e_mape", "rows": [{workload, measured, predicted, preset,
    arch, log_ratio}]}."""
    path = Path(path)
    try:
        res = json.loads(path.read_text())
        pp = res["per_program"]
    except (OSError, ValueError, KeyError) as e:
        sys.exit(f"{path}: not a latency_predictor or latency_rescore results file ({e!r})")
    if "measurements_of" in res:                    # a re-score: architectures from its source
        src = ROOT / res["measurements_of"]["result"]
        orig = json.loads(src.read_text())["per_program"]
        if len(orig) != len(pp) or any(o["measured_ms"] != p["measured_ms"]
                                       for o, p in zip(orig, pp)):
            sys.exit(f"{path}: its per-program measurements are not those of {src}")
        rows = [dict(workload=p["workload"], measured=p["measured_ms"], predicted=p["now_ms"],
                     preset=p["preset"], arch=o["arch"]) for p, o in zip(pp, orig)]
        date, model = res["measurements_of"]["date"], res["model"].get("cv_e2e_mape")
    else:
        rows = [dict(workload=p["workload"], measured=p["measured_ms"],
                     predicted=p["learned_op_model"], preset=p["preset"], arch=p["arch"])
                for p in pp]
        date = (res.get("when") or {}).get("measured_at") or res["machine"]["date"]
        model = res["train"]["cv"]["cv_e2e_mape"]
    for r in rows:
        r["arch"] = json.dumps(r["arch"], sort_keys=True)
        r["log_ratio"] = float(np.log(r["measured"] / r["predicted"]))
    return {"name": path.stem, "date": date, "model_cv_e2e_mape": model, "rows": rows}


def coverage(cal: list[dict], test: list[dict]) -> dict:
    """Intervals calibrated on ``cal`` rows, scored on ``test`` rows."""
    table = held_out_table(None, [r["log_ratio"] for r in cal], [r["workload"] for r in cal])
    if table is None:
        raise ValueError(f"{len(cal)} calibration programs are too few for a 90% interval")
    inside, width, by = [], [], {}
    for r in test:
        lo, hi = interval_for(table, r["workload"], r["predicted"])
        ok = lo <= r["measured"] <= hi
        inside.append(ok)
        width.append((hi - lo) / r["predicted"])
        by.setdefault(r["workload"], []).append(ok)
    return {"coverage": float(np.mean(inside)), "calibration_programs": len(cal),
            "test_programs": len(test), "median_width_over_prediction": float(np.median(width)),
            "by_workload": {w: float(np.mean(v)) for w, v in by.items()}}


def cross_runs(runs: list[dict], halvings: int = 20, seed: int = 0) -> dict:
    pairs = {f"{a['name']} -> {b['name']}": coverage([r for r in a["rows"] if not r["preset"]],
                                                     b["rows"])
             for a in runs for b in runs if a is not b}
    rows = [r for run in runs for r in run["rows"]]
    archs = sorted({r["arch"] for r in rows if not r["preset"]})
    rng = np.random.default_rng(seed)
    covs = []
    for _ in range(halvings):
        half = set(rng.permutation(archs)[: len(archs) // 2].tolist())
        for side in (half, set(archs) - half):
            cal = [r for r in rows if not r["preset"] and r["arch"] in side]
            covs.append(coverage(cal, [r for r in rows if r["arch"] not in side])["coverage"])
    return {"calibrated_on_one_run": pairs,
            "pooled_two_fold_by_architecture": {
                "halvings": halvings, "mean": float(np.mean(covs)), "min": float(min(covs)),
                "max": float(max(covs))}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", nargs="+", help="two or more results files (see above)")
    ap.add_argument("--halvings", type=int, default=20)
    ap.add_argument("--name", default="interval_cross_runs")
    args = ap.parse_args(argv)
    if len(args.results) < 2:
        ap.error("give at least two runs' results files")
    runs = [load_run(p) for p in args.results]
    for run in runs:
        mape = np.mean([abs(r["predicted"] - r["measured"]) / r["measured"] for r in run["rows"]])
        print(f"{run['name']}: {len(run['rows'])} programs measured {run['date']}, MAPE "
              f"{mape:.4f} (model CV e2e MAPE {run['model_cv_e2e_mape']:.4f})")
    out = cross_runs(runs, args.halvings)
    for k, v in out["calibrated_on_one_run"].items():
        print(f"calibrated {k}: 90% interval covers {v['coverage']:.3f} "
              f"(median width {v['median_width_over_prediction']:.2f}x)")
    p = out["pooled_two_fold_by_architecture"]
    print(f"all runs pooled, two-fold by architecture ({p['halvings']} halvings): covers "
          f"{p['mean']:.3f} on average ({p['min']:.3f}-{p['max']:.3f})")
    path = write_result(args.name, {"command": "python benchmarks/interval_cross_runs.py "
                                    + " ".join(argv if argv is not None else sys.argv[1:]),
                                    "runs": [{k: v for k, v in r.items() if k != "rows"}
                                             for r in runs], **out})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
