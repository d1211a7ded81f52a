"""The trust region: TuRBO's grow/shrink rule replayed from round outcomes, and proposals that
stay inside the union of boxes around the Pareto points."""

import numpy as np
import pytest

from search import Domain
from search.acquisition import maximize
from search.domain import Dimension
from search import trust_region as tr


def test_replay_grows_after_successes_and_shrinks_after_failures():
    assert tr.replay([], dim=6, q=1).length == tr.LENGTH_INIT
    assert tr.replay([True] * 3, dim=6, q=1).length == pytest.approx(2 * tr.LENGTH_INIT)
    assert tr.replay([True] * 30, dim=6, q=1).length == tr.LENGTH_MAX          # capped
    assert tr.replay([False] * 6, dim=6, q=1).length == pytest.approx(tr.LENGTH_INIT / 2)
    assert tr.replay([False] * 5, dim=6, q=1).length == tr.LENGTH_INIT         # tol is max(4, d)
    # a success resets the failure count
    assert tr.replay([False] * 5 + [True] + [False] * 5, dim=6, q=1).length == tr.LENGTH_INIT


def test_replay_restarts_a_collapsed_region():
    t = tr.replay([False] * (6 * 8), dim=6, q=1)
    assert t.restarts == 1 and t.length >= tr.LENGTH_MIN


def test_replay_is_a_function_of_the_outcomes():
    rng = np.random.default_rng(0)
    outcomes = list(rng.random(200) < 0.3)
    assert tr.replay(outcomes, dim=4, q=2) == tr.replay(outcomes, dim=4, q=2)


def test_proposals_stay_in_the_union_of_boxes_even_when_the_optimum_is_outside():
    dom = Domain(tuple(Dimension(f"x{i}", "real") for i in range(3)) +
                 (Dimension("c", "cat", options=("a", "b", "c")),))
    anchors = np.array([[0.2, 0.2, 0.2, 0.0], [0.5, 0.6, 0.4, 2.0]])
    boxes = tr.regions(dom, anchors, 0.2)
    # the acquisition peaks at the corner (1, 1, 1): far outside both boxes
    acq = lambda Z: -np.sum((Z[:, :3] - 1.0) ** 2, axis=1)                    # noqa: E731
    z, v = maximize(acq, dom, np.random.default_rng(1), anchors=anchors, pop_size=16, n_gen=5,
                    n_sobol=64, regions=boxes)
    inside = [np.all(z[:3] >= lo[:3] - 1e-12) and np.all(z[:3] <= hi[:3] + 1e-12)
              for lo, hi in boxes]
    assert any(inside), (z, boxes)
    # and it found the best corner of the union: the second box's upper corner
    np.testing.assert_allclose(z[:3], [0.6, 0.7, 0.5], atol=1e-6)
    assert z[3] in (0.0, 1.0, 2.0)


def test_region_clips_to_the_domain_and_leaves_categoricals_free():
    dom = Domain((Dimension("x", "real"), Dimension("c", "cat", options=(1, 2, 3))))
    lo, hi = tr.region(dom, np.array([0.05, 1.0]), 0.4)
    np.testing.assert_allclose(lo, [0.0, 0.0])
    np.testing.assert_allclose(hi, [0.25, 2.0])
