"""Inspect, export and merge measurement stores.

  hwdistill store info                      counts per fingerprint and table
  hwdistill store ls latencies              list records of a table (trials: a search's evaluations)
  hwdistill store export op_timings ops.csv  write a table to CSV or JSON
  hwdistill store import tpu-vm.db           merge a store profiled elsewhere (idempotent; a
                                            search trial only moves forward, e.g. running -> done)
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
    im = sub.add_parser("import", help="merge another store into this one")
    im.add_argument("source", help="store to merge from (never modified)")
    for a in (info, ls, ex, im):       # `store info --store X` works as `store --store X info`
        a.add_argument("--store", default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def run(args):
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
