"""`hwdistill` command line: one sub-command per step of the workflow.

Each command lives in its own module under ``hwdistill/commands`` exposing ``add_parser`` and
``run``; this file only builds the parser and turns library errors into one-line messages.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from measurements.errors import HwdistillError

# libtpu is installed for ahead-of-time TPU compiles; with JAX_PLATFORMS unset JAX probes it
# and jax.profiler tracing segfaults on a host without a TPU (measured, see docs/architecture.md).
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

COMMANDS = {
    # name: (module, one-line help)
    "measure": ("measure", "compile and time one architecture on this machine; store it"),
    "profile": ("profile", "profile per-op HLO timings of sampled architectures (resumable)"),
    "fit": ("fit", "train the op-latency model from the store; write a versioned artifact"),
    "predict": ("predict", "predict an architecture's latency instantly (cpu or tpu-<gen>)"),
    "validate": ("validate", "measure held-out architectures and score the predictor"),
    "recalibrate": ("recalibrate", "correct the latency model to this machine as it is now "
                                   "(a few anchor timings)"),
    "search": ("search", "surrogate-assisted multi-objective search for students"),
    "distill": ("distill", "distill a student from the teacher checkpoint"),
    "evaluate": ("evaluate", "evaluate a checkpoint on STS-B / SST-2 / GLUE dev"),
    "proxies": ("proxies", "accuracy proxies of a student: zero-cost, CKA, flash"),
    "run": ("run", "the main job end to end: profile, fit, search, measure, distil, report"),
    "report": ("report", "re-render a run's report (report.md, report.html, PNGs)"),
    "store": ("store", "inspect, export and import the measurement store"),
}

EPILOG = """the main job (what `make demo` runs; ~15 minutes on 2 cores, resumable):
  hwdistill run                                            # -> runs/RUN_ID/report.html

workflow, step by step:
  hwdistill measure --arch bert-mini --workload 8,128      # one real measurement
  hwdistill profile --target cpu --archs 40                # op timings -> store
  hwdistill fit                                            # store -> latency model
  hwdistill predict --arch mobilebert-tiny --workload 8,128
  hwdistill validate --target cpu --archs 50               # predicted vs measured
  hwdistill recalibrate                                    # a minute of anchors: today's machine

Every command explains itself: hwdistill COMMAND --help.
The store defaults to ./hwdistill.db (or $HWDISTILL_STORE)."""


class CommandError(HwdistillError):
    """A user-facing error: printed without a traceback, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hwdistill", description="Hardware-aware distillation of BERT-like models: "
        "find the most accurate small student at a given latency on a given piece of hardware.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    from . import __version__
    parser.add_argument("--version", action="version", version=f"hwdistill {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_) in COMMANDS.items():
        mod = importlib.import_module(f"hwdistill.commands.{module}")
        p = sub.add_parser(name, help=help_, description=(mod.__doc__ or help_).strip(),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        mod.add_parser(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; everything already recorded is kept in the store", file=sys.stderr)
        return 130
    except HwdistillError as e:      # a user error: one line; anything else is a bug (traceback)
        if os.environ.get("HWDISTILL_DEBUG"):
            raise
        print(f"hwdistill {args.command}: error: {e}", file=sys.stderr)
        return 2
