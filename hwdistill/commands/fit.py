"""Train the latency model from the store: XGBoost on per-op timings plus a composition model
from op predictions to end-to-end latency (fitted on out-of-fold predictions). Writes a
versioned artifact directory (op_model.json + meta.json: feature schema, fingerprint, hardware
spec, training summary and cross-validated metrics).

  hwdistill fit                          # this machine's fingerprint, default store
  hwdistill fit --target tpu-v6e         # the TPU v6e records (e.g. an imported capture)
  hwdistill fit --fingerprint 4c2259b77454 --out my-model/

It prints how the model composes a program's latency from its op predictions
(perfmodel.composition: a fixed cost, the op times weighted by their size, a cost per op) and
its out-of-fold score. The summary lists the kinds of op the model was trained on
(`training_op_kinds`): a model knows the kinds it saw; the ops of other kinds in a program it
predicts are extrapolated, and `hwdistill predict` counts them (`unseen_ops`).

Its 90% prediction intervals come from the training programs predicted out of fold, unless the
store holds 19 or more validation measurements (`hwdistill validate`) of programs it was not
trained on: then from those (perfmodel.heldout_intervals: each workload with 10 or more on its
own centre and scale, the out-of-fold bounds for the others).
"""

from __future__ import annotations

import json
import sys

from measurements.errors import InputError

from .common import add_store_arg, default_model_dir


def add_parser(p):
    add_store_arg(p)
    sel = p.add_mutually_exclusive_group()
    sel.add_argument("--fingerprint", help="fingerprint id to train on (default: this machine)")
    sel.add_argument("--target", help="train on the store's records of this target, e.g. "
                                      "tpu-v6e (from `hwdistill store import CAPTURE`)")
    p.add_argument("--out", help="artifact directory (default: hwdistill-models/FINGERPRINT)")
    p.add_argument("--seed", type=int, default=0)


def _of_target(fp, target: str) -> bool:
    """A fingerprint's records are of ``target``: named so, or a local TPU whose device kind
    the profilers' names map to it."""
    if fp.target == target:
        return True
    if fp.platform != "tpu":
        return False
    from perfmodel.hardware import target_for_device_type
    try:
        return target_for_device_type(fp.device_kind) == target
    except InputError:
        return False


def select_fingerprint(store, target: str):
    """The one fingerprint of ``target`` in ``store``; an error naming what it holds if none
    or several."""
    fps = store.fingerprints()
    hits = [fp for fp in fps if _of_target(fp, target)]
    if len(hits) == 1:
        return hits[0]
    held = "; ".join(fp.describe() for fp in fps) or "no fingerprint at all"
    if not hits:
        raise InputError(
            f"store {store.path} holds no records of target {target!r} (it holds: {held}). "
            f"Import a profile of {target} first: `hwdistill store import CAPTURE.xplane.pb` "
            "(a profiler capture from that TPU) or `hwdistill store import OTHER.db`")
    raise InputError(f"store {store.path} holds {len(hits)} fingerprints of {target!r}: "
                     + "; ".join(fp.describe() for fp in hits)
                     + ". Pick one with --fingerprint ID")


def composition_line(summary: dict) -> str:
    """How the fitted model composes a program's latency from its op predictions, in words."""
    c = summary["composition"]
    if not summary.get("composition_fitted", True):
        return "composition: " + summary.get("composition_note", "plain sum of op times")
    ow = c.get("op_weights")
    ops = (f"{c['b']:.3f} x the sum of op times" if not ow else
           "the sum of op times, each weighted by its size: " + ", ".join(
               f"{w:.2f} at {k:g} us" for k, w in zip(ow["knots_us"], ow["weights"]))
           + " (linear in log time between)")
    return (f"composition: latency = {c['a_us']:.0f} us + {ops} + {c['c_us_per_op']:.2f} us "
            f"per op; out of fold (unseen architectures) MAPE {summary['cv_e2e_mape']:.3f}, "
            f"{summary['cv_e2e_within_10pct']:.0%} within +-10%")


def run(args):
    from tqdm import tqdm

    from measurements import Store, detect
    from perfmodel.hardware import spec_for
    from perfmodel.heldout_intervals import calibrate, validation_records
    from perfmodel.latency_model import fit_from_store

    with Store(args.store, readonly=True) as store:
        if args.fingerprint:
            fp = store.fingerprint(args.fingerprint)
        elif args.target and args.target != "cpu":
            fp = select_fingerprint(store, args.target)
        else:
            fp = detect("cpu")
            store.fingerprint(fp.id)  # clear error if this machine has no records here
        name = "cpu" if fp.platform == "cpu" else fp.target
        if name == "tpu":   # profiled on a TPU VM: the device kind names the generation
            from perfmodel.hardware import target_for_device_type
            name = args.target or target_for_device_type(fp.device_kind)
        # the CPU's spec is the one pinned in the store when it was profiled (else probed)
        spec = None if name == "cpu" else spec_for(name)
        print(f"fitting the op model on {fp.describe()}'s records in {store.path} ...",
              file=sys.stderr, flush=True)
        model = fit_from_store(store, fp.id, spec, seed=args.seed)
        held = validation_records(store, fp.id) if name == "cpu" else []
    table = calibrate(model, held, progress=lambda rs: tqdm(
        rs, desc="intervals: predicting held-out validations", unit="prog")) if held else None
    if table is not None:     # intervals from held-out validations, not the training labels
        model.summary["interval"] = table
    out = model.save(args.out or default_model_dir(fp.id))
    print(json.dumps(model.summary, indent=2, default=float))
    kinds = model.summary["training_op_kinds"]
    lo, hi = model.summary["training_op_bytes_range"]
    print(f"trained on {model.summary['ops']} ops of {model.summary['programs']} programs of "
          f"{fp.describe()}; op kinds: " + ", ".join(f"{k} x{n}" for k, n in kinds.items())
          + f"; bytes moved per op {lo:.3g} to {hi:.3g} (a tree model does not extrapolate "
          "beyond the sizes it saw)")
    print(composition_line(model.summary))
    if not any(k == "fusion:dot" or k in ("dot", "convolution") for k in kinds):
        print("note: no matmul (dot/convolution) op among them: a transformer's matmul "
              "fusions are extrapolated by this model; `hwdistill predict` counts such ops "
              "(unseen_ops)")
    iv = model.summary["interval"]
    if table is not None:
        when = " to ".join(iv["source"]["measured"])
        print(f"90% intervals calibrated on {len(held)} held-out programs of earlier "
              f"validations (`hwdistill validate`, measured {when})"
              f"; by workload: " + ", ".join(f"{w} {s}" for w, s in
                                            iv["by_workload_source"].items()))
    else:
        print(f"90% intervals from the training programs out of fold ({len(held)} held-out "
              "validation measurements in the store; 19 or more calibrate them on those)")
    print(f"model written to {out}")
    return 0
