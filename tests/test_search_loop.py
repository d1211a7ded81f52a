"""The ask/tell search loop (search.loop) through its public API: problem validation, mixed
variables, seeds, budget, failures, constraints, cheap objectives, and resuming, in process
and after a real SIGKILL."""

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings, strategies as st
from pymoo.core.problem import ElementwiseProblem, Problem
from pymoo.core.variable import Binary, Choice, Integer, Real
from pymoo.problems import get_problem
from pymoo.problems.multi.zdt import ZDT1
from threadpoolctl import threadpool_limits

from measurements import Store
from search import Search, SearchConfig, SearchError, SearchResult, minimize, nondominated

import helpers_search

HERE = Path(__file__).parent
TINY = dict(acq_pop_size=16, acq_generations=5)     # a tiny acquisition optimiser


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """The matrices here are tiny: BLAS threads only fight over the shared cores (10x slower
    on a loaded machine), so run single-threaded (the helper process is too, via its env)."""
    with threadpool_limits(limits=1):
        yield


class Quadratic(Problem):
    """Objective j: squared distance to a corner-ish point; works for any bounds."""

    def __init__(self, n_var, n_obj, xl, xu):
        super().__init__(n_var=n_var, n_obj=n_obj, xl=xl, xu=xu)

    def _evaluate(self, X, out, *args, **kwargs):
        X = np.asarray(X, float)
        out["F"] = np.column_stack([((X - 0.3 * j) ** 2).sum(axis=1) for j in range(self.n_obj)])


# -- problem validation -------------------------------------------------------------------------
@st.composite
def problem_specs(draw):
    """(n_var, n_obj, xl, xu): finite ordered bounds (zero width included) with, in most
    examples, one or more defects: swapped, NaN or infinite bounds, or a missing xl / xu."""
    n_var = draw(st.integers(1, 6))
    n_obj = draw(st.integers(1, 5))
    xl = draw(st.lists(st.floats(-5, 5), min_size=n_var, max_size=n_var))
    width = st.one_of(st.just(0.0), st.floats(0, 3))
    xu = [a + draw(width) for a in xl]
    for defect in draw(st.lists(st.sampled_from(["swap", "nan", "inf", "-inf"]), max_size=2)):
        i = draw(st.integers(0, n_var - 1))
        side = draw(st.sampled_from(["xl", "xu"]))
        if defect == "swap":
            xl[i], xu[i] = xu[i] + draw(st.floats(0.01, 2)), xl[i]
        else:
            (xl if side == "xl" else xu)[i] = float(defect)
    form = draw(st.sampled_from(["array", "array", "array", "array", "scalar", "no_xl", "no_xu"]))
    if form == "scalar":
        xl, xu = xl[0], xu[0]
    elif form == "no_xl":
        xl = None
    elif form == "no_xu":
        xu = None
    return n_var, n_obj, xl, xu


def expected_error(n_var, n_obj, xl, xu):
    """The regex the SearchError must match, or None if the problem is valid."""
    if not 2 <= n_obj <= 4:
        return rf"n_obj={n_obj}: this search handles 2-4 objectives"
    if xl is None or xu is None:
        return r"problem\.xl / problem\.xu are not set.*finite bounds"
    lo = np.broadcast_to(np.asarray(xl, float), (n_var,))
    hi = np.broadcast_to(np.asarray(xu, float), (n_var,))
    for i in range(n_var):
        if not (np.isfinite(lo[i]) and np.isfinite(hi[i])):
            return rf"dimension 'x{i}': bounds must be finite"
        if lo[i] > hi[i]:
            return rf"dimension 'x{i}': lower bound .* > upper bound .*swap"
    return None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=problem_specs())
