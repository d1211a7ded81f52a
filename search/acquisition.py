"""Expected hypervolume improvement on our GPs, in log space, and its maximisation.

EHVI (Emmerich et al. 2006) with independent Gaussian predictions per objective is exact in
closed form over the box decomposition of :mod:`search.hypervolume`:

    E[HVI(y)] = sum_b prod_j E[(u_bj - max(y_j, l_bj))_+]
    E[(u - max(y, l))_+] = sigma * (psi(b) - psi(a)),  a = (l - mu)/sigma, b = (u - mu)/sigma,
    psi(z) = z Phi(z) + phi(z)

(the expected-improvement function; ``psi(-inf) = 0`` handles unbounded boxes). It is exact for
any number of objectives; the number of boxes grows as ``n^(m-1)``, which is fine for the 2-4
objectives and tens of front points a search has. Like qLogNEHVI (Daulton et al. 2021; Ament
et al. 2023, "Unexpected improvements to expected improvement"), we work with log EHVI: far
from the front EHVI underflows to exactly 0 and an optimiser sees a flat plateau, whereas
``log psi`` stays informative (asymptotic form for very negative z below).

- Noisy observations: the incumbent front is uncertain. :func:`make_log_ehvi` with
  ``front_samples`` averages EHVI over fronts drawn from the GPs' joint posterior at the
  observed points (the integral of NEHVI, Daulton et al. 2021, approximated by ignoring the
  correlation between the candidate and the observed points).
- Cheap objectives (known exactly, e.g. a predicted latency) enter with ``std = 0``: their
  factor is the exact ``(u - max(y, l))_+``.
- Constraints ``g(x) <= 0`` multiply by the probability of feasibility (Gardner et al. 2014).
- A batch of q: sequential greedy with kriging-believer fantasies (Ginsbourger et al. 2010):
  after each pick the GPs are conditioned on their mean there and the believed point joins the
  front, so the next pick goes elsewhere.

Tempered EHVI (``exploration``, default 0.25 in :class:`search.loop.SearchConfig`): inside the
acquisition the objectives' posterior standard deviation is multiplied by ``exploration``. With
a loose reference point, plain EHVI spends a 50-evaluation budget at the ends of the front:
the GP cannot know that an objective stops at its ideal value (DTLZ2's f2 is exactly 0 at
x1 = 0 whatever the other inputs), and the long side of the box behind an end point turns that
doubt into a large expected gain, so round after round went to x1 in {0, 1} with the other
inputs at random (the boundary over-exploration of Siivola et al. 2018). Median regret over
10 seeds at 50 evaluations with plain EHVI / 0.25 / 0 (the improvement of the posterior mean):
DTLZ2 0.220 / 0.122 / 0.117, ZDT1 0.017 / 0.016 / 0.022, ZDT2 0.013 / 0.013 / 0.014 (plain and
0.25: ``benchmarks/search_synthetic.py`` before and after the change; 0: the same calls with
the spread zeroed by hand, not committed). 0.25 keeps enough exploration for ZDT1 and removes
most of the waste on DTLZ2. Constraints keep their full uncertainty.

The maximiser is a pymoo genetic algorithm over the encoded domain (categoricals stay codes,
integers on their grid), seeded with a Sobol design plus perturbations of the current Pareto
set, then L-BFGS-B polish of the continuous coordinates of the best few.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import numpy as np
from scipy import optimize, special

from .domain import Domain
from .gp import GP
from .hypervolume import box_decomposition, nondominated

__all__ = ["log_ehvi", "log_pof", "LogEHVI", "make_log_ehvi", "maximize", "propose_batch",
           "Predictor"]

_LOG_SQRT_2PI = 0.5 * np.log(2 * np.pi)
_FLOOR = -1e6          # log acquisition given to impossible candidates (finite for the GA)

Predictor = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""Encoded points ``N x d`` -> (mean ``N``, std ``N``) of one objective or constraint."""


