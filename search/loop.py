"""The surrogate-assisted search: an ask/tell loop over any pymoo problem, resumable from the store.

Round 0 is an initial design (scrambled Sobol, ``2 (d + 1)`` points by default). Every later
round fits one GP per expensive objective and constraint on what has been evaluated, proposes
``q`` candidates by maximising log EHVI (:mod:`search.acquisition`), and evaluates them.

Every candidate is written to the store as ``pending`` before it is evaluated, marked
``running`` when its evaluation starts and ``done`` (with its objectives) or ``failed`` (with
the error) when it ends; only ``done`` trials reach the GP. A search killed at any point is
resumed by constructing :class:`Search` with the same ``run_id``: unfinished trials are
evaluated, finished ones never again, and the next proposal is the one the killed process
would have made, because each round's randomness is drawn from ``(seed, round)`` and its data
are exactly the stored trials (0 evaluations lost, 0 repeated, same result as an
uninterrupted run).

Problems may declare objectives that are exact and cheap (a predicted latency, a parameter
count): ``problem.cheap_objectives`` (indices) and ``problem.evaluate_cheap(X)`` returning
those columns for decoded candidates ``X``. Those are evaluated inside the acquisition
instead of modelled. An expensive objective with a cheap prior guess (a measured latency and
its prediction) is declared by ``problem.baseline_objectives`` and
``problem.evaluate_baseline(X)``: its GP models only the residual ``f - baseline`` and the
acquisition sees ``baseline + residual`` with the residual's uncertainty. A problem whose box
holds invalid combinations declares ``problem.repair(X)`` (decoded -> valid decoded); every
point is repaired before it is modelled, proposed or stored.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any, Callable, Sequence

import numpy as np

from measurements import Store, Trial
from measurements.errors import HwdistillError

from . import trust_region
from .acquisition import propose_batch, sample_fronts
from .domain import Domain, DomainError, stack
from .gp import OffsetGP, fit_gp
from .hypervolume import hypervolume, nondominated

__all__ = ["SearchConfig", "Search", "SearchResult", "RoundInfo", "SearchError", "minimize"]


class SearchError(HwdistillError, ValueError):
    """The search cannot run as asked (bad problem, bad config, resumed with other settings)."""


@dataclasses.dataclass(frozen=True)
class SearchConfig:
    """How to search. ``budget`` counts every finished evaluation, the initial design included."""

    budget: int
    q: int = 1                                  # candidates per round
    n_initial: int | None = None                # default 2 (d + 1), at most the budget
    seed: int = 0
    ref_point: tuple[float, ...] | None = None  # None: nadir + 10% of the range after round 0
    noisy: bool | None = None                   # None: noisy when a GP learns noise > 1% var
    noise_var: float | None = None              # known noise variance of every expensive
                                                # objective (0: deterministic); None: learned
    kernel: str = "matern52"                    # or "rbf"
    trust_region: bool = True                   # propose inside a TuRBO/MORBO-style region
    exploration: float = 0.25                   # posterior std multiplier inside EHVI (1:
                                                # plain EHVI; see search.acquisition)
    initial_design: str = "sobol"               # sobol | lhs | random
    n_front_samples: int = 16                   # posterior fronts averaged when noisy
    gp_restarts: int = 2
    acq_pop_size: int = 64
    acq_generations: int = 30

    def __post_init__(self):
        for name in ("budget", "q", "n_front_samples", "acq_pop_size", "acq_generations"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or v < 1:
                raise SearchError(f"SearchConfig.{name}={v!r}: must be an integer >= 1")
        if self.n_initial is not None and (not isinstance(self.n_initial, (int, np.integer))
                                           or self.n_initial < 2):
            raise SearchError(f"SearchConfig.n_initial={self.n_initial!r}: must be an integer "
                              ">= 2 (a GP needs two points), or None for 2 (d + 1)")
        if self.noise_var is not None and not (math.isfinite(self.noise_var)
                                               and self.noise_var >= 0):
            raise SearchError(f"SearchConfig.noise_var={self.noise_var!r}: must be a finite "
                              "variance >= 0 (0 for deterministic objectives), or None to learn it")
        if self.kernel not in ("matern52", "rbf"):
            raise SearchError(f"SearchConfig.kernel={self.kernel!r}: use 'matern52' or 'rbf'")
        if not (math.isfinite(self.exploration) and 0 <= self.exploration <= 1):
            raise SearchError(f"SearchConfig.exploration={self.exploration!r}: must be in "
                              "[0, 1] (1: plain EHVI, 0: the improvement of the posterior mean)")
        if self.gp_restarts < 0:
            raise SearchError(f"SearchConfig.gp_restarts={self.gp_restarts}: must be >= 0")
        if self.initial_design not in ("sobol", "lhs", "random"):
            raise SearchError(f"SearchConfig.initial_design={self.initial_design!r}: use "
                              "sobol, lhs or random")
        if self.ref_point is not None:
            r = tuple(float(v) for v in self.ref_point)
            if not all(math.isfinite(v) for v in r):
                raise SearchError(f"SearchConfig.ref_point={self.ref_point!r}: must be finite")
            object.__setattr__(self, "ref_point", r)


@dataclasses.dataclass(frozen=True)
class RoundInfo:
    round: int
    n_evals: int            # finished evaluations after this round
    hypervolume: float      # of the feasible evaluated points, w.r.t. the reference point
    front_size: int
    fit_s: float            # fitting the GPs
    propose_s: float        # fitting + maximising the acquisition for the whole batch
    evaluate_s: float
    q: int
    noisy: bool
    log_acq: tuple[float, ...] = ()


ROUND_HEADER = (f"{'round':>5} {'evals':>6} {'hypervolume':>12} {'front':>5} {'fit s':>6} "
                f"{'propose s':>9} {'eval s':>7}")


def format_round(info: RoundInfo) -> str:
    return (f"{info.round:>5} {info.n_evals:>6} {info.hypervolume:>12.6g} {info.front_size:>5} "
            f"{info.fit_s:>6.2f} {info.propose_s:>9.2f} {info.evaluate_s:>7.2f}")


@dataclasses.dataclass(frozen=True)
class SearchResult:
    run_id: str
    X: list                         # decoded candidates in evaluation order (done trials)
    F: np.ndarray                   # n x m objectives
    G: np.ndarray                   # n x c constraints (<= 0 is feasible)
    ref_point: np.ndarray
    rounds: tuple[RoundInfo, ...]
    n_failed: int

    @property
    def feasible(self) -> np.ndarray:
        return np.all(self.G <= 0, axis=1) if self.G.shape[1] else np.ones(len(self.F), bool)

    @property
    def pareto(self) -> np.ndarray:
        """Indices of the feasible non-dominated evaluations."""
        idx = np.flatnonzero(self.feasible)
        return idx[nondominated(self.F[idx])] if len(idx) else idx

    @property
    def hypervolume(self) -> float:
        return hypervolume(self.F[self.feasible], self.ref_point)


def _problem_description(problem, domain: Domain, cheap: tuple[int, ...],
                         baseline: tuple[int, ...] = ()) -> dict:
    def jsonable(v):
        return v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
    dims = [{**d, "options": [jsonable(o) for o in d["options"]]} for d in domain.describe()]
    return {"class": type(problem).__name__, "n_var": domain.n, "n_obj": int(problem.n_obj),
            "n_ieq_constr": int(problem.n_ieq_constr), "dims": dims, "cheap": list(cheap),
            **({"baseline": list(baseline)} if baseline else {}),
            **({"describe": problem.describe()} if callable(getattr(problem, "describe", None))
               else {})}


def check_problem(problem) -> tuple[Domain, tuple[int, ...], tuple[int, ...]]:
    """Validate a pymoo problem for the search; returns its domain, its cheap objectives and
    the objectives with a baseline (a cheap prior guess whose residual the GP models)."""
    from pymoo.core.problem import Problem

    if not isinstance(problem, Problem):
        raise SearchError(f"expected a pymoo Problem, got {type(problem).__name__}")
    m = int(problem.n_obj)
    if not 2 <= m <= 4:
        raise SearchError(f"problem.n_obj={m}: this search handles 2-4 objectives (for one "
                          "objective use a single-objective optimiser; beyond four, hypervolume "
                          "methods become impractical)")
    if getattr(problem, "n_eq_constr", 0):
        raise SearchError(f"problem.n_eq_constr={problem.n_eq_constr}: equality constraints are "
                          "not supported; write h(x) = 0 as |h(x)| - eps <= 0")
    try:
        domain = Domain.from_problem(problem)
    except DomainError as e:
        raise SearchError(str(e)) from e
    cheap = tuple(int(i) for i in getattr(problem, "cheap_objectives", ()) or ())
    for i in cheap:
        if not 0 <= i < m:
            raise SearchError(f"problem.cheap_objectives has {i}, outside 0..{m - 1}")
    if cheap and not callable(getattr(problem, "evaluate_cheap", None)):
        raise SearchError("problem.cheap_objectives is set but problem.evaluate_cheap(X) is "
                          "missing: it must return the cheap columns for decoded candidates X")
    if len(cheap) == m:
        raise SearchError("every objective is cheap: nothing to model; run a plain pymoo "
                          "algorithm (e.g. NSGA-II) on the problem instead")
    baseline = tuple(int(i) for i in getattr(problem, "baseline_objectives", ()) or ())
    for i in baseline:
        if not 0 <= i < m or i in cheap:
            raise SearchError(f"problem.baseline_objectives has {i}: it must index an expensive "
                              f"objective (0..{m - 1}, not a cheap one)")
    if baseline and not callable(getattr(problem, "evaluate_baseline", None)):
        raise SearchError("problem.baseline_objectives is set but problem.evaluate_baseline(X) "
                          "is missing: it must return the prior guess of those objectives")
    return domain, cheap, baseline


def default_evaluate(problem) -> Callable[[Any], tuple]:
    """One candidate -> (F ``m``, G ``c``) through ``problem.evaluate``, or
    (F, G, provenance) through ``problem.evaluate_trial`` if the problem has one. The callable
    pickles with the problem (process and Ray executors send it to workers)."""
    if callable(getattr(problem, "evaluate_trial", None)):
        return problem.evaluate_trial
    return _ProblemEvaluator(problem)


@dataclasses.dataclass(frozen=True)
class _ProblemEvaluator:
    problem: Any

    def __call__(self, X):
        out = self.problem.evaluate(X, return_values_of=["F", "G"], return_as_dictionary=True)
        F = np.asarray(out["F"], float).reshape(-1)
        G = np.asarray(out.get("G", np.zeros((1, 0))), float).reshape(-1)
        return F, G


class Search:
    """A resumable search. ``Search(problem, config, store=..., run_id=...)`` resumes the run
    if the store has it (with the same problem and config; the budget may grow).

    Resumed with a larger budget, a run continues exactly as an uninterrupted run with that
    budget would have if the first budget covered the initial design (``n_initial`` is capped
    at the budget) and, with ``q > 1``, ended on a round boundary (a last round is cut short
    to fit the budget).
    """

    def __init__(self, problem, config: SearchConfig, *, store: Store | None = None,
                 run_id: str | None = None,
                 evaluate: Callable[[Any], tuple[np.ndarray, np.ndarray]] | None = None,
                 on_round: Callable[[RoundInfo], None] | None = None,
                 executor=None):
        self.problem = problem
        self.config = config
        self.domain, self.cheap, self.baseline = check_problem(problem)
        self.m = int(problem.n_obj)
        self.c = int(problem.n_ieq_constr)
        if config.ref_point is not None and len(config.ref_point) != self.m:
            raise SearchError(f"SearchConfig.ref_point has {len(config.ref_point)} values; the "
                              f"problem has {self.m} objectives")
        self.n_initial = min(config.budget, config.n_initial or 2 * (self.domain.n + 1))
        self.store = store if store is not None else Store(":memory:")
        self.evaluate_fn = evaluate or default_evaluate(problem)
        self.on_round = on_round
        # a measurements.executor.Executor (local, processes, Ray); None: evaluate in-process
        self.executor = executor
        self.run_id = self._start(run_id)

    # -- run bookkeeping ------------------------------------------------------------------------
    def _args(self) -> dict:
        cfg = dataclasses.asdict(self.config)
        cfg.pop("budget")
        return {"problem": _problem_description(self.problem, self.domain, self.cheap,
                                                self.baseline),
                "config": cfg}

    def _start(self, run_id: str | None) -> str:
        import json

        args = self._args()
        if run_id is not None:
            old = next((r for r in self.store.runs() if r["id"] == run_id), None)
            if old is not None:
                before = json.loads(old["args"])
                if before != json.loads(json.dumps(args, sort_keys=True, default=str)):
                    diff = _diff(before, json.loads(json.dumps(args, default=str)))
                    raise SearchError(
                        f"run {run_id!r} in {self.store.path} was started with other settings "
                        f"({diff}). Resume it with the same problem and options (only the "
                        "budget may change), or start a new run.")
        return self.store.start_run("search", args=args, run_id=run_id)

    def trials(self) -> list[Trial]:
        return self.store.trials(self.run_id)

    # -- ask / tell -----------------------------------------------------------------------------
    def ask(self) -> list[Trial]:
        """The trials to evaluate next: unfinished ones first (after a crash), else a new
        round's proposals (written as ``pending``). Empty when the budget is spent."""
        trials = self.trials()
        open_ = [t for t in trials if t.status in ("pending", "running")]
        if open_:
            return open_
        finished = len(trials)
        if finished >= self.config.budget:
            return []
        if not trials:
            rng = np.random.default_rng([self.config.seed, 0])
            Z = self._initial_design(rng)
            return self._write(Z, round_=0, source="initial", start=0)
        round_ = max(t.round for t in trials) + 1
        q = min(self.config.q, self.config.budget - finished)
        # small dense algebra (n <= a few hundred): BLAS threads only add overhead, and on a
        # busy host their spin-waiting made proposals 6-10x slower (measured here)
        from threadpoolctl import threadpool_limits
        with threadpool_limits(limits=1, user_api="blas"):
            Z, state = self._propose(trials, round_, q)
        self.store.put_search_state(self.run_id, round_, state)
        return self._write(Z, round_=round_, source="acquisition", start=len(trials))

    def _initial_design(self, rng: np.random.Generator) -> np.ndarray:
        """``n_initial`` distinct points; with a repair, repaired points that repeat one
        already drawn are replaced by further draws (the same draws on every resume)."""
        Z = self.domain.snap(self.domain.sample(self.n_initial, rng,
                                                method=self.config.initial_design))
        if self.domain.repair is None:
            return Z
        keep = _unique_rows(Z)
        for _ in range(20):
            if len(keep) >= self.n_initial:
                break
            more = self.domain.snap(self.domain.sample(4 * self.n_initial, rng, method="random"))
            keep = _unique_rows(np.vstack([keep, more]))
        return keep[:self.n_initial]

    def _write(self, Z: np.ndarray, *, round_: int, source: str, start: int) -> list[Trial]:
        X = self.domain.decode(Z)
        new = [Trial(run_id=self.run_id, index=start + i, x=self.domain.to_json(X[i]),
                     source=source, round=round_) for i in range(len(Z))]
        self.store.put_trials(new)
        return [t for t in self.trials() if t.index >= start]

    def tell(self, index: int, F: Sequence[float], G: Sequence[float] = (), *,
             provenance: dict | None = None) -> Trial:
        """Record a finished evaluation. ``F``: ``m`` objectives, ``G``: ``c`` constraints."""
        F = np.asarray(F, float).reshape(-1)
        G = np.asarray(G, float).reshape(-1)
        if F.shape != (self.m,) or G.shape != (self.c,):
            raise SearchError(f"trial {index}: expected {self.m} objectives and {self.c} "
                              f"constraints, got F of shape {F.shape} and G of shape {G.shape}")
        if not np.all(np.isfinite(F)) or not np.all(np.isfinite(G)):
            raise SearchError(f"trial {index}: non-finite result F={F.tolist()} G={G.tolist()}; "
                              "report a failed evaluation with fail() instead")
        values = {f"f{j}": float(v) for j, v in enumerate(F)}
        values.update({f"g{j}": float(v) for j, v in enumerate(G)})
        return self.store.update_trial(self.run_id, index, status="done", values=values,
                                       provenance=provenance or {})

    def fail(self, index: int, error: str) -> Trial:
        return self.store.update_trial(self.run_id, index, status="failed",
                                       provenance={"error": error})

    # -- the loop -------------------------------------------------------------------------------
    def run(self, *, progress: bool = False) -> SearchResult:
        """Ask, evaluate, tell until the budget is spent; returns the result.

        With ``progress``, a bar over the budget and one line per round: evaluations,
        hypervolume, front size, and the seconds spent fitting, proposing and evaluating.
        """
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=self.config.budget, desc=f"search {self.run_id}", unit="eval")
            bar.update(sum(t.status in ("done", "failed") for t in self.trials()))
            bar.write(ROUND_HEADER)
        try:
            self._close_finished_rounds()      # a kill may have come after the last tell
            while True:
                batch = self.ask()
                if not batch:
                    break
                self._evaluate_batch(batch, bar)
                info = self._close_round(batch[0].round)
                if bar is not None:
                    bar.set_postfix(hv=f"{info.hypervolume:.4g}", front=info.front_size)
                    bar.write(format_round(info))
                if self.on_round is not None:
                    self.on_round(info)
        finally:
            if bar is not None:
                bar.close()
        self.store.finish_run(self.run_id)
        return self.result()

    def _mark_running(self, trial: Trial):
        attempts = int(trial.provenance.get("attempts", 0)) + 1
        self.store.update_trial(self.run_id, trial.index, status="running",
                                provenance={"attempts": attempts})
        return stack([self.domain.from_json(trial.x)], self.domain)

    def _record(self, index: int, res, seconds: float, extra: dict | None = None) -> None:
        """Tell (or fail) trial ``index`` from what the evaluation returned."""
        try:
            F, G = res[0], res[1]
            detail = dict(res[2]) if len(res) > 2 else {}
            F = np.asarray(F, float).reshape(-1)
            G = np.asarray(G, float).reshape(-1)
        except Exception as e:  # noqa: BLE001 - a malformed result is a failed evaluation
            self.fail(index, f"malformed result ({type(e).__name__}: {e}); an evaluation "
                             "returns (F, G) or (F, G, provenance)")
            return
        if not (np.all(np.isfinite(F)) and np.all(np.isfinite(G))):
            # a NaN is a failed evaluation too: recorded, not modelled, and the search goes on
            self.fail(index, f"non-finite result F={F.tolist()} G={G.tolist()}")
            return
        if F.shape != (self.m,) or G.shape != (self.c,):
            self.fail(index, f"expected {self.m} objectives and {self.c} constraints, got "
                             f"F of shape {F.shape} and G of shape {G.shape}")
            return
        self.tell(index, F, G, provenance={"cost_s": seconds, **detail, **(extra or {})})

    def _evaluate_one(self, trial: Trial) -> None:
        X = self._mark_running(trial)
        t0 = time.perf_counter()
        try:
            res = self.evaluate_fn(X)
        except Exception as e:  # the objective's failure is data, recorded with its cause
            self.fail(trial.index, f"{type(e).__name__}: {e}")
            return
        self._record(trial.index, res, time.perf_counter() - t0)

    def _evaluate_batch(self, batch: Sequence[Trial], bar=None) -> None:
        """Evaluate a round's trials through the executor; results are written here, by the
        driver, as they arrive (one writer, whichever worker finishes)."""
        if self.executor is None:
            for trial in batch:
                self._evaluate_one(trial)
                if bar is not None:
                    bar.update(1)
            return
        from measurements.executor import Job
        resources = dict(getattr(self.problem, "job_resources", None) or {"num_cpus": 1})
        exclusive = bool(getattr(self.problem, "exclusive", False))
        fingerprint = getattr(self.problem, "job_fingerprint", None)
        for trial in batch:
            X = self._mark_running(trial)
            self.executor.submit(Job(key=f"{self.run_id}/{trial.index}", fn=self.evaluate_fn,
                                     args=(X,), resources=resources, exclusive=exclusive,
                                     fingerprint=fingerprint))
        for r in self.executor.results():
            index = int(r.key.rsplit("/", 1)[1])
            worker = {"worker": dict(r.worker), "executor_attempts": r.attempts}
            if r.ok:
                self._record(index, r.value, r.duration_s, worker)
            else:
                self.fail(index, r.error or "failed without a message")
            if bar is not None:
                bar.update(1)

    def _close_finished_rounds(self) -> None:
        trials = self.trials()
        closed = {r for r, st in self.store.search_states(self.run_id) if "n_evals" in st}
        for r in sorted({t.round for t in trials} - closed):
            if all(t.status in ("done", "failed") for t in trials if t.round == r):
                self._close_round(r)

    def _close_round(self, round_: int) -> RoundInfo:
        """Summarise a finished round into its search state (idempotent)."""
        trials = self.trials()
        prev = dict(self.store.search_states(self.run_id)).get(round_, {})
        Z, F, G, _ = self._data([t for t in trials if t.round <= round_])
        ref = self._ref_point(F, G, prev)
        feas = _feasible(G)
        hv = hypervolume(F[feas], ref)
        front = int(nondominated(F[feas]).sum()) if feas.any() else 0
        mine = [t for t in trials if t.round == round_]
        info = RoundInfo(round=round_,
                         n_evals=sum(t.status in ("done", "failed") for t in trials
                                     if t.round <= round_),
                         hypervolume=hv, front_size=front,
                         fit_s=prev.get("fit_s", 0.0), propose_s=prev.get("propose_s", 0.0),
                         evaluate_s=sum(float(t.provenance.get("cost_s", 0.0)) for t in mine),
                         q=len(mine), noisy=bool(prev.get("noisy", False)),
                         log_acq=tuple(prev.get("log_acq", ())))
        self.store.put_search_state(self.run_id, round_, {
            **prev, **dataclasses.asdict(info), "ref_point": ref.tolist()})
        return info

    # -- proposing ------------------------------------------------------------------------------
    def _data(self, trials: Sequence[Trial]):
        done = [t for t in trials if t.status == "done"]
        X = [self.domain.from_json(t.x) for t in done]
        Z = self.domain.encode(stack(X, self.domain)) if done else np.zeros((0, self.domain.n))
        F = np.array([[t.values[f"f{j}"] for j in range(self.m)] for t in done],
                     dtype=float).reshape(len(done), self.m)
        G = np.array([[t.values[f"g{j}"] for j in range(self.c)] for t in done],
                     dtype=float).reshape(len(done), self.c)
        Z_all = self.domain.encode(stack([self.domain.from_json(t.x) for t in trials],
                                         self.domain)) if trials else Z
        return Z, F, G, Z_all

    def _ref_point(self, F: np.ndarray, G: np.ndarray, state: dict) -> np.ndarray:
        if self.config.ref_point is not None:
            return np.array(self.config.ref_point)
        if "ref_point" in state:
            return np.array(state["ref_point"])
        prior = self.store.search_state(self.run_id)
        if prior is not None and "ref_point" in prior[1]:
            return np.array(prior[1]["ref_point"])
        # inferred once (from the initial design) and kept: a moving reference point would
        # change what the acquisition rewards from round to round
        feas = _feasible(G)
        Y = F[feas] if feas.any() else F
        if not len(Y):
            raise SearchError("no finished evaluation to infer a reference point from; every "
                              "initial evaluation failed (see the trials' provenance.error)")
        nadir, ideal = Y.max(axis=0), Y.min(axis=0)
        span = np.where(nadir > ideal, nadir - ideal, np.maximum(np.abs(nadir), 1.0))
        return nadir + 0.1 * span

    def _cheap_fn(self):
        if not self.cheap:
            return None

        def fn(Z):
            out = np.full((len(Z), self.m), np.nan)
            vals = np.asarray(self.problem.evaluate_cheap(self.domain.decode(Z)), float)
            out[:, list(self.cheap)] = vals.reshape(len(Z), len(self.cheap))
            return out
        return fn

    def _baseline_fn(self):
        if not self.baseline:
            return None
        cache: dict[bytes, np.ndarray] = {}

        def fn(Z):
            Z = np.asarray(Z, float)
            out = np.full((len(Z), self.m), np.nan)
            todo = [i for i in range(len(Z)) if Z[i].tobytes() not in cache]
            if todo:
                vals = np.asarray(self.problem.evaluate_baseline(
                    self.domain.decode(Z[todo])), float).reshape(len(todo), len(self.baseline))
                for i, v in zip(todo, vals):
                    cache[Z[i].tobytes()] = v
            rows = np.array([cache[z.tobytes()] for z in Z]).reshape(len(Z), len(self.baseline))
            out[:, list(self.baseline)] = rows
            return out
        return fn

    def _propose(self, trials: Sequence[Trial], round_: int, q: int):
        cfg = self.config
        rng = np.random.default_rng([cfg.seed, round_])
        Z, F, G, Z_all = self._data(trials)
        if len(Z) < 2:
            raise SearchError(f"only {len(Z)} evaluation(s) finished after round {round_ - 1}; "
                              "the GP needs 2. Check the failed trials' errors "
                              "(hwdistill store ls trials) and fix the objective.")
        state_before = self.store.search_state(self.run_id)
        ref = self._ref_point(F, G, state_before[1] if state_before else {})
        t0 = time.perf_counter()
        seeds = rng.integers(2**31 - 1, size=self.m + self.c)
        fit = dict(cat_dims=self.domain.cat_dims, n_restarts=cfg.gp_restarts, kernel=cfg.kernel)
        base = self._baseline_fn()
        B = base(Z) if base else None
        gps = []
        for j in range(self.m):
            if j in self.cheap:
                gps.append(None)
            elif j in self.baseline:
                gp = fit_gp(Z, F[:, j] - B[:, j], noise_var=cfg.noise_var, seed=int(seeds[j]),
                            **fit)
                gps.append(OffsetGP(gp, lambda Zq, j=j: base(Zq)[:, j]))
            else:
                gps.append(fit_gp(Z, F[:, j], noise_var=cfg.noise_var, seed=int(seeds[j]),
                                  **fit))
        cgps = [fit_gp(Z, G[:, j], seed=int(seeds[self.m + j]), **fit) for j in range(self.c)]
        fit_s = time.perf_counter() - t0
        noisy = cfg.noisy if cfg.noisy is not None else any(
            g is not None and g.noise_var > 1e-2 for g in gps)
        feas = _feasible(G)
        if noisy:
            fronts = sample_fronts(gps, Z, F, feas, cfg.n_front_samples, rng)
        else:
            fronts = [F[feas][nondominated(F[feas])] if feas.any() else np.zeros((0, self.m))]
        anchors = Z[feas][nondominated(F[feas])] if feas.any() else Z[:0]
        tr_state, boxes = None, None
        if cfg.trust_region and len(anchors):
            tr_state = trust_region.replay(self._improved(), dim=self.domain.n, q=cfg.q)
            boxes = trust_region.regions(self.domain, anchors, tr_state.length)
        cand, log_acq = propose_batch(
            self.domain, q, gps=gps, cheap=self._cheap_fn(), constraint_gps=cgps,
            fronts=fronts, ref=ref, rng=rng, anchors=anchors, exclude=Z_all,
            pop_size=cfg.acq_pop_size, n_gen=cfg.acq_generations, regions=boxes,
            exploration=cfg.exploration)
        state = {"round": round_, "fit_s": fit_s, "propose_s": time.perf_counter() - t0,
                 "noisy": bool(noisy), "log_acq": [float(v) for v in log_acq],
                 "ref_point": ref.tolist(),
                 "trust_region": None if tr_state is None else dataclasses.asdict(tr_state),
                 "gps": [g.hyperparameters() if g is not None else None for g in gps]}
        return cand, state

    def _improved(self) -> list[bool]:
        """Per acquisition round so far: did it raise the hypervolume? (from the round
        summaries, which are functions of the stored trials)"""
        states = [st for r, st in self.store.search_states(self.run_id) if "hypervolume" in st]
        hv = [st["hypervolume"] for st in states]
        return [b > a * (1 + 1e-9) + 1e-12 for a, b in zip(hv, hv[1:])]

    # -- results --------------------------------------------------------------------------------
    def result(self) -> SearchResult:
        trials = self.trials()
        done = [t for t in trials if t.status == "done"]
        _, F, G, _ = self._data(trials)
        rounds = tuple(
            RoundInfo(**{f.name: (tuple(st[f.name]) if f.name == "log_acq" else st[f.name])
                         for f in dataclasses.fields(RoundInfo)})
            for _, st in self.store.search_states(self.run_id) if "n_evals" in st)
        state = self.store.search_state(self.run_id)
        ref = self._ref_point(F, G, state[1] if state else {})
        return SearchResult(run_id=self.run_id, X=[self.domain.from_json(t.x) for t in done],
                            F=F, G=G, ref_point=ref, rounds=rounds,
                            n_failed=sum(t.status == "failed" for t in trials))


