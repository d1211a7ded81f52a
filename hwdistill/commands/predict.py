"""Predict an architecture's serving latency without running it.

  hwdistill predict --arch mobilebert-tiny --workload 8,128
  hwdistill predict --arch bert-mini --workload 1,128 --target tpu-v5e
  hwdistill predict --arch archs.jsonl --workload 8,128 --json   # batch: one JSON per line

On --target cpu the learned model of this machine is used (calibrated); on tpu-<gen> the
program is compiled ahead-of-time for that TPU through libtpu and predicted by the learned model
of that TPU (--model DIR, or the one `hwdistill fit --target tpu-<gen>` wrote under
hwdistill-models/), calibrated, else analytically from the roofline of the hardware spec
(uncalibrated); the TPU compiler's own cycle estimate is shown beside. `unseen_ops` counts the
program's ops of kinds the model was never trained on (their times are extrapolated).
On cpu, the newest `hwdistill recalibrate` of this machine (younger than
--recalibration-max-age-h, in --store) corrects the prediction to the machine as it is now
(status `calibrated`, method `learned+recalibrated`). `interval_90_ms` is the 90% prediction
interval (split conformal on the profiled programs, per workload where enough were
profiled): it covers what the profile covers, on the machine as it was then; `hwdistill
validate` measures its coverage today.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from measurements.errors import InputError

from .common import add_store_arg, default_model_dir, print_table
from .recalibrate import add_recalibration_args, latest_recalibration

TARGETS = ["cpu", "tpu-v2", "tpu-v3", "tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e"]


def add_parser(p):
    p.add_argument("--arch", required=True, action="append",
                   help="preset, JSON/TOML file, inline JSON, or a .jsonl file of configs "
                        "(repeatable)")
    p.add_argument("--workload", default="8,128", metavar="B,S[,DTYPE]")
    p.add_argument("--target", default="cpu", help=f"one of {', '.join(TARGETS)}")
    p.add_argument("--model", help="latency model artifact (default: this machine's for cpu, "
                                   "the one fitted for the target for tpu-<gen>)")
    p.add_argument("--analytic", action="store_true", help="skip the learned model")
    p.add_argument("--json", action="store_true", help="print one JSON object per line")
    add_store_arg(p)
    add_recalibration_args(p)


def _archs(specs):
    from distill import StudentConfig, load_arch
    out = []
    for s in specs:
        if s.endswith(".jsonl") and Path(s).is_file():
            out += [(f"{s}:{i + 1}", StudentConfig.from_dict(json.loads(line)))
                    for i, line in enumerate(Path(s).read_text().splitlines()) if line.strip()]
        else:
            out.append((s if len(s) < 40 else s[:37] + "...", load_arch(s)))
    return out


def run(args):
    from distill import Workload
    from measurements import detect
    from perfmodel.latency_model import LatencyModel
    from perfmodel.predict import Predictor

    if args.target not in TARGETS:
        raise InputError(f"unknown --target {args.target!r}; expected one of {TARGETS}")
    wl = Workload.parse(args.workload)
    archs = _archs(args.arch)
    model = None
    if not args.analytic:
        if args.model:
            model = LatencyModel.load(args.model)
            if model.spec.name != args.target:
                raise InputError(f"model {args.model} was trained for {model.spec.name!r}, not "
                                 f"--target {args.target!r}; pass a model of {args.target} or "
                                 "another --target")
        elif args.target != "cpu":
            model = _tpu_model(args.target)
        else:
            fp = detect("cpu")
            d = Path(default_model_dir(fp.id))
            if not d.is_dir():
                from perfmodel.latency_model import missing_model_message
                raise InputError(missing_model_message(fp.id) + "; or pass --analytic for an "
                                 "uncalibrated roofline estimate")
            model = LatencyModel.load(d, fingerprint_id=fp.id)
    from perfmodel.opcache import OpListCache
    recal = None
    if model is not None and args.target == "cpu":
        recal = latest_recalibration(args, args.store, model.fingerprint_id)
        if recal is not None:
            print(f"note: {recal.describe()}", file=sys.stderr)
    pred = Predictor(args.target, model, cache=OpListCache.default(), recalibration=recal)
    rows = []
    for name, cfg in archs:
        t0 = time.perf_counter()
        p = pred.predict(cfg, wl)
        dt = time.perf_counter() - t0
        row = {"arch": name, "target": args.target, "workload": str(wl),
               "latency_ms": round(p.latency_ms, 4),
               "interval_90_ms": (None if p.interval_ms[0] != p.interval_ms[0] else
                                  [round(p.interval_ms[0], 4), round(p.interval_ms[1], 4)]),
               "status": "calibrated" if p.calibrated else "uncalibrated",
               "method": p.method, "roofline_ms": round(p.roofline_ms, 4),
               "xla_estimated_cycles": p.xla_estimated_cycles, "ops": int(p.n_ops),
               "unseen_ops": None if p.unseen_ops != p.unseen_ops else int(p.unseen_ops),
               "predict_s": round(dt, 4)}
        rows.append(row)
        if args.json:
            print(json.dumps(row))
    if not args.json:
        print_table(rows, ["arch", "target", "workload", "latency_ms", "interval_90_ms",
                           "status", "roofline_ms", "xla_estimated_cycles", "ops", "unseen_ops",
                           "predict_s"])
    if model is not None and any(r["unseen_ops"] for r in rows):
        kinds = model.summary.get("training_op_kinds", {})
        print(f"note: {args.target} model trained on {model.summary.get('ops')} ops of "
              f"{model.summary.get('programs')} programs, of kinds {', '.join(kinds)}; "
              "unseen_ops are ops of other kinds, whose times it extrapolates",
              file=sys.stderr)
    return 0


def _tpu_model(target: str):
    """The learned model fitted for ``target``, or None (analytic prediction, said on
    stderr)."""
    from perfmodel.latency_model import LatencyModel, default_model_dir, models_for_target
    found = models_for_target(target)
    if len(found) > 1:
        raise InputError(f"{len(found)} latency models of {target} in "
                         f"{default_model_dir('_').parent}: {[str(d) for d in found]}; pass "
                         "--model DIR")
    if not found:
        print(f"no latency model of {target} in {default_model_dir('_').parent}: analytic "
              "roofline (uncalibrated). To calibrate: `hwdistill store import CAPTURE.xplane.pb` "
              f"(a profile taken on {target}), then `hwdistill fit --target {target}`",
              file=sys.stderr)
        return None
    return LatencyModel.load(found[0])
