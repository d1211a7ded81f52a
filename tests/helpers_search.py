"""A ZDT1 search that logs every evaluation and can SIGKILL itself at a chosen point; run in a
child process by tests/test_search_loop.py (and imported by it for the uninterrupted run).

    python helpers_search.py STORE LOG RUN_ID [KILL]

KILL is ``initial:K`` (at the start of the evaluation after K finished ones, before its
"start" line), ``mid:K`` (inside evaluation K + 1, after its "start" line), ``tell:I``
(right after trial I is told, before its round is closed) or ``propose:R`` (right after
round R's proposal state is stored, before its trials are written). Without KILL the search runs to
the end and the last line of stdout is ``{"F": ..., "rounds": ...}``.
"""

import json
import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

BUDGET, N_INITIAL, Q, SEED, N_VAR = 14, 6, 2, 3, 3
SETTINGS = dict(acq_pop_size=16, acq_generations=5)


def log(path: str, line: str) -> None:
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def run(store_path: str, log_path: str, run_id: str, kill: str | None = None):
    from pymoo.problems import get_problem

    from measurements import Store
    from search import Search, minimize

    mode, at = kill.split(":") if kill else (None, "-1")
    at = int(at)
    problem = get_problem("zdt1", n_var=N_VAR)
    finished = 0                       # evaluations finished in this process

    def evaluate(X):
        nonlocal finished
        x = json.dumps(np.asarray(X, float)[0].tolist())
        if mode == "initial" and finished == at:
            die()
        log(log_path, f"start {x}")
        if mode == "mid" and finished == at:
            die()
        F = problem.evaluate(X, return_as_dictionary=True)["F"]
        log(log_path, f"end {x}")
        finished += 1
        return np.asarray(F, float).reshape(-1), np.zeros(0)

    if mode == "tell":
        told = Search.tell

        def tell(self, index, *args, **kwargs):
            trial = told(self, index, *args, **kwargs)
            if index == at:
                die()
            return trial

        Search.tell = tell
    if mode == "propose":
        put = Store.put_search_state

        def put_search_state(self, run_id, round, state):
            put(self, run_id, round, state)
            if round == at and "gps" in state:       # the proposal, not the round summary
                die()

        Store.put_search_state = put_search_state
    with Store(store_path) as store:
        return minimize(problem, budget=BUDGET, n_initial=N_INITIAL, q=Q, seed=SEED,
                        store=store, run_id=run_id, evaluate=evaluate, **SETTINGS)


def summary(res) -> dict:
    return {"F": res.F.tolist(),
            "rounds": [[r.round, r.n_evals, r.hypervolume, r.front_size, r.q]
                       for r in res.rounds]}


if __name__ == "__main__":
    store_path, log_path, run_id, *kill = sys.argv[1:]
    res = run(store_path, log_path, run_id, kill[0] if kill else None)
    print(json.dumps(summary(res)))
