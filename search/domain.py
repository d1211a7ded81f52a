"""The domain of a pymoo problem, encoded for a GP and decoded back for the problem.

pymoo describes variables two ways: a box (``xl``, ``xu``, optional ``vtype=int``) or a
``vars`` dict of :mod:`pymoo.core.variable` objects (``Real``, ``Integer``, ``Binary``,
``Choice``). Both become one :class:`Domain` of dimensions, each ``real``, ``int`` or ``cat``:

- ``real`` and ``int`` are scaled to [0, 1] (an ``int`` is ordered: 3 is nearer 4 than 9, so it
  shares the Matérn kernel, on its grid of ``hi - lo + 1`` values);
- ``cat`` (``Choice``) is an integer code 0..k-1, unordered: the GP's Hamming kernel sees only
  equal or different. ``Binary`` is a two-valued ``int``.

``decode`` gives the problem what it expects (a float/int matrix, or an object array of dicts
for a ``vars`` problem); ``to_json``/``from_json`` write one candidate for the store.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any, Sequence

import numpy as np
from measurements.errors import HwdistillError

__all__ = ["Dimension", "Domain", "DomainError"]

KINDS = ("real", "int", "cat")


class DomainError(HwdistillError, ValueError):
    """A problem's variables or bounds cannot be searched as given."""


