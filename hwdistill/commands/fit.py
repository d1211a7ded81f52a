"""Train the latency model from the store: XGBoost on per-op timings plus a composition model
from op predictions to end-to-end latency (fitted on out-of-fold predictions). Writes a
versioned artifact directory (op_model.json + meta.json: feature schema, fingerprint, hardware
spec, training summary and cross-validated metrics).

  hwdistill fit                          # this machine's fingerprint, default store
  hwdistill fit --fingerprint 4c2259b77454 --out my-model/
"""

from __future__ import annotations

import json

from .common import add_store_arg, default_model_dir


def add_parser(p):
    add_store_arg(p)
    p.add_argument("--fingerprint", help="fingerprint id to train on (default: this machine)")
    p.add_argument("--out", help="artifact directory (default: hwdistill-models/FINGERPRINT)")
    p.add_argument("--seed", type=int, default=0)


def run(args):
    from measurements import Store, detect
    from perfmodel.hardware import spec_for
    from perfmodel.latency_model import fit_from_store

    with Store(args.store, readonly=True) as store:
        fp = store.fingerprint(args.fingerprint) if args.fingerprint else detect("cpu")
        if not args.fingerprint:
            store.fingerprint(fp.id)  # clear error if this machine has no records here
        spec = spec_for("cpu" if fp.platform == "cpu" else fp.target)
        model = fit_from_store(store, fp.id, spec, seed=args.seed)
    out = model.save(args.out or default_model_dir(fp.id))
    print(json.dumps(model.summary, indent=2, default=float))
    print(f"model written to {out}")
    return 0
