"""Our Gaussian-process surrogate: exact GP regression for small, expensive data sets.

The kernel is a Matérn-5/2 with one lengthscale per continuous/ordinal input (ARD), times an
exponentiated Hamming (overlap) kernel on categorical inputs, ``exp(-sum_j [x_j != x'_j] / l_j)``
(a product of per-dimension kernels ``(1 - c) I + c 11^T`` with ``c = exp(-1/l)``, so it is
positive semi-definite), times an output scale, plus observation noise:

    k(x, x') = s2 * matern52(r) * exp(-sum_cat delta / l_cat),  r^2 = sum_cont (dx / l)^2

Inputs are expected already encoded by :class:`search.domain.Domain`: continuous and ordinal
columns in [0, 1], categorical columns as integer codes. Outputs are standardised inside the
fit (the output transform) and predictions are returned in the caller's units.

Hyperparameters (log lengthscales, log output scale, log noise) are fitted by maximising the
log marginal likelihood plus log-normal priors (a MAP-II estimate; with 10-100 points the
plain maximum-likelihood lengthscales swing wildly from round to round), with the analytic
gradient and L-BFGS-B from several starts. The lengthscale prior is the dimension-scaled
LogNormal(sqrt(2) + log(d) / 2, sqrt(3)) of Hvarfner et al. 2024 ("Vanilla Bayesian
optimization performs great in high dimensions"), the noise prior LogNormal(-4, 1) on the
standardised noise variance, both as BoTorch uses them since 0.12. Noise is learned per
objective unless given (``noise_var``), e.g. when the measurement spread is known.

Left out on purpose: sparse/inducing-point approximations (a search here sees hundreds of
points, not millions), input warping, and multi-task kernels across objectives (objectives get
independent GPs, which is what exact 2-objective EHVI needs).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Protocol, Sequence

import numpy as np
from scipy import linalg, optimize
from measurements.errors import HwdistillError

__all__ = ["GP", "fit_gp", "GPSurrogate", "OffsetGP", "Surrogate", "GPError"]

_SQRT5 = np.sqrt(5.0)
_JITTER = 1e-8
_LOG_LS_BOUNDS = (np.log(1e-3), np.log(1e3))
_LOG_S2_BOUNDS = (np.log(1e-2), np.log(1e2))
_LOG_NOISE_BOUNDS = (np.log(1e-6), np.log(4.0))
_NOISE_PRIOR = (-4.0, 1.0)          # LogNormal(loc, scale) on the standardised noise variance
_S2_PRIOR = (0.0, 1.0)              # LogNormal on the output scale (y is standardised)
_CAT_PRIOR = (0.0, 1.0)             # LogNormal on categorical lengthscales


class GPError(HwdistillError, ValueError):
    """The GP cannot be fitted or asked as requested (bad shapes, too few points, NaN)."""


class Surrogate(Protocol):
    """What the search (and the accuracy proxies' combined estimate) needs of a model."""

    def fit(self, X: np.ndarray, y: np.ndarray) -> "Surrogate": ...

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``X``: ``n x d``. Returns mean ``n`` and variance ``n`` in the units of ``y``."""
        ...


def _check_xy(X, y, cat_dims):
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim != 2:
        raise GPError(f"X must be n x d, got shape {X.shape}")
    if y.shape != (X.shape[0],):
        raise GPError(f"y must have shape ({X.shape[0]},) to match X {X.shape}, got {y.shape}")
    if X.shape[0] < 2:
        raise GPError(f"a GP needs at least 2 observations, got {X.shape[0]}")
    for name, a in (("X", X), ("y", y)):
        bad = np.argwhere(~np.isfinite(a))
        if bad.size:
            raise GPError(f"{name} has a non-finite value at index {tuple(bad[0])}: "
                          f"{a[tuple(bad[0])]}; drop failed evaluations before fitting")
    for j in cat_dims:
        if not 0 <= j < X.shape[1]:
            raise GPError(f"categorical dimension {j} is outside 0..{X.shape[1] - 1}")
    return X, y


@dataclasses.dataclass(frozen=True)
class _Kernel:
    """Hyperparameters in natural units; cont/cat split of the input columns."""

    cont: tuple[int, ...]
    cat: tuple[int, ...]
    ls_cont: np.ndarray
    ls_cat: np.ndarray
    s2: float
    kind: str = "matern52"         # or "rbf"

    def parts(self, A: np.ndarray, B: np.ndarray):
        """Matérn factor ``M``, Hamming factor ``H`` and scaled squared distances per
        continuous dimension ``D`` (``|A| x |B| x d_cont``)."""
        if self.cont:
            diff = (A[:, None, self.cont] - B[None, :, self.cont]) / self.ls_cont  # (n, m, dc)
            D = diff * diff
            r = np.sqrt(np.maximum(D.sum(-1), 0.0))
            if self.kind == "rbf":
                M = np.exp(-0.5 * r * r)
            else:
                M = (1.0 + _SQRT5 * r + 5.0 / 3.0 * r * r) * np.exp(-_SQRT5 * r)
        else:
            D, r = None, None
            M = np.ones((A.shape[0], B.shape[0]))
        if self.cat:
            delta = (A[:, None, self.cat] != B[None, :, self.cat]).astype(float)  # (n, m, dk)
            H = np.exp(-(delta / self.ls_cat).sum(-1))
        else:
            delta = None
            H = np.ones((A.shape[0], B.shape[0]))
        return M, H, D, r, delta

    def __call__(self, A, B):
        M, H, *_ = self.parts(A, B)
        return self.s2 * M * H


@dataclasses.dataclass(frozen=True)
class GP:
    """A fitted GP. Immutable: :meth:`condition` returns a new one.

    ``predict`` and ``sample`` answer in the units of the ``y`` given to :func:`fit_gp`.
    """

    X: np.ndarray                 # n x d, encoded inputs
    y_std: np.ndarray             # n, standardised outputs
    y_mean: float
    y_scale: float
    kernel: _Kernel
    noise_var: float              # on the standardised scale
    L: np.ndarray                 # cholesky of K + noise I
    alpha: np.ndarray             # (K + noise I)^-1 y_std
    nll: float                    # negative log marginal likelihood + negative log prior

    @property
    def noise_var_y(self) -> float:
        """Observation noise variance in the units of y."""
        return self.noise_var * self.y_scale ** 2

    def hyperparameters(self) -> dict:
        return {"lengthscales_cont": self.kernel.ls_cont.tolist(),
                "lengthscales_cat": self.kernel.ls_cat.tolist(),
                "outputscale": float(self.kernel.s2), "noise_var": float(self.noise_var),
                "y_mean": float(self.y_mean), "y_scale": float(self.y_scale)}

    def _cross(self, Xs: np.ndarray):
        Xs = np.asarray(Xs, dtype=float)
        if Xs.ndim != 2 or Xs.shape[1] != self.X.shape[1]:
            raise GPError(f"query points must be m x {self.X.shape[1]}, got shape {Xs.shape}")
        Ks = self.kernel(Xs, self.X)                                  # (m, n)
        V = linalg.solve_triangular(self.L, Ks.T, lower=True)         # (n, m)
        return Xs, Ks, V

    def predict(self, Xs: np.ndarray, *, observation_noise: bool = False):
        """Posterior mean and variance of f (or of y with ``observation_noise``) at ``Xs``
        (``m x d``); each of shape ``m``."""
        Xs, Ks, V = self._cross(Xs)
        mean = Ks @ self.alpha
        var = self.kernel.s2 - np.einsum("nm,nm->m", V, V)
        var = np.maximum(var, 1e-12) + (self.noise_var if observation_noise else 0.0)
        return self.y_mean + self.y_scale * mean, var * self.y_scale ** 2

    def posterior_cov(self, Xs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Joint posterior mean ``m`` and covariance ``m x m`` of f at ``Xs``."""
        Xs, Ks, V = self._cross(Xs)
        cov = self.kernel(Xs, Xs) - V.T @ V
        return (self.y_mean + self.y_scale * (Ks @ self.alpha),
                0.5 * (cov + cov.T) * self.y_scale ** 2)

    def sample(self, Xs: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        """Joint posterior samples of f at ``Xs``: ``n_samples x m``."""
        mean, cov = self.posterior_cov(Xs)
        L = _safe_cholesky(cov, scale=self.y_scale ** 2)
        z = rng.standard_normal((n_samples, len(mean)))
        return mean + z @ L.T

    def condition(self, Xn: np.ndarray, yn: np.ndarray) -> "GP":
        """The GP with extra observations and the same hyperparameters (fantasies)."""
        X = np.vstack([self.X, np.asarray(Xn, float)])
        y = np.concatenate([self.y_std, (np.asarray(yn, float) - self.y_mean) / self.y_scale])
        L, alpha = _factor(self.kernel, self.noise_var, X, y)
        return dataclasses.replace(self, X=X, y_std=y, L=L, alpha=alpha)


@dataclasses.dataclass(frozen=True)
class OffsetGP:
    """A GP of the residual ``y - offset(X)`` answering for ``y``: the prior mean is a known,
    cheap function (e.g. the log of a predicted latency) and the GP learns only its error.
    Same interface as :class:`GP` where the acquisition uses it."""

    gp: GP
    offset: Callable[[np.ndarray], np.ndarray]    # encoded points (m x d) -> m values

    @property
    def noise_var(self) -> float:
        return self.gp.noise_var

    @property
    def noise_var_y(self) -> float:
        return self.gp.noise_var_y

    def hyperparameters(self) -> dict:
        return {**self.gp.hyperparameters(), "offset": True}

    def predict(self, Xs, *, observation_noise: bool = False):
        m, v = self.gp.predict(Xs, observation_noise=observation_noise)
        return m + self.offset(np.asarray(Xs, float)), v

    def posterior_cov(self, Xs):
        m, c = self.gp.posterior_cov(Xs)
        return m + self.offset(np.asarray(Xs, float)), c

    def sample(self, Xs, n_samples: int, rng: np.random.Generator) -> np.ndarray:
        return self.gp.sample(Xs, n_samples, rng) + self.offset(np.asarray(Xs, float))

    def condition(self, Xn, yn) -> "OffsetGP":
        Xn = np.asarray(Xn, float)
        return OffsetGP(self.gp.condition(Xn, np.asarray(yn, float) - self.offset(Xn)),
                        self.offset)


def _safe_cholesky(K: np.ndarray, scale: float = 1.0) -> np.ndarray:
    jitter = _JITTER * max(scale, 1e-300)
    for _ in range(8):
        try:
            return linalg.cholesky(K + jitter * np.eye(len(K)), lower=True)
        except linalg.LinAlgError:
            jitter *= 10.0
    raise GPError("kernel matrix is not positive definite even with jitter "
                  f"{jitter:.1e}; are there many duplicate inputs with a tiny noise?")


def _factor(kernel: _Kernel, noise_var: float, X: np.ndarray, y: np.ndarray):
    # _safe_cholesky adds _JITTER first: the same noise + jitter diagonal the hyperparameters
    # were fitted with (_Objective), so predictions and gp.nll describe one model
    K = kernel(X, X) + noise_var * np.eye(len(X))
    L = _safe_cholesky(K)
    alpha = linalg.cho_solve((L, True), y)
    return L, alpha


def _lognormal_logpdf(log_x, loc, scale):
    # density of log x under N(loc, scale) (the Jacobian is constant in log space)
    z = (log_x - loc) / scale
    return -0.5 * z * z, -z / scale


class _Objective:
    """Negative log posterior of the hyperparameters and its gradient, in log space.

    theta = [log ls_cont (dc), log ls_cat (dk), log s2, (log noise if learned)].
    """

    def __init__(self, X, y, cont, cat, noise_var, kind="matern52"):
        self.X, self.y, self.cont, self.cat, self.kind = X, y, cont, cat, kind
        self.fixed_noise = noise_var
        dc = len(cont)
        d = max(X.shape[1], 1)
        self.ls_prior = (np.sqrt(2.0) + 0.5 * np.log(d), np.sqrt(3.0))
        self.dc, self.dk = dc, len(cat)

    def unpack(self, theta):
        dc, dk = self.dc, self.dk
        ls_cont = np.exp(theta[:dc])
        ls_cat = np.exp(theta[dc:dc + dk])
        s2 = float(np.exp(theta[dc + dk]))
        noise = self.fixed_noise if self.fixed_noise is not None else float(
            np.exp(theta[dc + dk + 1]))
        return _Kernel(self.cont, self.cat, ls_cont, ls_cat, s2, self.kind), noise

    def __call__(self, theta):
        kern, noise = self.unpack(theta)
        X, y, n = self.X, self.y, len(self.y)
        M, H, D, r, delta = kern.parts(X, X)
        Kf = kern.s2 * M * H
        K = Kf + (noise + _JITTER) * np.eye(n)
        try:
            L = linalg.cholesky(K, lower=True)
        except linalg.LinAlgError:
            return 1e10, np.zeros_like(theta)
        alpha = linalg.cho_solve((L, True), y)
        nll = 0.5 * y @ alpha + np.log(np.diag(L)).sum() + 0.5 * n * np.log(2 * np.pi)
        W = np.outer(alpha, alpha) - linalg.cho_solve((L, True), np.eye(n))   # (n, n)
        grad = np.zeros_like(theta)
        dc, dk = self.dc, self.dk
        if dc:
            # Matérn: dK/dlog l_d = s2 H * 5/3 (1 + sqrt5 r) exp(-sqrt5 r) * (dx_d / l_d)^2
            # RBF:    dK/dlog l_d = s2 H * exp(-r^2 / 2) * (dx_d / l_d)^2
            if kern.kind == "rbf":
                G = kern.s2 * H * M
            else:
                G = kern.s2 * H * (5.0 / 3.0) * (1.0 + _SQRT5 * r) * np.exp(-_SQRT5 * r)
            grad[:dc] = -0.5 * np.einsum("ij,ij,ijd->d", W, G, D)
        if dk:
            # dK/dlog l_j = Kf * delta_j / l_j
            grad[dc:dc + dk] = -0.5 * np.einsum("ij,ij,ijd->d", W, Kf, delta) / kern.ls_cat
        grad[dc + dk] = -0.5 * np.sum(W * Kf)
        if self.fixed_noise is None:
            grad[dc + dk + 1] = -0.5 * noise * np.trace(W)
        # priors (negative log density, gradient)
        lp, g = _lognormal_logpdf(theta[:dc], *self.ls_prior)
        nll -= lp.sum(); grad[:dc] -= g
        lp, g = _lognormal_logpdf(theta[dc:dc + dk], *_CAT_PRIOR)
        nll -= lp.sum(); grad[dc:dc + dk] -= g
        lp, g = _lognormal_logpdf(theta[dc + dk], *_S2_PRIOR)
        nll -= lp; grad[dc + dk] -= g
        if self.fixed_noise is None:
            lp, g = _lognormal_logpdf(theta[dc + dk + 1], *_NOISE_PRIOR)
            nll -= lp; grad[dc + dk + 1] -= g
        return float(nll), grad

    def bounds(self):
        b = [_LOG_LS_BOUNDS] * (self.dc + self.dk) + [_LOG_S2_BOUNDS]
        if self.fixed_noise is None:
            b.append(_LOG_NOISE_BOUNDS)
        return b

    def starts(self, n_restarts: int, rng: np.random.Generator):
        """The priors' modes first, then draws from the priors (clipped to the bounds)."""
        lo, hi = np.array(self.bounds()).T
        mode = [self.ls_prior[0] - self.ls_prior[1] ** 2] * self.dc + [0.0] * self.dk + [0.0]
        if self.fixed_noise is None:
            mode.append(_NOISE_PRIOR[0])
        out = [np.clip(np.array(mode), lo, hi)]
        for _ in range(n_restarts):
            t = [rng.normal(*self.ls_prior) for _ in range(self.dc)]
            t += [rng.normal(*_CAT_PRIOR) for _ in range(self.dk)]
            t += [rng.normal(*_S2_PRIOR)]
            if self.fixed_noise is None:
                t.append(rng.normal(*_NOISE_PRIOR))
            out.append(np.clip(np.array(t), lo, hi))
        return out


def fit_gp(X, y, *, cat_dims: Sequence[int] = (), noise_var: float | None = None,
           kernel: str = "matern52", n_restarts: int = 2, seed: int = 0,
           maxiter: int = 200) -> GP:
    """Fit a GP to ``X`` (``n x d``, encoded) and ``y`` (``n``).

    Args:
        cat_dims: columns of ``X`` holding categorical codes (Hamming kernel); the others are
            continuous/ordinal and should lie in [0, 1].
        noise_var: the observation noise variance in the units of ``y`` if known; learned
            (MAP) otherwise.
        n_restarts: L-BFGS-B starts drawn from the priors, besides the priors' modes.
        seed: seeds the restarts; equal inputs and seed give an equal GP.
    """
    cat = tuple(sorted(int(j) for j in cat_dims))
    X, y = _check_xy(X, y, cat)
    cont = tuple(j for j in range(X.shape[1]) if j not in cat)
    y_mean = float(y.mean())
    y_scale = float(y.std())
    if not y_scale > 1e-12 * max(1.0, abs(y_mean)):
        y_scale = 1.0
    ys = (y - y_mean) / y_scale
    fixed = None if noise_var is None else max(float(noise_var) / y_scale ** 2, 1e-9)
    if kernel not in ("matern52", "rbf"):
        raise GPError(f"kernel {kernel!r} unknown; use 'matern52' or 'rbf'")
    obj = _Objective(X, ys, cont, cat, fixed, kernel)
    rng = np.random.default_rng(seed)
    best = None
    for theta0 in obj.starts(n_restarts, rng):
        res = optimize.minimize(obj, theta0, jac=True, method="L-BFGS-B", bounds=obj.bounds(),
                                options={"maxiter": maxiter})
        if best is None or res.fun < best.fun:
            best = res
    kern, noise = obj.unpack(best.x)
    L, alpha = _factor(kern, noise, X, ys)
    return GP(X=X, y_std=ys, y_mean=y_mean, y_scale=y_scale, kernel=kern, noise_var=noise,
              L=L, alpha=alpha, nll=float(best.fun))


class GPSurrogate:
    """:class:`Surrogate` protocol over :func:`fit_gp` (for callers that want fit/predict)."""

    def __init__(self, *, cat_dims: Sequence[int] = (), noise_var: float | None = None,
                 n_restarts: int = 2, seed: int = 0):
        self.kwargs = dict(cat_dims=tuple(cat_dims), noise_var=noise_var,
                           n_restarts=n_restarts, seed=seed)
        self.gp: GP | None = None

    def fit(self, X, y) -> "GPSurrogate":
        self.gp = fit_gp(X, y, **self.kwargs)
        return self

    def predict(self, X):
        if self.gp is None:
            raise GPError("predict() before fit(): call fit(X, y) first")
        return self.gp.predict(X)