@example(spec=(3, 2, [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]))           # plain valid
@example(spec=(2, 4, [-1.0, 2.0], [-1.0, 2.0]))                   # zero-width boxes
@example(spec=(2, 3, [0.0, 1.0], [1.0, 0.0]))                     # swapped
@example(spec=(2, 2, [0.0, math.nan], [1.0, 1.0]))                # NaN
@example(spec=(2, 2, [0.0, 0.0], [1.0, math.inf]))                # inf
@example(spec=(2, 2, None, [1.0, 1.0]))                           # missing
@example(spec=(4, 1, 0.0, 1.0))                                   # one objective
@example(spec=(4, 5, 0.0, 1.0))                                   # five objectives
def test_problem_shapes_and_bounds_are_accepted_or_refused_by_name(spec):
    n_var, n_obj, xl, xu = spec
    problem = Quadratic(n_var, n_obj, xl, xu)
    want = expected_error(*spec)
    event("refused" if want else "accepted")
    if want is not None:
        with pytest.raises(SearchError, match=want) as e:
            Search(problem, SearchConfig(budget=4))
        assert isinstance(e.value, ValueError)
        with pytest.raises(SearchError, match=want):
            minimize(problem, budget=4)
        return
    res = minimize(problem, budget=4, n_initial=3, seed=0, **TINY)
    assert res.F.shape == (4, n_obj) and res.n_failed == 0
    X = np.array(res.X)
    lo = np.broadcast_to(np.asarray(xl, float), (n_var,))
    hi = np.broadcast_to(np.asarray(xu, float), (n_var,))
    assert X.shape == (4, n_var) and np.all(X >= lo) and np.all(X <= hi)
    np.testing.assert_allclose(res.F, problem.evaluate(X), rtol=1e-12)


def test_bounds_of_the_wrong_length_are_refused_by_name():
    problem = Quadratic(2, 2, np.zeros(3), np.ones(3))
    with pytest.raises(SearchError, match=r"xl"):
        Search(problem, SearchConfig(budget=4))


def test_other_problem_and_config_errors_name_the_field():
    zdt = get_problem("zdt1", n_var=3)
    for kw, match in [({"budget": 0}, r"SearchConfig\.budget=0"),
                      ({"budget": 5, "q": 0}, r"SearchConfig\.q=0"),
                      ({"budget": 5, "n_initial": 1}, r"SearchConfig\.n_initial=1"),
                      ({"budget": 5, "noise_var": -1.0}, r"SearchConfig\.noise_var=-1\.0"),
                      ({"budget": 5, "kernel": "matern32"}, r"SearchConfig\.kernel='matern32'"),
                      ({"budget": 5, "ref_point": (1.0, math.nan)}, r"ref_point.*finite"),
                      ({"budget": 5, "initial_design": "grid"}, r"initial_design='grid'"),
                      ({"budget": 5, "exploration": 1.5}, r"SearchConfig\.exploration=1\.5"),
                      ({"budget": 5, "exploration": math.nan}, r"exploration=nan")]:
        with pytest.raises(SearchError, match=match):
            Search(zdt, SearchConfig(**kw))
    with pytest.raises(SearchError, match=r"ref_point has 3 values; the problem has 2"):
        Search(zdt, SearchConfig(budget=5, ref_point=(1, 1, 1)))
    with pytest.raises(SearchError, match=r"expected a pymoo Problem, got dict"):
        Search({"n_var": 2}, SearchConfig(budget=5))
    eq = Problem(n_var=2, n_obj=2, n_eq_constr=1, xl=0.0, xu=1.0)
    with pytest.raises(SearchError, match=r"n_eq_constr=1"):
        Search(eq, SearchConfig(budget=5))


# -- mixed variables ----------------------------------------------------------------------------
class Mixed(ElementwiseProblem):
    OPTIONS = ("relu", "gelu", "tanh")

    def __init__(self):
        super().__init__(vars={"r": Real(bounds=(-1.0, 2.0)), "i": Integer(bounds=(-3, 5)),
                               "c": Choice(options=self.OPTIONS), "b": Binary()}, n_obj=2)
        self.seen = []

    def _evaluate(self, X, out, *args, **kwargs):
        self.seen.append(dict(X))
        act = self.OPTIONS.index(X["c"])
        out["F"] = [X["r"] ** 2 + 0.3 * X["i"] + act, (X["r"] - 1) ** 2 - 0.2 * X["i"] + X["b"]]


