"""Analytic per-op TPU cost against a real TPU v6e capture.

For every HLO op of ``tests/fixtures/tpu_inference_2`` (a real "TPU v6 Lite" = v6e capture of
a JAX host-offload stress test; XProf's per-op table with each op's HLO text and self time),
:func:`perfmodel.hlo_cost.cost_instruction` costs the op from its text alone and
:func:`perfmodel.hlo_cost.roofline_s` turns that into seconds with the v6e spec of
:mod:`perfmodel.hardware` (per chip = per core: v6e has one TensorCore): compute ops
max(flops / peak, bytes / HBM), collectives bounded by ICI, host copies by the host link.
Reported: Spearman of estimate vs measured average self time over all ops, over the kernels
(compute ops: fusions, broadcasts) and per XProf category, after one global scale (the median
of measured / estimated over ops with a non-zero estimate; Spearman itself is scale-free, the
scale is reported with the log10 error it leaves), next to flops-only and bytes-only baselines.
Two analytic estimates: ``analytic_us``, each op alone (roofline of its text), and
``scheduled_us``, the time each op adds in its execution's order (the trace's op order on each
device; :func:`perfmodel.hlo_cost.exposed_seconds`): an async copy's transfer overlaps the ops
between its -start and -done, and the -done shows only the rest. (Added after seeing the
per-op roofline rank two copy-dones that return at once as the slowest ops; it uses the
order of execution, not measured times.) ``ceiling_text_only``: the Spearman of the mean
measured time of ops whose text differs only in names, the best any estimate from an op's text
alone can reach on this capture. The same per execution (every op event of the trace) and our
flops/bytes against XProf's ``model_flops`` / ``bytes_accessed`` per op. The trace is the
workspace's XProf-derived copy when present, else converted from the fixture with ``xprof``.

    python benchmarks/tpu_capture.py

Writes benchmarks/results/tpu_capture.json.
"""

from __future__ import annotations

import gzip
import json
import re
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_result  # noqa: E402

import numpy as np  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from perfmodel.hardware import TPU_LINKS, spec_for_device_type, target_for_device_type  # noqa
from perfmodel.hlo import _parse_instr  # noqa: E402
from perfmodel.hlo_cost import cost_instruction, exposed_seconds, roofline_s  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
DERIVED = (ROOT.parent / "shared" / "data" / "tpu_traces" / "derived_by_xprof_2.24.2"
           / "tpu_inference_2.trace.json.gz")
GOALS = {"kernels": 0.95, "all": 0.85}


def device_type(xplane: Path) -> str:
    """The device name the capture records, from XProf's overview page (``device_type``)."""
    from perfmodel.trace import xprof_tool_data
    data = xprof_tool_data(xplane, "overview_page")
    text = data.decode() if isinstance(data, bytes) else data
    found = set(re.findall(r'"device_type"\s*:\s*"([^"]+)"', text))
    if len(found) != 1:
        raise SystemExit(f"{xplane}: expected one device_type in XProf's overview page, "
                         f"found {sorted(found)}")
    return found.pop()


def load_rows() -> list[dict]:
    d = json.loads(gzip.decompress((FIX / "tpu_inference_2.hlo_stats.json.gz").read_bytes()))
    cols = [c["id"] for c in d["cols"]]
    return [dict(zip(cols, [c.get("v") for c in r["c"]])) for r in d["rows"]]


def spearman(pred, meas) -> dict:
    pred, meas = np.asarray(pred, float), np.asarray(meas, float)
    n = len(pred)
    if n < 3:
        return {"rho": None, "n": n, "note": "fewer than 3 ops"}
    if np.ptp(pred) == 0:
        return {"rho": None, "n": n, "note": "every estimate equal (same shapes): no ranking"}
    if np.ptp(meas) == 0:
        return {"rho": None, "n": n, "note": "every measured time equal"}
    return {"rho": float(spearmanr(pred, meas).statistic), "n": n}


