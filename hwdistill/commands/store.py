"""Inspect, export and merge measurement stores.

  hwdistill store info                      counts per fingerprint and table
  hwdistill store ls latencies              list records of a table (trials: a search's evaluations)
  hwdistill store export op_timings ops.csv  write a table to CSV or JSON
  hwdistill store import tpu-vm.db           merge a store profiled elsewhere (idempotent; a
                                            search trial only moves forward, e.g. running -> done)
  hwdistill store import run.xplane.pb       import a TPU profiler capture's per-op device times
                                            (idempotent), then `hwdistill fit --target tpu-<gen>`

A SOURCE that is an SQLite file is merged as a store; anything else is read as a profiler
capture (an XSpace `*.xplane.pb`, or a folder holding one, as jax.profiler.trace writes it).
"""

from __future__ import annotations

import argparse

import json

from measurements import Store
from measurements.store import TABLES

from .common import add_store_arg, print_table


def add_parser(p):
    add_store_arg(p)
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="schema version, fingerprints and record counts")
    ls = sub.add_parser("ls", help="list records of a table")
    ls.add_argument("table", choices=TABLES)
    ls.add_argument("--limit", type=int, default=20, help="rows to show (default %(default)s)")
    ex = sub.add_parser("export", help="write a table to CSV or JSON")
    ex.add_argument("table", choices=TABLES)
    ex.add_argument("path", help="output file; its suffix (.csv/.json) picks the format")
    im = sub.add_parser("import", help="merge another store, or import a TPU profiler capture")
    im.add_argument("source", help="store to merge from, or a TPU capture (*.xplane.pb, or a "
                                   "folder holding one); never modified")
    for a in (info, ls, ex, im):       # `store info --store X` works as `store --store X info`
        a.add_argument("--store", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def run(args):
    if args.action == "import" and _is_capture(args.source):
        return _import_capture(args)
    if args.action == "import":
        with Store(args.store) as store:
            counts = store.import_from(args.source)
        updated = counts.pop("trials_updated", 0)
        print("imported (new records): " + ", ".join(f"{t}={n}" for t, n in counts.items())
              + f"; trials moved forward: {updated}")
        return 0
    with Store(args.store, readonly=True) as store:
        if args.action == "info":
            print(json.dumps(store.info(), indent=2))
        elif args.action == "ls":
            rows = list(store.rows(args.table))
            shown = rows[-args.limit:] if args.limit else rows
            short = [{k: (v if len(str(v)) < 60 else str(v)[:57] + "...") for k, v in r.items()}
                     for r in shown]
            print_table(short)
            print(f"({len(shown)} of {len(rows)} rows)")
        elif args.action == "export":
            n = store.export(args.table, args.path)
            print(f"wrote {n} rows of {args.table} to {args.path}")
    return 0


_SQLITE_MAGIC = b"SQLite format 3\x00"
_TRACE_SUFFIXES = (".json", ".json.gz")


def _is_capture(source: str) -> bool:
    """A store is an SQLite file (or an sqlite:/// URL); any other existing path is read as a
    profiler capture, which says what is wrong with it if it is not one."""
    from pathlib import Path
    if source.startswith("sqlite:"):
        return False
    p = Path(source)
    if p.is_dir():
        return True
    if not p.exists():      # named like a capture: the capture's "does not exist" message
        return p.name.endswith((".pb", *_TRACE_SUFFIXES))
    with open(p, "rb") as f:
        return f.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC


def _capture_file(source: str):
    from pathlib import Path
    from measurements.errors import InputError
    p = Path(source)
    if p.is_dir():
        found = sorted(p.rglob("*.xplane.pb"))
        if len(found) != 1:
            raise InputError(f"{p} holds {len(found)} *.xplane.pb files "
                             f"{[str(f) for f in found[:8]]}; pass one (import each host's "
                             "capture in turn)")
        return found[0]
    if p.name.endswith(_TRACE_SUFFIXES):
        raise InputError(
            f"{p} is a JSON trace, not a capture: a converted trace keeps the op times but not "
            "the device type or the HLO modules an import needs to name the hardware and "
            "describe each op. Import the *.xplane.pb it was converted from (jax.profiler.trace "
            "writes it beside the trace, under plugins/profile/RUN/)")
    return p


def _import_capture(args) -> int:
    from measurements.errors import InputError
    from perfmodel.capture import UnreadableCaptureError, read_capture, store_capture
    try:
        cap = read_capture(_capture_file(args.source))   # all reading first: a bad capture
    except UnreadableCaptureError as e:                  # leaves the store as it was
        raise InputError(f"{e}. (It is no hwdistill store either: not an SQLite file.)") from e
    with Store(args.store) as store:
        r = store_capture(store, cap)
    print(f"capture {cap.path}: {r['device_type']} x{r['devices']} -> target {r['target']}, "
          f"fingerprint {r['fingerprint']}")
    print(f"imported (new records): op_timings={r['new_op_timings']} of {r['op_timings']}, "
          f"latencies={r['new_latencies']} of {r['latencies']} ({r['programs']} programs)")
    for m, why in r["skipped_modules"].items():
        print(f"not imported: module {m}: {why}")
    if r["unattributed_events"]:
        print(f"not imported: {r['unattributed_events']} op events that no module execution "
              "claims (their group has no 'XLA Modules' event)")
    print(f"next: hwdistill fit --target {r['target']} --store {args.store}")
    return 0
