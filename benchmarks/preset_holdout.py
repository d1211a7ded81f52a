"""Where the prediction of a standard BERT shape goes wrong: each profiled preset held out.

Issue 15 found the hand-designed presets over-predicted at batch 1 (bert-small@1x128 predicted
34.5 ms, measured 22-24). For every preset program in a profile store this script refits the
op model without any program of that preset (leave-one-architecture-out; the composition's three
coefficients are the full store's: 3 numbers from hundreds of programs) and splits the error of
the prediction against the program's profiled end-to-end latency into its parts, each a log
ratio (0 = exact, +0.1 = 10.5% over):

- ``op_model``: the held-out op model's sum over the measured op list vs the measured op sum;
- ``composition``: the composition applied to the *measured* op sum vs the end-to-end label
  (what remains with a perfect op model);
- ``parts``: the predictor's layer-composed op sum (`perfmodel.parts`: reference programs of
  fewer layers, extrapolated) vs the op model on the full program's op list;
- ``total``: what `hwdistill predict` (composed, held-out model) says vs the label.

    python benchmarks/preset_holdout.py [--store benchmarks/store/cpu_<fp>.db]

Writes benchmarks/results/preset_holdout.json.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import profile_store, write_result  # noqa: E402

import numpy as np  # noqa: E402

from distill import PRESETS, StudentConfig, Workload  # noqa: E402
from measurements import Store, detect  # noqa: E402
from perfmodel.composition import op_weight  # noqa: E402
from perfmodel.latency_model import LatencyModel, _fit_booster, fit_from_store  # noqa: E402
from perfmodel.predict import Predictor  # noqa: E402
from perfmodel.training_set import training_set  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", help="profile store (default: this machine's)")
    args = ap.parse_args(argv)
    fp = detect("cpu")
    store_path = args.store or str(profile_store(fp.id))
    names = {cfg: name for name, cfg in PRESETS.items()}
    with Store(store_path, readonly=True) as st:
        # nothing is timed here: another machine's store can be analysed too
        fps = [f.id for f in st.fingerprints()]
        if fp.id not in fps:
            if len(fps) != 1:
                sys.exit(f"{store_path} holds fingerprints {fps}, not this machine's ({fp.id})")
            fp = next(f for f in st.fingerprints())
        # the held-out boosters below learn traced op times: the composition must be the
        # one fitted on the same target
        full = fit_from_store(st, fp.id, op_target="traced", op_scale="log1p")
        spec = full.spec
        ts = training_set(st, fp.id, spec, op_target="traced")
    progs = [(StudentConfig.from_dict(ts.record[p].arch), Workload(**ts.record[p].workload), p)
             for p in ts.programs]
    held = sorted({c for c, _, _ in progs if c in names}, key=lambda c: names[c])
    print(f"{store_path}: {len(progs)} profiled programs, presets {[names[c] for c in held]}")
    rows = []
    for cfg in held:
        booster = _fit_booster(*ts.stack(p for c, _, p in progs if c != cfg), 0)
        model = LatencyModel(booster, full.composition, spec, fp.id, full.summary,
                             full.op_scale, full.op_weights)
        predictor = Predictor("cpu", model, table=None)
        for c, wl, p in progs:
            if c != cfg:
                continue
            meas, pred = np.expm1(ts.y[p]), np.expm1(booster.predict(ts.X[p]))
            # the ops' terms in the composition (their times weighted by its op weights)
            meas_sum = float((meas * op_weight(meas, full.op_weights)).sum())
            pred_sum = float((pred * op_weight(pred, full.op_weights)).sum())
            n = len(ts.ops[p])
            label = ts.label_us[p] / 1e3
            composed = predictor.predict(c, wl).latency_ms
            exact_ms = model.compose_us(pred_sum, n) / 1e3
            row = {"preset": names[c], "workload": str(wl), "label_ms": label,
                   "predicted_ms": composed, "n_ops": n,
                   "log_error": {"op_model": float(np.log(pred_sum / meas_sum)),
                                 "composition": float(np.log(
                                     model.compose_us(meas_sum, n) / 1e3 / label)),
                                 "parts": float(np.log(composed / exact_ms)),
                                 "total": float(np.log(composed / label))}}
            rows.append(row)
            e = row["log_error"]
            print(f"  {names[c]:16s} {str(wl):14s} label {label:8.2f} ms  predicted "
                  f"{composed:8.2f}  total {e['total']:+.3f} = op model {e['op_model']:+.3f}, "
                  f"composition {e['composition']:+.3f}, parts {e['parts']:+.3f} (approx.)")
    by_wl = defaultdict(list)
    for r in rows:
        by_wl[r["workload"]].append(r["log_error"])
    summary = {w: {k: float(np.median([e[k] for e in es])) for k in es[0]}
               for w, es in by_wl.items()}
    for w, s in summary.items():
        print(f"median by workload {w}: " + ", ".join(f"{k} {v:+.3f}" for k, v in s.items()))
    path = write_result("preset_holdout", {
        "command": "python benchmarks/preset_holdout.py " + " ".join(argv or sys.argv[1:]),
        "store": Path(store_path).name, "fingerprint": fp.id,
        "composition": full.summary["composition"],
        "note": "log errors vs the profiled end-to-end label; the parts add up only roughly "
                "(the composition is not linear in the log)",
        "median_log_error_by_workload": summary, "programs": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