def test_mixed_variable_problem_runs_and_evaluates_only_valid_values():
    problem = Mixed()
    res = minimize(problem, budget=10, n_initial=5, seed=0, **TINY)
    assert len(problem.seen) == 10 and len(res.F) == 10 and res.n_failed == 0
    assert res.X == problem.seen                      # the result holds what was evaluated
    for x in problem.seen:
        assert set(x) == {"r", "i", "c", "b"}
        assert isinstance(x["r"], float) and -1.0 <= x["r"] <= 2.0
        assert isinstance(x["i"], int) and -3 <= x["i"] <= 5
        assert x["c"] in Mixed.OPTIONS
        assert x["b"] in (0, 1)
    # distinct candidates, and the acquisition rounds explored beyond one category
    assert len({json.dumps(x, sort_keys=True) for x in problem.seen}) == 10
    assert len({x["c"] for x in problem.seen}) >= 2


# -- seeds, budget, failures --------------------------------------------------------------------
def test_same_seed_same_result_other_seed_other_result():
    zdt = get_problem("zdt1", n_var=3)
    a = minimize(zdt, budget=8, n_initial=5, seed=1, **TINY)
    b = minimize(zdt, budget=8, n_initial=5, seed=1, **TINY)
    c = minimize(zdt, budget=8, n_initial=5, seed=2, **TINY)
    np.testing.assert_array_equal(a.F, b.F)
    assert len(a.F) == 8 and len(a.rounds) == 4
    np.testing.assert_array_equal(np.array(a.X), np.array(b.X))
    assert [r.hypervolume for r in a.rounds] == [r.hypervolume for r in b.rounds]
    assert not np.array_equal(a.F, c.F)


@pytest.mark.parametrize("q, sizes", [(1, [4] + [1] * 7), (3, [4, 3, 3, 1])])
def test_budget_counts_every_evaluation(q, sizes):
    res = minimize(get_problem("zdt1", n_var=3), budget=11, n_initial=4, q=q, seed=0, **TINY)
    assert len(res.F) + res.n_failed == 11 and res.n_failed == 0
    assert [r.q for r in res.rounds] == sizes             # the last round is cut to the budget
    assert [r.n_evals for r in res.rounds] == list(np.cumsum([r.q for r in res.rounds]))


class Fragile(ZDT1):
    """ZDT1 whose evaluation raises where x0 > 0.6."""

    def _evaluate(self, X, out, *args, **kwargs):
        if np.any(X[:, 0] > 0.6):
            raise ValueError(f"x0={X[0, 0]:.3f} is out of the simulator's range")
        super()._evaluate(X, out, *args, **kwargs)


def test_failing_evaluations_are_recorded_and_the_search_goes_on(tmp_path):
    with Store(tmp_path / "s.db") as store:
        res = minimize(Fragile(n_var=3), budget=14, n_initial=6, seed=0, store=store,
                       run_id="fragile", **TINY)
        trials = store.trials("fragile")
    assert len(res.F) + res.n_failed == 14 == len(trials)
    failed = [t for t in trials if t.status == "failed"]
    assert len(failed) == res.n_failed >= 1
    for t in failed:
        assert t.x[0] > 0.6 and t.values == {}
        assert t.provenance["error"] == (f"ValueError: x0={t.x[0]:.3f} is out of the "
                                         "simulator's range")
    assert all(t.status == "done" for t in trials if t.x[0] <= 0.6)
    assert max(t.index for t in trials if t.status == "done") > failed[0].index   # went on
    assert np.all(np.array(res.X)[:, 0] <= 0.6)
    np.testing.assert_allclose(res.F, ZDT1(n_var=3).evaluate(np.array(res.X)), rtol=1e-12)


class Broken(ZDT1):
    def _evaluate(self, X, out, *args, **kwargs):
        raise RuntimeError("license server down")