def _unique_rows(Z: np.ndarray) -> np.ndarray:
    """Rows of ``Z`` in order, each first occurrence only."""
    seen, keep = set(), []
    for i, z in enumerate(Z):
        k = z.tobytes()
        if k not in seen:
            seen.add(k)
            keep.append(i)
    return Z[keep]


def _feasible(G: np.ndarray) -> np.ndarray:
    return np.all(G <= 0, axis=1) if G.shape[1] else np.ones(len(G), bool)


def _diff(a: dict, b: dict, prefix: str = "") -> str:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            d = _diff(va, vb, f"{prefix}{k}.")
            if d:
                out.append(d)
        elif va != vb:
            out.append(f"{prefix}{k}: was {va!r}, now {vb!r}")
    return "; ".join(out)


def minimize(problem, *, budget: int, seed: int = 0, q: int = 1, n_initial: int | None = None,
             ref_point: Sequence[float] | None = None, noisy: bool | None = None,
             store: Store | None = None, run_id: str | None = None,
             evaluate: Callable | None = None, progress: bool = False, executor=None,
             **config) -> SearchResult:
    """Minimise a pymoo problem's 2-4 objectives with our GP + log-EHVI search.

    >>> from pymoo.problems import get_problem                      # doctest: +SKIP
    >>> res = minimize(get_problem("zdt1", n_var=6), budget=50, seed=0)
    >>> res.F[res.pareto]                                            # the found front
    """
    cfg = SearchConfig(budget=budget, seed=seed, q=q, n_initial=n_initial,
                       ref_point=None if ref_point is None else tuple(ref_point), noisy=noisy,
                       **config)
    return Search(problem, cfg, store=store, run_id=run_id, evaluate=evaluate,
                  executor=executor).run(
        progress=progress)