@dataclasses.dataclass(frozen=True)
class Dimension:
    name: str
    kind: str                      # real | int | cat
    lower: float = 0.0             # real/int
    upper: float = 1.0
    options: tuple = ()            # cat

    def __post_init__(self):
        if self.kind not in KINDS:
            raise DomainError(f"dimension {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.kind == "cat":
            if len(self.options) < 1:
                raise DomainError(f"dimension {self.name!r}: a Choice needs at least one option")
            return
        lo, hi = self.lower, self.upper
        if not (np.isfinite(lo) and np.isfinite(hi)):
            raise DomainError(f"dimension {self.name!r}: bounds must be finite, got "
                              f"[{lo}, {hi}]; a Bayesian search needs a bounded box")
        if lo > hi:
            raise DomainError(f"dimension {self.name!r}: lower bound {lo} > upper bound {hi}. "
                              "Did you swap the lower and upper bounds?")
        if self.kind == "int" and (lo != int(lo) or hi != int(hi)):
            raise DomainError(f"dimension {self.name!r}: integer bounds must be whole numbers, "
                              f"got [{lo}, {hi}]")

    @property
    def size(self) -> int:
        """Number of distinct values (0 for a real dimension)."""
        if self.kind == "cat":
            return len(self.options)
        if self.kind == "int":
            return int(self.upper - self.lower) + 1
        return 0


@dataclasses.dataclass(frozen=True)
class Domain:
    dims: tuple[Dimension, ...]
    named: bool = False            # the problem takes dicts (a ``vars`` problem)
    # the problem's ``repair(X)`` (decoded candidates -> valid decoded candidates), applied by
    # :meth:`snap`, so the acquisition, the GP and the store only ever see valid points
    repair: Any = dataclasses.field(default=None, compare=False, repr=False)

    @classmethod
    def from_problem(cls, problem) -> "Domain":
        from pymoo.core.variable import Binary, Choice, Integer, Real

        vars_ = getattr(problem, "vars", None)
        if isinstance(vars_, dict) and vars_:
            dims = []
            for name, v in vars_.items():
                if isinstance(v, Binary):
                    dims.append(Dimension(name, "int", 0, 1))
                elif isinstance(v, Integer):
                    dims.append(Dimension(name, "int", *map(float, v.bounds)))
                elif isinstance(v, Real):
                    dims.append(Dimension(name, "real", *map(float, v.bounds)))
                elif isinstance(v, Choice):
                    dims.append(Dimension(name, "cat", options=tuple(v.options)))
                else:
                    raise DomainError(f"variable {name!r} is a {type(v).__name__}; supported: "
                                      "Real, Integer, Binary, Choice")
            return cls(tuple(dims), named=True, repair=_repair_of(problem))
        n = getattr(problem, "n_var", -1)
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise DomainError(f"problem.n_var is {n!r}; a search needs n_var >= 1")
        xl, xu = problem.xl, problem.xu
        if xl is None or xu is None:
            raise DomainError("problem.xl / problem.xu are not set; a Bayesian search needs "
                              "finite bounds on every variable")
        bounds = {}
        for name, b in (("xl", xl), ("xu", xu)):
            b = np.asarray(b, float)
            if b.ndim > 1 or (b.ndim == 1 and len(b) not in (1, n)):
                raise DomainError(f"problem.{name} has shape {b.shape}; expected a scalar or "
                                  f"{n} values (problem.n_var={n})")
            bounds[name] = np.broadcast_to(b, (n,))
        xl, xu = bounds["xl"], bounds["xu"]
        vt = getattr(problem, "vtype", None)
        kind = "int" if vt is not None and np.issubdtype(np.dtype(vt), np.integer) else "real"
        return cls(tuple(Dimension(f"x{i}", kind, xl[i], xu[i]) for i in range(n)),
                   repair=_repair_of(problem))

    # -- shape --------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return len(self.dims)

    @property
    def cat_dims(self) -> tuple[int, ...]:
        return tuple(i for i, d in enumerate(self.dims) if d.kind == "cat")

    @property
    def upper(self) -> np.ndarray:
        """Upper bounds of the encoded space (1 for real/int, k-1 for categoricals)."""
        return np.array([d.size - 1 if d.kind == "cat" else 1.0 for d in self.dims])

    # -- encoded space ------------------------------------------------------------------------
    def snap(self, Z: np.ndarray) -> np.ndarray:
        """Project encoded points onto the domain: clip, round ints to their grid, cats to
        codes, then the problem's ``repair`` if it has one (so the GP never sees a point the
        problem cannot take)."""
        Z = self._round(Z)
        if self.repair is not None and len(Z):
            Z = self._round(self._encode_raw(self.repair(self._decode_rounded(Z))))
        return Z

    def _round(self, Z: np.ndarray) -> np.ndarray:
        Z = np.array(Z, dtype=float, copy=True).reshape(-1, self.n)
        for i, d in enumerate(self.dims):
            if d.kind == "cat":
                Z[:, i] = np.clip(np.round(Z[:, i]), 0, d.size - 1)
            else:
                Z[:, i] = np.clip(Z[:, i], 0.0, 1.0)
                if d.kind == "int" and d.size > 1:
                    Z[:, i] = np.round(Z[:, i] * (d.size - 1)) / (d.size - 1)
                elif d.kind == "int":
                    Z[:, i] = 0.0
        return Z

    def sample(self, n: int, rng: np.random.Generator, *, method: str = "sobol") -> np.ndarray:
        """``n`` encoded points: a scrambled Sobol (or Latin hypercube) design, seeded by
        ``rng``, mapped so every grid value / option is equally likely."""
        from scipy.stats import qmc     # scipy.stats costs ~0.5 s to import: only when sampling

        if method == "sobol":
            with warnings.catch_warnings():
                # balance is exact only for powers of 2; a scrambled Sobol prefix of any length
                # still covers the box far more evenly than random points
                warnings.filterwarnings("ignore", message=".*balance properties of Sobol")
                U = qmc.Sobol(self.n, scramble=True, seed=rng).random(n)
        elif method == "lhs":
            U = qmc.LatinHypercube(self.n, seed=rng).random(n)
        elif method == "random":
            U = rng.random((n, self.n))
        else:
            raise DomainError(f"sampling method {method!r} unknown; use sobol, lhs or random")
        Z = U.copy()
        for i, d in enumerate(self.dims):
            if d.kind == "cat":
                Z[:, i] = np.minimum(np.floor(U[:, i] * d.size), d.size - 1)
            elif d.kind == "int":
                k = d.size
                Z[:, i] = np.minimum(np.floor(U[:, i] * k), k - 1) / max(k - 1, 1)
        return Z

    # -- problem space ------------------------------------------------------------------------
    def decode(self, Z: np.ndarray):
        """Encoded points -> what ``problem.evaluate`` takes."""
        return self._decode_rounded(self.snap(Z))

    def _decode_rounded(self, Z: np.ndarray):
        cols = []
        for i, d in enumerate(self.dims):
            if d.kind == "cat":
                cols.append([d.options[int(c)] for c in Z[:, i]])
            else:
                v = d.lower + Z[:, i] * (d.upper - d.lower)
                cols.append(np.round(v).astype(int) if d.kind == "int" else v)
        if self.named:
            return np.array([{d.name: _py(cols[i][r]) for i, d in enumerate(self.dims)}
                             for r in range(len(Z))], dtype=object)
        X = np.column_stack(cols) if cols else np.zeros((len(Z), 0))
        return X.astype(int) if all(d.kind == "int" for d in self.dims) else X.astype(float)

    def encode(self, X) -> np.ndarray:
        """Inverse of :meth:`decode` (values must lie in the domain)."""
        return self.snap(self._encode_raw(X))

    def _encode_raw(self, X) -> np.ndarray:
        rows = list(X) if self.named else np.atleast_2d(np.asarray(X, float))
        Z = np.zeros((len(rows), self.n))
        for r, row in enumerate(rows):
            for i, d in enumerate(self.dims):
                v = row[d.name] if self.named else row[i]
                if d.kind == "cat":
                    if v not in d.options:
                        raise DomainError(f"{d.name}={v!r} is not one of {list(d.options)}")
                    Z[r, i] = d.options.index(v)
                else:
                    v = float(v)
                    if not d.lower - 1e-9 <= v <= d.upper + 1e-9:
                        raise DomainError(f"{d.name}={v} is outside [{d.lower}, {d.upper}]")
                    Z[r, i] = 0.0 if d.upper == d.lower else (v - d.lower) / (d.upper - d.lower)
        return Z

    def to_json(self, x) -> Any:
        """One decoded candidate as JSON (a dict for ``vars`` problems, else a list)."""
        if self.named:
            return {k: _py(v) for k, v in dict(x).items()}
        return [_py(v) for v in np.asarray(x).tolist()]

    def from_json(self, obj) -> Any:
        if self.named:
            return dict(obj)
        return np.asarray(obj, dtype=int if all(d.kind == "int" for d in self.dims) else float)

    def describe(self) -> list[dict]:
        return [dataclasses.asdict(d) for d in self.dims]


def _repair_of(problem):
    fn = getattr(problem, "repair", None)
    if fn is not None and not callable(fn):
        raise DomainError(f"problem.repair is a {type(fn).__name__}; it must be a function of "
                          "decoded candidates returning valid candidates")
    return fn


def _py(v):
    return v.item() if hasattr(v, "item") else v


def stack(xs: Sequence[Any], domain: Domain):
    """A list of decoded candidates -> what ``problem.evaluate`` takes."""
    if domain.named:
        return np.array(list(xs), dtype=object)
    return np.asarray(np.vstack(xs))
