"""Arguments shared by several commands."""

from __future__ import annotations

import argparse

from measurements import DEFAULT_STORE


def add_store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=DEFAULT_STORE,
                   help="measurement store: a path or sqlite:///PATH URL (default: %(default)s, "
                        "or $HWDISTILL_STORE)")


def print_table(rows: list[dict], cols: list[str] | None = None) -> None:
    """Plain aligned table on stdout."""
    if not rows:
        print("(none)")
        return
    cols = cols or list(rows[0])
    cells = [[str(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths)))


def default_model_dir(fingerprint_id: str) -> str:
    from perfmodel.latency_model import default_model_dir as d
    return str(d(fingerprint_id))


def add_space_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--space", default=None, metavar="TOML",
                   help="search space file (default: the embedded AutoDistill-style space; print "
                        "it with `hwdistill search --print-space`). 'v1' is the frozen first "
                        "space, from which benchmarks/store/cpu.db was profiled")


def load_space(arg: str | None):
    """The space a --space argument names (an object with ``sample_configs(n, seed)``)."""
    if arg == "v1":
        from search.space_v1 import SPACE_V1
        return SPACE_V1
    from search.space import DEFAULT_SPACE, SearchSpace
    return DEFAULT_SPACE if arg is None else SearchSpace.from_toml(arg)
