"""How a few-shot recalibration (:mod:`perfmodel.recalibrate`) changes the predictor's score on
committed held-out runs, per way of forming its offsets: nothing is timed, so the choice can be
judged on real anchor measurements before a goal run spends the machine.

    python benchmarks/recalibration_policy.py benchmarks/results/latency_predictor.json \
        benchmarks/results/latency_predictor_4c2259b77454_seed1.json

For each run: the latency model is fitted from the run's machine's store (as
``latency_rescore.py`` does) and predicts the run's held-out programs. Anchors come from
  - ``run``: the anchors the run itself timed for its recalibration (``--recalibrate``), and
  - ``held-out presets``: the run's own measurements of the anchor presets (bert-tiny,
    bert-mini, mobilebert-tiny at every workload), timed in its interleaved rounds;
and every way is scored on the run's other programs (never on its anchors), against the run's
drift-corrected measurements:
  - ``none``: the model as fitted;
  - ``median measured/predicted``: per workload the median of the anchors' log(measured /
    predicted) (the recalibration before 2026-11-29);
  - ``machine change, median``: the anchors' estimates of the machine's change (their profiled
    latency instead of the model's prediction, module docstring of perfmodel.recalibrate),
    per-workload medians;
  - ``measured/predicted, shrunk``: the first estimates, empirically Bayes-shrunk;
  - ``machine change, shrunk``: both (what `hwdistill recalibrate` does now).
Also per anchor preset the model's median log(profiled / predicted) over its anchors.
Writes benchmarks/results/recalibration_policy.json.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import add_rescore_args, held_out_run, op_list_cache, write_result  # noqa: E402

import numpy as np  # noqa: E402

from distill import PRESETS, Workload  # noqa: E402
from measurements import Store  # noqa: E402
from perfmodel.latency_model import fit_from_store  # noqa: E402
from perfmodel.predict import Predictor  # noqa: E402
from perfmodel.recalibrate import ANCHOR_PRESETS, estimate  # noqa: E402
from perfmodel.validate import score  # noqa: E402

def offsets_by_policy(change, raw) -> dict[str, tuple[dict, float]]:
    """{policy: (offsets by workload, pooled)} from the anchors' recalibration with their
    profiled latencies (``change``, what `hwdistill recalibrate` does) and without (``raw``:
    every anchor's estimate is its measured / predicted)."""
    out = {"none": ({}, 0.0)}
    for name, rec in (("measured/predicted", raw), ("machine change", change)):
        by_wl: dict[str, list[float]] = {}
        for a in rec.anchors:
            by_wl.setdefault(a["workload"], []).append(a["estimate"])
        med = {w: float(np.median(v)) for w, v in by_wl.items()}
        pooled = float(np.median([e for v in by_wl.values() for e in v]))
        out[f"{name}, median" if name == "machine change" else "median measured/predicted"] = (
            med, pooled)
        out[f"{name}, shrunk"] = (rec.offsets, rec.pooled)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_rescore_args(ap)
    ap.add_argument("--name", default="recalibration_policy")
    args = ap.parse_args(argv)
    cache = op_list_cache(args.cache)
    report = {"command": "python benchmarks/recalibration_policy.py " + " ".join(sys.argv[1:]),
              "runs": []}
    for path in args.results:
        h = held_out_run(path)
        run, rows, fp_id, store, pairs, y, wl = (h[k] for k in (
            "run", "rows", "fingerprint", "store", "pairs", "measured", "workloads"))
        with Store(store, readonly=True) as st:
            model = fit_from_store(st, fp_id)
            profiled = st.latencies(fp_id)
        pred = Predictor("cpu", model, cache=cache)
        now = np.array([pred.predict(c, w).latency_ms for c, w in pairs])
        is_anchor = np.array([r["preset"] in ANCHOR_PRESETS for r in rows])
        sources = {"held-out presets": (
            [(r["preset"], PRESETS[r["preset"]], w) for r, (_, w) in zip(rows, pairs)
             if r["preset"] in ANCHOR_PRESETS], y[is_anchor])}
        ev = ~is_anchor
        entry = {"result": path, "date": run["machine"].get("date"), "store": str(store),
                 "fingerprint": fp_id, "programs_scored": int(ev.sum()), "sources": {}}
        print(f"{path} ({fp_id}, {run['machine'].get('date')}): {ev.sum()} programs scored")
        if run.get("recalibration"):
            an = run["recalibration"]["anchors"]
            sources["run"] = ([(a["arch"], PRESETS[a["arch"]], Workload.parse(a["workload"]))
                               for a in an], np.array([a["measured_ms"] for a in an]))
            # the anchors (timed within minutes) against the same programs' measurement in
            # the run's interleaved rounds (spread over the run)
            same = {(r["preset"], r["workload"]): r["measured_ms"] for r in rows if r["preset"]}
            ratio = [a["measured_ms"] / same[(a["arch"], a["workload"])] for a in an
                     if (a["arch"], a["workload"]) in same]
            entry["run_anchors_over_held_out_rounds"] = {
                "min": min(ratio), "max": max(ratio),
                "median_abs_log": float(np.median(np.abs(np.log(ratio))))}
            print(f"  the run's anchors read {min(ratio):.2f}-{max(ratio):.2f}x the same "
                  "programs' measurement in its held-out rounds (median |log| "
                  f"{entry['run_anchors_over_held_out_rounds']['median_abs_log']:.3f})")
        for src, (anchors, measured) in sources.items():
            res = {}
            rec = estimate(pred, fp_id, anchors, measured, profiled=profiled)
            raw = estimate(pred, fp_id, anchors, measured)      # model error taken as 0
            for policy, (offsets, pooled) in offsets_by_policy(rec, raw).items():
                q = now * np.exp([offsets.get(w, pooled) for w in wl])
                s = score(q[ev], y[ev])
                res[policy] = {"within_10pct": s["within_10pct"], "mape": s["mape"],
                               "spearman": s["spearman"],
                               "factors": {w: round(math.exp(v), 4) for w, v in offsets.items()}}
                print(f"  anchors: {src:17s} {policy:28s} within ±10% {s['within_10pct']:.3f}  "
                      f"MAPE {s['mape']:.4f}")
            res["shrinkage"] = {"noise": rec.noise, "spread": rec.spread}
            errs: dict[str, list[float]] = {}
            for a in rec.anchors:
                errs.setdefault(a["arch"], []).append(a["model_error"])
            res["model_error_median"] = {k: float(np.median(v)) for k, v in errs.items()}
            entry["sources"][src] = res
        report["runs"].append(entry)
    out = write_result(args.name, report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
