"""Peer methods for benchmarks/search_synthetic.py: one function per method,
``(problem_name, seed, budget) -> dict`` with

    "F"          list of objective rows in evaluation order (len == budget)
    "propose_s"  seconds spent proposing each batch (initial design excluded)
    "q"          batch size of a proposal
    "n_initial"  size of the initial design
    "config"     the settings used

Methods: ``random`` (uniform in the box), ``nsga2`` (pymoo NSGA-II, pop 20), ``qlognehvi``
(BoTorch's multi-objective tutorial loop, sequential q=1), ``pysamoo`` (GPSAF-NSGA-II, the
surrogate-assisted NSGA-II that pysamoo's documentation presents for bi-objective problems).

This module imports only numpy and pymoo at the top, so that it also runs under the separate
pysamoo venv (pysamoo 0.1.2 pins ``pymoo==0.6.1.1``, which cannot be resolved together with
the project's ``pymoo>=0.6.2``; installed with ``--no-deps`` next to pymoo 0.6.2 it works):

    python -m venv /tmp/pysamoo-venv
    /tmp/pysamoo-venv/bin/pip install "pymoo==0.6.2" pandas scikit-learn matplotlib pydacefit
    /tmp/pysamoo-venv/bin/pip install --no-deps pysamoo==0.1.2 ezmodel==0.2.1

Run one method directly (what search_synthetic.py does for pysamoo through that venv):

    python benchmarks/search_peers.py pysamoo zdt1 0 100 --out /tmp/run.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

import numpy as np
from pymoo.problems import get_problem

# name -> (get_problem kwargs, fixed loose reference point, as in BoTorch's own benchmarks)
PROBLEMS = {
    "zdt1": (dict(n_var=6), (1.1, 11.0)),
    "zdt2": (dict(n_var=6), (1.1, 11.0)),
    "dtlz2": (dict(n_var=6, n_obj=2), (2.5, 2.5)),
}
PYSAMOO_PYTHON = os.environ.get("PYSAMOO_PYTHON", "/tmp/pysamoo-venv/bin/python")


def make_problem(name: str):
    kw, _ = PROBLEMS[name]
    return get_problem(name, **kw)


def ref_point(name: str) -> np.ndarray:
    return np.array(PROBLEMS[name][1], dtype=float)


def _versions(*dists: str) -> dict:
    out = {}
    for d in dists:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            pass
    return out


def _evaluate(problem, X: np.ndarray) -> np.ndarray:
    return np.asarray(problem.evaluate(np.atleast_2d(X), return_values_of=["F"]), dtype=float)


# -- random ----------------------------------------------------------------------------------

def run_random(problem_name: str, seed: int, budget: int) -> dict:
    p = make_problem(problem_name)
    rng = np.random.default_rng(seed)
    F, prop = [], []
    for _ in range(budget):
        t = time.perf_counter()
        x = rng.uniform(p.xl, p.xu)
        prop.append(time.perf_counter() - t)
        F.append(_evaluate(p, x)[0])
    return {"F": np.asarray(F).tolist(), "propose_s": prop, "q": 1, "n_initial": 0,
            "config": {"sampler": "numpy default_rng uniform"}, "versions": _versions("numpy")}


# -- NSGA-II ---------------------------------------------------------------------------------

def run_nsga2(problem_name: str, seed: int, budget: int, pop_size: int = 20) -> dict:
    from pymoo.algorithms.moo.nsga2 import NSGA2

    p = make_problem(problem_name)
    alg = NSGA2(pop_size=pop_size)
    # by evaluation budget: n_gen * pop_size (offspring per generation == pop_size)
    alg.setup(p, termination=("n_evals", budget), seed=seed, verbose=False)
    F, prop = [], []
    while alg.has_next() and len(F) < budget:
        t = time.perf_counter()
        pop = alg.ask()
        prop.append(time.perf_counter() - t)
        alg.evaluator.eval(p, pop)
        F.extend(pop.get("F").tolist())
        alg.tell(infills=pop)
    return {"F": F[:budget], "propose_s": prop[1:], "q": pop_size, "n_initial": pop_size,
            "config": {"pop_size": pop_size, "n_offsprings": pop_size,
                       "note": "pymoo defaults otherwise (random sampling, SBX, PM)"},
            "versions": _versions("pymoo")}


# -- BoTorch qLogNEHVI -----------------------------------------------------------------------

def qlognehvi_propose(train_x, train_y, ref, *, num_restarts: int = 10, raw_samples: int = 512,
                      mc_samples: int = 128):
    """One proposal of BoTorch's multi-objective tutorial loop: fit a ModelListGP of
    SingleTaskGPs (Standardize outcomes) on ``train_x`` in [0,1]^d and ``train_y`` (maximised),
    then maximise qLogNEHVI (prune_baseline) with optimize_acqf. Returns (candidate ``1 x d``,
    fit seconds, acquisition seconds)."""
    import torch
    from botorch import fit_gpytorch_mll
    from botorch.acquisition.multi_objective.logei import (
        qLogNoisyExpectedHypervolumeImprovement)
    from botorch.models import ModelListGP, SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from botorch.optim import optimize_acqf
    from botorch.sampling.normal import SobolQMCNormalSampler
    from gpytorch.mlls.sum_marginal_log_likelihood import SumMarginalLogLikelihood

    d = train_x.shape[1]
    unit = torch.stack([torch.zeros(d, dtype=train_x.dtype), torch.ones(d, dtype=train_x.dtype)])
    t0 = time.perf_counter()
    models = [SingleTaskGP(train_x, train_y[:, i:i + 1], outcome_transform=Standardize(m=1))
              for i in range(train_y.shape[1])]
    model = ModelListGP(*models)
    fit_gpytorch_mll(SumMarginalLogLikelihood(model.likelihood, model))
    t1 = time.perf_counter()
    acqf = qLogNoisyExpectedHypervolumeImprovement(
        model=model, ref_point=ref, X_baseline=train_x, prune_baseline=True,
        sampler=SobolQMCNormalSampler(sample_shape=torch.Size([mc_samples])))
    cand, _ = optimize_acqf(acq_function=acqf, bounds=unit, q=1, num_restarts=num_restarts,
                            raw_samples=raw_samples,
                            options={"batch_limit": 5, "maxiter": 200}, sequential=True)
    return cand.detach(), t1 - t0, time.perf_counter() - t1


def run_qlognehvi(problem_name: str, seed: int, budget: int, num_restarts: int = 10,
                  raw_samples: int = 512, mc_samples: int = 128) -> dict:
    """The loop of BoTorch's multi-objective tutorial, sequential (q=1), noiseless problem."""
    import warnings

    import torch
    from botorch.exceptions import BotorchWarning
    from botorch.utils.sampling import draw_sobol_samples
    from botorch.utils.transforms import unnormalize

    warnings.filterwarnings("ignore", category=BotorchWarning)
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    tkw = {"dtype": torch.double, "device": torch.device("cpu")}
    torch.manual_seed(seed)
    p = make_problem(problem_name)
    d = p.n_var
    bounds = torch.tensor(np.stack([p.xl, p.xu]), **tkw)
    unit = torch.stack([torch.zeros(d, **tkw), torch.ones(d, **tkw)])
    ref = (-ref_point(problem_name)).tolist()          # BoTorch maximises

    def f(x_unit: torch.Tensor) -> torch.Tensor:       # negated objectives of raw inputs
        X = unnormalize(x_unit, bounds).cpu().numpy()
        return -torch.tensor(_evaluate(p, X), **tkw)

    n_init = min(2 * (d + 1), budget)
    train_x = draw_sobol_samples(bounds=unit, n=n_init, q=1, seed=seed).squeeze(1)
    train_y = f(train_x)
    prop, fit_s, acq_s = [], [], []
    while len(train_x) < budget:
        cand, t_fit, t_acq = qlognehvi_propose(train_x, train_y, ref, num_restarts=num_restarts,
                                               raw_samples=raw_samples, mc_samples=mc_samples)
        train_x = torch.cat([train_x, cand])
        train_y = torch.cat([train_y, f(cand)])
        prop.append(t_fit + t_acq)
        fit_s.append(t_fit)
        acq_s.append(t_acq)
    return {"F": (-train_y).cpu().numpy().tolist(), "propose_s": prop, "fit_s": fit_s,
            "acq_s": acq_s, "q": 1, "n_initial": n_init,
            "config": {"model": "ModelListGP(SingleTaskGP per objective), inputs in [0,1]^d, "
                                "Standardize outcomes", "acq": "qLogNEHVI prune_baseline=True",
                       "mc_samples": mc_samples, "num_restarts": num_restarts,
                       "raw_samples": raw_samples, "init": f"Sobol {n_init} (seed)",
                       "torch_threads": torch.get_num_threads()},
            "versions": _versions("botorch", "gpytorch", "torch", "linear_operator")}