def test_a_search_whose_every_initial_evaluation_fails_says_so(tmp_path):
    with Store(tmp_path / "s.db") as store:
        with pytest.raises(SearchError, match=r"every initial evaluation failed.*provenance"):
            minimize(Broken(n_var=3), budget=8, n_initial=4, store=store, run_id="b", **TINY)
        trials = store.trials("b")
    assert [t.status for t in trials] == ["failed"] * 4          # nothing more was proposed
    assert {t.provenance["error"] for t in trials} == {"RuntimeError: license server down"}


class NaNZDT1(ZDT1):
    """ZDT1 whose objectives are NaN where x0 > 0.6 (a diverged simulation)."""

    def _evaluate(self, X, out, *args, **kwargs):
        super()._evaluate(X, out, *args, **kwargs)
        out["F"] = np.where(X[:, :1] > 0.6, np.nan, out["F"])


def test_nan_objectives_are_recorded_as_failed_and_the_search_goes_on(tmp_path):
    with Store(tmp_path / "s.db") as store:
        res = minimize(NaNZDT1(n_var=3), budget=10, n_initial=6, seed=0, store=store,
                       run_id="nan", **TINY)
        trials = store.trials("nan")
    assert len(res.F) + res.n_failed == 10 and res.n_failed >= 1
    assert all("non-finite" in t.provenance["error"] for t in trials if t.status == "failed")


# -- constraints and cheap objectives -----------------------------------------------------------
class Constrained(ZDT1):
    """ZDT1 with g = x0 + x1 - 0.7 <= 0: the unconstrained front's right half is infeasible."""

    def __init__(self):
        super().__init__(n_var=3)
        self.n_ieq_constr = 1

    def _evaluate(self, X, out, *args, **kwargs):
        super()._evaluate(X, out, *args, **kwargs)
        out["G"] = (X[:, 0] + X[:, 1] - 0.7)[:, None]


def test_constrained_problem_keeps_only_feasible_points_on_the_front():
    res = minimize(Constrained(), budget=14, n_initial=8, seed=2, **TINY)
    assert res.G.shape == (14, 1) and res.F.shape == (14, 2)
    X = np.array(res.X)
    np.testing.assert_allclose(res.G[:, 0], X[:, 0] + X[:, 1] - 0.7, rtol=1e-12, atol=1e-15)
    assert (~res.feasible).any() and res.feasible.any()      # both kinds were evaluated
    assert np.all(res.G[res.pareto] <= 0)
    feas = np.flatnonzero(res.G[:, 0] <= 0)
    assert set(res.pareto) == set(feas[nondominated(res.F[feas])])
    # the hypervolume counts the feasible points only
    assert res.hypervolume == pytest.approx(pymoo_hv(res.F[feas], res.ref_point), rel=1e-12)
    assert res.hypervolume <= pymoo_hv(res.F, res.ref_point) + 1e-12
    # an infeasible point that dominates everything is kept off the front
    F = np.array([[0.0, 0.0], [0.2, 0.5], [0.5, 0.2], [0.6, 0.6]])
    G = np.array([[0.1], [0.0], [-1.0], [-1.0]])
    made = SearchResult(run_id="r", X=[None] * 4, F=F, G=G, ref_point=np.ones(2), rounds=(),
                        n_failed=0)
    assert made.feasible.tolist() == [False, True, True, True]
    assert made.pareto.tolist() == [1, 2]
    assert made.hypervolume == pytest.approx(0.8 * 0.5 + 0.5 * 0.8 - 0.5 * 0.5, abs=1e-12)


def pymoo_hv(F, ref):
    from pymoo.indicators.hv import HV
    F = F[np.all(F < ref, axis=1)]
    return float(HV(ref_point=ref)(F)) if len(F) else 0.0


class CheapZDT1(ZDT1):
    cheap_objectives = (0,)

    def __init__(self):
        super().__init__(n_var=3)
        self.cheap_calls = 0

    def evaluate_cheap(self, X):
        self.cheap_calls += 1
        assert X.ndim == 2 and X.shape[1] == 3
        return X[:, :1]


