"""Hypervolume boxes, log-EHVI and its maximiser (search.hypervolume, search.acquisition)
against pymoo's hypervolume, Monte Carlo, mpmath and scipy."""

import mpmath
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from pymoo.indicators.hv import HV
from scipy.stats import norm
from threadpoolctl import threadpool_limits

from search import Dimension, Domain, box_decomposition, fit_gp, hvi, hypervolume, nondominated
from search.acquisition import (_log_psi, gp_predictor, log_ehvi, log_pof, make_log_ehvi,
                                propose_batch)


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """The matrices here are tiny: BLAS threads only fight over the shared cores (10x slower
    on a loaded machine), so run single-threaded."""
    with threadpool_limits(limits=1):
        yield


def pymoo_hv(P, ref):
    P = np.asarray(P, float).reshape(-1, len(ref))
    P = P[np.all(P < ref, axis=1)]
    return float(HV(ref_point=ref)(P)) if len(P) else 0.0


# coordinates in [0, 1.2] with a reference point at 1: some points lie beyond it, and grid
# values make ties between points, with the candidate and with the reference point
_coord = st.one_of(st.floats(0.0, 1.2, allow_nan=False, allow_infinity=False),
                   st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0, 1.2]))


@st.composite
def front_and_points(draw, m):
    k = draw(st.integers(0, 6))
    P = np.array(draw(st.lists(st.lists(_coord, min_size=m, max_size=m), min_size=k,
                               max_size=k)), float).reshape(k, m)
    Y = np.array(draw(st.lists(st.lists(_coord, min_size=m, max_size=m), min_size=1,
                               max_size=4)), float)
    return P, Y


def clipped_volumes(lower, upper, lb):
    return np.prod(np.maximum(upper - np.maximum(lower, lb), 0.0), axis=1)


@pytest.mark.parametrize("m", [2, 3, 4])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_boxes_and_hvi_match_pymoo_hypervolume(m, data):
    P, Y = data.draw(front_and_points(m))
    ref = np.ones(m)
    lower, upper = box_decomposition(P, ref)
    assert lower.shape == upper.shape and lower.shape[1] == m
    assert np.all(lower <= upper)
    hv = pymoo_hv(P, ref)
    assert hypervolume(P, ref) == pytest.approx(hv, abs=1e-12)
    # HVI of each candidate = HV(front + y) - HV(front)
    got = hvi(Y, lower, upper)
    want = [pymoo_hv(np.vstack([P, y]), ref) - hv for y in Y]
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
    # every front point improves nothing
    if len(P):
        np.testing.assert_allclose(hvi(P, lower, upper), 0.0, atol=1e-12)
    # the boxes, clipped at a lower bound of the points (0, and the points' own minimum), are
    # disjoint, miss every point's dominated box and fill exactly what the front leaves
    # undominated below ref
    inside = P[np.all(P < ref, axis=1)]
    for lb in [np.zeros(m), inside.min(axis=0) if len(inside) else np.zeros(m)]:
        vol = clipped_volumes(lower, upper, lb)
        assert vol.sum() == pytest.approx(np.prod(ref - lb) - hv, abs=1e-9)
        lo_c = np.maximum(lower, lb)
        inter = np.prod(np.maximum(np.minimum(upper[:, None], upper[None]) -
                                   np.maximum(lo_c[:, None], lo_c[None]), 0.0), axis=2)
        np.fill_diagonal(inter, 0.0)
        assert inter.max(initial=0.0) <= 1e-12, "boxes overlap"
        for p in inside:
            overlap = np.prod(np.maximum(np.minimum(upper, ref) - np.maximum(lo_c, p), 0.0),
                              axis=1)
            assert overlap.max(initial=0.0) <= 1e-12, "a box reaches into the dominated region"