def _log_psi(z: np.ndarray) -> np.ndarray:
    """log(z Phi(z) + phi(z)), stable for all z (``-inf`` at ``z = -inf``)."""
    z = np.asarray(z, float)
    out = np.empty_like(z)
    big = z > -1.0
    zb = z[big]
    out[big] = np.log(zb * special.ndtr(zb) + np.exp(-0.5 * zb * zb) / np.sqrt(2 * np.pi))
    zs = z[~big]
    with np.errstate(divide="ignore", invalid="ignore"):
        # psi(z) = phi(z) (1 - |z| Phi(z)/phi(z)),  Phi/phi = sqrt(pi/2) erfcx(|z|/sqrt2)
        mid = -0.5 * zs * zs - _LOG_SQRT_2PI + np.log1p(
            -np.abs(zs) * special.erfcx(np.abs(zs) / np.sqrt(2)) * np.sqrt(np.pi / 2))
        # 1 - |z| R(|z|) = 1/z^2 - 3/z^4 + ...: the asymptotic form where log1p loses digits
        far = -0.5 * zs * zs - _LOG_SQRT_2PI - 2.0 * np.log(np.abs(zs)) + np.log1p(-3 / zs**2)
    out[~big] = np.where(zs < -1e3, far, mid)
    out[np.isneginf(z)] = -np.inf
    return out