def test_cheap_objective_is_not_modelled(tmp_path):
    problem = CheapZDT1()
    with Store(tmp_path / "s.db") as store:
        res = minimize(problem, budget=10, n_initial=6, seed=0, store=store, run_id="cheap",
                       **TINY)
        states = store.search_states("cheap")
    acq = [state for r, state in states if r > 0]
    assert len(acq) == 4
    for state in acq:
        assert state["gps"][0] is None                    # objective 0: no GP
        assert state["gps"][1] is not None and len(state["gps"][1]["lengthscales_cont"]) == 3
    assert problem.cheap_calls > 0                        # the acquisition asked it instead
    np.testing.assert_allclose(res.F[:, 0], np.array(res.X)[:, 0], rtol=1e-12)


def test_bad_cheap_objectives_are_refused():
    class NoFn(ZDT1):
        cheap_objectives = (0,)

    class OutOfRange(CheapZDT1):
        cheap_objectives = (2,)

    class AllCheap(CheapZDT1):
        cheap_objectives = (0, 1)

    for problem, match in [(NoFn(n_var=3), r"evaluate_cheap\(X\) is\s+missing"),
                           (OutOfRange(), r"cheap_objectives has 2, outside 0..1"),
                           (AllCheap(), r"every objective is cheap")]:
        with pytest.raises(SearchError, match=match):
            Search(problem, SearchConfig(budget=5))


# -- resume (in process) ------------------------------------------------------------------------
@pytest.mark.parametrize("q, k", [(1, 8), (2, 10)])
def test_resume_with_a_larger_budget_equals_an_uninterrupted_run(tmp_path, q, k):
    zdt = get_problem("zdt1", n_var=3)
    kw = dict(n_initial=6, q=q, seed=4, **TINY)
    with Store(tmp_path / "s.db") as store:
        first = minimize(zdt, budget=k, store=store, run_id="r", **kw)
        assert len(first.F) == k
        resumed = minimize(zdt, budget=14, store=store, run_id="r", **kw)
        assert [t.index for t in store.trials("r")] == list(range(14))
        assert all(t.provenance["attempts"] == 1 for t in store.trials("r"))
    whole = minimize(zdt, budget=14, **kw)
    np.testing.assert_array_equal(resumed.F, whole.F)
    np.testing.assert_array_equal(resumed.F[:k], first.F)
    assert [(r.round, r.n_evals, r.hypervolume) for r in resumed.rounds] == \
        [(r.round, r.n_evals, r.hypervolume) for r in whole.rounds]


def test_resume_with_other_settings_is_refused_by_name(tmp_path):
    zdt = get_problem("zdt1", n_var=3)
    with Store(tmp_path / "s.db") as store:
        minimize(zdt, budget=7, n_initial=6, seed=4, store=store, run_id="r", **TINY)
        for kw, match in [({"q": 2}, r"config\.q: was 1, now 2"),
                          ({"seed": 5}, r"config\.seed: was 4, now 5"),
                          ({"kernel": "rbf"}, r"config\.kernel: was 'matern52', now 'rbf'")]:
            args = dict(n_initial=6, seed=4, **TINY)
            args.update(kw)
            with pytest.raises(SearchError, match=match) as e:
                minimize(zdt, budget=9, store=store, run_id="r", **args)
            assert "run 'r'" in str(e.value) and "only the budget may change" in str(e.value)
        with pytest.raises(SearchError, match=r"problem\.n_var: was 3, now 4"):
            minimize(get_problem("zdt1", n_var=4), budget=9, n_initial=6, seed=4,
                     store=store, run_id="r", **TINY)
        assert len(store.trials("r")) == 7                # nothing was written by the refusals
        # the budget alone may change
        assert len(minimize(zdt, budget=9, n_initial=6, seed=4, store=store, run_id="r",
                            **TINY).F) == 9


# -- SIGKILL and resume, real processes ---------------------------------------------------------
@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    d = tmp_path_factory.mktemp("uninterrupted")
    return helpers_search.summary(helpers_search.run(str(d / "s.db"), str(d / "log"), "zdt"))


def _helper(store, log, *kill):
    return subprocess.run([sys.executable, str(HERE / "helpers_search.py"), str(store), str(log),
                           "zdt", *kill], capture_output=True, text=True, timeout=300,
                          cwd=str(HERE.parent), env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})


