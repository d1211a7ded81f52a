"""The learned latency model: XGBoost per-op latency (log target) plus a composition model
from a program's op predictions to its end-to-end latency (:mod:`perfmodel.composition`).

Composition is a real model, not a plain sum: on this 2-core CPU independent ops overlap and
the profiler perturbs what it measures (sum of op times was 0.86x-1.5x end-to-end,
docs/architecture.md), and each executed op costs dispatch overhead. Its coefficients are
fitted on *out-of-fold* op predictions, so they see the op model's real errors; with
relative residuals (rows divided by the measured latency) it had 14% MAPE against 29%
unweighted, on measured op sums of 168 programs.

What the op model learns (``op_target``): by default each program's traced op times scaled so
that they sum to the program's end-to-end latency ("end_to_end"). A program's traced op sum
and its untraced latency disagree by up to 1.7x in either direction (profiler cost and drift
between trace and timing; `benchmarks/trace_cost.py`), so raw traced times ("traced") teach
the op model a per-program error that three composition coefficients cannot take back. Out of fold
(``python benchmarks/op_target.py``): end-to-end MAPE 0.109 vs 0.118 on the AMD store (168
programs; 1x128 0.108 vs 0.121) and 0.166 vs 0.176 on the Intel grid store (516 programs;
1x128 0.179 vs 0.202, median log bias -0.061 vs -0.160), 0.078 vs 0.095 on the same programs
re-profiled with drift correction.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import xgboost as xgb

from measurements import Store, hostlock
from measurements.store import StoreError
from measurements.errors import HwdistillError

from .composition import fit_composition, op_weight
from .features import FEATURE_NAMES, FEATURE_SCHEMA, feature_matrix, op_kind
from .hardware import HardwareSpec, pinned_cpu_spec, probe_cpu
from .hlo import HloOp
from .op_scale import OP_SCALES, from_target, roofline_us, to_target
from .intervals import interval_table
from .training_set import OP_TARGETS, training_set

__all__ = ["LatencyModel", "fit_from_store", "ModelError", "ARTIFACT_VERSION", "OP_TARGETS",
           "default_model_dir", "missing_model_message", "models_for_target",
           "SHIPPED_STORES", "shipped_store", "cv_folds", "out_of_fold_ops"]

# the profile stores committed with the repository (present in a clone, not in a wheel)
SHIPPED_STORES = Path(__file__).resolve().parent.parent / "benchmarks" / "store"


def shipped_store(fingerprint_id: str, stores: Path = SHIPPED_STORES) -> Path | None:
    """The repository's profile store of this machine, or None: its own ``cpu_<fingerprint>.db``
    (a workload-grid profile) if committed, else ``cpu.db`` (the first host's, two workloads) if
    that holds this machine (a damaged one raises the store's error)."""
    own = stores / f"cpu_{fingerprint_id}.db"
    if own.is_file():
        return own
    first = stores / "cpu.db"
    if first.is_file():
        with Store(first, readonly=True) as s:
            if fingerprint_id in {f.id for f in s.fingerprints()}:
                return first
    return None


def default_model_dir(fingerprint_id: str) -> Path:
    """Where a machine's latency model lives by default, so that `hwdistill predict`,
    `validate` and `search` find what `fit` (or `run`) wrote: ``$HWDISTILL_MODELS/FP`` (default
    ``hwdistill-models/FP``, relative to the working directory)."""
    import os
    return Path(os.environ.get("HWDISTILL_MODELS", "hwdistill-models")) / fingerprint_id


def models_for_target(target: str) -> list[Path]:
    """The model artifacts in the models directory (``$HWDISTILL_MODELS``, default
    ``hwdistill-models``) whose hardware spec is ``target`` (e.g. ``tpu-v6e``, fitted with
    `hwdistill fit --target tpu-v6e`), so that `hwdistill predict --target tpu-v6e` finds one
    on any machine. A damaged artifact there is an error, not skipped."""
    root = default_model_dir("_").parent
    found = []
    for meta in sorted(root.glob("*/meta.json")):
        try:
            name = json.loads(meta.read_text()).get("spec", {}).get("name")
        except (OSError, json.JSONDecodeError, AttributeError) as e:
            raise ModelError(f"{meta} is corrupt ({type(e).__name__}: {e}); re-run `hwdistill "
                             f"fit` for its fingerprint or delete {meta.parent}") from e
        if name == target:
            found.append(meta.parent)
    return found


def missing_model_message(fingerprint_id: str) -> str:
    """What to do when this machine has no latency model, naming the repository's profiled
    store when it was profiled on this very machine."""
    msg = (f"no latency model for this machine (fingerprint {fingerprint_id}) in "
           f"{default_model_dir(fingerprint_id)}; run `hwdistill run` (profiles and fits one), "
           "or `hwdistill profile` then `hwdistill fit`")
    try:
        shipped = shipped_store(fingerprint_id, SHIPPED_STORES)
    except StoreError:   # a damaged shipped store only loses the hint
        shipped = None
    if shipped is not None:
        msg += (f"; the repository's store {shipped.name} was profiled on this machine: "
                f"`hwdistill fit --store {shipped}` fits from it in seconds")
    return msg

ARTIFACT_VERSION = 1
XGB_PARAMS = dict(n_estimators=600, max_depth=7, learning_rate=0.05, subsample=0.9,
                  colsample_bytree=0.9, min_child_weight=2, reg_lambda=1.0)


class ModelError(HwdistillError, ValueError):
    """A model artifact is missing, corrupt, or for other hardware / another schema."""


@dataclasses.dataclass
class LatencyModel:
    booster: xgb.XGBRegressor
    composition: tuple[float, float, float]     # (a_us, b, c_us_per_op)
    spec: HardwareSpec
    fingerprint_id: str
    summary: dict
    op_scale: str = "log1p"      # perfmodel.op_scale; artifacts saved before it: log1p
    # perfmodel.composition: (knots_us, weights) of the op weights; None: 1 for every op
    op_weights: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    def predict_ops_us(self, ops: list[HloOp]) -> np.ndarray:
        """Each op's predicted time."""
        if not ops:
            return np.zeros(0)
        return from_target(self.booster.predict(feature_matrix(ops, self.spec)),
                           roofline_us(ops, self.spec), self.op_scale)

    def op_contributions_us(self, ops: list[HloOp]) -> np.ndarray:
        """Each op's term in the composition: its predicted time times its op weight. They
        add up over any op list (a program, or the parts it is composed from)."""
        pred = self.predict_ops_us(ops)
        return pred * op_weight(pred, self.op_weights)

    def compose_us(self, sum_contributions_us: float, n_ops: float) -> float:
        """End-to-end latency from the sum of the ops' :meth:`op_contributions_us`."""
        a, b, c = self.composition
        return a + b * sum_contributions_us + c * n_ops

    def predict_program_ms(self, ops: list[HloOp]) -> float:
        return self.compose_us(float(self.op_contributions_us(ops).sum()), len(ops)) / 1e3

    # -- artifact ---------------------------------------------------------------------------
    def save(self, directory: str | Path) -> Path:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(d / "op_model.json"))
        meta = {"artifact_version": ARTIFACT_VERSION, "feature_schema": FEATURE_SCHEMA,
                "feature_names": list(FEATURE_NAMES), "fingerprint_id": self.fingerprint_id,
                "spec": self.spec.to_dict(), "composition": list(self.composition),
                "op_scale": self.op_scale, "summary": self.summary,
                "op_weights": None if self.op_weights is None else {
                    "knots_us": list(self.op_weights[0]), "weights": list(self.op_weights[1])}}
        (d / "meta.json").write_text(json.dumps(meta, indent=2))
        return d

    @classmethod
    def load(cls, directory: str | Path, *, fingerprint_id: str | None = None) -> "LatencyModel":
        d = Path(directory)
        if not (d / "meta.json").is_file() or not (d / "op_model.json").is_file():
            raise ModelError(f"{d} is not a latency model artifact (needs meta.json and "
                             "op_model.json); train one with `hwdistill fit`")
        try:
            meta = json.loads((d / "meta.json").read_text())
        except json.JSONDecodeError as e:
            raise ModelError(f"{d / 'meta.json'} is corrupt ({e}); re-run `hwdistill fit`") from e
        if meta.get("artifact_version") != ARTIFACT_VERSION or \
                meta.get("feature_schema") != FEATURE_SCHEMA:
            raise ModelError(f"model {d} has artifact version {meta.get('artifact_version')} / "
                             f"feature schema {meta.get('feature_schema')}; this hwdistill "
                             f"needs {ARTIFACT_VERSION} / {FEATURE_SCHEMA}. Re-run `hwdistill "
                             "fit` (the store keeps the raw op records)")
        if fingerprint_id is not None and meta["fingerprint_id"] != fingerprint_id:
            raise ModelError(f"model {d} was trained on fingerprint {meta['fingerprint_id']}, "
                             f"not {fingerprint_id} (this hardware). Fit a model for this "
                             "machine with `hwdistill fit`, or pass --allow-foreign-model")
        scale = meta.get("op_scale", "log1p")
        if scale not in OP_SCALES:
            raise ModelError(f"model {d} learns op times on scale {scale!r}, which this "
                             f"hwdistill does not know ({', '.join(OP_SCALES)}); re-run "
                             "`hwdistill fit`")
        weights = meta.get("op_weights")     # artifacts saved before op weights: none
        try:
            if weights is not None:
                weights = (tuple(float(k) for k in weights["knots_us"]),
                           tuple(float(w) for w in weights["weights"]))
                if len(weights[0]) != len(weights[1]) or len(weights[0]) < 1:
                    raise ValueError("knots and weights differ in number")
        except (KeyError, TypeError, ValueError) as e:
            raise ModelError(f"{d / 'meta.json'}: its op_weights are corrupt ({e}); re-run "
                             "`hwdistill fit`") from e
        booster = xgb.XGBRegressor()
        booster.load_model(str(d / "op_model.json"))
        return cls(booster, tuple(meta["composition"]), HardwareSpec(**meta["spec"]),
                   meta["fingerprint_id"], meta["summary"], scale, weights)


def _by_workload(pred, label, workloads) -> dict:
    """Out-of-fold end-to-end MAPE and median log(predicted / label) per workload."""
    out = {}
    wl = np.array(workloads)
    for w in sorted(set(workloads)):
        m = wl == w
        out[w] = {"programs": int(m.sum()),
                  "mape": float(np.mean(np.abs(pred[m] - label[m]) / label[m])),
                  "median_log_bias": float(np.median(np.log(pred[m] / label[m])))}
    return out


def _fit_booster(X, y, seed):
    # one thread: on this shared 2-core host, with another job using the cores, n_jobs=2 fit
    # the committed store (with CV) in 75-85 s of wall time vs 31-33 s with one thread
    # (alternating runs); XGBoost's OpenMP threads spin while waiting for a busy core
    m = xgb.XGBRegressor(**XGB_PARAMS, random_state=seed, n_jobs=1)
    with hostlock.work():    # seconds of a core: a timing elsewhere on this host waits
        m.fit(X, y)
    return m


def cv_folds(ts, folds: int, seed: int, programs: list[str] | None = None
             ) -> tuple[np.ndarray, int, str]:
    """Each program's fold (``programs``, default every one of ``ts``), the number of folds
    and how they were drawn: by architecture when they span at least ``folds`` of them, else
    by program (one per fold when fewer)."""
    programs = ts.programs if programs is None else programs
    rng = np.random.default_rng(seed)
    arch = [json.dumps(dict(ts.record[p].arch), sort_keys=True) for p in programs]
    names = sorted(set(arch))
    if len(names) >= folds:
        fold_of = {names[j]: k % folds for k, j in enumerate(rng.permutation(len(names)))}
        return (np.array([fold_of[a] for a in arch]), folds,
                f"{folds}-fold, grouped by architecture")
    n = min(folds, len(programs))
    fold = np.empty(len(programs), int)
    fold[rng.permutation(len(programs))] = np.arange(len(programs)) % n
    return fold, n, ("leave-one-program-out" if n == len(programs)
                     else f"{n}-fold, grouped by program")


def out_of_fold_ops(ts, targets: dict, roof: dict, fold: np.ndarray, op_scale: str,
                    seed: int = 0) -> list[np.ndarray]:
    """Each program's op predictions (us) by a booster fitted on the other folds' programs
    (``fold``: :func:`cv_folds`; ``targets``: the op targets on ``op_scale``; ``roof``: the
    ops' roofline times), in ``ts.programs`` order."""
    out = [np.zeros(0)] * len(ts.programs)
    for k in np.unique(fold):  # no program's ops are in its own training set
        m = _fit_booster(*ts.stack((ts.programs[i] for i in np.flatnonzero(fold != k)),
                                   targets), seed)
        for i in np.flatnonzero(fold == k):
            p = ts.programs[i]
            out[i] = from_target(m.predict(ts.X[p]), roof[p], op_scale)
    return out


def fit_from_store(store: Store, fingerprint_id: str, spec: HardwareSpec | None = None, *,
                   seed: int = 0, folds: int = 5, op_target: str = "end_to_end",
                   op_scale: str = "roofline") -> LatencyModel:
    """Fit the op model and the composition model on every profiled program of a fingerprint.

    Cross-validation holds out whole architectures (``folds``-fold, every workload of an
    architecture in one fold), as a prediction for a new architecture must do without it:
    the composition (:mod:`perfmodel.composition`) is fitted on these out-of-fold op
    predictions, and the summary's CV scores and intervals are those of unseen architectures.
    Re-scored on the two hosts' committed held-out runs (``python
    benchmarks/op_model_variants.py``), folds by architecture instead of by program put 84.2%
    instead of 83.6% of the Intel run's 348 programs within +-10% and 81.8% instead of 80.7%
    of the AMD run's 192 (MAPE 0.0581 vs 0.0588, 0.0630 vs 0.0626; the AMD grid store's
    602-program version); the store's out-of-fold MAPE is higher for it (0.074 vs 0.069
    there), the honest figure. With fewer architectures than folds, programs are held out
    instead, ``folds``-fold, or one at a time when the store holds fewer programs (an imported
    TPU capture may hold three). The composition's coefficients are fitted only from ``folds``
    programs up (its op weights from :data:`perfmodel.composition.MIN_PROGRAMS_OP_WEIGHTS`);
    with fewer, the composition is the plain sum of op times, and the summary says so
    (``composition_fitted``). On the committed
    TPU v6e capture the plain sum was within 2.1% of each of its 3 programs' measured device
    time (``docs/architecture.md``, facts of 2026-11-28). ``op_target``: see the module
    docstring. ``spec`` (the roofline features' hardware): default the CPU spec pinned in the
    store for this fingerprint (:func:`perfmodel.hardware.pinned_cpu_spec`), else a probe of
    this host, which another fit would not repeat exactly (the summary's ``spec_source``).
    ``op_scale``: the scale the op model learns on (:mod:`perfmodel.op_scale`)."""
    if op_scale not in OP_SCALES:
        raise ModelError(f"op_scale {op_scale!r}: expected one of {', '.join(OP_SCALES)}")
    spec_source = "given"
    if spec is None:
        spec = pinned_cpu_spec(store, fingerprint_id)
        spec_source = "pinned in the store"
        if spec is None:
            spec, spec_source = probe_cpu(), "probed at fit time (not pinned in the store)"
    ts = training_set(store, fingerprint_id, spec, op_target=op_target)
    if len(ts.programs) < 2:
        raise ModelError(f"the store has {len(ts.programs)} profiled program(s) for fingerprint "
                         f"{fingerprint_id}; need at least 2 (each is held out in turn). Run "
                         "`hwdistill profile` first (e.g. --archs 40), or import a TPU capture "
                         "of more programs (`hwdistill store import CAPTURE.xplane.pb`)")
    t0 = time.time()
    prog_ids, hops, y = ts.programs, ts.ops, ts.y
    roof = {p: roofline_us(hops[p], spec) for p in prog_ids}
    target = {p: to_target(np.expm1(y[p]), roof[p], op_scale) for p in prog_ids}
    fold, n_folds, cv = cv_folds(ts, folds, seed)
    oof_ops = out_of_fold_ops(ts, target, roof, fold, op_scale, seed)
    true = [np.expm1(y[p]) for p in prog_ids]
    op_err = [np.abs(pred - t) / np.maximum(t, 1e-3) for pred, t in zip(oof_ops, true)]
    e2e = np.array([ts.label_us[p] for p in prog_ids])
    workloads = [ts.workload[p] for p in prog_ids]
    # three coefficients from fewer programs than folds would fit them exactly, mean nothing
    fitted = len(prog_ids) >= folds
    coef, weights, comp_pred = fit_composition(oof_ops, e2e, fit=fitted)
    booster = _fit_booster(*ts.stack(prog_ids, target), seed)
    op_err = np.concatenate(op_err)
    kinds = Counter(op_kind(o) for p in prog_ids for o in hops[p])
    moved = [o.bytes_accessed for p in prog_ids for o in hops[p] if o.bytes_accessed > 0]
    summary = {
        "programs": len(prog_ids), "ops": int(sum(len(v) for v in hops.values())),
        "drift_corrected_programs": int(sum(f != 1.0 for f in ts.drift.values())),
        "op_target": op_target, "op_scale": op_scale, "spec_source": spec_source,
        "fit_s": round(time.time() - t0, 2), "seed": seed, "folds": n_folds,
        "cv": cv,
        "xgb_params": XGB_PARAMS,
        "cv_op_median_ape": float(np.median(op_err)),
        "cv_e2e_mape": float(np.mean(np.abs(comp_pred - e2e) / e2e)),
        "cv_e2e_within_10pct": float(np.mean(np.abs(comp_pred - e2e) / e2e <= 0.10)),
        "cv_e2e_by_workload": _by_workload(comp_pred, e2e, workloads),
        "composition": {"a_us": coef[0], "b": coef[1], "c_us_per_op": coef[2],
                        "op_weights": None if weights is None else
                        {"knots_us": list(weights[0]), "weights": list(weights[1])}},
        "composition_fitted": bool(fitted),
        # 90% prediction intervals (split conformal on the out-of-fold programs, by workload)
        "interval": interval_table(np.log(e2e / comp_pred), workloads),
        "training_op_kinds": dict(sorted(kinds.items())),
        "training_op_bytes_range": [min(moved, default=0.0), max(moved, default=0.0)],
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if not fitted:
        summary["composition_note"] = (f"plain sum of op times: {len(prog_ids)} programs are "
                                       f"too few to fit its 3 coefficients (fitted from {folds})")
    return LatencyModel(booster, coef, spec, fingerprint_id, summary, op_scale, weights)
