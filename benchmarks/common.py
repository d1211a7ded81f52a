"""Shared by the benchmark scripts: machine/version metadata and result writing."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from importlib import metadata
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
RESULTS = Path(__file__).parent / "results"
# benchmarks (not the library) may read the workspace's data folder beside the repository
_SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if _SHARED_DATA.is_dir():
    os.environ.setdefault("HWDISTILL_DATA", str(_SHARED_DATA))


def machine_info() -> dict:
    from measurements import detect
    fp = detect("cpu")
    vers = {}
    for d in ("jax", "jaxlib", "flax", "optax", "xgboost", "scikit-learn", "numpy", "libtpu",
              "transformers", "torch"):
        try:
            vers[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    return {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "fingerprint": fp.id, "cpu_model": fp.cpu_model, "cpu_cores": fp.cpu_cores,
            "python": platform.python_version(), "versions": vers, "git_commit": commit}


def write_result(name: str, payload: dict, results: Path | None = None) -> Path:
    """``results/NAME.json`` (default benchmarks/results/, or ``$HWDISTILL_RESULTS`` for a
    trial run that must not overwrite the committed figures)."""
    results = Path(results or os.environ.get("HWDISTILL_RESULTS") or RESULTS)
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine_info(), **payload},
                               indent=2, default=float))
    return path


STORES = Path(__file__).parent / "store"


def profile_store(fingerprint_id: str) -> Path:
    """The profile store of a machine: its own ``store/cpu_<fingerprint>.db`` (a workload-grid
    profile) if there is one, else ``store/cpu.db`` if that holds the machine (the first host
    profiled, two workloads), else ``store/cpu_<fingerprint>.db`` (where its profile goes)."""
    from perfmodel.latency_model import shipped_store
    return (shipped_store(fingerprint_id, STORES)
            or STORES / f"cpu_{fingerprint_id}.db")


def cpu_latency_model(fp, *, why: str = "the analytic roofline is used instead",
                      pin: Path | None = None):
    """This machine's latency model fitted on its committed profile store, or None (with a
    note saying why).

    ``pin``: a directory for a benchmark that runs over several sessions and must use one
    predictor throughout (the profile store may grow between its sessions): the model is
    loaded from there if it holds this machine's, else fitted and saved there."""
    from measurements import Store
    from perfmodel.latency_model import LatencyModel, ModelError, fit_from_store
    if pin is not None and (Path(pin) / "meta.json").is_file():
        try:
            model = LatencyModel.load(pin, fingerprint_id=fp.id)
        except ModelError as e:
            print(f"note: the pinned model is not usable ({e}); fitting one", flush=True)
        else:
            print(f"latency model of {fp.id}: pinned in {pin} (fitted "
                  f"{model.summary.get('trained_at')} on {model.summary.get('programs')} "
                  "programs)", flush=True)
            return model
    path = profile_store(fp.id)
    if not path.exists():
        print(f"note: this machine ({fp.id}) has no profile store ({path.name}); {why}",
              flush=True)
        return None
    try:
        with Store(path, readonly=True) as st:
            model = fit_from_store(st, fp.id)
    except ModelError as e:
        print(f"note: {path.name}: {e}; {why}", flush=True)
        return None
    print(f"latency model of {fp.id}: fitted on {path.name}", flush=True)
    if pin is not None:
        model.save(pin)
        print(f"  pinned in {pin}: later sessions of this benchmark use it", flush=True)
    return model


def add_rescore_args(ap) -> None:
    """The arguments of a script that re-scores committed held-out runs: the runs and the
    op-list cache for their compiles."""
    ap.add_argument("results", nargs="+", help="latency_predictor.json runs (per_program)")
    ap.add_argument("--cache", default="build/oplists_rescore",
                    help="op-list disk cache for the compiles ('none': no cache)")


def op_list_cache(arg: str):
    from perfmodel.opcache import OpListCache
    return None if arg == "none" else OpListCache(arg)


def held_out_run(path) -> dict:
    """A committed `latency_predictor.py` run: its JSON (``run``), ``rows`` (per program), the
    machine's ``fingerprint`` and profile ``store``, the programs as (config, workload)
    ``pairs``, the drift-corrected ``measured`` ms and ``workloads`` (strings)."""
    import numpy as np

    from distill import StudentConfig, Workload
    from measurements import detect
    run = json.loads(Path(path).read_text())
    rows = run["per_program"]
    fp_id = run.get("machine", {}).get("fingerprint") or detect("cpu").id   # else this one
    return {"run": run, "rows": rows, "fingerprint": fp_id, "store": profile_store(fp_id),
            "pairs": [(StudentConfig.from_dict(r["arch"]), Workload.parse(r["workload"]))
                      for r in rows],
            "measured": np.array([r["measured_ms"] for r in rows]),
            "workloads": np.array([r["workload"] for r in rows])}
