"""The GP surrogate (search.gp) against independent computations: the dense posterior
formula, scikit-learn's GaussianProcessRegressor, finite differences and Monte Carlo."""

import numpy as np
import pytest
from scipy import optimize
from scipy.stats import qmc
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern, WhiteKernel
from threadpoolctl import threadpool_limits

from search import GP, GPError, GPSurrogate, fit_gp
from search.gp import _JITTER, _Objective  # the unit under test (objective) / its diagonal jitter


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """The matrices here are tiny: BLAS threads only fight over the shared cores (10x slower
    on a loaded machine), so run single-threaded."""
    with threadpool_limits(limits=1):
        yield


# -- an independent implementation of the posterior ------------------------------------------
def kernel_matrix(A, B, hp, cat=(), kind="matern52"):
    """k = s2 * matern52(r) * exp(-sum_cat [a != b] / l_cat), r over the continuous columns."""
    A, B = np.asarray(A, float), np.asarray(B, float)
    d = A.shape[1]
    cont = [j for j in range(d) if j not in cat]
    ls_cont = np.asarray(hp["lengthscales_cont"], float)
    ls_cat = np.asarray(hp["lengthscales_cat"], float)
    K = np.full((len(A), len(B)), hp["outputscale"])
    for i in range(len(A)):
        for k in range(len(B)):
            r2 = sum(((A[i, j] - B[k, j]) / l) ** 2 for j, l in zip(cont, ls_cont))
            r = np.sqrt(r2)
            if kind == "rbf":
                K[i, k] *= np.exp(-0.5 * r2)
            else:
                K[i, k] *= (1 + np.sqrt(5) * r + 5 * r2 / 3) * np.exp(-np.sqrt(5) * r)
            K[i, k] *= np.exp(-sum(float(A[i, j] != B[k, j]) / l for j, l in zip(cat, ls_cat)))
    return K


def dense_posterior(X, y, Xs, hp, cat=(), kind="matern52", y_mean=None, y_scale=None,
                    jitter=_JITTER):
    """Posterior mean and variance of f at Xs in the units of y, by the textbook formula
    (standardised y, zero prior mean there; the GP documents a 1e-8 jitter on its noise)."""
    y_mean = hp["y_mean"] if y_mean is None else y_mean
    y_scale = hp["y_scale"] if y_scale is None else y_scale
    ys = (np.asarray(y, float) - y_mean) / y_scale
    K = kernel_matrix(X, X, hp, cat, kind) + (hp["noise_var"] + jitter) * np.eye(len(X))
    Ks = kernel_matrix(Xs, X, hp, cat, kind)
    Kinv = np.linalg.inv(K)
    mean = Ks @ Kinv @ ys
    var = hp["outputscale"] - np.einsum("ij,jk,ik->i", Ks, Kinv, Ks)
    return y_mean + y_scale * mean, var * y_scale ** 2


def smooth(X):
    return np.sin(3 * X[:, 0]) + np.cos(2 * X[:, 1]) + 0.5 * X[:, 0] * X[:, 1]


def sobol(n, d, seed):
    return qmc.Sobol(d, scramble=True, seed=seed).random(n)


def data(n=12, d=3, seed=0, noise=0.0):
    rng = np.random.default_rng(seed)
    X = rng.random((n, d))
    y = 3.0 + 10.0 * (np.sin(4 * X[:, 0]) + X[:, 1:].sum(1) ** 2) + noise * rng.standard_normal(n)
    return X, y


# The posterior and the dense formula use the same noise + 1e-8 diagonal: agreement is at
# rounding level.
RTOL = 1e-8
RTOL_VAR = 1e-8


def rel_close(got, want, rtol=RTOL, atol_scale=1.0):
    """|got - want| <= rtol * max(|want|, atol_scale): relative, with values near 0 compared
    on the scale of the data (y's sd for means, 1e-3 of y's variance for variances)."""
    got, want = np.asarray(got), np.asarray(want)
    err = np.abs(got - want)
    tol = rtol * np.maximum(np.abs(want), atol_scale)
    assert np.all(err <= tol), f"max rel err {np.max(err / np.maximum(np.abs(want), 1e-300))}"