# -- pysamoo GPSAF-NSGA-II -------------------------------------------------------------------

PYSAMOO_CONFIG = {"algorithm": "GPSAF(NSGA2(pop_size=20, n_offsprings=10), alpha=5, beta=50, "
                               "n_max_doe=100, n_max_infills=inf)",
                  "source": "pysamoo's documented GPSAF-NSGA-II usage example (ZDT1)",
                  "initial_design": "LHS, 2*n_var+1 points (pysamoo default), seeded"}


def _run_pysamoo_inprocess(problem_name: str, seed: int, budget: int) -> dict:
    import warnings

    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.operators.sampling.lhs import LHS
    from pysamoo.algorithms.gpsaf import GPSAF
    from pysamoo.core.algorithm import default_n_doe

    warnings.filterwarnings("ignore")
    p = make_problem(problem_name)
    import random
    random.seed(seed)                     # pysamoo/ezmodel draw from the global generators,
    np.random.seed(seed)                  # which pymoo >= 0.6.2 no longer seeds in setup()
    n_doe = default_n_doe(p.n_var)
    X0 = LHS()(p, n_doe, random_state=np.random.default_rng(seed)).get("X")
    alg = GPSAF(NSGA2(pop_size=20, n_offsprings=10), alpha=5, beta=50, n_max_doe=100,
                n_max_infills=np.inf, n_initial_doe=n_doe, sampling=X0)
    alg.setup(p, termination=("n_evals", budget), seed=seed, verbose=False)
    F, prop, q = [], [], []
    devnull = open(os.devnull, "w")
    while alg.has_next() and len(F) < budget:
        t = time.perf_counter()
        stdout, sys.stdout = sys.stdout, devnull  # pysamoo prints "TOO CLOSE" notes
        try:
            pop = alg.ask()
        finally:
            sys.stdout = stdout
        prop.append(time.perf_counter() - t)
        q.append(len(pop))
        alg.evaluator.eval(p, pop)
        F.extend(pop.get("F").tolist())
        alg.tell(infills=pop)
    return {"F": F[:budget], "propose_s": prop[1:], "batch_sizes": q[1:],
            "q": int(np.median(q[1:])) if len(q) > 1 else 0, "n_initial": n_doe,
            "config": PYSAMOO_CONFIG,
            "versions": _versions("pysamoo", "ezmodel", "pydacefit", "pymoo", "scikit-learn",
                                  "numpy")}