def test_boxes_of_a_two_objective_front_are_its_strips():
    P = np.array([[0.2, 0.8], [0.5, 0.4], [0.9, 0.1], [0.6, 0.6]])   # the last is dominated
    lower, upper = box_decomposition(P, np.array([1.0, 1.0]))
    assert nondominated(P).tolist() == [True, True, True, False]
    np.testing.assert_array_equal(lower[:, 0], [-np.inf, 0.2, 0.5, 0.9])
    np.testing.assert_array_equal(upper, [[0.2, 1.0], [0.5, 0.8], [0.9, 0.4], [1.0, 0.1]])
    # by hand: HV = 0.3 * 0.2 + 0.4 * 0.6 + 0.1 * 0.9 = 0.39; (0.1, 0.1) alone dominates 0.81
    assert pymoo_hv(P, np.ones(2)) == pytest.approx(0.39, abs=1e-12)
    assert hvi([[0.1, 0.1]], lower, upper)[0] == pytest.approx(0.81 - 0.39, abs=1e-12)
    assert hvi([[0.5, 0.1]], lower, upper)[0] == pytest.approx(0.4 * 0.3, abs=1e-12)


# -- log EHVI against Monte Carlo ---------------------------------------------------------------
def mc_ehvi(mean, std, lower, upper, n=200_000, seed=0, chunk=20_000):
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n // chunk):
        Y = mean + std * rng.standard_normal((chunk, len(mean)))
        vals.append(hvi(Y, lower, upper))
    v = np.concatenate(vals)
    return v.mean(), v.std() / np.sqrt(len(v))


_FRONTS = {
    2: np.array([[0.1, 0.9], [0.3, 0.5], [0.6, 0.3], [0.9, 0.05]]),
    3: np.array([[0.1, 0.6, 0.7], [0.5, 0.2, 0.6], [0.6, 0.6, 0.1], [0.3, 0.3, 0.4]]),
}
_CANDIDATES = {   # (mean, std): near the front, behind it with a wide spread, far beyond ref
    2: [([0.4, 0.4], [0.1, 0.1]), ([0.7, 0.7], [0.3, 0.2]), ([0.2, 0.2], [0.05, 0.4]),
        ([1.5, 1.3], [0.3, 0.3])],
    3: [([0.35, 0.35, 0.35], [0.1, 0.1, 0.1]), ([0.7, 0.5, 0.8], [0.3, 0.2, 0.25]),
        ([0.2, 0.1, 0.9], [0.05, 0.1, 0.3])],
}


@pytest.mark.parametrize("m", [2, 3])
def test_log_ehvi_matches_monte_carlo(m):
    ref = np.full(m, 1.1)
    lower, upper = box_decomposition(_FRONTS[m], ref)
    means = np.array([c[0] for c in _CANDIDATES[m]])
    stds = np.array([c[1] for c in _CANDIDATES[m]])
    got = np.exp(log_ehvi(means, stds, lower, upper))
    for i, (mu, sd) in enumerate(zip(means, stds)):
        mc, se = mc_ehvi(mu, sd, lower, upper, seed=i)
        assert abs(got[i] - mc) <= 4 * se + 1e-12, (i, got[i], mc, se)
        assert mc > 0
    # one call with many candidates equals separate calls (the chunking is invisible)
    np.testing.assert_allclose(log_ehvi(means, stds, lower, upper, chunk=7),
                               np.log(got), rtol=1e-12)


@pytest.mark.parametrize("m", [2, 3])
def test_log_ehvi_with_an_exact_objective_matches_monte_carlo(m):
    ref = np.full(m, 1.1)
    lower, upper = box_decomposition(_FRONTS[m], ref)
    mean = np.array(_CANDIDATES[m][0][0])
    std = np.array(_CANDIDATES[m][0][1])
    std[0] = 0.0                       # a cheap objective, known exactly
    got = np.exp(log_ehvi(mean[None], std[None], lower, upper))[0]
    mc, se = mc_ehvi(mean, std, lower, upper, seed=5)   # column 0 stays at its mean
    assert abs(got - mc) <= 4 * se + 1e-12, (got, mc, se)
    # all exact: EHVI is the HVI of the mean; -inf where that is surely 0
    exact = np.exp(log_ehvi(mean[None], np.zeros((1, m)), lower, upper))[0]
    assert exact == pytest.approx(hvi(mean, lower, upper)[0], rel=1e-12)
    assert log_ehvi(_FRONTS[m][:1], np.zeros((1, m)), lower, upper)[0] == -np.inf


