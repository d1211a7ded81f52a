"""Re-render a run's report (runs/RUN_ID/report.md, report.html and PNGs) from its saved state,
without recomputing anything.

  hwdistill report run-1a2b3c4d
  hwdistill report runs/run-1a2b3c4d          # a path works too
"""

from __future__ import annotations

from pathlib import Path
from measurements.errors import MissingError


def add_parser(p):
    p.add_argument("run", metavar="RUN_ID", help="run id (see runs/) or the run's folder")
    p.add_argument("--root", default="runs", help="where runs live (default %(default)s)")


def run(args):
    from search.pipeline import load_state
    from search.report import render_report

    d = Path(args.run)
    if not (d / "state.json").is_file():
        d = Path(args.root) / args.run
    if not d.is_dir():
        known = sorted(p.name for p in Path(args.root).glob("run-*")) \
            if Path(args.root).is_dir() else []
        raise MissingError(f"no run {args.run!r} under {args.root}/"
                           + (f"; runs there: {', '.join(known)}" if known else
                                   "; start one with `hwdistill run`"))
    paths = render_report(d, load_state(d))
    print(f"wrote {paths[0]} and {paths[1]} ({len(paths) - 2} figures)")
    return 0