def scaled_error(pred, meas) -> dict:
    pred, meas = np.asarray(pred, float), np.asarray(meas, float)
    ok = (pred > 0) & (meas > 0)
    if not ok.any():
        return {"scale": None}
    scale = float(np.median(meas[ok] / pred[ok]))
    err = np.abs(np.log10(scale * pred[ok] / meas[ok]))
    return {"scale": scale, "median_abs_log10_err": float(np.median(err)),
            "max_abs_log10_err": float(err.max()), "n_nonzero": int(ok.sum())}


def main() -> None:
    dtype = device_type(FIX / "tpu_inference_2.xplane.pb")
    target = target_for_device_type(dtype)
    chip, core = spec_for_device_type(dtype, "chip"), spec_for_device_type(dtype, "core")
    links = TPU_LINKS.get(target)
    rows = load_rows()
    ops = []
    for r in rows:
        c = cost_instruction(r["hlo_op_expression"])
        ops.append({"op": r["hlo_op_name"], "category": r["category"], "kind": c.kind,
                    "occurrences": r["occurrences"], "measured_us": r["avg_self_time"],
                    "flops": c.flops, "bytes": c.bytes_accessed, "link_bytes": c.link_bytes,
                    "link": c.link, "rule": c.rule,
                    "analytic_us": roofline_s(c, core, links) * 1e6,
                    "flops_only_us": c.flops / core.peak_flops_per_s * 1e6,
                    "bytes_only_us": c.bytes_accessed / core.hbm_bytes_per_s * 1e6})
    trace = load_trace()
    sched = scheduled(trace, rows, core, links)
    for o in ops:
        o["scheduled_us"] = sched.get(o["op"], o["analytic_us"])
    estimators = ("scheduled_us", "analytic_us", "flops_only_us", "bytes_only_us")

    # ops whose text differs only in names get the same estimate from any text-only model;
    # the mean measured time of each such group is the best a text-only estimate can rank
    shape_key = {r["hlo_op_name"]: re.sub(r"%[\w.\-]+", "%", r["hlo_op_expression"])
                 for r in rows}
    groups_t = defaultdict(list)
    for o in ops:
        groups_t[shape_key[o["op"]]].append(o["measured_us"])
    for o in ops:
        o["text_oracle_us"] = float(np.mean(groups_t[shape_key[o["op"]]]))

    def table(sel):
        meas = [o["measured_us"] for o in sel]
        out = {e: {**spearman([o[e] for o in sel], meas),
                   **scaled_error([o[e] for o in sel], meas)} for e in estimators}
        out["ceiling_text_only"] = spearman([o["text_oracle_us"] for o in sel], meas)
        return out

    groups = {"all": ops, "kernels": [o for o in ops if o["kind"] == "compute"]}
    by_cat = defaultdict(list)
    for o in ops:
        by_cat[o["category"]].append(o)
    per_op = {g: table(sel) for g, sel in groups.items()}
    per_category = {c: table(sel) for c, sel in sorted(by_cat.items())}
    goals = {g: {"goal": thr, **{e: {"rho": per_op[g][e]["rho"],
                                      "met": (per_op[g][e]["rho"] or -1) >= thr}
                                  for e in ("analytic_us", "scheduled_us")}}
             for g, thr in GOALS.items()}

    result = {"capture": "tests/fixtures/tpu_inference_2 (TPU v6e, XProf 2.24.2 hlo_stats)",
              "device_type": dtype, "target": target, "spec_chip": chip.to_dict(),
              "spec_core": core.to_dict(),
              "links": None if links is None else {"ici_bytes_per_s": links.ici_bytes_per_s,
                                                   "host_bytes_per_s": links.host_bytes_per_s,
                                                   "source": links.source},
              "n_ops": len(ops), "per_op": per_op, "per_category": per_category,
              "goals": goals, "ops": ops}

    result["per_event"], result["vs_xprof"] = per_event(ops, trace)

    path = write_result("tpu_capture", result)
    print(f"{dtype} -> {target}; {len(ops)} ops")
    for g in groups:
        print(g, {e: per_op[g][e].get("rho") for e in estimators},
              "text-only ceiling", per_op[g]["ceiling_text_only"].get("rho"))
    for c, t in per_category.items():
        print(f"  {c:14s}", {e: t[e].get("rho") for e in estimators},
              t["analytic_us"].get("note", ""))
    if True:
        print("per event", {e: result["per_event"][e].get("rho") for e in estimators})
    print("goals", goals)
    print("wrote", path)