def test_log_ehvi_stays_finite_far_from_the_front():
    ref = np.full(2, 1.1)
    lower, upper = box_decomposition(_FRONTS[2], ref)
    far = np.array([[30.0, 30.0], [300.0, 300.0], [3000.0, 3000.0]])
    v = log_ehvi(far, np.full((3, 2), 0.1), lower, upper)
    assert np.all(np.isfinite(v)) and np.all(np.diff(v) < 0)     # informative, not a plateau
    assert np.all(v < -1e4)


# -- log psi and log PoF ------------------------------------------------------------------------
def test_log_psi_matches_mpmath():
    z = np.unique(np.concatenate([
        -np.logspace(5, -4, 90), [0.0], np.linspace(-40, 40, 161),
        np.logspace(-4, np.log10(40), 30),
        [-1 - 1e-9, -1.0, -1 + 1e-9, -1000.0 - 1e-6, -1000.0, -999.999999, -40.0]]))
    got = _log_psi(z)
    with mpmath.workdps(80):
        want = np.array([float(mpmath.log(mpmath.mpf(v) * mpmath.ncdf(mpmath.mpf(v)) +
                                          mpmath.npdf(mpmath.mpf(v)))) for v in z])
    # relative error of psi where log psi is O(1), of log psi where it is huge
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    assert err.max() < 1e-12, (z[np.argmax(err)], err.max())


def test_log_psi_is_finite_where_psi_underflows():
    z = np.array([-40.0, -1e3, -1e5, -np.inf])
    naive = z[:3] * norm.cdf(z[:3]) + norm.pdf(z[:3])
    assert np.all(naive == 0.0)                      # float64 psi underflows here
    got = _log_psi(z)
    assert np.all(np.isfinite(got[:3])) and got[3] == -np.inf
    # psi(-40) = phi(40) (1/40^2 - 3/40^4 + 15/40^6 ...): log psi ~ -800 - log(2 pi)/2 - 2 log 40
    assert got[0] == pytest.approx(-800 - 0.5 * np.log(2 * np.pi) - 2 * np.log(40)
                                   + np.log1p(-3 / 1600 + 15 / 40 ** 4), rel=1e-10)
    assert np.all(np.diff(got) < 0)                  # psi is increasing in z


def test_log_pof_matches_scipy():
    rng = np.random.default_rng(0)
    mean = rng.normal(0, 2, (50, 3))
    std = rng.uniform(0.1, 3, (50, 3))
    want = np.log(norm.cdf(0, loc=mean, scale=std)).sum(axis=1)
    np.testing.assert_allclose(log_pof(mean, std), want, rtol=1e-12)
    # one constraint
    np.testing.assert_allclose(log_pof(mean[:, :1], std[:, :1]),
                               norm.logcdf(-mean[:, 0] / std[:, 0]), rtol=1e-12)
    # far tails stay finite and accurate (cdf underflows)
    far = log_pof(np.array([[40.0], [-40.0]]), np.array([[1.0], [1.0]]))
    np.testing.assert_allclose(far, [norm.logcdf(-40.0), norm.logcdf(40.0)], rtol=1e-12)
    assert np.isfinite(far).all()
    # exactly known constraints: feasible 0, infeasible -inf
    np.testing.assert_array_equal(
        log_pof(np.array([[-1.0, 0.0], [-1.0, 0.5]]), np.zeros((2, 2))), [0.0, -np.inf])


# -- propose_batch -----------------------------------------------------------------------------
def _objectives(Z):
    return np.column_stack([Z[:, 0] + 0.3 * Z[:, 1:].sum(1),
                            1 - np.sqrt(np.clip(Z[:, 0], 0, 1)) + Z[:, 1:].sum(1)])