# -- known posterior -------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["matern52", "rbf"])
@pytest.mark.parametrize("noise_var", [None, 2.0])
def test_posterior_matches_dense_formula_and_sklearn(kind, noise_var):
    X, y = data(n=15, d=3, seed=1, noise=1.0)
    gp = fit_gp(X, y, kernel=kind, noise_var=noise_var, seed=3)
    hp = gp.hyperparameters()
    assert hp["y_mean"] == pytest.approx(y.mean(), rel=1e-14)
    assert hp["y_scale"] == pytest.approx(y.std(), rel=1e-14)
    assert len(hp["lengthscales_cont"]) == 3 and hp["lengthscales_cat"] == []
    if noise_var is not None:   # a known noise is taken as given (on the standardised scale)
        assert hp["noise_var"] == pytest.approx(noise_var / y.std() ** 2, rel=1e-12)
        assert gp.noise_var_y == pytest.approx(noise_var, rel=1e-12)
    Xs = np.random.default_rng(7).random((25, 3)) * 1.2 - 0.1  # inside and a bit outside
    mean, var = gp.predict(Xs)
    mean_d, var_d = dense_posterior(X, y, Xs, hp, kind=kind)
    rel_close(mean, mean_d, atol_scale=y.std())
    rel_close(var, var_d, rtol=RTOL_VAR, atol_scale=1e-3 * y.var())

    # scikit-learn with the same (fixed) hyperparameters on the standardised y
    ls = np.array(hp["lengthscales_cont"])
    base = (Matern(length_scale=ls, nu=2.5, length_scale_bounds="fixed") if kind == "matern52"
            else RBF(length_scale=ls, length_scale_bounds="fixed"))
    white = hp["noise_var"] + _JITTER
    kern = (base * ConstantKernel(hp["outputscale"], constant_value_bounds="fixed")
            + WhiteKernel(white, noise_level_bounds="fixed"))
    sk = GaussianProcessRegressor(kern, optimizer=None, normalize_y=False, alpha=0.0)
    sk.fit(X, (y - hp["y_mean"]) / hp["y_scale"])
    m_sk, cov_sk = sk.predict(Xs, return_cov=True)   # includes the white noise on the diagonal
    m_sk = hp["y_mean"] + hp["y_scale"] * m_sk
    var_sk = (np.diag(cov_sk) - white) * hp["y_scale"] ** 2
    rel_close(mean, m_sk, atol_scale=y.std())
    rel_close(var, var_sk, rtol=RTOL_VAR, atol_scale=1e-3 * y.var())
    # the observation-noise variant adds exactly the noise variance
    _, var_obs = gp.predict(Xs, observation_noise=True)
    rel_close(var_obs, var + gp.noise_var_y, rtol=1e-12)
    # the joint covariance agrees with the marginal variances and with sklearn's cross terms
    mean_j, cov = gp.posterior_cov(Xs)
    rel_close(mean_j, mean, rtol=1e-12, atol_scale=y.std())
    rel_close(np.diag(cov), var, rtol=1e-9, atol_scale=1e-3 * y.var())
    off = ~np.eye(len(Xs), dtype=bool)
    prior_var = hp["outputscale"] * hp["y_scale"] ** 2
    np.testing.assert_allclose(cov[off], (cov_sk * hp["y_scale"] ** 2)[off], rtol=RTOL_VAR,
                               atol=1e-7 * prior_var)


def test_posterior_uses_the_diagonal_its_hyperparameters_were_fitted_with():
    X, y = data(n=15, d=3, seed=1, noise=0.1)
    gp = fit_gp(X, y, seed=3)
    hp = gp.hyperparameters()
    Xs = np.random.default_rng(7).random((25, 3))
    # the fitted objective value is the nll of exactly this GP
    obj = _Objective(X, gp.y_std, (0, 1, 2), (), None)
    theta = np.log([*hp["lengthscales_cont"], hp["outputscale"], hp["noise_var"]])
    assert obj(theta)[0] == pytest.approx(gp.nll, rel=1e-12)
    mean, var = gp.predict(Xs)
    mean_d, var_d = dense_posterior(X, y, Xs, hp)
    rel_close(mean, mean_d, rtol=1e-9, atol_scale=y.std())     # got: 5e-8 relative
    rel_close(var, var_d, rtol=1e-9, atol_scale=1e-3 * y.var())


@pytest.mark.parametrize("kind", ["matern52", "rbf"])
def test_posterior_with_categorical_dims_matches_dense_formula(kind):
    rng = np.random.default_rng(4)
    n = 18
    X = np.column_stack([rng.random(n), rng.integers(0, 3, n), rng.random(n),
                         rng.integers(0, 2, n)]).astype(float)
    y = np.sin(5 * X[:, 0]) + np.where(X[:, 1] == 2, 1.5, 0.0) + X[:, 2] - 0.7 * X[:, 3]
    gp = fit_gp(X, y, cat_dims=[3, 1], kernel=kind, seed=0)
    hp = gp.hyperparameters()
    assert len(hp["lengthscales_cont"]) == 2 and len(hp["lengthscales_cat"]) == 2
    Xs = np.column_stack([rng.random(20), rng.integers(0, 3, 20), rng.random(20),
                          rng.integers(0, 2, 20)]).astype(float)
    mean, var = gp.predict(Xs)
    mean_d, var_d = dense_posterior(X, y, Xs, hp, cat=(1, 3), kind=kind)
    rel_close(mean, mean_d, atol_scale=y.std())
    rel_close(var, var_d, rtol=RTOL_VAR, atol_scale=1e-3 * y.var())
    # the categorical columns really are categorical: the codes' order does not matter
    perm = np.array([2, 0, 1])          # relabel the codes of column 1
    X2, Xs2 = X.copy(), Xs.copy()
    X2[:, 1], Xs2[:, 1] = perm[X[:, 1].astype(int)], perm[Xs[:, 1].astype(int)]
    gp2 = fit_gp(X2, y, cat_dims=[1, 3], kernel=kind, seed=0)
    np.testing.assert_allclose(gp2.predict(Xs2)[0], mean, rtol=1e-5, atol=1e-6)