def _parse(lines, index_of):
    out = []
    for line in lines:
        what, x = line.split(" ", 1)
        out.append((what, index_of[tuple(json.loads(x))]))
    return out


# (kill point, trial evaluated twice: killed mid-evaluation, or None)
KILLS = [("initial:3", None),   # initial design, after 3 finished, before the 4th starts
         ("mid:8", 8),          # inside the first evaluation of acquisition round 2
         ("tell:9", None),      # right after the tell closing round 2, before its summary
         ("tell:5", None),      # right after the last initial tell (the ref point is unset)
         ("propose:3", None)]   # round 3's proposal stored, its trials not yet written


@pytest.mark.parametrize("kill, rerun", KILLS, ids=[k for k, _ in KILLS])
def test_sigkill_then_resume_loses_and_repeats_nothing(tmp_path, uninterrupted, kill, rerun):
    store, log = tmp_path / "s.db", tmp_path / "log"
    first = _helper(store, log, kill)
    assert first.returncode == -signal.SIGKILL, first.stderr
    before = log.read_text().splitlines()
    with Store(store, readonly=True) as s:       # where exactly the kill came
        status = [t.status for t in s.trials("zdt")]
        states = s.search_states("zdt")
        closed = {r for r, state in states if "n_evals" in state}
    mode, at = kill.split(":")
    at = int(at)
    if mode == "initial":
        assert status == ["done"] * at + ["running"] + ["pending"] * (5 - at) and not closed
    elif mode == "mid":
        assert status == ["done"] * at + ["running", "pending"]
    elif mode == "propose":
        assert status == ["done"] * (6 + 2 * (at - 1))
        assert closed == set(range(at))
        assert "gps" in dict(states)[at]                 # the proposal is in the store
    else:   # the round's last trial is told, its summary not written, nothing new proposed
        assert status == ["done"] * (at + 1)
        round_of_at = 0 if at < 6 else 1 + (at - 6) // 2  # 6 initial, then rounds of q = 2
        assert closed == set(range(round_of_at))          # only the rounds before it closed
    second = _helper(store, log)
    assert second.returncode == 0, second.stderr
    lines = log.read_text().splitlines()
    assert lines[:len(before)] == before
    after = lines[len(before):]

    budget = helpers_search.BUDGET
    with Store(store, readonly=True) as s:
        trials = s.trials("zdt")
    # every trial 0..budget-1 done exactly once
    assert [t.index for t in trials] == list(range(budget))
    assert all(t.status == "done" for t in trials)
    index_of = {tuple(t.x): t.index for t in trials}
    assert len(index_of) == budget                        # distinct x: the log maps to trials
    ev_before, ev_after = _parse(before, index_of), _parse(after, index_of)
    ends = [i for what, i in ev_before + ev_after if what == "end"]
    assert sorted(ends) == list(range(budget))            # each finished exactly once
    assert not ({i for w, i in ev_before if w == "end"} & {i for w, i in ev_after if w == "end"})
    starts = [i for what, i in ev_before + ev_after if what == "start"]
    twice = sorted({i for i in starts if starts.count(i) > 1})
    assert twice == ([] if rerun is None else [rerun])    # only the killed one ran again
    if rerun is not None:
        assert ev_before[-1] == ("start", rerun) and ev_after[0] == ("start", rerun)
    # the store counts attempts: the trial running at the kill was attempted twice
    killed_running = rerun if rerun is not None else (3 if kill.startswith("initial") else None)
    assert [t.provenance["attempts"] for t in trials] == [
        2 if t.index == killed_running else 1 for t in trials]
    # same result as the uninterrupted run with the same seed (0 lost, 0 repeated)
    got = json.loads(second.stdout.strip().splitlines()[-1])
    assert got["F"] == uninterrupted["F"]
    assert got["rounds"] == uninterrupted["rounds"]
    F = [[t.values["f0"], t.values["f1"]] for t in trials]
    assert F == uninterrupted["F"]