def _batch(domain, Z, q, seed=0, extra_exclude=()):
    F = _objectives(Z)
    gps = [fit_gp(Z, F[:, j], cat_dims=domain.cat_dims, seed=j) for j in range(2)]
    nd = nondominated(F)
    exclude = np.vstack([Z, *extra_exclude]) if len(extra_exclude) else Z
    out = propose_batch(domain, q, gps=gps, cheap=None, constraint_gps=[], fronts=[F[nd]],
                        ref=F.max(0) + 0.1, rng=np.random.default_rng(seed), anchors=Z[nd],
                        exclude=exclude, pop_size=16, n_gen=5, n_sobol=64)
    return out, exclude


def _inside(domain, Z):
    return np.all(Z >= 0) and np.all(Z <= domain.upper) and np.array_equal(domain.snap(Z), Z)


def test_propose_batch_gives_q_distinct_new_points_in_the_domain():
    domain = Domain(tuple(Dimension(f"x{i}", "real", -1.0, 2.0) for i in range(3)))
    Z = domain.sample(8, np.random.default_rng(1))
    (cand, vals), exclude = _batch(domain, Z, 3, extra_exclude=[[[0.0, 0.0, 0.0]]])
    assert cand.shape == (3, 3) and len(vals) == 3 and np.all(np.isfinite(vals))
    assert _inside(domain, cand)
    assert len({tuple(c) for c in cand}) == 3
    assert not np.any(np.all(np.isclose(cand[:, None], exclude[None], atol=1e-9), axis=2))
    # deterministic in the rng
    (again, _), _ = _batch(domain, Z, 3, extra_exclude=[[[0.0, 0.0, 0.0]]])
    np.testing.assert_array_equal(cand, again)


def test_propose_batch_in_a_small_discrete_space_avoids_every_excluded_point():
    # 4 options x 3 integer values = 12 points; 8 evaluated: only 4 are left to propose
    domain = Domain((Dimension("c", "cat", options=("a", "b", "c", "d")),
                     Dimension("i", "int", 0, 2)))
    every = np.array([[c, i / 2] for c in range(4) for i in range(3)])
    Z = every[[0, 2, 4, 6, 8, 10, 11, 5]]
    (cand, _), exclude = _batch(domain, Z, 3)
    assert _inside(domain, cand) and len({tuple(c) for c in cand}) == 3
    left = {tuple(r) for r in every} - {tuple(r) for r in exclude}
    assert {tuple(c) for c in cand} <= left


def test_tempered_ehvi_spans_plain_ehvi_and_the_improvement_of_the_mean():
    rng = np.random.default_rng(0)
    Z = rng.random((12, 2))
    F = _objectives(Z)
    gps = [fit_gp(Z, F[:, j], seed=j) for j in range(2)]
    front, ref = F[nondominated(F)], F.max(0) + 0.1
    Zq = rng.random((50, 2))
    mean = np.column_stack([g.predict(Zq)[0] for g in gps])
    std = np.column_stack([np.sqrt(g.predict(Zq)[1]) for g in gps])
    boxes = box_decomposition(front, ref)

    def acq(exploration):
        return make_log_ehvi([gp_predictor(g, exploration) for g in gps], [], [front], ref)(Zq)

    # 1: plain EHVI; 0.25: EHVI with a quarter of the posterior spread; 0: log HVI of the mean
    np.testing.assert_allclose(acq(1.0), log_ehvi(mean, std, *boxes), rtol=1e-10)
    np.testing.assert_allclose(acq(0.25), log_ehvi(mean, 0.25 * std, *boxes), rtol=1e-10)
    gain = hvi(mean, *boxes)
    assert (gain > 0).any()
    np.testing.assert_allclose(acq(0.0)[gain > 0], np.log(gain[gain > 0]), rtol=1e-10)
    assert np.all(acq(0.0)[gain == 0] <= -1e5)          # no improvement: the floor
    # less exploration never raises the value of a point: E[HVI] grows with the spread
    assert np.all(acq(0.25) <= acq(1.0) + 1e-9)
