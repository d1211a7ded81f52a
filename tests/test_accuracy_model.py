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