def run_pysamoo(problem_name: str, seed: int, budget: int) -> dict:
    """In this interpreter if pysamoo imports, else in the separate pysamoo venv."""
    try:
        import pysamoo  # noqa: F401
    except ImportError as e:
        if not Path(PYSAMOO_PYTHON).exists():
            raise ImportError(f"pysamoo not importable ({e}) and no pysamoo venv at "
                              f"{PYSAMOO_PYTHON} (see benchmarks/search_peers.py)") from e
        with tempfile.TemporaryDirectory() as td:
            out = Path(td) / "run.json"
            r = subprocess.run([PYSAMOO_PYTHON, __file__, "pysamoo", problem_name, str(seed),
                                str(budget), "--out", str(out)], capture_output=True, text=True)
            if r.returncode != 0 or not out.exists():
                raise RuntimeError(f"pysamoo subprocess failed ({r.returncode}): "
                                   f"{r.stderr.strip()[-2000:]}")
            res = json.loads(out.read_text())
            res["python"] = PYSAMOO_PYTHON
            return res
    return _run_pysamoo_inprocess(problem_name, seed, budget)


PEERS = {"random": run_random, "nsga2": run_nsga2, "qlognehvi": run_qlognehvi,
         "pysamoo": run_pysamoo}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("method", choices=sorted(PEERS))
    ap.add_argument("problem", choices=sorted(PROBLEMS))
    ap.add_argument("seed", type=int)
    ap.add_argument("budget", type=int)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    fn = _run_pysamoo_inprocess if a.method == "pysamoo" else PEERS[a.method]
    Path(a.out).write_text(json.dumps(fn(a.problem, a.seed, a.budget), default=float))


if __name__ == "__main__":
    main()
