"""Real TPU timings from the TpuGraphs data (Phothilimthana et al., NeurIPS'23 datasets track):
a reader for its protobufs and a learned TPU op model evaluated leave-one-kernel-out.

Two formats, both from ``tpu_graphs/proto/tuning.proto`` (vendored with the two XLA protos it
imports under ``perfmodel/protos/``, see the README there):

* ``op_tuning_data.pb``: a ``TuningData`` whose modules are single TPU kernels (a fusion, a
  copy, a reshape), each run under several tile-size configurations (``TileSizeConfig``: kernel,
  output, input and iteration bounds) with the measured ``compute_time_ns``;
* ``module_tuning_data_layout.pb``: one ``ModuleTuningData``, a whole program under layout
  configurations (per configurable node, the minor-to-major order of each tensor).

:func:`read_tile_data` gives one :class:`TileKernel` per module: its HLO as the project's
:class:`~perfmodel.hlo.HloOp` (flops, bytes, shapes, fused opcodes, counted by the same code as
the text parser), its instructions, and one :class:`TileRow` per configuration that ran.
:func:`read_layout_data` gives a :class:`LayoutModule`.

The learned model (:func:`tile_features`, :func:`loko_evaluate`) is the project's op features
(:mod:`perfmodel.features`, on a TPU v3 spec: the TpuGraphs timings were taken on TPU v3) plus
tile features, an XGBoost regressor of log runtime centred per kernel (only the ordering within
a kernel matters), evaluated leave-one-kernel-out with Kendall's tau within each held-out kernel
and the slowdown of the configuration ranked first (Kaufman et al., MLSys'21; TpuGraphs). The
roofline baseline costs every configuration of a kernel the same (tile sizes change neither
flops nor bytes), so it ties; that is reported, not hidden.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np

from measurements.errors import InputError, MissingError

from .features import FEATURE_NAMES, op_features
from .hardware import HardwareSpec, spec_for
from .hlo import NOT_EXECUTED, HloOp, Instr, Shape, instruction_costs

__all__ = ["TpuGraphsError", "TileRow", "TileKernel", "LayoutRow", "LayoutModule",
           "read_tile_data", "read_layout_data", "module_instructions", "kernel_op",
           "TILE_FEATURE_NAMES", "tile_features", "loko_evaluate", "ranking_metrics",
           "roofline_evaluate", "default_config_evaluate", "layout_features",
           "layout_kfold_evaluate", "DEFAULT_TARGET"]

DEFAULT_TARGET = "tpu-v3"   # TpuGraphs: "collected on TPU v3"
_FIX = ("pass the file from the TpuGraphs testdata / dataset "
        "(github.com/google-research-datasets/tpu_graphs), unmodified")


class TpuGraphsError(InputError):
    """A TpuGraphs protobuf file is corrupt, truncated or of another kind."""


@dataclasses.dataclass(frozen=True)
class TileRow:
    kernel: str
    config_index: int                  # index of the run in the module's ``runs``
    kernel_bounds: tuple[int, ...]
    output_bounds: tuple[int, ...]
    input_bounds: tuple[int, ...]
    iteration_bounds: tuple[int, ...]
    runtime_ns: float                  # ExecutionProfile.compute_time_ns
    is_default: bool                   # the compiler's own choice


@dataclasses.dataclass
class TileKernel:
    name: str
    fingerprint: int
    instructions: dict[str, list[Instr]]   # computation name -> instructions (HloOp inputs)
    entry: str
    op: HloOp                               # the kernel as the project's op record
    rows: list[TileRow]
    n_errors: int                           # runs marked ``error`` (not in rows)


@dataclasses.dataclass(frozen=True)
class LayoutRow:
    config_index: int
    layout: tuple[tuple[tuple[int, ...], ...], ...]  # per node, per tensor: minor-to-major dims
    runtime_ns: float
    is_default: bool


@dataclasses.dataclass
class LayoutModule:
    name: str
    fingerprint: int
    instructions: dict[str, list[Instr]]
    entry: str
    ops: list[HloOp]
    config_nodes: tuple[int, ...]       # ModuleTuningData.config_index_to_node
    rows: list[LayoutRow]
    n_errors: int


# ---------------------------------------------------------------------------------- reading

def _pb():
    from .protos import tuning_pb2, xla_data_pb2
    return tuning_pb2, xla_data_pb2


def _read_bytes(path) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise MissingError(f"{p}: no such TpuGraphs file; {_FIX}")
    return p.read_bytes()


def _parse(path, message, other=None, other_reader=""):
    """``message`` parsed from the file at ``path``; ``other`` is the message the other reader
    expects, tried only to name the right reader when the file is not a ``message``."""
    from google.protobuf.message import DecodeError
    data = _read_bytes(path)
    if not data:
        raise TpuGraphsError(f"{path}: empty file, expected a serialised "
                             f"tpu_graphs.{message.DESCRIPTOR.name}; {_FIX}")
    try:
        message.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as e:
        if other is not None:
            try:
                other.ParseFromString(data)
                is_other = bool(other.ListFields())
            except (DecodeError, RuntimeError, ValueError):
                is_other = False
            if is_other:
                raise TpuGraphsError(f"{path}: a tpu_graphs.{other.DESCRIPTOR.name}, not a "
                                     f"tpu_graphs.{message.DESCRIPTOR.name}: read it with "
                                     f"{other_reader}") from None
        raise TpuGraphsError(f"{path}: not a serialised tpu_graphs.{message.DESCRIPTOR.name} "
                             f"({type(e).__name__}: {e}); the file is corrupt or truncated, "
                             f"or of another kind; {_FIX}") from None
    return message


def _shape(sp, xla_data_pb2) -> tuple[Shape, ...]:
    """One Shape per array leaf (tuples flattened), dtype named as in HLO text."""
    if sp.element_type == xla_data_pb2.TUPLE:
        return tuple(s for t in sp.tuple_shapes for s in _shape(t, xla_data_pb2))
    name = xla_data_pb2.PrimitiveType.Name(sp.element_type).lower()
    if name in ("token", "opaque_type", "primitive_type_invalid"):
        return ()
    layout = tiling = ""
    if sp.HasField("layout"):   # written as HLO text writes it: {1,0:T(8,128)(2,1)S(1)}
        layout = ",".join(str(d) for d in sp.layout.minor_to_major)
        tiling = "".join(("T(" if j == 0 else "(") + ",".join(str(d) for d in t.dimensions)
                         + ")" for j, t in enumerate(sp.layout.tiles))
        if sp.layout.memory_space:
            tiling += f"S({sp.layout.memory_space})"
    return (Shape(name, tuple(int(d) for d in sp.dimensions), layout, tiling),)


def _attrs(ins, comp_names: dict[int, str]) -> str:
    """The attributes of an instruction written the way HLO text writes them, for the ones
    perfmodel.hlo's cost counting reads (fusion calls/kind, dot dims, convolution window and
    dim_labels, group counts)."""
    parts = []
    if ins.called_computation_ids:
        parts.append("calls=%" + comp_names.get(ins.called_computation_ids[0], ""))
    if ins.fusion_kind:
        parts.append(f"kind={ins.fusion_kind}")
    if ins.opcode == "dot":
        d = ins.dot_dimension_numbers
        for key in ("lhs_contracting_dims", "lhs_batch_dims"):
            parts.append(f"{key}={{{','.join(str(x) for x in getattr(d, key))}}}")
    if ins.opcode == "convolution":
        c = ins.convolution_dimension_numbers
        n = len(c.input_spatial_dimensions)

        def labels(rank, fixed, spatial):
            out = ["?"] * rank
            for pos, ch in fixed:
                out[pos] = ch
            for j, pos in enumerate(spatial):
                out[pos] = str(j)
            return "".join(out)

        lhs_rank = n + 2
        lab = (labels(lhs_rank, [(c.input_batch_dimension, "b"),
                                 (c.input_feature_dimension, "f")], c.input_spatial_dimensions)
               + "_" + labels(lhs_rank, [(c.kernel_input_feature_dimension, "i"),
                                         (c.kernel_output_feature_dimension, "o")],
                              c.kernel_spatial_dimensions)
               + "->" + labels(lhs_rank, [(c.output_batch_dimension, "b"),
                                          (c.output_feature_dimension, "f")],
                               c.output_spatial_dimensions))
        win = ins.window.dimensions
        if win:
            w = [("size", [d.size for d in win]), ("stride", [d.stride or 1 for d in win]),
                 ("lhs_dilate", [d.base_dilation or 1 for d in win]),
                 ("rhs_dilate", [d.window_dilation or 1 for d in win])]
            text = " ".join(f"{k}={'x'.join(str(v) for v in vs)}" for k, vs in w)
            text += " pad=" + "x".join(f"{d.padding_low}_{d.padding_high}" for d in win)
            parts.append(f"window={{{text}}}")
        parts.append(f"dim_labels={lab}")
        parts.append(f"feature_group_count={ins.feature_group_count or 1}")
        parts.append(f"batch_group_count={ins.batch_group_count or 1}")
    return ", ".join(parts)


def module_instructions(module, path="") -> tuple[str, dict[str, list[Instr]]]:
    """(entry computation name, {computation name: instructions}) of an ``xla.HloModuleProto``,
    as :func:`perfmodel.hlo.parse_hlo` gives them from HLO text."""
    _, xla_data_pb2 = _pb()
    comp_names = {c.id: c.name for c in module.computations}
    if module.entry_computation_id not in comp_names:
        raise TpuGraphsError(f"{path}: HLO module {module.name!r} has no entry computation "
                             f"(id {module.entry_computation_id} not among "
                             f"{len(comp_names)} computations); {_FIX}")
    comps: dict[str, list[Instr]] = {}
    for c in module.computations:
        names = {i.id: i.name for i in c.instructions}
        comps[c.name] = [Instr(i.name, i.opcode, _shape(i.shape, xla_data_pb2),
                               tuple(names.get(o, f"#{o}") for o in i.operand_ids),
                               _attrs(i, comp_names)) for i in c.instructions]
    return comp_names[module.entry_computation_id], comps


def _ops(entry: str, comps: dict[str, list[Instr]], path, name) -> list[HloOp]:
    table = {i.name: i for i in comps[entry]}
    ops = []
    for ins in comps[entry]:
        if ins.opcode in NOT_EXECUTED:
            continue
        try:
            flops, trans, opcodes, dot = instruction_costs([ins], comps, table)
        except (KeyError, IndexError, ValueError) as e:
            raise TpuGraphsError(f"{path}: cannot cost instruction {ins.name!r} of module "
                                 f"{name!r} ({type(e).__name__}: {e}); {_FIX}") from None
        operands = tuple(s for o in ins.operands if o in table for s in table[o].shapes)
        ops.append(HloOp(
            name=ins.name, opcode=ins.opcode, fusion_kind=_kind(ins.attrs),
            fused_opcodes=tuple(sorted(opcodes)), result=ins.shapes, operands=operands,
            flops=flops, transcendentals=trans,
            bytes_accessed=sum(s.bytes for s in ins.shapes) + sum(s.bytes for s in operands),
            dot_dims=dot))
    return ops


def _kind(attrs: str) -> str:
    for part in attrs.split(", "):
        if part.startswith("kind="):
            return part[5:]
    return ""


def kernel_op(ops: list[HloOp], name: str = "") -> HloOp:
    """A tuning module's executed ops as one op: the TpuGraphs op data hold one kernel per
    module; if the entry runs more than one, their costs are summed under the largest."""
    if not ops:
        raise TpuGraphsError(f"module {name!r} runs no op (only parameters/constants); {_FIX}")
    if len(ops) == 1:
        return ops[0]
    main = max(ops, key=lambda o: (o.flops, o.bytes_accessed))
    return dataclasses.replace(main, flops=sum(o.flops for o in ops),
                               transcendentals=sum(o.transcendentals for o in ops),
                               bytes_accessed=sum(o.bytes_accessed for o in ops))


def read_tile_data(path: str | os.PathLike) -> list[TileKernel]:
    """The kernels of a TpuGraphs ``op_tuning_data.pb`` (``tpu_graphs.TuningData``)."""
    tuning_pb2, _ = _pb()
    td = _parse(path, tuning_pb2.TuningData(), tuning_pb2.ModuleTuningData(),
                "perfmodel.tpugraphs.read_layout_data")
    if not td.modules:
        raise TpuGraphsError(f"{path}: a TuningData with no modules (is it a "
                             f"module_tuning_data file? use read_layout_data); {_FIX}")
    kernels = []
    for m in td.modules:
        if not m.module.computations:
            raise TpuGraphsError(f"{path}: module {m.module.name!r} has no HLO computations; "
                                 f"{_FIX}")
        entry, comps = module_instructions(m.module, path)
        rows, errors = [], 0
        for i, r in enumerate(m.runs):
            if r.WhichOneof("config") != "op_config":
                raise TpuGraphsError(f"{path}: run {i} of {m.module.name!r} has a "
                                     f"{r.WhichOneof('config')} config, expected a tile-size "
                                     f"op_config (layout data go to read_layout_data); {_FIX}")
            if r.error:
                errors += 1
                continue
            t = r.op_config.tile_size_config
            if r.profile.compute_time_ns <= 0:
                raise TpuGraphsError(f"{path}: run {i} of {m.module.name!r} has no measured "
                                     f"compute_time_ns and is not marked error; {_FIX}")
            rows.append(TileRow(m.module.name, i, tuple(t.kernel_bounds),
                                tuple(t.output_bounds), tuple(t.input_bounds),
                                tuple(t.iteration_bounds), float(r.profile.compute_time_ns),
                                bool(r.is_default)))
        kernels.append(TileKernel(m.module.name, int(m.fingerprint), comps, entry,
                                  kernel_op(_ops(entry, comps, path, m.module.name),
                                            m.module.name), rows, errors))
    return kernels


def read_layout_data(path: str | os.PathLike) -> LayoutModule:
    """The module of a TpuGraphs ``module_tuning_data_*.pb`` (``tpu_graphs.ModuleTuningData``)."""
    tuning_pb2, _ = _pb()
    md = _parse(path, tuning_pb2.ModuleTuningData(), tuning_pb2.TuningData(),
                "perfmodel.tpugraphs.read_tile_data")
    if not md.module.computations or not md.runs:
        raise TpuGraphsError(f"{path}: a ModuleTuningData without HLO computations or runs "
                             f"(is it an op_tuning_data file? use read_tile_data); {_FIX}")
    entry, comps = module_instructions(md.module, path)
    rows, errors = [], 0
    for i, r in enumerate(md.runs):
        if r.WhichOneof("config") != "module_config":
            raise TpuGraphsError(f"{path}: run {i} has a {r.WhichOneof('config')} config, "
                                 f"expected a layout module_config; {_FIX}")
        if r.error:
            errors += 1
            continue
        lay = tuple(tuple(tuple(t.dims) for t in n.tensors)
                    for n in r.module_config.layout_config.nodes)
        rows.append(LayoutRow(i, lay, float(r.profile.compute_time_ns), bool(r.is_default)))
    return LayoutModule(md.module.name, int(md.fingerprint), comps, entry,
                        _ops(entry, comps, path, md.module.name),
                        tuple(md.config_index_to_node), rows, errors)


# ----------------------------------------------------------------------------- the model

_BOUNDS = ("kernel", "output", "input", "iteration")
_SLOTS = 4
TILE_FEATURE_NAMES: tuple[str, ...] = (
    *(f"{b}_{k}" for b in _BOUNDS for k in ("n", "log_prod", "n_gt1", "log_max", "log_min")),
    *(f"{b}_log_{j}" for b in _BOUNDS for j in range(_SLOTS)),
    "log_result_elements_per_output_bound", "log_result_bytes_per_output_bound",
    "log_operand_bytes_per_kernel_bound", "log_bound_product",
)


def _l(x: float) -> float:
    return math.log1p(max(float(x), 0.0))


def tile_features(op: HloOp, row: TileRow, spec: HardwareSpec) -> list[float]:
    """The op's features (:func:`perfmodel.features.op_features`) followed by the tile
    configuration's (bounds per kind: count, product, spread, the first four values; the
    result and operand sizes per bound)."""
    f = list(op_features(op, spec))
    bounds = [row.kernel_bounds, row.output_bounds, row.input_bounds, row.iteration_bounds]
    for b in bounds:
        f += [len(b), _l(math.prod(b) if b else 0), sum(x > 1 for x in b),
              _l(max(b) if b else 0), _l(min(b) if b else 0)]
    for b in bounds:
        f += [_l(b[j]) if j < len(b) else -1.0 for j in range(_SLOTS)]
    out_p = math.prod(row.output_bounds) if row.output_bounds else 1
    ker_p = math.prod(row.kernel_bounds) if row.kernel_bounds else 1
    elements = sum(s.elements for s in op.result)
    f += [_l(elements / out_p), _l(op.result_bytes / out_p), _l(op.operand_bytes / ker_p),
          _l(out_p * ker_p)]
    return f


def _matrix(kernels, spec):
    X, y, groups, rows = [], [], [], []
    for g, k in enumerate(kernels):
        if not k.rows:
            continue
        logs = np.log([r.runtime_ns for r in k.rows])
        for r, t in zip(k.rows, logs - logs.mean()):
            X.append(tile_features(k.op, r, spec))
            y.append(t)
            groups.append(g)
            rows.append(r)
    return (np.asarray(X, np.float32), np.asarray(y, np.float64), np.asarray(groups), rows)


def ranking_metrics(pred, runtime, top_k: int = 5) -> dict:
    """Kendall's tau-b between predicted and measured cost of one kernel's configurations,
    and the slowdown of the configuration predicted best (measured runtime / best runtime),
    and TpuGraphs' top-k error (best measured among the k predicted best / best - 1); both
    in expectation over a random order of tied predictions."""
    from scipy import stats
    pred, runtime = np.asarray(pred, float), np.asarray(runtime, float)
    best = runtime.min()
    tied = bool(np.ptp(pred) == 0)
    tau = 0.0 if tied or np.ptp(runtime) == 0 else float(stats.kendalltau(pred, runtime).statistic)
    return {"n_configs": len(pred), "kendall_tau": tau, "prediction_all_tied": tied,
            "slowdown_top1": _expected_topk_min(pred, runtime, 1) / best,
            f"top{top_k}_error": _expected_topk_min(pred, runtime, top_k) / best - 1.0}


def _expected_topk_min(pred: np.ndarray, runtime: np.ndarray, k: int) -> float:
    """Best measured runtime among the k configurations predicted fastest, in expectation over
    a uniformly random order among tied predictions (so ties earn no credit from file order)."""
    k = min(k, len(pred))
    taken, best = 0, math.inf
    for level in np.unique(pred):
        group = np.sort(runtime[pred == level])
        if taken + len(group) <= k:
            best, taken = min(best, group[0]), taken + len(group)
            if taken == k:
                return float(best)
            continue
        m, g = k - taken, len(group)    # m of this group's g configs, chosen at random
        probs = [math.comb(g - i, m - 1) / math.comb(g, m) for i in range(1, g + 1)]
        return float(sum(p * min(best, r) for p, r in zip(probs, group)))
    return float(best)


def _summary(per_kernel: dict[str, dict]) -> dict:
    taus = np.array([m["kendall_tau"] for m in per_kernel.values()])
    slow = np.array([m["slowdown_top1"] for m in per_kernel.values()])
    return {"kernels": len(per_kernel), "kendall_tau_mean": float(taus.mean()),
            "kendall_tau_median": float(np.median(taus)),
            "slowdown_top1_mean": float(slow.mean()),
            "slowdown_top1_median": float(np.median(slow)),
            "slowdown_top1_max": float(slow.max()),
            "top5_error_mean": float(np.mean([m["top5_error"] for m in per_kernel.values()])),
            "kernels_all_tied": int(sum(m["prediction_all_tied"] for m in per_kernel.values()))}


XGB_PARAMS = dict(n_estimators=300, max_depth=6, learning_rate=0.05, subsample=0.9,
                  colsample_bytree=0.9, min_child_weight=2, reg_lambda=1.0)


_OBJECTIVES = {"regression": "xgboost regression of log runtime centred per kernel",
               "pairwise": "xgboost pairwise ranking (rank:pairwise, one query per kernel)"}


def loko_evaluate(kernels: list[TileKernel], target: str = DEFAULT_TARGET, seed: int = 0,
                  xgb_params: dict | None = None, n_jobs: int = 1,
                  objective: str = "regression") -> dict:
    """Leave-one-kernel-out: for each kernel with >= 2 measured configurations, fit XGBoost on
    the other kernels' configurations and rank the held-out kernel's. ``regression`` fits log
    runtime centred per kernel; ``pairwise`` fits XGBoost's pairwise ranking loss with each
    kernel a query (the loss of Kaufman et al.'s tile-size model). Returns per-kernel metrics
    and their mean/median. ``n_jobs`` is 1 by default: these fits take a fraction of a second
    on one thread, and with 2 threads on a host whose 2 cores are busy one fit was measured
    at 95 s of CPU (OpenMP threads spinning) instead of 0.25 s."""
    import xgboost as xgb
    if objective not in _OBJECTIVES:
        raise InputError(f"objective {objective!r}: expected one of {', '.join(_OBJECTIVES)}")
    spec = spec_for(target)
    X, y, groups, _ = _matrix(kernels, spec)
    params = dict(XGB_PARAMS if xgb_params is None else xgb_params)
    per_kernel = {}
    for g, k in enumerate(kernels):
        test = groups == g
        if test.sum() < 2 or (~test).sum() == 0:
            continue
        if objective == "regression":
            m = xgb.XGBRegressor(**params, random_state=seed, n_jobs=n_jobs)
            m.fit(X[~test], y[~test])
            pred = m.predict(X[test])
        else:   # rows are grouped by kernel already (qid must be sorted)
            m = xgb.XGBRanker(**params, objective="rank:pairwise", random_state=seed,
                              n_jobs=n_jobs)
            m.fit(X[~test], -y[~test], qid=groups[~test])   # higher relevance = faster
            pred = -m.predict(X[test])
        per_kernel[k.name] = ranking_metrics(pred, [r.runtime_ns for r in k.rows])
    if not per_kernel:
        raise InputError("leave-one-kernel-out needs at least two kernels, one of them with "
                         ">= 2 measured configurations")
    return {"target": target, "model": _OBJECTIVES[objective], "objective": objective,
            "features": list(FEATURE_NAMES) + list(TILE_FEATURE_NAMES), "xgb_params": params,
            "per_kernel": per_kernel, **_summary(per_kernel)}


def roofline_evaluate(kernels: list[TileKernel], target: str = DEFAULT_TARGET) -> dict:
    """The roofline (max of flops / peak and bytes / bandwidth of the kernel's HLO) as a
    ranking of each kernel's configurations: the same for every tile configuration, so all
    tie (tau 0 by convention, slowdown = mean runtime / best)."""
    spec = spec_for(target)
    per_kernel = {}
    for k in kernels:
        if len(k.rows) < 2:
            continue
        t = spec.roofline_s(k.op.flops, k.op.bytes_accessed)
        per_kernel[k.name] = ranking_metrics([t] * len(k.rows), [r.runtime_ns for r in k.rows])
    return {"target": target, "spec": spec.to_dict(), "per_kernel": per_kernel,
            **_summary(per_kernel)}


def default_config_evaluate(kernels: list[TileKernel]) -> dict:
    """The compiler's own choice (the run marked ``is_default``): its slowdown per kernel."""
    out = {}
    for k in kernels:
        d = [r.runtime_ns for r in k.rows if r.is_default]
        if d and len(k.rows) >= 2:
            out[k.name] = float(d[0] / min(r.runtime_ns for r in k.rows))
    v = np.array(list(out.values()))
    return {"per_kernel_slowdown": out, "slowdown_mean": float(v.mean()),
            "slowdown_median": float(np.median(v)), "slowdown_max": float(v.max())}


# ------------------------------------------------------------------- layout (one module)

def layout_features(module: LayoutModule) -> np.ndarray:
    """One row per layout configuration: for each configurable node, each of its tensors'
    minor-to-major dims (padded with -1; -2 where the tensor's layout is left free), so the
    columns line up across configurations of the same module."""
    n_t = max((len(n) for r in module.rows for n in r.layout), default=0)
    n_d = max((len(t) for r in module.rows for n in r.layout for t in n), default=0)
    X = np.full((len(module.rows), len(module.config_nodes) * n_t * n_d), -1.0, np.float32)
    for i, r in enumerate(module.rows):
        if len(r.layout) != len(module.config_nodes):
            raise TpuGraphsError(f"module {module.name!r}: config {r.config_index} has "
                                 f"{len(r.layout)} nodes, config_index_to_node "
                                 f"{len(module.config_nodes)}; {_FIX}")
        for j, node in enumerate(r.layout):
            for a, t in enumerate(node):
                base = (j * n_t + a) * n_d
                if not t:
                    X[i, base] = -2.0
                X[i, base:base + len(t)] = t
    return X


def layout_kfold_evaluate(module: LayoutModule, folds: int = 5, seed: int = 0,
                          xgb_params: dict | None = None) -> dict:
    """Layout configurations of ONE module split into ``folds`` random folds by distinct
    layout (not leave-one-module-out: there is one module); XGBoost on the layout features
    ranks each held-out fold. Kendall tau / top-1 slowdown per fold, against the best of that
    fold; and how far repeated measurements of the same layout lie apart (the noise floor)."""
    import xgboost as xgb
    if len(module.rows) < 2 * folds:
        raise InputError(f"module {module.name!r}: {len(module.rows)} configurations, need "
                         f">= {2 * folds} for {folds} folds")
    X = layout_features(module)
    y = np.log([r.runtime_ns for r in module.rows])
    # folds by distinct layout: a layout measured twice is never on both sides of a split
    ids = {lay: i for i, lay in enumerate(dict.fromkeys(r.layout for r in module.rows))}
    lay_id = np.array([ids[r.layout] for r in module.rows])
    fold_of = np.empty(len(ids), int)
    fold_of[np.random.default_rng(seed).permutation(len(ids))] = np.arange(len(ids)) % folds
    params = dict(XGB_PARAMS if xgb_params is None else xgb_params)
    per_fold = []
    for f in range(folds):
        test = fold_of[lay_id] == f
        m = xgb.XGBRegressor(**params, random_state=seed, n_jobs=1)
        m.fit(X[~test], y[~test] - y[~test].mean())
        per_fold.append(ranking_metrics(m.predict(X[test]), np.exp(y[test])))
    taus = [p["kendall_tau"] for p in per_fold]
    slow = [p["slowdown_top1"] for p in per_fold]
    # repeat measurements of one layout: how far apart they are, next to the whole spread
    rep = [np.ptp(y[lay_id == i]) for i in range(len(ids)) if (lay_id == i).sum() > 1]
    return {"module": module.name, "configs": len(y), "distinct_layouts": len(ids),
            "repeated_layouts": len(rep),
            "repeat_log_spread_median": float(np.median(rep)) if rep else None,
            "log_spread_all": float(np.ptp(y)),
            "folds": folds, "per_fold": per_fold, "kendall_tau_mean": float(np.mean(taus)),
            "slowdown_top1_mean": float(np.mean(slow)), "features": int(X.shape[1])}