def _log1mexp(x: np.ndarray) -> np.ndarray:
    """log(1 - exp(x)) for x <= 0 (Mächler 2012)."""
    x = np.minimum(x, 0.0)
    with np.errstate(divide="ignore"):
        return np.where(x > -np.log(2), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def _log_box_factor(mu, sd, lo, up):
    """log E[(up - max(y, lo))_+] for y ~ N(mu, sd^2), elementwise (broadcast); sd = 0 exact."""
    with np.errstate(divide="ignore", invalid="ignore"):
        sd_safe = np.where(sd > 0, sd, 1.0)
        a = (lo - mu) / sd_safe
        b = (up - mu) / sd_safe
        lb, la = _log_psi(b), _log_psi(a)
        gauss = np.log(sd_safe) + lb + _log1mexp(la - lb)
        exact = np.log(np.maximum(up - np.maximum(mu, lo), 0.0))
    return np.where(sd > 0, gauss, exact)


def log_ehvi(mean: np.ndarray, std: np.ndarray, lower: np.ndarray, upper: np.ndarray,
             *, chunk: int = 2_000_000) -> np.ndarray:
    """log EHVI of ``N`` candidates with independent Gaussian objectives.

    Args:
        mean, std: ``N x m`` predictive means and standard deviations (std 0: known exactly).
        lower, upper: ``B x m`` boxes from :func:`search.hypervolume.box_decomposition`.
    Returns:
        ``N`` values of log E[HVI] (``-inf`` where the improvement is surely 0).
    """
    mean = np.atleast_2d(mean)
    std = np.atleast_2d(std)
    N, B = len(mean), len(lower)
    out = np.empty(N)
    step = max(1, chunk // max(1, B * mean.shape[1]))
    for s in range(0, N, step):
        mu, sd = mean[s:s + step, None, :], std[s:s + step, None, :]
        terms = _log_box_factor(mu, sd, lower[None], upper[None]).sum(axis=2)   # (n, B)
        out[s:s + step] = special.logsumexp(terms, axis=1)
    return out


def log_pof(mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """log P(g <= 0) summed over constraints; ``mean``, ``std``: ``N x c``."""
    mean, std = np.atleast_2d(mean), np.atleast_2d(std)
    with np.errstate(divide="ignore", invalid="ignore"):
        gauss = special.log_ndtr(-mean / np.where(std > 0, std, 1.0))
        exact = np.where(mean <= 0, 0.0, -np.inf)
    return np.where(std > 0, gauss, exact).sum(axis=1)


@dataclasses.dataclass
class LogEHVI:
    """log EHVI (averaged over one or several fronts) + log probability of feasibility."""

    objectives: Sequence[Predictor]
    constraints: Sequence[Predictor]
    boxes: Sequence[tuple[np.ndarray, np.ndarray]]

    def __call__(self, Z: np.ndarray) -> np.ndarray:
        Z = np.atleast_2d(Z)
        ms = [f(Z) for f in self.objectives]
        mean = np.column_stack([m for m, _ in ms])
        std = np.column_stack([s for _, s in ms])
        vals = np.stack([log_ehvi(mean, std, lo, up) for lo, up in self.boxes])   # (S, N)
        acq = special.logsumexp(vals, axis=0) - np.log(len(self.boxes))
        if self.constraints:
            cs = [g(Z) for g in self.constraints]
            acq = acq + log_pof(np.column_stack([m for m, _ in cs]),
                                np.column_stack([s for _, s in cs]))
        return np.where(np.isfinite(acq), acq, _FLOOR)


def gp_predictor(gp: GP, exploration: float = 1.0) -> Predictor:
    """The GP's mean and ``exploration`` times its standard deviation (see the module's
    notes on tempered EHVI)."""
    def f(Z):
        m, v = gp.predict(Z)
        return m, exploration * np.sqrt(v)
    return f


def exact_predictor(fn: Callable[[np.ndarray], np.ndarray]) -> Predictor:
    def f(Z):
        m = np.asarray(fn(Z), float).reshape(-1)
        return m, np.zeros_like(m)
    return f


def make_log_ehvi(objectives: Sequence[Predictor], constraints: Sequence[Predictor],
                  fronts: Sequence[np.ndarray], ref: np.ndarray) -> LogEHVI:
    """``fronts``: one ``k x m`` array of feasible observed objective vectors (noise-free), or
    several sampled ones (noisy)."""
    boxes = [box_decomposition(F, ref) for F in fronts]
    return LogEHVI(list(objectives), list(constraints), boxes)


# -- maximisation ---------------------------------------------------------------------------
def _seed_points(domain: Domain, anchors: np.ndarray, rng: np.random.Generator,
                 n_sobol: int, n_per_anchor: int) -> np.ndarray:
    """A Sobol design plus perturbations of the anchors (current Pareto set): EHVI is highest
    near the front, and a uniform sample of a 6-d box rarely lands there."""
    pts = [domain.sample(n_sobol, rng)]
    if len(anchors):
        up = domain.upper
        cont = np.array([d.kind != "cat" for d in domain.dims])
        for scale in (0.01, 0.05, 0.15):
            A = np.repeat(anchors, n_per_anchor, axis=0)
            noise = rng.standard_normal(A.shape) * scale * np.where(cont, 1.0, 0.0)
            P = A + noise
            # categoricals: resample one coordinate at random with small probability
            if (~cont).any():
                flip = (rng.random(A.shape) < 0.2) & ~cont
                P = np.where(flip, np.floor(rng.random(A.shape) * (up + 1)), P)
            pts.append(P)
        pts.append(anchors)
    return domain.snap(np.vstack(pts))


def maximize(acq: Callable[[np.ndarray], np.ndarray], domain: Domain, rng: np.random.Generator,
             *, anchors: np.ndarray | None = None, pop_size: int = 64, n_gen: int = 30,
             n_sobol: int = 512, n_polish: int = 3, exclude: np.ndarray | None = None,
             pull_tol: float = 0.01,
             regions: Sequence[tuple[np.ndarray, np.ndarray]] | None = None
             ) -> tuple[np.ndarray, float]:
    """Maximise ``acq`` over the encoded domain; returns (best point ``d``, its value).

    Points in ``exclude`` (already evaluated or pending) are not returned unless nothing else
    is found: re-evaluating a deterministic objective wastes budget.
    """
    from pymoo.algorithms.soo.nonconvex.ga import GA
    from pymoo.core.problem import Problem
    from pymoo.core.repair import Repair
    from pymoo.optimize import minimize as pymoo_minimize

    anchors = np.zeros((0, domain.n)) if anchors is None else np.atleast_2d(anchors)
    full = (np.zeros(domain.n), domain.upper.astype(float))
    boxes = list(regions) if regions else [full]
    B_lo = np.array([b[0] for b in boxes])                           # (k, d)
    B_hi = np.array([b[1] for b in boxes])
    lo, hi = B_lo.min(axis=0), B_hi.max(axis=0)                      # the union's bounding box

    def nearest_box(Z):
        gap = np.maximum(B_lo[None] - Z[:, None], 0) + np.maximum(Z[:, None] - B_hi[None], 0)
        return np.argmin(gap.max(axis=2), axis=1)                        # Chebyshev distance

    def project(Z):
        """Snap to the domain, then clip into the nearest box of the trust region."""
        Z = domain.snap(Z)
        if regions:
            k = nearest_box(Z)
            Z = domain.snap(np.clip(Z, B_lo[k], B_hi[k]))
        return Z

    if regions:
        # a Sobol design of the trust region itself: point i in box i mod k
        U = domain.sample(n_sobol, rng)
        cont = np.array([d.kind != "cat" for d in domain.dims])
        k = np.arange(n_sobol) % len(boxes)
        U[:, cont] = B_lo[k][:, cont] + U[:, cont] * (B_hi[k] - B_lo[k])[:, cont]
        raw = project(np.vstack([U, _seed_points(domain, anchors, rng, 0, 16)]))
    else:
        raw = _seed_points(domain, anchors, rng, n_sobol, 16)
    raw_val = acq(raw)
    init = raw[np.argsort(-raw_val, kind="stable")[:pop_size]]

    class _Acq(Problem):
        def __init__(self):
            super().__init__(n_var=domain.n, n_obj=1, xl=lo, xu=hi)

        def _evaluate(self, X, out, *args, **kwargs):
            out["F"] = -acq(project(X))[:, None]

    class _Snap(Repair):
        def _do(self, problem, X, **kwargs):
            return project(X)

    seed = int(rng.integers(2**31 - 1))
    # a point snapped to the domain's grid can sit just outside the trust region's bounding
    # box (a box edge between two grid values); pymoo's SBX then evaluates a power of a
    # negative number for a branch it masks out, and numpy warns. Children are clamped to the
    # box and projected again, so nothing is wrong but the warning.
    with np.errstate(invalid="ignore"):
        res = pymoo_minimize(_Acq(), GA(pop_size=pop_size, sampling=init, repair=_Snap(),
                                        eliminate_duplicates=True),
                             ("n_gen", n_gen), seed=seed, verbose=False, save_history=False)
    pop = res.pop
    cand = np.vstack([project(pop.get("X")), init])
    vals = np.concatenate([-pop.get("F")[:, 0], raw_val[np.argsort(-raw_val)[:pop_size]]])
    cand, vals = _polish(acq, domain, cand, vals, n_polish,
                         lambda z: (B_lo[nearest_box(z[None])[0]], B_hi[nearest_box(z[None])[0]]),
                         project)
    order = np.argsort(-vals, kind="stable")
    best = order[0]
    if exclude is not None and len(exclude):
        for i in order:
            if not np.any(np.all(np.isclose(exclude, cand[i], atol=1e-9), axis=1)):
                best = i
                break
    z, v = _pull_back(acq, domain, cand[best], float(vals[best]), anchors, exclude, pull_tol)
    return z, v


def _pull_back(acq, domain: Domain, z, v, anchors, exclude, tol):
    """Move each coordinate of ``z`` to the nearest anchor's value where that costs less than
    ``tol`` of log acquisition. Where the GP sees a dimension as (nearly) irrelevant, an
    optimiser follows tiny spurious trends to the box's corners; the model is least verified
    there, and the known-good points' values are the safer choice among candidates it rates
    alike (the "dropout-copy" fill of Li et al. 2017, applied only where it is nearly free)."""
    if tol <= 0 or not len(anchors):
        return z, v
    a = anchors[np.argmin(((anchors - z) ** 2).sum(axis=1))]
    for i in np.flatnonzero(~np.isclose(a, z)):
        trial = z.copy()
        trial[i] = a[i]
        trial = domain.snap(trial[None])[0]          # mixing two valid points may need repair
        if exclude is not None and len(exclude) and np.any(
                np.all(np.isclose(exclude, trial, atol=1e-9), axis=1)):
            continue
        tv = float(acq(trial[None])[0])
        if tv >= v - tol:
            z, v = trial, tv
    return z, v


def _polish(acq, domain: Domain, cand, vals, n_polish, box_of, project):
    """L-BFGS-B (finite differences) on the continuous coordinates of the best candidates,
    each within its own trust-region box (so a polished point stays in the region)."""
    real = [i for i, d in enumerate(domain.dims) if d.kind == "real"]
    if not real or n_polish <= 0:
        return cand, vals
    extra_x, extra_v = [], []
    for i in np.argsort(-vals, kind="stable")[:n_polish]:
        z0 = cand[i].copy()
        lo, hi = box_of(z0)

        def f(zr, z0=z0):
            z = z0.copy()
            z[real] = zr
            return -float(acq(z[None])[0])

        r = optimize.minimize(f, np.clip(z0[real], lo[real], hi[real]), method="L-BFGS-B",
                              bounds=list(zip(lo[real], hi[real])),
                              options={"maxiter": 50, "eps": 1e-6})
        z = z0.copy()
        z[real] = r.x
        z = project(z[None])[0]
        extra_x.append(z)
        extra_v.append(float(acq(z[None])[0]))
    return np.vstack([cand, extra_x]), np.concatenate([vals, extra_v])


def propose_batch(domain: Domain, q: int, *, gps: Sequence[GP | None],
                  cheap: Callable[[np.ndarray], np.ndarray] | None,
                  constraint_gps: Sequence[GP], fronts: Sequence[np.ndarray], ref: np.ndarray,
                  rng: np.random.Generator, anchors: np.ndarray,
                  exclude: np.ndarray, exploration: float = 1.0,
                  **maximize_kwargs) -> tuple[np.ndarray, list[float]]:
    """q candidates by sequential greedy maximisation with kriging-believer fantasies.

    Args:
        gps: one per objective; ``None`` where the objective is cheap (given by ``cheap``).
        cheap: encoded points -> ``N x m`` array whose cheap columns are filled (others ignored).
        fronts: feasible observed objective vectors, one array, or several posterior samples.
        exploration: multiplier on the objectives' posterior standard deviation inside EHVI
            (1: plain EHVI; constraints keep their full uncertainty).
    Returns:
        ``q x d`` encoded points and their log acquisition values.
    """
    gps = list(gps)
    fronts = [np.asarray(F, float).reshape(-1, len(ref)) for F in fronts]
    cgps = list(constraint_gps)
    chosen, values = [], []
    exclude = np.asarray(exclude, float).reshape(-1, domain.n)
    for _ in range(q):
        objs = [gp_predictor(g, exploration) if g is not None else
                exact_predictor(lambda Z, j=j: cheap(Z)[:, j]) for j, g in enumerate(gps)]
        acq = make_log_ehvi(objs, [gp_predictor(g) for g in cgps], fronts, ref)
        z, v = maximize(acq, domain, rng, anchors=anchors, exclude=exclude, **maximize_kwargs)
        chosen.append(z)
        values.append(v)
        exclude = np.vstack([exclude, z])
        # believe the posterior mean at z: condition the GPs, add the point to every front
        believed = np.array([o(z[None])[0][0] for o in objs])
        gps = [g.condition(z[None], [believed[j]]) if g is not None else None
               for j, g in enumerate(gps)]
        cgps = [g.condition(z[None], g.predict(z[None])[0]) for g in cgps]
        feasible_belief = all(g.predict(z[None])[0][0] <= 0 for g in cgps)
        if feasible_belief:
            fronts = [np.vstack([F, believed]) for F in fronts]
        anchors = np.vstack([anchors, z]) if len(anchors) else z[None]
    return np.array(chosen), values


def sample_fronts(gps: Sequence[GP | None], Z_obs: np.ndarray, Y_obs: np.ndarray,
                  feasible: np.ndarray, n_samples: int, rng: np.random.Generator
                  ) -> list[np.ndarray]:
    """Fronts drawn from the joint posterior of f at the feasible observed points (objectives
    with no GP keep their observed values): the noisy variant's incumbents."""
    Zf, Yf = Z_obs[feasible], Y_obs[feasible]
    if not len(Zf):
        return [np.zeros((0, Y_obs.shape[1]))]
    cols = []
    for j, g in enumerate(gps):
        cols.append(np.repeat(Yf[None, :, j], n_samples, axis=0) if g is None
                    else g.sample(Zf, n_samples, rng))
    S = np.stack(cols, axis=2)                      # (n_samples, n_feasible, m)
    return [s[nondominated(s)] for s in S]
