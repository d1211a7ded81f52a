"""A TPU profiler capture (``*.xplane.pb``) as op-timing records: what
``hwdistill store import CAPTURE.xplane.pb`` stores, so that ``hwdistill fit --target tpu-<gen>``
can train the latency model on real TPU timings.

A capture of programs run on a TPU (``jax.profiler.trace`` on a TPU VM, XProf, TensorBoard)
holds, per TPU, the device time of every executed HLO op (thread "XLA Ops"), every execution of
every module ("XLA Modules"), the device type as the runtime names it (``device_type_string``,
"TPU v6 Lite") and, in its ``/host:metadata`` plane, the HLO of every module. The official XProf
converter (:func:`perfmodel.trace.xprof_capture`) gives the trace and each module's HLO text;
the text gives the module's executed ops (:func:`perfmodel.hlo.executed_ops`, the same op
records and features a prediction builds from an ahead-of-time compile), joined by instruction
name to their measured times (:func:`perfmodel.profile.join_events`).

Each module that ran timed ops is one program. Its ops' times are medians over its executions on
every TPU of the capture (identical chips running the same program), after dropping each
device's first execution as warm-up when the device ran the module more than once; its
end-to-end latency is the median duration of the same executions (the "XLA Modules" events).
Medians, because XProf's grouping of op events into executions is not always clean: in the
committed v6e capture, on three of the four TPUs one execution of ``jit_f`` has 4 of its 15 op
events in the previous execution's group and 11 in a group with no module event. Op events in
such a group cannot be attributed to a module; they are counted in
:attr:`Capture.unattributed_events` and reported, not stored.

The hardware fingerprint records the target, the device type and the number of devices. A
capture does not say which host CPU or which jax / libtpu versions ran it, so those fields read
``unknown (profiler capture)`` / empty: two captures of one TPU type and device count share a
fingerprint and train one model.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from measurements import HardwareFingerprint, LatencyRecord, OpTiming, Store
from measurements.errors import HwdistillError, InputError, MissingError

from .hardware import target_for_device_type
from .profile import ProgramProfile, join_events
from .sweep import PROFILE_TAG
from .trace import TraceError, parse_events, parse_module_runs, xprof_capture

__all__ = ["Capture", "CaptureProgram", "CaptureError", "UnreadableCaptureError",
           "read_capture", "capture_records", "store_capture", "fingerprint_of", "UNKNOWN_HOST"]

UNKNOWN_HOST = "unknown (profiler capture)"
_FIX = ("pass the *.xplane.pb a TPU profile wrote (jax.profiler.trace or XProf, under "
        "plugins/profile/RUN/), unmodified")


class CaptureError(TraceError):
    """A profiler capture is unreadable, not of a TPU, or lacks what an import needs."""


class UnreadableCaptureError(CaptureError):
    """The file does not parse as a profiler capture (XSpace) at all."""


@dataclasses.dataclass(frozen=True)
class CaptureProgram:
    module: str                       # as the profiler names it: "jit_f(1219...)"
    profile: ProgramProfile           # executed ops joined to their measured times
    latency_us: tuple[float, ...]     # end-to-end time of each kept execution
    executions: int                   # executions in the capture, before warm-up is dropped


@dataclasses.dataclass(frozen=True)
class Capture:
    path: Path
    sha256: str
    device_type: str                  # as the profiler names it: "TPU v6 Lite"
    target: str                       # ours: "tpu-v6e"
    devices: tuple[str, ...]          # "/device:TPU:0", ...
    programs: tuple[CaptureProgram, ...]
    skipped: dict[str, str]           # module -> why it is not a program
    unattributed_events: int          # op events in a group with no module event


def _device_planes(data: bytes, path: Path) -> dict[str, str]:
    """``{"/device:TPU:0": "TPU v6 Lite", ...}``: every device plane and its device type."""
    from jax.profiler import ProfileData
    try:
        space = ProfileData.from_serialized_xspace(data)
        planes = {p.name: dict(p.stats) for p in space.planes}
    except Exception as e:  # the C++ reader raises RuntimeError("Failed to parse XSpace ...")
        raise UnreadableCaptureError(
            f"{path} is not a readable profiler capture (XSpace protobuf): {type(e).__name__}: "
            f"{e}. The file is corrupt or truncated, or of another kind; {_FIX}") from None
    devices = {n: str(s.get("device_type_string", "")) for n, s in planes.items()
               if n.startswith("/device:")}
    tpus = {n: t for n, t in devices.items() if n.startswith("/device:TPU:")}
    if not tpus:
        raise CaptureError(
            f"{path} has no TPU device plane (planes: {sorted(planes)[:8]}): it is not a TPU "
            "capture. `hwdistill store import` imports TPU captures; profile the program on a "
            "TPU VM (jax.profiler.trace) and import the *.xplane.pb it writes")
    return tpus


def read_capture(path: str | Path, *, warmup_runs: int = 1) -> Capture:
    """Read a TPU capture into programs of timed ops (nothing is written anywhere; the
    converter works on a private copy)."""
    p = Path(path)
    if not p.is_file():
        raise MissingError(f"capture {p} does not exist; {_FIX}")
    data = p.read_bytes()
    if not data:
        raise UnreadableCaptureError(f"{p} is empty; {_FIX}")
    tpus = _device_planes(data, p)
    kinds = sorted(set(tpus.values()))
    if len(kinds) != 1 or not kinds[0]:
        raise CaptureError(f"{p}: its TPU planes name device types {kinds}; expected one "
                           f"(e.g. 'TPU v6 Lite'). Import a capture of one TPU type; {_FIX}")
    try:
        target = target_for_device_type(kinds[0])
    except InputError as e:
        raise CaptureError(f"{p}: {e}. Add the device to perfmodel/hardware.py "
                           "(PROFILER_DEVICE_NAMES, TPU_SPECS) with its published figures") from None
    trace, modules = xprof_capture(p)
    try:
        programs, skipped, unattributed = _programs(trace, modules, warmup_runs)
    except CaptureError as e:
        raise CaptureError(f"{p}: {e}") from None
    except HwdistillError as e:     # an HLO text or an event XProf gave that we cannot read
        raise CaptureError(f"{p}: {e}; the capture is corrupt or from an XProf/XLA version "
                           f"this hwdistill cannot read; {_FIX}") from None
    if not programs:
        raise CaptureError(f"{p}: no module of the capture ran an op the profiler timed "
                           f"(modules: {sorted(skipped) or 'none'}); nothing to import. "
                           "Profile a run of the program itself, on the TPU")
    return Capture(p, hashlib.sha256(data).hexdigest(), kinds[0], target, tuple(sorted(tpus)),
                   tuple(programs), skipped, unattributed)


def _programs(trace: dict, modules: dict[str, str], warmup_runs: int):
    events = [e for e in parse_events(trace) if e.device.startswith("/device:TPU:")]
    runs = [r for r in parse_module_runs(trace) if r.device.startswith("/device:TPU:")]
    module_of = {r.run: r.module for r in runs}
    by_module = defaultdict(list)
    for r in runs:
        by_module[r.module].append(r)
    timed = defaultdict(list)
    unattributed = 0
    for e in events:
        m = module_of.get(e.run)
        if m is None:
            unattributed += 1
        else:
            timed[m].append(e)
    programs, skipped = [], {}
    for m in sorted(by_module):
        if not timed.get(m):
            skipped[m] = "ran no op the profiler timed"
            continue
        if m not in modules:
            raise CaptureError(
                f"module {m!r} ran {len(timed[m])} timed op(s) but the capture carries no HLO "
                f"for it (HLO of: {sorted(modules) or 'no module'}); it was probably written "
                "without the /host:metadata plane, or is damaged")
        kept = []
        per_device = defaultdict(list)
        for r in by_module[m]:
            per_device[r.device].append(r)
        for rs in per_device.values():
            rs.sort(key=lambda r: r.ts_us)
            kept += rs[warmup_runs:] if len(rs) > warmup_runs else rs
        kept_runs = {r.run for r in kept}
        evs = [dataclasses.replace(e, module=m) for e in timed[m] if e.run in kept_runs]
        prof = join_events(modules[m], evs, module=m, warmup_runs=0)
        programs.append(CaptureProgram(m, prof, tuple(r.dur_us for r in kept),
                                       len(by_module[m])))
    return programs, skipped, unattributed


def fingerprint_of(cap: Capture) -> HardwareFingerprint:
    return HardwareFingerprint(
        target=cap.target, platform="tpu", device_kind=cap.device_type,
        device_count=len(cap.devices), cpu_model=UNKNOWN_HOST, cpu_cores=0, jax_version="",
        jaxlib_version="", libtpu_version="", xla_flags="")


def _spread(x) -> tuple[float, float, float]:
    q1, med, q3, p90 = np.percentile(np.asarray(x, float), [25, 50, 75, 90])
    return float(med), float(q3 - q1), float(p90)


def capture_records(cap: Capture) -> tuple[HardwareFingerprint, list[OpTiming],
                                           list[LatencyRecord]]:
    """The fingerprint, op timings and per-program latencies of a capture, keyed by content
    (program hash, op name), so storing them twice stores them once."""
    fp = fingerprint_of(cap)
    run_id = f"import-{cap.sha256[:12]}"
    ops, lats = [], []
    for prog in cap.programs:
        pr = prog.profile
        ops += [OpTiming(fingerprint_id=fp.id, program=pr.program, op_name=op.name,
                         opcode=op.opcode, time_us_median=st.time_us_median,
                         time_us_iqr=st.time_us_iqr, time_us_p90=st.time_us_p90,
                         n_runs=st.n_runs, features=op.to_dict(), run_id=run_id)
                for op, st in pr.ops]
        med, iqr, p90 = _spread(prog.latency_us)
        lats.append(LatencyRecord(
            fp.id, {"hlo_module": prog.module, "program": pr.program},
            {"source": "profiler-capture"}, med / 1e3, iqr / 1e3, p90 / 1e3,
            len(prog.latency_us), compile_s=math.nan, run_id=run_id, tag=PROFILE_TAG,
            extra={"program": pr.program, "sum_op_us": pr.sum_op_us, "n_ops": len(pr.ops),
                   "not_in_trace": list(pr.not_in_trace), "capture": cap.path.name,
                   "capture_sha256": cap.sha256, "devices": len(cap.devices),
                   "executions": prog.executions}))
    return fp, ops, lats


def store_capture(store: Store, cap: Capture) -> dict:
    """Write a capture's records (idempotent: a program already stored adds nothing). The
    latencies go last: they mark a program as profiled (as :func:`perfmodel.sweep.profile_pairs`
    does), so an import killed half-way is completed by running it again."""
    fp, ops, lats = capture_records(cap)
    run_id = ops[0].run_id
    known_run = any(r["id"] == run_id for r in store.runs())
    store.register_fingerprint(fp)
    new_ops = store.put_op_timings(ops)
    new_lats = store.put_latencies(lats)
    if not known_run:
        store.start_run("import", fingerprint_id=fp.id, run_id=run_id,
                        args={"capture": str(cap.path), "sha256": cap.sha256})
        store.finish_run(run_id)
    return {"fingerprint": fp.id, "target": cap.target, "device_type": cap.device_type,
            "devices": len(cap.devices), "programs": len(cap.programs),
            "op_timings": len(ops), "new_op_timings": new_ops,
            "latencies": len(lats), "new_latencies": new_lats,
            "skipped_modules": cap.skipped, "unattributed_events": cap.unattributed_events}
