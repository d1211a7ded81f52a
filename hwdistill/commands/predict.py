"""Predict an architecture's serving latency without running it.

  hwdistill predict --arch mobilebert-tiny --workload 8,128
  hwdistill predict --arch bert-mini --workload 1,128 --target tpu-v5e
  hwdistill predict --arch archs.jsonl --workload 8,128 --json   # batch: one JSON per line

On --target cpu the learned model of this machine is used (calibrated); on tpu-<gen> the
program is compiled ahead-of-time for that TPU through libtpu and predicted by a learned model
if --model names one for that TPU, else analytically from the roofline of the hardware spec
(uncalibrated), next to the TPU compiler's own cycle estimate.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from measurements.errors import InputError

from .common import default_model_dir, print_table

TARGETS = ["cpu", "tpu-v2", "tpu-v3", "tpu-v4", "tpu-v5e", "tpu-v5p", "tpu-v6e"]


def add_parser(p):
    p.add_argument("--arch", required=True, action="append",
                   help="preset, JSON/TOML file, inline JSON, or a .jsonl file of configs "
                        "(repeatable)")
    p.add_argument("--workload", default="8,128", metavar="B,S[,DTYPE]")
    p.add_argument("--target", default="cpu", help=f"one of {', '.join(TARGETS)}")
    p.add_argument("--model", help="latency model artifact (default: this machine's, for cpu)")
    p.add_argument("--analytic", action="store_true", help="skip the learned model")
    p.add_argument("--json", action="store_true", help="print one JSON object per line")


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
        elif args.target == "cpu":
            fp = detect("cpu")
            d = Path(default_model_dir(fp.id))
            if not d.is_dir():
                from perfmodel.latency_model import missing_model_message
                raise InputError(missing_model_message(fp.id) + "; or pass --analytic for an "
                                 "uncalibrated roofline estimate")
            model = LatencyModel.load(d, fingerprint_id=fp.id)
    from perfmodel.opcache import OpListCache
    pred = Predictor(args.target, model, cache=OpListCache.default())
    rows = []
    for name, cfg in archs:
        t0 = time.perf_counter()
        p = pred.predict(cfg, wl)
        dt = time.perf_counter() - t0
        row = {"arch": name, "target": args.target, "workload": str(wl),
               "latency_ms": round(p.latency_ms, 4),
               "status": "calibrated" if p.calibrated else "uncalibrated",
               "method": p.method, "roofline_ms": round(p.roofline_ms, 4),
               "xla_estimated_cycles": p.xla_estimated_cycles, "ops": int(p.n_ops),
               "predict_s": round(dt, 4)}
        rows.append(row)
        if args.json:
            print(json.dumps(row))
    if not args.json:
        print_table(rows, ["arch", "target", "workload", "latency_ms", "status", "roofline_ms",
                           "xla_estimated_cycles", "ops", "predict_s"])
    return 0
