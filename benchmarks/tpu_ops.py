"""A learned TPU op model on real TPU timings: the TpuGraphs testdata (issue 16).

``op_tuning_data.pb`` holds 15 TPU kernels (fusions, copies, reshapes), each measured under
2-581 tile-size configurations. The project's op features (on a TPU v3 spec) plus tile features
feed an XGBoost regressor of log runtime, evaluated **leave-one-kernel-out**: for each kernel, a
model fitted on the other 14 ranks its configurations. Reported per held-out kernel and as
mean/median over kernels: Kendall's tau-b between predicted and measured runtime, and the
slowdown of the configuration ranked first (its runtime / the best runtime), as in Kaufman et
al. (MLSys'21) and TpuGraphs (top-5 error too). Beside it, on the same configurations:

* the roofline (max(flops / peak, bytes / bandwidth) of the kernel's HLO on a TPU v3): tile
  sizes change neither, so it ties every configuration of a kernel (tau 0, the slowdown of a
  random pick, i.e. mean runtime / best);
* the compiler's own choice (the run marked ``is_default``; the data carry no per-config
  estimate of the compiler).

The model, its features and hyperparameters were fixed before the first evaluation on these
kernels and not changed after (there is no other TPU data to tune on). One variant was added
after those results were seen and is labelled so: the same features with XGBoost's pairwise
ranking loss (one query per kernel), the loss Kaufman et al. train their tile-size model with.
Kernels with 2 or 3 configurations can only score tau in {-1, 1} or {-1, -1/3, 1/3, 1} (and 0
on ties); the summary is also given over the 8 kernels with >= 10 configurations. Three reshapes have configurations that are identical in
every field of the tile config, so every model ties on them.

``module_tuning_data_layout.pb`` (one program under 122 layout configurations) is read and
summarised; with one module there is no leave-one-module-out evaluation to run, so the layout
model is only evaluated within that module (5 folds by distinct layout), labelled as such.

    python benchmarks/tpu_ops.py [--data DIR]

Writes benchmarks/results/tpu_ops.json.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

import numpy as np  # noqa: E402

from perfmodel.tpugraphs import (DEFAULT_TARGET, default_config_evaluate,  # noqa: E402
                                 layout_kfold_evaluate, loko_evaluate, read_layout_data,
                                 read_tile_data, roofline_evaluate)
from perfmodel.hardware import spec_for  # noqa: E402

GOAL_TAU = 0.8


def _subset(per_kernel: dict, names) -> dict:
    taus = [per_kernel[n]["kendall_tau"] for n in names]
    slow = [per_kernel[n]["slowdown_top1"] for n in names]
    return {"kernels": len(names), "kendall_tau_mean": float(np.mean(taus)),
            "kendall_tau_median": float(np.median(taus)),
            "slowdown_top1_mean": float(np.mean(slow)),
            "slowdown_top1_median": float(np.median(slow))}


def main():
    ap = argparse.ArgumentParser()
    default = Path(os.environ.get("HWDISTILL_DATA", "data")) / "tpu_traces" / "tpu_graphs_testdata"
    ap.add_argument("--data", type=Path, default=default,
                    help="folder with op_tuning_data.pb and module_tuning_data_layout.pb")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    t0 = time.time()
    kernels = read_tile_data(args.data / "op_tuning_data.pb")
    read_s = time.time() - t0
    print(f"{len(kernels)} kernels, {sum(len(k.rows) for k in kernels)} measured configs "
          f"({sum(k.n_errors for k in kernels)} error runs dropped), read in {read_s:.2f}s")

    t0 = time.time()
    model = loko_evaluate(kernels, seed=args.seed)
    loko_s = time.time() - t0
    # added after the first results were seen (labelled so in the JSON): the pairwise ranking
    # loss of Kaufman et al.'s tile-size model, same features and hyperparameters
    pairwise = loko_evaluate(kernels, seed=args.seed, objective="pairwise")
    roof = roofline_evaluate(kernels)
    default_cfg = default_config_evaluate(kernels)

    big = [k.name for k in kernels if len(k.rows) >= 10]
    # kernels whose measured configurations differ in their tile config (three reshapes ran
    # configurations identical in every field: no model of the config can rank them)
    distinct = [k.name for k in kernels if len(k.rows) >= 2 and len(
        {(r.kernel_bounds, r.output_bounds, r.input_bounds, r.iteration_bounds)
         for r in k.rows}) > 1]
    print(f"\n{'kernel':12s} {'configs':>7s} {'tau':>6s} {'slow@1':>7s} {'top5err':>7s} "
          f"{'roof slow':>9s} {'default':>7s}")
    for k in kernels:
        if k.name not in model["per_kernel"]:
            continue
        m, r = model["per_kernel"][k.name], roof["per_kernel"][k.name]
        print(f"{k.name:12s} {m['n_configs']:7d} {m['kendall_tau']:6.3f} "
              f"{m['slowdown_top1']:7.3f} {m['top5_error']:7.3f} {r['slowdown_top1']:9.3f} "
              f"{default_cfg['per_kernel_slowdown'][k.name]:7.3f}"
              + ("  (all tied)" if m["prediction_all_tied"] else ""))
    summary = {
        "all_kernels": {"model": {k: model[k] for k in ("kernels", "kendall_tau_mean",
                                                        "kendall_tau_median",
                                                        "slowdown_top1_mean",
                                                        "slowdown_top1_median",
                                                        "slowdown_top1_max",
                                                        "top5_error_mean",
                                                        "kernels_all_tied")},
                        "roofline": {k: roof[k] for k in ("kernels", "kendall_tau_mean",
                                                          "kendall_tau_median",
                                                          "slowdown_top1_mean",
                                                          "slowdown_top1_median",
                                                          "slowdown_top1_max",
                                                          "top5_error_mean",
                                                          "kernels_all_tied")},
                        "compiler_default": {k: default_cfg[k] for k in
                                             ("slowdown_mean", "slowdown_median",
                                              "slowdown_max")}},
        "pairwise_variant_post_hoc": {
            "note": "added after the regression results were seen; not the headline",
            **{k: pairwise[k] for k in ("model", "kernels", "kendall_tau_mean",
                                        "kendall_tau_median", "slowdown_top1_mean",
                                        "slowdown_top1_median", "slowdown_top1_max")}},
        "kernels_with_distinct_configs": {
            "names": distinct, "model": _subset(model["per_kernel"], distinct),
            "pairwise_variant": _subset(pairwise["per_kernel"], distinct),
            "roofline": _subset(roof["per_kernel"], distinct)},
        "kernels_with_10_or_more_configs": {
            "names": big, "model": _subset(model["per_kernel"], big),
            "roofline": _subset(roof["per_kernel"], big),
            "compiler_default_slowdown_mean": float(np.mean(
                [default_cfg["per_kernel_slowdown"][n] for n in big]))},
    }
    a = summary["all_kernels"]
    print(f"\nleave-one-kernel-out over {a['model']['kernels']} kernels ({loko_s:.0f}s):")
    print(f"  learned  tau mean {a['model']['kendall_tau_mean']:.3f} median "
          f"{a['model']['kendall_tau_median']:.3f}; slowdown of predicted best mean "
          f"{a['model']['slowdown_top1_mean']:.3f} median {a['model']['slowdown_top1_median']:.3f}"
          f" max {a['model']['slowdown_top1_max']:.3f}; top-5 error mean "
          f"{a['model']['top5_error_mean']:.3f}")
    print(f"  roofline tau mean {a['roofline']['kendall_tau_mean']:.3f} (all "
          f"{a['roofline']['kernels_all_tied']} kernels tied); slowdown (random pick among "
          f"ties) mean {a['roofline']['slowdown_top1_mean']:.3f}; top-5 error mean "
          f"{a['roofline']['top5_error_mean']:.3f}")
    print(f"  compiler default config: slowdown mean {a['compiler_default']['slowdown_mean']:.3f}"
          f" median {a['compiler_default']['slowdown_median']:.3f}")
    b = summary["kernels_with_10_or_more_configs"]
    print(f"  the {b['model']['kernels']} kernels with >= 10 configs: learned tau mean "
          f"{b['model']['kendall_tau_mean']:.3f} median {b['model']['kendall_tau_median']:.3f}, "
          f"slowdown mean {b['model']['slowdown_top1_mean']:.3f}; roofline slowdown mean "
          f"{b['roofline']['slowdown_top1_mean']:.3f}; default "
          f"{b['compiler_default_slowdown_mean']:.3f}")
    pw = summary["pairwise_variant_post_hoc"]
    print(f"  pairwise-ranking variant (post hoc): tau mean {pw['kendall_tau_mean']:.3f} median "
          f"{pw['kendall_tau_median']:.3f}; slowdown mean {pw['slowdown_top1_mean']:.3f} "
          f"max {pw['slowdown_top1_max']:.3f}")
    c = summary["kernels_with_distinct_configs"]
    print(f"  the {c['model']['kernels']} kernels whose configs differ: learned tau mean "
          f"{c['model']['kendall_tau_mean']:.3f} median {c['model']['kendall_tau_median']:.3f}; "
          f"pairwise tau mean {c['pairwise_variant']['kendall_tau_mean']:.3f} median "
          f"{c['pairwise_variant']['kendall_tau_median']:.3f}")
    goal = {"kendall_tau_goal": GOAL_TAU,
            "tau_mean_met": a["model"]["kendall_tau_mean"] >= GOAL_TAU,
            "tau_median_met": a["model"]["kendall_tau_median"] >= GOAL_TAU,
            "better_than_roofline": (a["model"]["kendall_tau_mean"]
                                     > a["roofline"]["kendall_tau_mean"]
                                     and a["model"]["slowdown_top1_mean"]
                                     < a["roofline"]["slowdown_top1_mean"]),
            "better_than_compiler_default_slowdown": (a["model"]["slowdown_top1_mean"]
                                                      < a["compiler_default"]["slowdown_mean"])}
    print(f"  goal tau >= {GOAL_TAU}: mean {'met' if goal['tau_mean_met'] else 'NOT met'}, "
          f"median {'met' if goal['tau_median_met'] else 'NOT met'}; better than the roofline: "
          f"{goal['better_than_roofline']}; better than the compiler's default: "
          f"{goal['better_than_compiler_default_slowdown']}")

    layout = None
    lpath = args.data / "module_tuning_data_layout.pb"
    if lpath.is_file():
        lm = read_layout_data(lpath)
        rt = np.array([r.runtime_ns for r in lm.rows])
        dflt = [r.runtime_ns for r in lm.rows if r.is_default]
        spec = spec_for(DEFAULT_TARGET)
        flops = sum(o.flops for o in lm.ops)
        nbytes = sum(o.bytes_accessed for o in lm.ops)
        layout = {"module": lm.name, "configs": len(lm.rows), "error_runs": lm.n_errors,
                  "configurable_nodes": len(lm.config_nodes), "executed_entry_ops": len(lm.ops),
                  "runtime_ms_min": float(rt.min() / 1e6), "runtime_ms_max": float(rt.max() / 1e6),
                  "runtime_spread": float(rt.max() / rt.min()),
                  "default_slowdown": float(dflt[0] / rt.min()) if dflt else None,
                  "random_pick_slowdown": float(rt.mean() / rt.min()),
                  "roofline_ms_entry_ops": spec.roofline_s(flops, nbytes) * 1e3,
                  "note": "one module: no leave-one-module-out evaluation is possible; the "
                          "roofline of the entry's ops is the same for every layout config "
                          "(layouts change neither flops nor bytes), so it ties"}
        kf = layout_kfold_evaluate(lm, seed=args.seed)
        layout["within_module_5fold"] = {
            "protocol": "NOT leave-one-module-out: the one module's configurations split into "
                        "5 folds by distinct layout; XGBoost on layout features (per node and "
                        "tensor, minor-to-major dims), same hyperparameters as the tile model",
            **kf}
        print(f"\nlayout data: {lm.name}, {len(lm.rows)} configs ({lm.n_errors} errors), "
              f"runtime {layout['runtime_ms_min']:.1f}-{layout['runtime_ms_max']:.1f} ms "
              f"(spread {layout['runtime_spread']:.4f}x), default config slowdown "
              f"{layout['default_slowdown']:.4f}")
        print(f"  within this one module (5 folds by distinct layout, not leave-one-module-out):"
              f" tau mean {kf['kendall_tau_mean']:.3f}, per fold "
              + ", ".join(f"{p['kendall_tau']:.2f}" for p in kf["per_fold"]) + "; "
              f"{kf['distinct_layouts']} distinct layouts, {kf['repeated_layouts']} measured "
              f"more than once (median repeat spread {kf['repeat_log_spread_median']:.1e} in log "
              f"runtime vs {kf['log_spread_all']:.3f} over all)")

    res = {"command": "python benchmarks/tpu_ops.py " + " ".join(sys.argv[1:]),
           "data": str(args.data), "target_spec": spec_for(DEFAULT_TARGET).to_dict(),
           "hardware_note": "TpuGraphs timings were collected on TPU v3 (the TpuGraphs paper); "
                            "the testdata files do not name their chip",
           "protocol": "leave-one-kernel-out; model, features and hyperparameters fixed "
                       "before the first evaluation, not tuned on these kernels",
           "summary": summary, "goal": goal, "loko_seconds": loko_s, "read_seconds": read_s,
           "model": {k: model[k] for k in ("model", "features", "xgb_params", "target")},
           "per_kernel": {"model": model["per_kernel"], "roofline": roof["per_kernel"],
                          "pairwise_variant": pairwise["per_kernel"],
                          "compiler_default_slowdown": default_cfg["per_kernel_slowdown"]},
           "layout": layout}
    print(f"wrote {write_result('tpu_ops', res)}")


if __name__ == "__main__":
    main()
