"""Evaluations memoised by candidate in the store.

A candidate evaluated once (measured, flash- or fully distilled) is never evaluated again under
the same settings: its result is a trial of one store run whose id is derived from the
settings, keyed by the candidate. A killed process loses at most the evaluation in flight (its
trial stays ``running`` and is evaluated again); a failure is recorded with its cause and
returned, not retried.

    memo = Memo(store, "flash", {"steps": 60, "seed": 0})
    trial = memo.put(candidate, lambda c: ((score,), (), {"cost_s": 12.0}))
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable

from measurements import Store, Trial

__all__ = ["Memo"]


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
