"""Recalibrate this machine's latency model to the machine as it is now, from a few anchors.

  hwdistill recalibrate                                   # anchors at 1,128 and 8,128
  hwdistill recalibrate --workload 1,128 --workload 16,96 --budget-s 3
  hwdistill recalibrate --reference bert-mini@8,128          # anchors timed beside a reference

A shared host drifts (tens of percent over minutes to days) and not alike for every workload.
This times three small presets (bert-tiny, bert-mini, mobilebert-tiny) at each --workload,
about a minute in all, and stores the correction with the session. Each anchor estimates how
far its workload has moved since profiling: its measured latency over its own profiled one in
--store (not over the model's prediction, which would pass the model's error on that preset on
to every program), or, at a workload it was never profiled at, measured / predicted less the
model's error on that preset elsewhere. Per workload, the anchors' median is shrunk toward the
overall median, and that toward no correction, by how far they stand out from the anchors'
own scatter: a few noisy anchors cannot move a workload much, a clear shift is applied.
`hwdistill predict` and `validate` apply the newest recalibration younger than their
--recalibration-max-age-h (default 12 h); `validate` scores the predictions with and without it.
Run it with the machine otherwise idle: the anchors are timings.

Timed alone, each anchor is one timing, and on a shared host that timing's noise becomes the
correction. With --reference (a program profiled in the store, e.g. the sweep's bert-mini@8,128)
the anchors are timed in --rounds interleaved rounds run by run beside it and drift-corrected:
the correction splits into per-workload factors at the speed of profiling and one machine-wide
drift (the reference today over its stored latency), and `validate --reference` can then apply
the per-workload part. Twice the timing work.
"""

from __future__ import annotations

import math

from measurements.errors import InputError

from .common import add_store_arg, default_model_dir, print_table


def add_parser(p):
    add_store_arg(p)
    p.add_argument("--workload", action="append", metavar="B,S[,DTYPE]",
                   help="workload to anchor (repeatable; default 1,128 and 8,128)")
    p.add_argument("--budget-s", type=float, default=2.0,
                   help="timing budget per anchor (default 2.0)")
    p.add_argument("--model", help="latency model artifact (default: this machine's)")
    p.add_argument("--reference", default="none", metavar="ARCH@WORKLOAD",
                   help="time the anchors beside this program, drift-corrected to its latency "
                        "stored in --store (default 'none': anchors timed alone)")
    p.add_argument("--rounds", type=int, default=3,
                   help="interleaved rounds with --reference (default 3)")


def run(args):
    from distill import Workload
    from measurements import Store, detect
    from perfmodel.latency_model import LatencyModel
    from perfmodel.opcache import OpListCache
    from perfmodel.predict import Predictor
    from perfmodel.recalibrate import default_anchors, recalibrate, save
    from perfmodel.validate import parse_program, stored_latency_ms

    if args.budget_s <= 0:
        raise InputError(f"--budget-s {args.budget_s}: must be positive, e.g. 2")
    if args.rounds < 1:
        raise InputError(f"--rounds {args.rounds}: must be at least 1, e.g. 3")
    fp = detect("cpu")
    model = LatencyModel.load(args.model or default_model_dir(fp.id), fingerprint_id=fp.id)
    workloads = [Workload.parse(w) for w in (args.workload or ["1,128", "8,128"])]
    reference = None if args.reference == "none" else parse_program(args.reference)
    with Store(args.store) as store:
        store.check_fingerprint(fp)
        ref_ms = stored_latency_ms(store.latencies(fp.id), *reference) if reference else None
        if reference is not None and ref_ms is None:
            print(f"note: {args.reference} is not profiled in {args.store}: anchors are "
                  "corrected to its median this session (no machine-wide drift is estimated)")
        pred = Predictor("cpu", model, cache=OpListCache.default())
        rec, records = recalibrate(pred, fp, default_anchors(workloads), budget_s=args.budget_s,
                                   reference=reference, reference_ms=ref_ms, rounds=args.rounds,
                                   profiled=store.latencies(fp.id), progress=print)
        run_id = save(store, rec, fp, records)
    print_table([{"arch": a["arch"], "workload": a["workload"],
                  "predicted_ms": f"{a['predicted_ms']:.3f}",
                  "measured_ms": f"{a['measured_ms']:.3f}",
                  "measured/predicted": f"{a['measured_ms'] / a['predicted_ms']:.3f}",
                  "machine change": f"{math.exp(a['estimate']):.3f}"} for a in rec.anchors])
    print(rec.describe())
    print(f"stored as run {run_id}; predict and validate apply it for the next hours")
    return 0


def add_recalibration_args(p) -> None:
    """--recalibration-max-age-h / --no-recalibration, for the commands that apply one."""
    p.add_argument("--recalibration-max-age-h", type=float, default=12.0,
                   help="apply the newest `hwdistill recalibrate` of this machine younger "
                        "than this (default 12)")
    p.add_argument("--no-recalibration", action="store_true",
                   help="predict with the model as fitted")


def latest_recalibration(args, store_path: str, fingerprint_id: str):
    """The recalibration the arguments ask for, or None."""
    if args.no_recalibration:
        return None
    if not math.isfinite(args.recalibration_max_age_h) or args.recalibration_max_age_h < 0:
        raise InputError(f"--recalibration-max-age-h {args.recalibration_max_age_h}: must be "
                         "a non-negative number of hours")
    from pathlib import Path

    from measurements import Store
    from perfmodel.recalibrate import latest
    path = str(store_path)
    if not path.startswith("sqlite:") and not Path(path).exists():
        return None
    with Store(store_path, readonly=True) as store:
        return latest(store, fingerprint_id, max_age_h=args.recalibration_max_age_h)
