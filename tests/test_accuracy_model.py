"""The combined accuracy estimate: a GP from proxies and the architecture to the full score.
Checked on a known function of the features (the model's maths), not on study results."""

import numpy as np
import pytest

from search import DEFAULT_SPACE
from search.accuracy_model import AccuracyEstimate


def records(n, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for c in DEFAULT_SPACE.sample(n, seed):
        cka, params = rng.uniform(0.2, 0.9), rng.uniform(1e6, 3e7)
        out.append({"x": c.to_dict(), "values": {
            "cka": cka, "params": params,
            "stsb": 0.5 + 0.4 * cka + 0.02 * np.log(params / 1e6) + rng.normal(0, 0.005)}})
    return out


def test_estimate_ranks_held_out_students_and_reports_uncertainty(tmp_path):
    from scipy import stats
    train, test = records(24, 0), records(12, 1)
    est = AccuracyEstimate(("cka", "params"), DEFAULT_SPACE).fit(train)
    from search.space import Candidate
    m, sd = est.predict([r["values"] for r in test], [Candidate.from_dict(r["x"]) for r in test])
    y = [r["values"]["stsb"] for r in test]
    assert stats.spearmanr(m, y).statistic > 0.8 and np.all(sd > 0)
    loo = est.loo(train[:10])
    assert len(loo["pred"]) == 10 and 0 <= loo["coverage_2sd"] <= 1
    path = est.save(tmp_path / "est.json")
    back = AccuracyEstimate.load(path)
    m2, _ = back.predict([r["values"] for r in test], [Candidate.from_dict(r["x"]) for r in test])
    np.testing.assert_allclose(m, m2)


def test_estimate_errors_name_the_problem(tmp_path):
    est = AccuracyEstimate(("cka",), DEFAULT_SPACE)
    with pytest.raises(ValueError, match="not fitted"):
        est.predict([{"cka": 0.3}], DEFAULT_SPACE.sample(1, 0))
    with pytest.raises(ValueError, match="cannot fit"):
        est.fit(records(2))
    est.fit(records(6))
    with pytest.raises(ValueError, match=r"missing.*\['cka'\]"):
        est.predict([{"params": 1.0}], DEFAULT_SPACE.sample(1, 0))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="corrupt"):
        AccuracyEstimate.load(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="does not exist"):
        AccuracyEstimate.load(tmp_path / "none.json")


def test_closed_form_loo_equals_refitting_without_each_student():
    # at fixed hyperparameters, the closed form (R&W 5.12) is the GP conditioned on the others
    from scipy import linalg
    train = records(12, 3)
    est = AccuracyEstimate(("cka", "params"), DEFAULT_SPACE).fit(train)
    gp = est._gp
    fast = est.loo_at_fitted()
    C = gp.L @ gp.L.T               # kernel + noise (+ jitter) on the diagonal, as factored
    for i in range(len(train)):
        keep = np.arange(len(train)) != i
        m = C[i, keep] @ linalg.solve(C[np.ix_(keep, keep)], gp.y_std[keep])
        assert fast[i] == pytest.approx(gp.y_mean + gp.y_scale * m, rel=1e-6)


def test_selection_keeps_the_cheap_informative_proxy_within_budget():
    from search.feature_selection import nested_loo, select_features
    rng = np.random.default_rng(5)
    recs = records(20, 4)
    for r in recs:      # "costly" is the target itself, over budget; "noise" says nothing
        r["values"]["costly"] = r["values"]["stsb"]
        r["values"]["noise"] = float(rng.normal())
    cost = {"cka": 0.01, "params": 0.0, "costly": 0.2, "noise": 0.001}
    got = select_features(recs, DEFAULT_SPACE, list(cost), cost, budget=0.05)
    assert "cka" in got and "costly" not in got
    assert sum(cost[f] for f in got) <= 0.05
    nl = nested_loo(recs[:10], DEFAULT_SPACE, list(cost), [cost] * 10, budget=0.05)
    assert nl.pred.shape == nl.sd.shape == nl.cost.shape == (10,) and np.all(nl.sd > 0)
    assert all("costly" not in f for f in nl.features) and np.all(nl.cost <= 0.05)
    assert sum(nl.to_dict()["feature_sets"].values()) == 10
    with pytest.raises(ValueError, match=r"no cost.*\['cka'\]"):
        select_features(recs, DEFAULT_SPACE, ["cka"], {}, budget=0.05)


def test_the_search_objective_from_an_estimate(tmp_path):
    # what `hwdistill search --accuracy proxy` evaluates: the estimate's own proxies only (an
    # estimate from the architecture alone computes none and loads no teacher)
    from pathlib import Path

    from distill import Workload
    from search.objectives import AccuracyContext, EstimatedAccuracy
    from search.space import Candidate
    data = Path(__file__).parent / "fixtures" / "data"
    cand = Candidate.from_dict(records(1, 9)[0]["x"])
    for feats in ((), ("params",)):
        est = AccuracyEstimate(feats, DEFAULT_SPACE).fit(records(12, 2))
        ctx = AccuracyContext(data_dir=data)
        ev = EstimatedAccuracy(ctx, est).evaluate(cand, Workload(8, 128))
        assert np.isfinite(ev.value) and ev.detail["sd"] > 0 and ev.cost_s >= 0
        assert set(ev.detail) == {"sd", *feats}
        assert (ctx._loaded is None) == (not feats)
