"""Executors: local and process pools; exclusive jobs run alone; a SIGKILLed worker's job is
retried; results measured on other hardware are refused; a search gives the same front
through a process pool as in-process."""

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from measurements import Store
from measurements.executor import ExecutorError, Job, LocalExecutor, ProcessExecutor


def interval(seconds):
    t0 = time.time()
    time.sleep(seconds)
    return (t0, time.time(), os.getpid())


def boom(x):
    raise ValueError(f"bad input {x}")


def die_once(marker: str):
    """SIGKILL this worker process the first time (a real kill), succeed the second."""
    p = Path(marker)
    if not p.exists():
        p.write_text("died")
        os.kill(os.getpid(), signal.SIGKILL)
    return "survived"


def always_die():
    os.kill(os.getpid(), signal.SIGKILL)


def test_local_executor_runs_in_order_and_reports_exceptions_as_data():
    ex = LocalExecutor()
    res = ex.map([Job("a", interval, (0.0,)), Job("b", boom, (3,)), Job("c", sum, ([1, 2],))])
    assert [r.key for r in res] == ["a", "b", "c"]
    assert res[0].ok and res[2].value == 3
    assert not res[1].ok and res[1].error.startswith("ValueError: bad input 3")
    ex.submit(Job("d", sum, ([1],)))
    ex.submit(Job("d", sum, ([1],)))          # the same key is the same job
    assert len(list(ex.results())) == 1


def test_bad_jobs_are_named():
    with pytest.raises(ExecutorError, match="not callable"):
        Job("x", 3)
    with pytest.raises(ExecutorError, match="num_cpus=-1"):
        Job("x", sum, resources={"num_cpus": -1})
    with pytest.raises(ExecutorError, match="workers=0"):
        ProcessExecutor(0)


def test_process_pool_runs_jobs_side_by_side_but_an_exclusive_job_alone():
    with ProcessExecutor(2) as ex:
        res = ex.map([Job("a", interval, (1.0,)), Job("b", interval, (1.0,)),
                      Job("t", interval, (0.5,), exclusive=True), Job("c", interval, (0.2,))])
    iv = {r.key: r.value for r in res}
    assert all(r.ok for r in res)
    overlap = lambda p, q: p[0] < q[1] and q[0] < p[1]  # noqa: E731
    assert overlap(iv["a"], iv["b"])                      # two workers, two jobs at once
    for k in ("a", "b", "c"):
        assert not overlap(iv["t"], iv[k]), k             # the timing had the host alone


def test_a_sigkilled_worker_has_its_job_retried(tmp_path):
    with ProcessExecutor(2, backoff_s=0.05) as ex:
        res = ex.map([Job("k", die_once, (str(tmp_path / "m"),)),
                      Job("n", always_die, max_retries=1), Job("ok", sum, ([2, 3],))])
    by = {r.key: r for r in res}
    # k died once (alone or beside n): it runs alone afterwards and survives; it started 2 or 3
    # times (3 if n's death broke the pool before k's own kill), and was never charged for n's
    assert by["k"].ok and by["k"].value == "survived" and 2 <= by["k"].attempts <= 3
    assert not by["n"].ok and "worker died 2 time(s) running this job alone" in by["n"].error
    assert by["ok"].ok and by["ok"].value == 5


def run_until_killed(marker: str):
    """The first time: announce the start, then run until the pool is torn down. Again (the
    marker exists): finish at once."""
    p = Path(marker)
    if p.exists():
        return "done"
    p.write_text("started")
    time.sleep(120)
    return "never"


def die_beside(marker: str):
    """SIGKILL this worker once the job beside it has started."""
    t0 = time.time()
    while not Path(marker).exists() and time.time() - t0 < 120:
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_death_is_charged_only_to_a_job_that_ran_alone():
    # the pool cannot say which of several running jobs killed it: none is charged, all
    # re-run alone; a death with one job running is that job's
    from measurements.executor import _Entry
    ex = ProcessExecutor(2, backoff_s=0.0)
    a, b = _Entry(Job("a", sum, ([1],), max_retries=0)), _Entry(Job("b", sum, ([1],)))
    assert ex._after_death([a, b], RuntimeError("x")) == []
    assert (a.deaths, b.deaths, a.suspect, b.suspect) == (0, 0, True, True)
    assert [e.job.key for e in ex._waiting] == ["a", "b"]       # order kept, alone from now
    ex._waiting.clear()
    a.starts = 2
    failed, = ex._after_death([a], RuntimeError("killed"))
    assert not failed.ok and failed.attempts == 2
    assert "died 1 time(s) running this job alone (RuntimeError: killed)" in failed.error
    assert b.deaths == 0 and ex._after_death([b], RuntimeError("x")) == [] and b.deaths == 1


@pytest.mark.slow   # needs both workers up at once: under heavy load the pool ran them in turn
def test_a_job_is_never_failed_for_dying_beside_another(tmp_path):
    # the pool breaks while "busy" runs beside the job that kills its worker; "busy" has no
    # retries to spare, yet it is not charged: it re-runs alone and succeeds
    m = str(tmp_path / "started")
    with ProcessExecutor(2, backoff_s=0.01) as ex:
        res = ex.map([Job("busy", run_until_killed, (m,), max_retries=0),
                      Job("n", die_beside, (m,), max_retries=0)])
    by = {r.key: r for r in res}
    assert by["busy"].ok and by["busy"].value == "done" and by["busy"].attempts == 2
    assert not by["n"].ok and "died 1 time(s) running this job alone" in by["n"].error


def test_a_result_from_other_hardware_is_refused():
    r, = LocalExecutor().map([Job("m", sum, ([1],), fingerprint="000000000000")])
    assert not r.ok and "refused" in r.error and "hw:cpu-000000000000" in r.error


def test_search_through_a_process_pool_gives_the_same_front(tmp_path):
    from pymoo.problems import get_problem

    from search import minimize
    problem = get_problem("zdt1", n_var=3)
    a = minimize(problem, budget=10, seed=3, store=Store(tmp_path / "a.db"), run_id="r")
    with ProcessExecutor(2) as ex:
        b = minimize(problem, budget=10, seed=3, store=Store(tmp_path / "b.db"), run_id="r",
                     executor=ex)
    np.testing.assert_array_equal(a.F, b.F)
    with Store(tmp_path / "b.db") as st:
        trials = st.trials("r")
    assert len(trials) == 10 and all(t.status == "done" for t in trials)
    assert all("worker" in t.provenance for t in trials)
