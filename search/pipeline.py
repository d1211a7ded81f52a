"""The main job, end to end, as resumable stages (what `hwdistill run` and `make demo` run).

  profile  per-op timings of sampled students on this machine         (store, skipped if stored)
  fit      the op-latency model                                       (RUN/model)
  search   surrogate-assisted search: predicted latency x accuracy proxy (store trials)
  measure  time the Pareto-promising candidates and the teacher here    (interleaved rounds)
  flash    flash-distil the measured front                           (memoised in the store)
  full     fully distil the best one(s) within what is left of the budget (checkpointed)
  report   RUN/report.md and RUN/report.html with PNGs                 (search.report)

Each stage's outcome is written to ``RUN/state.json`` (atomically) when it completes, and the
work inside a stage is resumable through the store (profiled programs, search trials, memoised
flash results) or a checkpoint (full distillation): Ctrl-C, then the same command, continues.
The run id is derived from the settings, so the same command finds its run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
from measurements.errors import InputError, MissingError, StateError

__all__ = ["RunSettings", "Pipeline", "STAGES", "load_state"]

RUN_SPACE = Path(__file__).parent / "run_space.toml"
STAGES = ("profile", "fit", "search", "measure", "flash", "full", "report")
TEACHER = "minilm-l6-h384"       # the default teacher's architecture (PRESETS name)
PRESET_MARKERS = ("bert-tiny", "bert-mini", "bert-small", "mobilebert-tiny")


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What a run does. Everything here enters the run id, so the same settings resume."""

    budget_minutes: float = 15.0
    target: str = "cpu"
    workload: str = "8,128"           # the shipped op-list table covers the default space here
    seed: int = 0
    space: str | None = None          # a space TOML; None: search/run_space.toml (sized for
    #                                   15 minutes here); "default": the full default space
    profile_archs: int = 10           # sampled students profiled (plus the teacher)
    profile_runs: int = 6
    search_budget: int = 16           # accuracy-proxy evaluations of the search
    proxy: str = "cka"
    n_measure: int = 4                # front candidates timed (plus the teacher)
    n_flash: int = 3
    flash_steps: int = 40
    n_full: int = 1
    full_steps: int | None = None     # None: as many as the remaining budget allows
    max_full_steps: int = 2000
    dev_pairs: int | None = None      # score on the first N STS-B dev pairs (None: all 1500)
    teacher: str | None = None
    data_dir: str | None = None

    def __post_init__(self):
        if not self.budget_minutes > 0:
            raise InputError(f"budget_minutes={self.budget_minutes}: must be > 0")
        for name in ("profile_archs", "search_budget", "n_measure", "n_flash", "n_full",
                     "flash_steps", "profile_runs", "max_full_steps"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < (0 if name in ("n_full", "n_flash") else 1):
                raise InputError(f"RunSettings.{name}={v!r}: must be a positive integer")
        if self.target != "cpu" and not self.target.startswith("tpu-"):
            raise InputError(f"--target {self.target!r}: expected cpu or tpu-<generation> "
                             "(e.g. tpu-v5e; its latency is predicted ahead of time)")

    def run_id(self) -> str:
        d = dataclasses.asdict(self)
        return "run-" + hashlib.sha1(json.dumps(d, sort_keys=True).encode()).hexdigest()[:8]


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, default=_jsonable))
    os.replace(tmp, path)


def _jsonable(v):
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if dataclasses.is_dataclass(v):
        return dataclasses.asdict(v)
    return str(v)


def load_state(run_dir: str | Path) -> dict:
    """A run's ``state.json``; a clear error when the folder is not a run or the file is
    damaged (the stages' stored work is untouched: re-running recomputes only the state)."""
    p = Path(run_dir) / "state.json"
    if not p.is_file():
        raise MissingError(f"{run_dir} is not a hwdistill run (no state.json); runs live "
                           "under ./runs/RUN_ID (see `hwdistill run --help`)")
    try:
        state = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{p} is damaged ({e}); delete it and re-run the same "
                         "`hwdistill run` command: stored work is reused") from None
    if not isinstance(state, dict) or "settings" not in state or "stages" not in state:
        raise InputError(f"{p} is not a run state (no settings/stages); delete it and re-run")
    return state