def load_trace() -> dict:
    """XProf's trace of the capture: the workspace's derived copy, else converted here."""
    if DERIVED.is_file():
        return json.loads(gzip.decompress(DERIVED.read_bytes()))
    from perfmodel.trace import xplane_to_trace_json
    return xplane_to_trace_json(FIX / "tpu_inference_2.xplane.pb")


def _op_events(trace):
    ev = trace["traceEvents"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in ev
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    return [e for e in ev if e.get("ph") in ("X", "i")
            and threads.get((e.get("pid"), e.get("tid"))) == "XLA Ops"
            and "device_duration_ps" in (e.get("args") or {})]


def scheduled(trace, rows, spec, links) -> dict[str, float]:
    """Per op: the mean over its executions of the time it adds in its execution's order
    (:func:`perfmodel.hlo_cost.exposed_seconds`: async transfers overlap the ops between their
    -start and -done, transfers on one link direction queue)."""
    text = {r["hlo_op_name"]: r["hlo_op_expression"] for r in rows}
    parsed = {n: (_parse_instr(t), cost_instruction(t)) for n, t in text.items()}
    runs = defaultdict(list)
    for e in _op_events(trace):
        if e["name"] in parsed:
            runs[(e["pid"], e["args"].get("group_id"))].append(e)
    acc = defaultdict(list)
    for evs in runs.values():
        evs.sort(key=lambda e: float(e["args"].get("device_offset_ps", e["ts"])))
        seq = [(e["name"], *parsed[e["name"]]) for e in evs]
        for (name, _, _), dt in zip(seq, exposed_seconds(
                seq, lambda c: roofline_s(c, spec, links))):
            acc[name].append(dt * 1e6)
    return {n: float(np.mean(v)) for n, v in acc.items()}


def per_event(ops, trace):
    """Every op execution of the trace (all TPUs) against its op's estimate, and our
    flops/bytes against XProf's own per op."""
    ev = trace["traceEvents"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in ev
               if e.get("ph") == "M" and e.get("name") == "thread_name"}
    est = {o["op"]: o for o in ops}
    xs = {e: [] for e in ("scheduled_us", "analytic_us", "flops_only_us", "bytes_only_us")}
    meas, xprof = [], {}
    for e in ev:
        if e.get("ph") not in ("X", "i") or threads.get((e.get("pid"), e.get("tid"))) != "XLA Ops":
            continue
        a = e.get("args") or {}
        o = est.get(e.get("name"))
        if o is None or "device_duration_ps" not in a:
            continue
        meas.append(float(a["device_duration_ps"]) / 1e6)
        for k in xs:
            xs[k].append(o[k])
        xprof.setdefault(e["name"], (float(a.get("model_flops", "nan")),
                                     float(a.get("bytes_accessed", "nan"))))
    out = {k: {**spearman(v, meas), **scaled_error(v, meas)} for k, v in xs.items()}
    vs = {name: {"ours_flops": est[name]["flops"], "xprof_model_flops": f,
                 "ours_bytes": est[name]["bytes"], "xprof_bytes_accessed": b}
          for name, (f, b) in sorted(xprof.items())}
    return out, vs


if __name__ == "__main__":
    main()