# -- gradient of the hyperparameter objective ---------------------------------------------------
@pytest.mark.parametrize("kind", ["matern52", "rbf"])
@pytest.mark.parametrize("cat", [(), (1,), (0, 2)])
@pytest.mark.parametrize("fixed_noise", [None, 0.03])
def test_objective_gradient_matches_finite_differences(kind, cat, fixed_noise):
    rng = np.random.default_rng(len(cat) * 10 + (fixed_noise is None))
    n, d = 14, 4
    X = rng.random((n, d))
    for j in cat:
        X[:, j] = rng.integers(0, 3, n)
    y = rng.standard_normal(n)
    cont = tuple(j for j in range(d) if j not in cat)
    obj = _Objective(X, y, cont, tuple(cat), fixed_noise, kind)
    n_theta = len(obj.bounds())
    assert n_theta == d + 1 + (fixed_noise is None)
    f = lambda t: obj(t)[0]
    g = lambda t: obj(t)[1]
    for theta in [rng.uniform(-1.5, 1.0, n_theta), *obj.starts(2, rng)]:
        grad = g(theta)
        # central differences (check_grad's forward ones as a second opinion)
        eps = 1e-6
        fd = np.array([(f(theta + eps * e) - f(theta - eps * e)) / (2 * eps)
                       for e in np.eye(n_theta)])
        np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-5 * max(1.0, abs(f(theta))))
        err = optimize.check_grad(f, g, theta, epsilon=1e-7)
        assert err < 1e-4 * max(1.0, np.linalg.norm(grad)), (err, grad)


# -- samples, conditioning, determinism ----------------------------------------------------------
def test_sample_moments_match_posterior_cov():
    X, y = data(n=10, d=2, seed=5, noise=0.05)
    gp = fit_gp(X, y, seed=0)
    Xs = np.array([[0.1, 0.2], [0.12, 0.21], [0.5, 0.9], [0.95, 0.05]])  # two correlated
    mean, cov = gp.posterior_cov(Xs)
    n = 40_000
    S = gp.sample(Xs, n, np.random.default_rng(11))
    assert S.shape == (n, 4)
    sd = np.sqrt(np.diag(cov))
    # mean: within 5 standard errors; covariance: correlations and variances within MC error
    assert np.all(np.abs(S.mean(0) - mean) < 5 * sd / np.sqrt(n)), (S.mean(0), mean)
    emp = np.cov(S, rowvar=False)
    np.testing.assert_allclose(np.diag(emp), np.diag(cov), rtol=5 * np.sqrt(2 / n))
    corr = cov / np.outer(sd, sd)
    corr_emp = emp / np.outer(np.sqrt(np.diag(emp)), np.sqrt(np.diag(emp)))
    np.testing.assert_allclose(corr_emp, corr, atol=5 / np.sqrt(n))
    assert corr[0, 1] > 0.5        # the test exercises the joint structure, not just marginals
    # the same rng state gives the same samples
    np.testing.assert_array_equal(gp.sample(Xs, 5, np.random.default_rng(3)),
                                  gp.sample(Xs, 5, np.random.default_rng(3)))


@pytest.mark.parametrize("cat", [(), (2,)])
def test_condition_equals_refit_with_same_hyperparameters(cat):
    rng = np.random.default_rng(9)
    X, y = data(n=12, d=3, seed=2, noise=0.1)
    for j in cat:
        X[:, j] = rng.integers(0, 3, len(X))
    gp = fit_gp(X, y, cat_dims=cat, seed=1)
    hp = gp.hyperparameters()
    Xn = rng.random((3, 3))
    for j in cat:
        Xn[:, j] = [0, 2, 1]
    yn = np.array([1.0, 25.0, -4.0])
    Xs = rng.random((15, 3))
    for j in cat:
        Xs[:, j] = rng.integers(0, 3, 15)
    before = gp.predict(Xs)
    gp2 = gp.condition(Xn, yn)
    assert isinstance(gp2, GP) and gp2.X.shape == (15, 3)
    assert gp2.hyperparameters() == hp                    # same hyperparameters and transform
    m2, v2 = gp2.predict(Xs)
    md, vd = dense_posterior(np.vstack([X, Xn]), np.concatenate([y, yn]), Xs, hp, cat=cat)
    rel_close(m2, md, atol_scale=y.std())
    rel_close(v2, vd, rtol=RTOL_VAR, atol_scale=1e-3 * y.var())
    # immutable: the original GP is unchanged
    np.testing.assert_array_equal(gp.predict(Xs)[0], before[0])
    assert gp.X.shape == (12, 3)
    # kriging believer: conditioning on the mean keeps the mean and shrinks the variance there
    z = Xs[:2]
    mz, vz = gp.predict(z)
    mb, vb = gp.condition(z, mz).predict(z)
    np.testing.assert_allclose(mb, mz, rtol=1e-6, atol=1e-6 * y.std())
    assert np.all(vb < vz)