class Pipeline:
    """``Pipeline(settings, root="runs").run(progress=print)``; ``progress`` receives one line
    per stage event (the CLI adds bars inside stages)."""

    def __init__(self, settings: RunSettings, root: str | Path = "runs", *,
                 store_path: str | Path | None = None, command: str = ""):
        self.settings = settings
        self.run_id = settings.run_id()
        self.dir = Path(root) / self.run_id
        self.dir.mkdir(parents=True, exist_ok=True)
        self.store_path = Path(store_path) if store_path else Path(root) / "store.db"
        sp = self.dir / "state.json"
        if sp.is_file():
            self.state = load_state(self.dir)
            if self.state["settings"] != dataclasses.asdict(settings):
                raise InputError(f"{sp} belongs to other settings; delete {self.dir} or use "
                                 "the settings it was started with")
        else:
            self.state = {"run_id": self.run_id, "settings": dataclasses.asdict(settings),
                          "stages": {}, "command": command,
                          "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            self._save()
        self._t0 = time.perf_counter()
        self._spent_before = sum(s.get("seconds", 0.0) for s in self.state["stages"].values())
        self._objs = None

    # -- bookkeeping -------------------------------------------------------------------------
    def _save(self) -> None:
        _write_json(self.dir / "state.json", self.state)

    def elapsed_s(self) -> float:
        """Seconds spent by this run so far, over all sessions (completed stages and now)."""
        return self._spent_before + time.perf_counter() - self._t0

    def remaining_s(self) -> float:
        return self.settings.budget_minutes * 60 - self.elapsed_s()

    @property
    def workload(self):
        from distill import Workload
        return Workload.parse(self.settings.workload)

    def space(self):
        from search.space import DEFAULT_SPACE, SearchSpace
        if self.settings.space == "default":
            return DEFAULT_SPACE
        if self.settings.space is None:
            return SearchSpace.from_toml(RUN_SPACE)
        return SearchSpace.from_toml(self.settings.space)

    def run(self, progress: Callable[[str], None] = print, *, bars: bool = True,
            until: str | None = None) -> dict:
        """Run every stage not yet done (through ``until``, inclusive); returns the state."""
        from measurements import Store
        if until is not None and until not in STAGES:
            raise InputError(f"until={until!r}: expected one of {STAGES}")
        with Store(self.store_path) as store:
            self.store = store
            for i, name in enumerate(STAGES, 1):
                st = self.state["stages"].get(name)
                if st and st.get("done"):
                    progress(f"[{i}/{len(STAGES)}] {name}: done earlier "
                             f"({st.get('seconds', 0):.0f} s)")
                else:
                    left = self.remaining_s()
                    progress(f"[{i}/{len(STAGES)}] {name}  (elapsed {self.elapsed_s() / 60:.1f} "
                             f"of {self.settings.budget_minutes:g} min; "
                             f"{max(left, 0) / 60:.1f} min left)")
                    t0 = time.perf_counter()
                    out = getattr(self, f"_stage_{name}")(progress, bars)
                    secs = time.perf_counter() - t0
                    self.state["stages"][name] = {**out, "done": True, "seconds": secs}
                    self._save()
                    progress(f"      {name} done in {secs:.0f} s")
                if name == until:
                    break
        return self.state

    # -- stages ------------------------------------------------------------------------------
    def _fingerprint(self):
        from measurements import detect
        return detect("cpu")

    def _stage_profile(self, progress, bars) -> dict:
        if self.settings.target != "cpu":
            return {"note": f"target {self.settings.target}: TPU timings come from a TPU VM "
                               "(`hwdistill profile` there, then `hwdistill store import`)"}
        from tqdm import tqdm

        from distill import PRESETS
        from perfmodel.sweep import profile_pairs
        cfgs = self.space().sample_configs(self.settings.profile_archs, self.settings.seed)
        cfgs.append(PRESETS[TEACHER])
        pairs = [(c, self.workload) for c in cfgs]
        fp = self._fingerprint()
        self.store.check_fingerprint(fp)
        self.store.register_fingerprint(fp)
        rid = self.store.start_run("profile", fingerprint_id=fp.id,
                                   args={"pipeline": self.run_id})
        bar = tqdm(total=len(pairs), desc="profiling", unit="prog", disable=not bars)

        def tick(msg):
            bar.set_postfix_str(msg)
            bar.update(1)
        try:
            res = profile_pairs(self.store, fp, pairs, run_id=rid, runs=self.settings.profile_runs,
                                budget_s=1.0, progress=tick)
        except BaseException:
            self.store.finish_run(rid, "interrupted")
            raise
        finally:
            bar.close()
        self.store.finish_run(rid)
        return {"programs": len(pairs), "profiled": res.profiled, "skipped": res.skipped,
                "ops_stored": res.ops_stored, "fingerprint": fp.id}

    def _stage_fit(self, progress, bars) -> dict:
        if self.settings.target != "cpu":
            return {"note": "no TPU timings in the store: prediction is analytic (roofline)"}
        from perfmodel.latency_model import default_model_dir, fit_from_store
        fp = self._fingerprint()
        model = fit_from_store(self.store, fp.id, seed=self.settings.seed)
        out = model.save(self.dir / "model")
        # where `hwdistill predict`, `validate` and `search` look by default; a model already
        # there (e.g. from a larger profile) is left alone
        published = default_model_dir(fp.id)
        note = ""
        if not published.exists():
            model.save(published)
            note = f"also saved to {published} (the default for predict/validate/search)"
        return {"model": str(out), "published": str(published), "summary": model.summary,
                "note": note}

    def _latency_model(self):
        if self.settings.target != "cpu":
            return None
        from perfmodel.latency_model import LatencyModel
        return LatencyModel.load(self.dir / "model")

    def objectives(self):
        """(proxy accuracy, predicted latency, accuracy context), built once per process."""
        if self._objs is None:
            from search.objectives import AccuracyContext, PredictedLatency, ProxyAccuracy
            s = self.settings
            ctx = AccuracyContext(s.teacher, s.data_dir, dev_pairs=s.dev_pairs)
            self._objs = (ProxyAccuracy(ctx, s.proxy, seed=s.seed),
                          PredictedLatency(s.target, self._latency_model()), ctx)
        return self._objs

    def problem(self):
        from search.problem import StudentProblem
        acc, lat, _ = self.objectives()
        return StudentProblem(self.space(), [acc, lat], self.workload)

    def _stage_search(self, progress, bars) -> dict:
        from search import Search, SearchConfig
        problem = self.problem()
        cfg = SearchConfig(budget=self.settings.search_budget, seed=self.settings.seed,
                           n_initial=min(self.settings.search_budget, 8))
        s = Search(problem, cfg, store=self.store, run_id=f"{self.run_id}-search")
        res = s.run(progress=bars)
        trials = [t for t in s.trials() if t.status == "done"]
        V = problem.values(res.F) if len(res.F) else np.zeros((0, 2))
        on = np.zeros(len(V), bool)
        on[res.pareto] = True
        rows = [{"trial": t.index, "round": t.round, "pareto": bool(p),
                 "candidate": t.provenance.get("candidate", ""), "x": t.x,
                 "proxy": float(v[0]), "predicted_ms": float(v[1]),
                 "cost_s": float(t.provenance.get("cost_s", 0.0))}
                for t, v, p in zip(trials, V, on)]
        acc, lat, _ = self.objectives()
        return {"search_run": s.run_id, "markers": self._preset_predictions(lat), "objectives": [acc.describe(), lat.describe()],
                "evaluated": rows, "failed": sum(t.status == "failed" for t in s.trials()),
                "rounds": [dataclasses.asdict(r) for r in res.rounds],
                "hypervolume": res.hypervolume,
                "predicted_only": len(getattr(lat, "predicted", ()) or ())}

    def _preset_predictions(self, lat) -> dict[str, float]:
        """Predicted latency of the teacher and the hand-designed presets (for the plots)."""
        from distill import PRESETS
        out = {}
        for name in (TEACHER, *PRESET_MARKERS):
            try:
                out[name] = float(lat.predictor.predict(PRESETS[name], self.workload).latency_ms)
            except Exception:   # noqa: BLE001 - a preset this target cannot compile: no marker
                continue
        return out

    def _front(self, key: str = "predicted_ms") -> list[dict]:
        rows = [r for r in self.state["stages"]["search"]["evaluated"] if r["pareto"]]
        return sorted(rows, key=lambda r: r[key])

    @staticmethod
    def _spread(rows: list[dict], n: int) -> list[dict]:
        """``n`` rows spread evenly along a front sorted by latency (its ends included)."""
        if len(rows) <= n:
            return list(rows)
        idx = np.unique(np.round(np.linspace(0, len(rows) - 1, n)).astype(int))
        return [rows[i] for i in idx]

    def _candidate(self, row: dict):
        return self.problem().candidate(row["x"])

    def _stage_measure(self, progress, bars) -> dict:
        if self.settings.target != "cpu":
            return {"note": f"{self.settings.target} cannot be timed on this host"}
        from tqdm import tqdm

        from distill import PRESETS
        from perfmodel.validate import measure_interleaved
        picked = self._spread(self._front(), self.settings.n_measure)
        cands = [self._candidate(r) for r in picked]
        _, lat, _ = self.objectives()
        pairs = [(c.config, self.workload) for c in cands] + [(PRESETS[TEACHER], self.workload)]
        bar = tqdm(total=len(pairs) * 4, desc="measuring", unit="step", disable=not bars)
        res = measure_interleaved(pairs, rounds=3, budget_s=1.0, seed=self.settings.seed,
                                  progress=lambda m: bar.update(1))
        bar.close()
        pred = [lat.predictor.predict(cfg, wl).latency_ms for cfg, wl in pairs]
        rows = [{"trial": r["trial"], "candidate": r["candidate"], "x": r["x"],
                 "proxy": r["proxy"], "predicted_ms": p, "measured_ms": float(m),
                 "rounds_ms": list(map(float, rr))}
                for r, p, m, rr in zip(picked, pred, res.latency_ms, res.rounds_ms)]
        teacher = {"predicted_ms": pred[-1], "measured_ms": float(res.latency_ms[-1]),
                   "rounds_ms": list(map(float, res.rounds_ms[-1]))}
        return {"measured": rows, "teacher": teacher,
                "repeatability_within_10pct": float(res.noise_within_10pct)}

    def _measured_or_front(self) -> list[dict]:
        m = self.state["stages"].get("measure", {})
        return m.get("measured") or self._front()

    def _stage_flash(self, progress, bars) -> dict:
        from search.memo import Memo
        from search.objectives import FlashAccuracy
        s = self.settings
        rows = self._spread(sorted(self._measured_or_front(), key=lambda r: r["predicted_ms"]),
                            s.n_flash)
        _, _, ctx = self.objectives()
        flash = FlashAccuracy(ctx, s.flash_steps, seed=s.seed)
        memo = Memo(self.store, "flash", {"steps": s.flash_steps, "seed": s.seed,
                                          "dev_pairs": s.dev_pairs, "teacher": str(s.teacher),
                                          "data": str(s.data_dir)})
        out = []
        for i, r in enumerate(rows, 1):
            cand = self._candidate(r)
            progress(f"      flash {i}/{len(rows)}: {cand.describe()} ({s.flash_steps} steps)")
            t = memo.put(cand, lambda c: _flash_eval(flash, c, self.workload))
            out.append({**r, "flash_stsb": t.values.get("f0", math.nan) if t.values else math.nan,
                        "flash_cost_s": float((t.provenance or {}).get("cost_s", math.nan)),
                        "error": (t.provenance or {}).get("error")})
        from distill.evaluate import stsb_spearman
        _, teacher, tok, _, dev = ctx.load()
        return {"flashed": out, "steps": s.flash_steps,
                "teacher_stsb": float(stsb_spearman(teacher, tok, dev)), "dev_pairs": len(dev)}

    def _best_for_full(self) -> list[dict]:
        """The most accurate after flash distillation; ties go to the faster."""
        rows = [r for r in self.state["stages"]["flash"]["flashed"]
                if math.isfinite(r.get("flash_stsb", math.nan))]
        rows.sort(key=lambda r: (-r["flash_stsb"], r.get("measured_ms", r["predicted_ms"])))
        return rows[: self.settings.n_full]

    def _stage_full(self, progress, bars) -> dict:
        from distill.evaluate import stsb_spearman
        from distill.flash import PACKING_MIN_STEPS
        from distill.train import RECOMMENDED_LR, DistillConfig, Distiller
        from search.objectives import _INIT
        s = self.settings
        picked = self._best_for_full()
        if not picked:
            return {"distilled": [], "note": "no candidate was flash-distilled successfully"}
        prev = self.state.get("full_plan")
        if prev is None:
            # steps that fit what is left (minus the report), from flash's time per step
            flashed = self.state["stages"]["flash"]["flashed"]
            per_step = np.nanmedian([r["flash_cost_s"] / s.flash_steps for r in flashed]) \
                if flashed else 1.0
            left = max(self.remaining_s() - 30.0, 0.0) / len(picked)
            steps = s.full_steps or int(min(s.max_full_steps,
                                            max(s.flash_steps * 2, left / max(per_step, 1e-3))))
            prev = self.state["full_plan"] = {"steps": steps, "per_step_s": float(per_step)}
            self._save()
        steps = prev["steps"]
        _, _, ctx = self.objectives()
        tdir, teacher, tok, texts, dev = ctx.load()
        out = []
        for r in picked:
            cand = self._candidate(r)
            init = _INIT[cand.init]
            work = self.dir / "full" / f"trial{r['trial']}-{_slug(r['candidate'])}"
            progress(f"      distilling {cand.describe()} for {steps} steps -> {work}/student")
            dcfg = DistillConfig(steps=steps, init=init, lr=RECOMMENDED_LR[init], seed=s.seed,
                                 packing=steps >= PACKING_MIN_STEPS,
                                 ckpt_every=max(steps // 10, 10))
            cfg = cand.config.replace(vocab_size=teacher.config.vocab_size)
            d = Distiller(cfg, teacher, tok, dcfg, calibration_texts=texts)
            res = d.run(texts, work / "train", progress=bars)
            d.save_student(work / "student", tokenizer_from=tdir)
            score = float(stsb_spearman(d.student(), tok, dev))
            out.append({**r, "full_stsb": score, "steps": res.steps, "train_s": res.train_s,
                        "final_loss": res.final_loss,
                        "student_dir": str((work / "student").relative_to(self.dir))})
        return {"distilled": out, "steps": steps}

    def _stage_report(self, progress, bars) -> dict:
        from search.report import render_report
        paths = render_report(self.dir, self.state)
        return {"files": [str(p) for p in paths]}


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")


def _flash_eval(flash, cand, workload):
    ev = flash.evaluate(cand, workload)
    if not math.isfinite(ev.value):
        raise StateError(f"flash distillation gave no score ({ev.detail})")
    return (ev.value,), (), {"cost_s": ev.cost_s, **ev.detail}
