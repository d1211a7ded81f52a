"""Measure held-out architectures on this machine and score the latency predictor.

  hwdistill validate --target cpu --archs 50 --workload 1,128 --workload 8,128

Held-out architectures are sampled with --seed (default 1, the profiler samples with 0) and any
architecture present in the store's profiled set is dropped, so none was seen in training. Each
program is measured --rounds times, interleaved; the table reports MAPE, share within +-5% and
+-10%, Spearman and Kendall tau, and the noise floor (how often two rounds of the same program
agree within +-10%), the ratio of the two (1.0: the prediction agrees with the hardware as often
as measuring again does), how often the 90% prediction interval covers the measurement, and how
many hours after the store's profiling it measured (and whether on another UTC date: on the
profiling's day a validation sees the machine of that day, not the one a user meets later).
Writes validation.json and a predicted-vs-measured PNG to --out.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path

from .common import add_space_arg, add_store_arg, default_model_dir, load_space, print_table
from .recalibrate import add_recalibration_args, latest_recalibration


def add_parser(p):
    p.add_argument("--target", default="cpu", choices=["cpu"],
                   help="only the local CPU can be timed on this machine")
    p.add_argument("--archs", type=int, default=50)
    p.add_argument("--workload", action="append", default=None, metavar="B,S[,DTYPE]",
                   help="repeatable (default: 1,128 and 8,128)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--budget-s", type=float, default=1.0, help="timing budget per round")
    p.add_argument("--reference", default="none", metavar="ARCH@WORKLOAD",
                   help="time this program run by run beside every held-out one and correct "
                        "for machine speed drift, e.g. bert-mini@8,128 (doubles the timing "
                        "work; default none). If the store holds its latency from profiling, "
                        "results are scaled to that machine speed, else to this session's")
    p.add_argument("--model", help="model artifact (default: this machine's)")
    p.add_argument("--out", default="validation", help="output directory")
    add_space_arg(p)
    add_store_arg(p)
    add_recalibration_args(p)


def run(args):
    import numpy as np
    from tqdm import tqdm

    from distill import Workload
    from measurements import Store, detect
    from perfmodel.latency_model import LatencyModel
    from measurements.errors import InputError
    from perfmodel.predict import Predictor
    from perfmodel.heldout_intervals import validation_record
    from perfmodel.sweep import PROFILE_TAG
    from perfmodel.validate import (measure_interleaved, measured_after_profiling,
                                    parse_program, plot_predicted_vs_measured, score,
                                    stored_latency_ms)

    fp = detect("cpu")
    model = LatencyModel.load(args.model or default_model_dir(fp.id), fingerprint_id=fp.id)
    workloads = [Workload.parse(w) for w in (args.workload or ["1,128", "8,128"])]
    reference = None if args.reference == "none" else parse_program(args.reference)
    with Store(args.store) as store:
        stored = store.latencies(fp.id)
        # held out from training: the profiled set (not earlier validations or anchors, so the
        # same --seed validates the same architectures again)
        seen = {tuple(sorted(r.arch.items())) for r in stored if r.tag == PROFILE_TAG}
        cfgs = [c for c in load_space(args.space).sample_configs(args.archs * 2, args.seed)
                if tuple(sorted(c.to_dict().items())) not in seen][: args.archs]
        if not cfgs:
            raise InputError(f"every architecture sampled with --seed {args.seed} is in the "
                             f"profiled set of {args.store}; pass another --seed or more "
                             "--archs")
        pairs = [(c, w) for c in cfgs for w in workloads]
        recal = latest_recalibration(args, args.store, fp.id)
        if recal is not None and reference is not None and not recal.profiled_speed:
            # drift-corrected latencies are scaled to the machine's speed when it was profiled;
            # a recalibration from anchors timed alone moves predictions to today's speed
            print("note: --reference scales measurements to the machine as profiled; this "
                  "recalibration's anchors were timed alone (today's machine) and it is not "
                  "applied. `hwdistill recalibrate --reference ...` makes one that is",
                  file=sys.stderr)
            recal = None
        pred = Predictor("cpu", model)
        predictions = [pred.predict(c, w) for c, w in tqdm(pairs, desc="predicting")]
        raw = [p.latency_ms for p in predictions]
        if recal is not None:
            # measured at the speed of profiling (with --reference): the per-workload part only
            factor = recal.shape_factor if reference is not None else recal.factor
            predictions = [dataclasses.replace(p, latency_ms=p.latency_ms * factor(w),
                                               interval_ms=tuple(v * factor(w)
                                                                 for v in p.interval_ms),
                                               method="learned+recalibrated")
                           for p, (_, w) in zip(predictions, pairs)]
        preds = [p.latency_ms for p in predictions]
        profiled_at = [r.created_at for r in stored if r.tag == PROFILE_TAG]
        when = measured_after_profiling(profiled_at, time.time()) if profiled_at else None
        bar = tqdm(total=len(pairs) * (args.rounds + 1), desc="measuring")
        anchor = stored_latency_ms(stored, *reference) if reference else None
        meas = measure_interleaved(pairs, rounds=args.rounds, budget_s=args.budget_s,
                                   reference=reference, reference_ms=anchor,
                                   progress=lambda _: bar.update(1))
        bar.close()
        run_id = store.start_run("validate", fingerprint_id=fp.id, args={"archs": args.archs,
                                                                         "seed": args.seed})
        store.put_latencies([validation_record(fp.id, c, w, m, r, run_id)
                             for (c, w), m, r in zip(pairs, meas.latency_ms, meas.rounds_ms)])
        store.finish_run(run_id)
    s = score(preds, meas.latency_ms)
    s["noise_rounds_within_10pct"] = meas.noise_within_10pct
    # judged against the machine: 1.0 = the prediction agrees as often as measuring again does
    s["within_10pct_over_repeatability"] = (s["within_10pct"] / meas.noise_within_10pct
                                            if meas.noise_within_10pct else float("nan"))
    if recal is not None:
        s["recalibration"] = recal.describe()
        s["before_recalibration"] = {k: v for k, v in score(raw, meas.latency_ms).items()
                                     if k in ("mape", "within_10pct", "spearman")}
    lo = np.array([p.interval_ms[0] for p in predictions])
    hi = np.array([p.interval_ms[1] for p in predictions])
    if np.all(np.isfinite(lo)):
        s["interval_90_coverage"] = float(np.mean((meas.latency_ms >= lo) &
                                                  (meas.latency_ms <= hi)))
    if reference is not None:
        s["reference"] = args.reference
        s["reference_anchor_ms"] = meas.reference_ms
        s["reference_anchor"] = "stored" if anchor else "this session"
        s["noise_uncorrected_rounds_within_10pct"] = meas.raw_noise_within_10pct
    if when is not None:       # on the profiling's day a validation sees the same day's machine
        s["hours_after_profiling"] = when["hours_after_profiling"]
        s["another_day_than_profiling"] = when["another_day"]
    s["archs"], s["workloads"] = len(cfgs), [str(w) for w in workloads]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "validation.json").write_text(json.dumps(s, indent=2))
    png = plot_predicted_vs_measured({"learned op model": (preds, meas.latency_ms)},
                                     out / "predicted_vs_measured.png",
                                     f"{len(pairs)} held-out programs on {fp.cpu_model}")
    print_table([{k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in s.items()
                  if k not in ("workloads", "recalibration", "before_recalibration")}])
    if recal is not None:
        b = s["before_recalibration"]
        print(f"{s['recalibration']}\nbefore it: MAPE {b['mape']:.4f}, within 10% "
              f"{b['within_10pct']:.4f}, Spearman {b['spearman']:.4f}")
    print(f"wrote {out / 'validation.json'} and {png}")
    return 0