def test_same_inputs_and_seed_give_identical_hyperparameters():
    X, y = data(n=20, d=4, seed=3, noise=0.2)
    a = fit_gp(X, y, seed=5, n_restarts=3)
    b = fit_gp(X.copy(), y.copy(), seed=5, n_restarts=3)
    assert a.hyperparameters() == b.hyperparameters()
    assert a.nll == b.nll
    Xs = np.random.default_rng(0).random((7, 4))
    np.testing.assert_array_equal(a.predict(Xs)[0], b.predict(Xs)[0])
    s1 = GPSurrogate(seed=5, n_restarts=3).fit(X, y)
    np.testing.assert_array_equal(s1.predict(Xs)[1], a.predict(Xs)[1])


def test_fit_quality_on_a_smooth_function():
    X = qmc.LatinHypercube(2, seed=0).random(40)
    Xt = sobol(256, 2, seed=1)
    gp = fit_gp(X, smooth(X), seed=0)
    pred, var = gp.predict(Xt)
    yt = smooth(Xt)
    r2 = 1 - np.sum((pred - yt) ** 2) / np.sum((yt - yt.mean()) ** 2)
    assert r2 > 0.95, r2
    # noise-free data: the learned noise is small, and the model interpolates
    assert gp.noise_var < 1e-2
    np.testing.assert_allclose(gp.predict(X)[0], smooth(X), atol=0.05)
    # calibrated enough: most held-out errors are within 3 posterior sd
    assert np.mean(np.abs(pred - yt) <= 3 * np.sqrt(var) + 1e-3) > 0.8


def test_constant_y_is_fitted_without_dividing_by_zero():
    X = np.random.default_rng(0).random((5, 2))
    gp = fit_gp(X, np.full(5, 4.0))
    assert gp.hyperparameters()["y_scale"] == 1.0
    m, v = gp.predict(np.array([[0.3, 0.3]]))
    assert m[0] == pytest.approx(4.0) and np.isfinite(v).all()


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("X, y, kw, match", [
    (np.zeros((4, 2)), np.array([0.0, 1.0, np.nan, 2.0]), {}, r"y has a non-finite value.*2"),
    (np.array([[0, 1], [np.inf, 0], [1, 1]]), np.zeros(3), {}, r"X has a non-finite value"),
    (np.zeros(4), np.zeros(4), {}, r"X must be n x d.*\(4,\)"),
    (np.zeros((4, 2)), np.zeros(3), {}, r"y must have shape \(4,\).*\(3,\)"),
    (np.zeros((4, 2)), np.zeros((4, 1)), {}, r"y must have shape \(4,\)"),
    (np.zeros((1, 2)), np.zeros(1), {}, r"at least 2 observations, got 1"),
    (np.zeros((0, 2)), np.zeros(0), {}, r"at least 2 observations, got 0"),
    (np.random.default_rng(0).random((4, 2)), np.arange(4.0), {"kernel": "matern32"},
     r"kernel 'matern32' unknown"),
    (np.random.default_rng(0).random((4, 2)), np.arange(4.0), {"cat_dims": [2]},
     r"categorical dimension 2 is outside 0..1"),
])
def test_bad_inputs_raise_gperror_naming_the_problem(X, y, kw, match):
    with pytest.raises(GPError, match=match) as e:
        fit_gp(X, y, **kw)
    assert isinstance(e.value, ValueError)


def test_predict_errors():
    s = GPSurrogate()
    with pytest.raises(GPError, match=r"before fit\(\)"):
        s.predict(np.zeros((1, 2)))
    X = np.random.default_rng(0).random((6, 2))
    s.fit(X, X.sum(1))
    with pytest.raises(GPError, match=r"query points must be m x 2, got shape \(3, 3\)"):
        s.predict(np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"m x 2"):
        s.gp.sample(np.zeros(2), 3, np.random.default_rng(0))
    assert s.predict(X)[0].shape == (6,)
