"""The host lock between real processes: a timing waits for the unit of work in flight, work waits
while a timing runs, and work that arrives after a waiting timing does not overtake it."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from measurements import hostlock

WORKER = textwrap.dedent("""
    import sys, time
    from measurements import hostlock
    mode, hold, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    def mark(what):
        with open(out, "a") as f:
            f.write(f"{what} {time.time()!r}\\n")
    mark("request")
    with getattr(hostlock, mode)():
        mark("enter")
        time.sleep(hold)
        mark("exit")
""")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("HWDISTILL_HOST_LOCK", str(tmp_path / "host.lock"))
    return tmp_path


def start(env, name, mode, hold):
    out = env / f"{name}.log"
    p = subprocess.Popen([sys.executable, "-c", WORKER, mode, str(hold), str(out)],
                         env=os.environ.copy())
    return p, out


def marks(out: Path) -> dict:
    return {k: float(v) for k, v in (ln.split() for ln in out.read_text().splitlines())}


def wait_for(out: Path, what: str, timeout=60.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if out.exists() and what in marks(out):
            return marks(out)[what]
        time.sleep(0.02)
    raise AssertionError(f"{out.name} never marked {what!r}")


def test_a_timing_waits_for_the_work_in_flight_then_work_waits_for_it(env):
    a, a_out = start(env, "a", "work", 1.0)
    wait_for(a_out, "enter")
    b, b_out = start(env, "b", "timing", 1.0)
    wait_for(b_out, "request")
    time.sleep(0.3)                                   # b is queued behind a's unit
    c, c_out = start(env, "c", "work", 0.0)
    for p in (a, b, c):
        assert p.wait(timeout=120) == 0
    A, B, C = marks(a_out), marks(b_out), marks(c_out)
    assert B["enter"] >= A["exit"]                    # the timing waited for the unit in flight
    # work that arrived while the timing waited did not overtake it (the turnstile)
    assert C["request"] < B["enter"] and C["enter"] >= B["exit"]


def test_work_units_share_the_host(env):
    a, a_out = start(env, "a", "work", 1.0)
    wait_for(a_out, "enter")
    b, b_out = start(env, "b", "work", 0.0)
    for p in (a, b):
        assert p.wait(timeout=120) == 0
    assert marks(b_out)["exit"] < marks(a_out)["exit"]   # b ran while a held its unit


def test_nesting_in_one_thread_never_waits_for_itself(env):
    with hostlock.timing():
        with hostlock.work():
            with hostlock.timing():
                pass
    # a timing inside a unit of work converts that unit's lock, and still excludes others
    a, a_out = start(env, "a", "work", 1.0)
    wait_for(a_out, "enter")
    with hostlock.work():
        with hostlock.timing():
            t_in = time.time()
        with hostlock.work():
            pass
    assert a.wait(timeout=120) == 0
    assert t_in >= marks(a_out)["exit"]


def test_disabled_by_the_environment(env, monkeypatch):
    monkeypatch.setenv("HWDISTILL_HOST_LOCK", "none")
    assert hostlock.lock_path() is None
    a, a_out = start(env, "a", "work", 1.0)          # a holds nothing: the lock is off
    wait_for(a_out, "enter")
    with hostlock.timing():
        t_in = time.time()
    assert a.wait(timeout=120) == 0
    assert t_in < marks(a_out)["exit"]


def test_an_unusable_lock_path_warns_and_times_anyway(tmp_path, monkeypatch):
    monkeypatch.setenv("HWDISTILL_HOST_LOCK", str(tmp_path / "missing-dir" / "host.lock"))
    monkeypatch.setattr(hostlock._local, "warned", False, raising=False)
    with pytest.warns(UserWarning, match="HWDISTILL_HOST_LOCK"):
        with hostlock.timing():
            with hostlock.work():
                pass


COMPILER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from distill import StudentConfig, Workload
    from perfmodel.program import compile_local
    out, go = sys.argv[1], Path(sys.argv[2])
    def mark(what):
        with open(out, "a") as f:
            f.write(f"{what} {time.time()!r}\\n")
    mark("ready")
    while not go.exists():
        time.sleep(0.02)
    mark("request")
    compile_local(StudentConfig(num_layers=1, hidden_size=32, num_heads=2, ffn_size=64,
                                vocab_size=128, max_positions=32), Workload(1, 16))
    mark("done")
""")


def test_compiling_a_program_waits_for_a_timing_elsewhere(env):
    """XLA compilation takes both cores for seconds, so it is work: it does not run while
    another process times."""
    out, go = env / "compiler.log", env / "go"
    comp = subprocess.Popen([sys.executable, "-c", COMPILER, str(out), str(go)],
                            env=os.environ.copy())
    wait_for(out, "ready", timeout=120)
    t, t_out = start(env, "t", "timing", 1.5)
    wait_for(t_out, "enter")
    go.touch()
    for p in (comp, t):
        assert p.wait(timeout=120) == 0
    C, T = marks(out), marks(t_out)
    assert C["request"] < T["exit"] <= C["done"]
