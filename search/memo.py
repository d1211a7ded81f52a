"""Evaluations memoised by candidate in the store.

A candidate evaluated once (measured, flash- or fully distilled) is never evaluated again under
the same settings: its result is a trial of one store run whose id is derived from the
settings, keyed by the candidate. A killed process loses at most the evaluation in flight (its
trial stays ``running`` and is evaluated again); a failure is recorded with its cause and
returned, not retried.

    memo = Memo(store, "flash", {"steps": 60, "seed": 0})
    trial = memo.put(candidate, lambda c: ((score,), (), {"cost_s": 12.0}))

:class:`MemoisedObjective` wraps an objective whose value does not depend on the machine (an
accuracy) so that it is computed once per candidate for every run and machine sharing a store.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

from measurements import Store, Trial
from measurements.errors import InputError

from .objectives import Evaluation, Objective

__all__ = ["Memo", "MemoisedObjective"]


class Memo:
    """Evaluations by candidate, in ``store`` (one run of trials; ``x`` = the candidate)."""

    def __init__(self, store: Store, kind: str, settings: dict[str, Any]):
        self.store = store
        digest = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str)
                              .encode()).hexdigest()[:8]
        self.run = f"{kind}-memo-{digest}"
        store.start_run(f"{kind}_memo", args=settings, run_id=self.run)
        self.by_key = {json.dumps(t.x, sort_keys=True): t for t in store.trials(self.run)}

    def get(self, cand) -> Trial | None:
        """The finished (done or failed) trial of ``cand``, or None."""
        t = self.by_key.get(cand.key())
        return t if t is not None and t.status in ("done", "failed") else None

    def put(self, cand, fn: Callable[[Any], tuple]) -> Trial:
        """``cand``'s trial, evaluating ``fn(cand) -> (F, G, detail)`` only if it has none.
        ``F`` is stored as values ``f0, f1, ...``; an exception is a failed trial."""
        t = self.get(cand)
        if t is not None:
            return t
        key = cand.key()
        if key in self.by_key:                 # a trial left running by a killed process
            idx = self.by_key[key].index
        else:
            idx = len(self.by_key)
            self.store.put_trials([Trial(run_id=self.run, index=idx, x=cand.to_dict(),
                                         source="memo", round=0)])
        self.store.update_trial(self.run, idx, status="running")
        try:
            F, G, detail = fn(cand)
            t = self.store.update_trial(self.run, idx, status="done",
                                        values={f"f{j}": float(v) for j, v in enumerate(F)},
                                        provenance=dict(detail))
        except Exception as e:  # noqa: BLE001 - a failed evaluation is data
            t = self.store.update_trial(self.run, idx, status="failed",
                                        provenance={"error": f"{type(e).__name__}: {e}"})
        self.by_key[key] = t
        return t

    def done(self) -> list[Trial]:
        return [t for t in self.by_key.values() if t.status == "done"]


class MemoisedObjective(Objective):
    """An objective evaluated once per candidate, then read back from the store by any run, on
    any machine, that shares it.

    Only for values that do not depend on the machine that computes them: an accuracy (flash
    or full distillation, a proxy) is a property of the student and its training recipe, so a
    candidate distilled on one host need not be distilled again on another; a timing or a
    prediction is refused. The memo is keyed by the candidate alone (an accuracy does not depend
    on the serving workload) under the objective's own description (steps, seed, teacher): a
    change of recipe is a new memo, never a stale value.

        acc = MemoisedObjective(FlashAccuracy(ctx, 100), store)
        acc.evaluate(cand, workload)     # distils; a second call, in any process, reads it

    It holds the open store, so it runs where the store is written (the driver), not on an
    executor's workers: pickling it is refused.
    """

    def __init__(self, objective: Objective, store: Store, kind: str = "objective"):
        if objective.exclusive or objective.provenance in ("measured", "predicted"):
            raise InputError(
                f"{objective.name}: a {objective.provenance} value depends on the machine it "
                "was obtained on; memoise only machine-independent objectives (accuracy)")
        self.inner = objective
        for a in ("name", "sense", "provenance", "unit", "cheap", "exclusive", "log"):
            setattr(self, a, getattr(objective, a))
        self.memo = Memo(store, kind, {"objective": objective.describe()})
        self.computed = self.reused = 0

    @property
    def resources(self):
        return self.inner.resources

    def evaluate(self, cand, workload):
        fresh: list[Evaluation] = []

        def compute(c):
            e = self.inner.evaluate(c, workload)
            fresh.append(e)
            return (e.value,), (), {"evaluation": e.to_dict()}

        t = self.memo.put(cand, compute)
        if t.status == "failed":
            raise RuntimeError(f"{self.name} of {cand.describe()} failed (memo {self.memo.run} "
                               f"#{t.index}): {t.provenance.get('error')}")
        if fresh:
            self.computed += 1
            return fresh[0]
        self.reused += 1
        e = t.provenance["evaluation"]
        return Evaluation(e["name"], e["value"], e["provenance"], 0.0,
                          {**e.get("detail", {}), "memo": f"{self.memo.run}#{t.index}",
                           "first_cost_s": e["cost_s"]})

    def record(self, cand, evaluation: Evaluation, source: str) -> bool:
        """Adopt a value obtained elsewhere (an earlier store's record of the same objective on
        ``cand``), naming where it came from; False if ``cand`` already has one."""
        if evaluation.name != self.name:
            raise InputError(f"record: evaluation of {evaluation.name!r}, expected {self.name!r}")
        if self.memo.get(cand) is not None:
            return False
        self.memo.put(cand, lambda c: ((evaluation.value,), (),
                                       {"evaluation": evaluation.to_dict(), "source": source}))
        return True

    def describe(self):
        # the inner objective's own: memoising changes what an evaluation costs, not what the
        # objective is (a search resumed with or without the memo is the same search)
        return self.inner.describe()

    def __reduce__(self):
        raise TypeError(f"MemoisedObjective({self.name}) holds an open store and is evaluated "
                        "by the process that writes it; send the inner objective to workers")
