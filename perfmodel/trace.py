"""Profiler traces -> per-op device times. Pure parsing, testable without hardware.

Two Chrome-trace JSON flavours are read:

* JAX's own capture on XLA:CPU (``*.trace.json.gz`` written by ``jax.profiler.trace``): op events
  carry ``args.hlo_module``, ``args.hlo_op`` and ``args.run_id`` (one id per execution).
* Device planes of an XSpace (``*.xplane.pb``, TPU or GPU) converted by the official XProf
  converter (``xprof`` on PyPI, :func:`xplane_to_trace_json`): on each ``/device:...`` process,
  thread "XLA Ops" holds op events (name = HLO instruction, ``args.group_id`` = execution,
  ``args.device_duration_ps``) and thread "XLA Modules" names the module of each group.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gzip
import json
import re
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Iterator

import numpy as np
from measurements.errors import HwdistillError

__all__ = ["OpEvent", "OpStat", "TraceError", "load_trace", "parse_events", "op_stats",
           "xplane_to_trace_json", "xprof_tool_data", "xprof_capture", "ModuleRun",
           "parse_module_runs"]


class TraceError(HwdistillError, ValueError):
    """A trace is corrupt or does not contain what was expected."""


@dataclasses.dataclass(frozen=True)
class OpEvent:
    module: str
    op: str
    run: str         # one execution of the module
    device: str
    ts_us: float
    dur_us: float


@dataclasses.dataclass(frozen=True)
class OpStat:
    """Per-execution time of one op across the kept runs (summed if it ran several times)."""

    op: str
    time_us_median: float
    time_us_iqr: float
    time_us_p90: float
    n_runs: int


def load_trace(path: str | Path) -> dict:
    """Read a Chrome-trace JSON file (optionally gzipped)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
        text = gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
        data = json.loads(text)
    except (OSError, EOFError, gzip.BadGzipFile, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise TraceError(f"trace {p} is unreadable or corrupt ({type(e).__name__}: {e}); "
                         "re-capture the profile") from e
    if isinstance(data, list):
        data = {"traceEvents": data}
    if not isinstance(data, dict) or not isinstance(data.get("traceEvents"), list):
        raise TraceError(f"trace {p} has no traceEvents list: not a Chrome-trace JSON file")
    return data


_HASH_SUFFIX = re.compile(r"\(\d+\)$")


def _names(events) -> tuple[dict, dict]:
    """The trace's process names by pid and thread names by (pid, tid)."""
    procs, threads = {}, {}
    for e in events:
        if e.get("ph") == "M" and e.get("name") == "process_name":
            procs[e.get("pid")] = e.get("args", {}).get("name", "")
        elif e.get("ph") == "M" and e.get("name") == "thread_name":
            threads[(e.get("pid"), e.get("tid"))] = e.get("args", {}).get("name", "")
    return procs, threads


def parse_events(trace: dict) -> list[OpEvent]:
    """All HLO op events of a trace, from a CPU (JAX) or device (XProf) capture."""
    events = trace["traceEvents"]
    procs, threads = _names(events)
    out: list[OpEvent] = []
    module_of_group: dict[tuple, str] = {}
    for e in events:  # device planes: module names per (pid, group)
        if e.get("ph") == "X" and threads.get((e.get("pid"), e.get("tid"))) == "XLA Modules":
            gid = e.get("args", {}).get("group_id")
            module_of_group[(e["pid"], gid)] = _HASH_SUFFIX.sub("", e.get("name", ""))
    for e in events:
        # XProf's trace viewer emits some device ops as instant events ("i") that still carry
        # device_duration_ps; skipping them lost ~10% of a TPU fusion's executions
        if e.get("ph") not in ("X", "i"):
            continue
        args = e.get("args") or {}
        if e["ph"] == "i" and "device_duration_ps" not in args:
            continue
        try:
            if "hlo_op" in args and "hlo_module" in args:                   # XLA:CPU via JAX
                out.append(OpEvent(args["hlo_module"], args["hlo_op"], str(args.get("run_id")),
                                   procs.get(e.get("pid"), ""), float(e["ts"]),
                                   float(e.get("dur", 0.0))))
            elif threads.get((e.get("pid"), e.get("tid"))) == "XLA Ops":    # TPU/GPU planes
                gid = args.get("group_id")
                dur = (float(args["device_duration_ps"]) / 1e6 if "device_duration_ps" in args
                       else float(e.get("dur", 0.0)))
                out.append(OpEvent(module_of_group.get((e["pid"], gid), ""), e["name"],
                                   f"{e['pid']}:{gid}", procs.get(e["pid"], ""),
                                   float(e["ts"]), dur))
        except (KeyError, TypeError, ValueError) as err:
            raise TraceError(f"malformed op event {str(e)[:160]}: {err}") from err
    return out


@dataclasses.dataclass(frozen=True)
class ModuleRun:
    """One execution of a module on a device plane ("XLA Modules" thread of an XProf trace)."""

    module: str      # as the profiler names it, with its program id: "jit_f(1219...)"
    run: str         # the OpEvent.run of its ops
    device: str
    ts_us: float
    dur_us: float


def parse_module_runs(trace: dict) -> list[ModuleRun]:
    """Every module execution on the device planes of an XProf trace (none in a JAX CPU
    trace, whose op events name their module themselves)."""
    events = trace["traceEvents"]
    procs, threads = _names(events)
    out = []
    for e in events:
        if e.get("ph") != "X" or threads.get((e.get("pid"), e.get("tid"))) != "XLA Modules":
            continue
        try:
            out.append(ModuleRun(e["name"], f"{e['pid']}:{(e.get('args') or {}).get('group_id')}",
                                 procs.get(e["pid"], ""), float(e["ts"]),
                                 float(e.get("dur", 0.0))))
        except (KeyError, TypeError, ValueError) as err:
            raise TraceError(f"malformed module event {str(e)[:160]}: {err}") from err
    return out


def op_stats(events: list[OpEvent], module: str, *, warmup_runs: int = 1,
             device: str | None = None) -> tuple[dict[str, OpStat], list[float]]:
    """Per-op statistics for ``module`` after dropping the first ``warmup_runs`` executions,
    plus the per-run sum of op times (µs), one entry per kept run."""
    runs: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    start: dict[str, float] = {}
    for ev in events:
        if ev.module != module or (device is not None and ev.device != device):
            continue
        runs[ev.run][ev.op] += ev.dur_us
        start[ev.run] = min(start.get(ev.run, ev.ts_us), ev.ts_us)
    if not runs:
        modules = sorted({e.module for e in events})
        raise TraceError(f"no op events of module {module!r} in the trace; modules seen: "
                         f"{modules[:8]}. Was the right program profiled?")
    order = sorted(runs, key=start.get)
    kept = order[warmup_runs:]
    if not kept:
        raise TraceError(f"the trace has {len(order)} run(s) of {module!r}, all dropped as "
                         f"warm-up (warmup_runs={warmup_runs}); profile more runs")
    ops = sorted({op for r in kept for op in runs[r]})
    stats = {}
    for op in ops:
        x = np.array([runs[r].get(op, 0.0) for r in kept])
        q1, med, q3, p90 = np.percentile(x, [25, 50, 75, 90])
        stats[op] = OpStat(op, float(med), float(q3 - q1), float(p90), len(x))
    return stats, [sum(runs[r].values()) for r in kept]


def _converter():
    try:
        from xprof.convert import raw_to_tool_data
    except ImportError as e:
        raise TraceError("reading *.xplane.pb needs the XProf converter: pip install "
                         "'hwdistill[xprof]' (or pip install xprof)") from e
    return raw_to_tool_data


@contextlib.contextmanager
def _private_copy(xplane_path: str | Path) -> Iterator[Path]:
    """A copy of the capture in a temporary directory: the converter caches files next to its
    input (op stats, one ``MODULE.hlo_proto.pb`` per module), so it reads a private copy and
    the user's directory (perhaps read-only, perhaps a git checkout) is left as it was."""
    p = Path(xplane_path)
    if not p.is_file():
        raise TraceError(f"xplane file {p} does not exist")
    with tempfile.TemporaryDirectory(prefix="hwdistill-xprof-") as tmp:
        copy = Path(tmp) / p.name
        shutil.copyfile(p, copy)
        yield copy


def _tool(copy: Path, original: Path, tool: str, params: dict | None = None):
    try:
        data, _ = _converter().xspace_to_tool_data([str(copy)], tool, params or {})
    except Exception as e:  # the converter raises plain RuntimeErrors on bad protobufs
        raise TraceError(f"XProf could not convert {original} ({type(e).__name__}: {e}); the "
                         "file is probably corrupt") from e
    return data


def xprof_tool_data(xplane_path: str | Path, tool: str, params: dict | None = None
                    ) -> str | bytes:
    """One XProf tool's output (``trace_viewer``, ``overview_page``, ...) for a TPU/GPU
    ``*.xplane.pb``, with the official converter (``pip install xprof``), read from a private
    copy of the file."""
    with _private_copy(xplane_path) as copy:
        return _tool(copy, Path(xplane_path), tool, params)


def _trace_json(data, p: Path) -> dict:
    if isinstance(data, bytes):
        data = data.decode()
    trace = json.loads(data) if isinstance(data, str) else data
    if not isinstance(trace, dict) or "traceEvents" not in trace:
        raise TraceError(f"XProf returned no trace events for {p}")
    return trace


def xplane_to_trace_json(xplane_path: str | Path) -> dict:
    """Convert a TPU/GPU ``*.xplane.pb`` into the Chrome-trace JSON :func:`parse_events`
    reads."""
    return _trace_json(xprof_tool_data(xplane_path, "trace_viewer"), Path(xplane_path))


_HLO_PROTO = ".hlo_proto.pb"


def xprof_capture(xplane_path: str | Path) -> tuple[dict, dict[str, str]]:
    """The Chrome trace of a capture (as :func:`xplane_to_trace_json`) and the HLO text of
    every module whose HLO the capture carries, ``{"jit_f(1219...)": "HloModule jit_f, ..."}``
    (keys as the "XLA Modules" events name the module: name and program id).

    The HLO comes from the capture's ``/host:metadata`` plane the way XProf's own UI gets it:
    listing the tools writes one ``MODULE.hlo_proto.pb`` per module next to the (private copy
    of the) capture, and the ``graph_viewer`` tool prints each as HLO text (``long_txt``,
    with the backend configs, e.g. the TPU compiler's ``estimated_cycles``)."""
    p = Path(xplane_path)
    with _private_copy(p) as copy:
        trace = _trace_json(_tool(copy, p, "trace_viewer"), p)
        try:
            _converter().xspace_to_tool_names([str(copy)])
        except Exception as e:
            raise TraceError(f"XProf could not list the tools of {p} ({type(e).__name__}: "
                             f"{e}); the file is probably corrupt") from e
        modules = {}
        for f in sorted(copy.parent.glob("*" + _HLO_PROTO)):
            name = f.name[:-len(_HLO_PROTO)]
            text = _tool(copy, p, "graph_viewer", {"graph_viewer_options": {
                "type": "long_txt", "module_name": name}})
            modules[name] = text.decode() if isinstance(text, bytes) else str(text)
    return trace, modules
