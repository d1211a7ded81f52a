"""The student search space: a data file (``default_space.toml``, or ``--space my.toml``) of
dimensions with their options, and the map between index vectors and :class:`Candidate`\\ s.

A candidate is an architecture (:class:`distill.StudentConfig`) and how its weights start
(``init``: "scratch" or "derived" from the teacher). The space is honest: :meth:`decode` is
one-to-one on the vectors it accepts and rejects every other vector naming the field (no
silent repair: the first space repaired about a quarter of its vectors into a duplicate of
another), :meth:`encode` inverts it, and :meth:`repair` is the explicit, deterministic map of
any vector to a valid one that the search applies before a candidate is evaluated or modelled.
Numbers are ordinal; strings and booleans are categorical (pymoo ``Choice``/``Binary``), so
the GP never treats "relu" as larger than "gelu".

Importing this module loads no jax: describing candidates must stay cheap (the search decodes
thousands, and Ray pickles them to workers).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from distill import StudentConfig
from distill.config import ACTIVATIONS, NORMS, derivable
from measurements.errors import HwdistillError

__all__ = ["Candidate", "SearchSpace", "SpaceError", "DEFAULT_SPACE", "INITS", "derivable"]

INITS = ("scratch", "derived")

# name -> (default options, type of an option); the order is the index vector's order
_DIMS: dict[str, tuple[tuple, type]] = {
    "num_layers": ((4,), int),
    "hidden_size": ((256,), int),
    "intra_size": ((0,), int),
    "head_size": ((64,), int),
    "ffn_ratio": ((4.0,), float),
    "num_ffn": ((1,), int),
    "embedding_size": ((0,), int),
    "activation": (("gelu",), str),
    "normalization": (("layernorm",), str),
    "kq_shared": ((False,), bool),
    "init": (("scratch",), str),
}
_ALLOWED = {"activation": ACTIVATIONS, "normalization": NORMS, "init": INITS}
_ZERO_OK = ("intra_size", "embedding_size")
_DEFAULT_TEACHER = StudentConfig(num_layers=6, hidden_size=384, num_heads=12, ffn_size=1536)


class SpaceError(HwdistillError, ValueError):
    """A search-space file, an index vector or a candidate that the space cannot take."""


@dataclasses.dataclass(frozen=True)
class Candidate:
    """What the search evaluates: an architecture and how its weights start."""

    config: StudentConfig
    init: str = "scratch"

    def __post_init__(self):
        if self.init not in INITS:
            raise SpaceError(f"Candidate.init={self.init!r}: expected one of {INITS}")

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "init": self.init}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Candidate":
        return cls(StudentConfig.from_dict(d["config"]), d.get("init", "scratch"))

    def key(self) -> str:
        """A stable text key (sorted JSON) for stores and caches."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def describe(self) -> str:
        c = self.config
        parts = [f"{c.num_layers}L", f"H{c.hidden_size}"]
        if c.intra_size:
            parts.append(f"I{c.intra_size}")
        parts += [f"A{c.num_heads}x{c.head_size}", f"F{c.ffn_size}"]
        if c.num_ffn > 1:
            parts[-1] += f"x{c.num_ffn}"
        if c.embedding_size:
            parts.append(f"E{c.embedding_size}")
        if c.activation != "gelu":
            parts.append(c.activation)
        if c.normalization != "layernorm":
            parts.append(c.normalization)
        if c.kq_shared_bottleneck:
            parts.append("kq")
        return "/".join(parts) + ("" if self.init == "scratch" else f" ({self.init})")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Dimensions (name, options) in index-vector order, the teacher's shape, fixed sizes."""

    dims: tuple[tuple[str, tuple], ...]
    teacher: StudentConfig = _DEFAULT_TEACHER
    name: str = "custom"
    vocab_size: int = 30522
    max_positions: int = 512

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "search space") -> "SearchSpace":
        unknown = set(data) - {"space", "dimensions", "teacher"}
        if unknown:
            raise SpaceError(f"{source}: unknown table(s) {sorted(unknown)}; a space file has "
                             "[space], [dimensions] and [teacher]")
        head = dict(data.get("space", {}))
        version = head.pop("version", 2)
        if version != 2:
            raise SpaceError(f"{source}: space version {version} is not supported (this "
                             "hwdistill reads version 2)")
        dims_in = dict(data.get("dimensions", {}))
        bad = set(dims_in) - set(_DIMS)
        if bad:
            raise SpaceError(f"{source}: unknown dimension(s) {sorted(bad)}; known: "
                             f"{list(_DIMS)}")
        dims = []
        for name, (default, typ) in _DIMS.items():
            opts = dims_in.get(name, default)
            dims.append((name, _check_options(name, opts, typ, source)))
        try:
            teacher = StudentConfig(**{**dataclasses.asdict(_DEFAULT_TEACHER),
                                       **data.get("teacher", {})})
        except (TypeError, ValueError) as e:
            raise SpaceError(f"{source}: [teacher] is not a valid architecture: {e}") from None
        extra = set(head) - {"name", "vocab_size", "max_positions"}
        if extra:
            raise SpaceError(f"{source}: unknown [space] key(s) {sorted(extra)}; known: name, "
                             "version, vocab_size, max_positions")
        space = cls(tuple(dims), teacher, str(head.get("name", "custom")),
                    int(head.get("vocab_size", 30522)), int(head.get("max_positions", 512)))
        if space.count_valid(limit=1) == 0:
            raise SpaceError(f"{source}: no combination of the options makes a valid student; "
                             "check the bottleneck and head sizes against the hidden sizes")
        return space

    @classmethod
    def from_toml(cls, path: str | Path) -> "SearchSpace":
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text())
        except FileNotFoundError:
            raise SpaceError(f"search space file {p} does not exist; start from the default: "
                             "hwdistill search --print-space > my.toml") from None
        except tomllib.TOMLDecodeError as e:
            raise SpaceError(f"search space file {p} is not valid TOML: {e}") from None
        return cls.from_dict(data, source=str(p))

    @classmethod
    def default(cls) -> "SearchSpace":
        text = resources.files("search").joinpath("default_space.toml").read_text()
        return cls.from_dict(tomllib.loads(text), source="default_space.toml")

    @staticmethod
    def default_text() -> str:
        return resources.files("search").joinpath("default_space.toml").read_text()

    def to_dict(self) -> dict[str, Any]:
        t = self.teacher
        return {"space": {"name": self.name, "version": 2, "vocab_size": self.vocab_size,
                          "max_positions": self.max_positions},
                "dimensions": {n: list(o) for n, o in self.dims},
                "teacher": {"num_layers": t.num_layers, "hidden_size": t.hidden_size,
                            "num_heads": t.num_heads, "ffn_size": t.ffn_size,
                            "activation": t.activation}}

    # -- shape ----------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.dims]

    @property
    def sizes(self) -> np.ndarray:
        return np.array([len(o) for _, o in self.dims])

    @property
    def upper(self) -> np.ndarray:
        """Largest index of each dimension."""
        return self.sizes - 1

    def categorical(self, name: str) -> bool:
        return _DIMS[name][1] in (str, bool)

    def options(self, name: str) -> tuple:
        return dict(self.dims)[name]

    # -- index vectors <-> candidates ------------------------------------------------------------
    def _values(self, x: Sequence[int] | Mapping[str, Any]) -> dict[str, Any]:
        if isinstance(x, Mapping):
            missing = set(self.names) - set(x)
            if missing:
                raise SpaceError(f"candidate is missing dimension(s) {sorted(missing)}")
            x = [x[n] for n in self.names]
        if len(x) != len(self.dims):
            raise SpaceError(f"index vector has {len(x)} entries, the space has "
                             f"{len(self.dims)} dimensions: {self.names}")
        v = {}
        for (name, opts), i in zip(self.dims, x):
            f = float(i)
            if f != round(f) or not 0 <= f < len(opts):
                raise SpaceError(f"index {i!r} for {name} is not one of 0..{len(opts) - 1} "
                                 f"(its options: {list(opts)})")
            v[name] = opts[int(f)]
        return v

    def _build(self, v: Mapping[str, Any]) -> Candidate:
        hidden, intra = v["hidden_size"], v["intra_size"] or None
        if intra is not None and intra >= hidden:
            raise SpaceError(f"intra_size={intra} is not narrower than hidden_size={hidden}: a "
                             "bottleneck must be narrower (or intra_size 0: none)")
        width = intra or hidden
        if width % v["head_size"]:
            raise SpaceError(f"head_size={v['head_size']} does not divide the attention width "
                             f"{width} ({'intra_size' if intra else 'hidden_size'})")
        ffn = width * v["ffn_ratio"]
        if ffn != int(ffn):
            raise SpaceError(f"ffn_ratio={v['ffn_ratio']} x attention width {width} = {ffn} is "
                             "not a whole number of units")
        emb = v["embedding_size"] or None
        if emb is not None and emb >= hidden:
            raise SpaceError(f"embedding_size={emb} is not narrower than hidden_size={hidden}: "
                             "a factorised embedding must be narrower (or embedding_size 0)")
        if v["kq_shared"] and intra is None:
            raise SpaceError("kq_shared=true needs a bottleneck (intra_size > 0)")
        try:
            cfg = StudentConfig(
                num_layers=v["num_layers"], hidden_size=hidden,
                num_heads=width // v["head_size"], ffn_size=int(ffn), embedding_size=emb,
                intra_size=intra, num_ffn=v["num_ffn"], activation=v["activation"],
                normalization=v["normalization"], kq_shared_bottleneck=bool(v["kq_shared"]),
                vocab_size=self.vocab_size, max_positions=self.max_positions, pooler=False)
        except ValueError as e:
            raise SpaceError(str(e)) from None
        if v["init"] == "derived":
            why = derivable(cfg, self.teacher, otherwise="init='scratch'")
            if why:
                raise SpaceError(why)
        return Candidate(cfg, v["init"])

    def decode(self, x: Sequence[int] | Mapping[str, Any]) -> Candidate:
        """The candidate of an index vector (or a {dimension: index} dict); a vector that does
        not make a valid, unique candidate raises :class:`SpaceError` naming the field."""
        return self._build(self._values(x))

    def check(self, x) -> str | None:
        """None if ``x`` decodes, else the reason it does not."""
        try:
            self.decode(x)
        except SpaceError as e:
            return str(e)
        return None

    def encode(self, cand: Candidate | StudentConfig) -> np.ndarray:
        """The index vector of a candidate (a bare config means init="scratch"); raises if the
        space cannot express it."""
        if isinstance(cand, StudentConfig):
            cand = Candidate(cand)
        c = cand.config
        v = {"num_layers": c.num_layers, "hidden_size": c.hidden_size,
             "intra_size": c.intra_size or 0, "head_size": c.head_size,
             "ffn_ratio": c.ffn_size / c.attention_size, "num_ffn": c.num_ffn,
             "embedding_size": c.embedding_size or 0, "activation": c.activation,
             "normalization": c.normalization, "kq_shared": c.kq_shared_bottleneck,
             "init": cand.init}
        x = []
        for name, opts in self.dims:
            match = [i for i, o in enumerate(opts) if o == v[name]]
            if not match:
                raise SpaceError(f"{cand.describe()}: {name}={v[name]!r} is not an option of "
                                 f"this space ({list(opts)})")
            x.append(match[0])
        x = np.array(x)
        if self.decode(x) != Candidate(c.replace(pooler=False, vocab_size=self.vocab_size,
                                                 max_positions=self.max_positions), cand.init):
            raise SpaceError(f"{cand.describe()} has fields this space fixes differently "
                             "(trigram input, vocabulary or position sizes)")
        return x

    def repair(self, x: Sequence[int]) -> np.ndarray:
        """A valid index vector near ``x``, deterministically: a bottleneck or factorised
        embedding that is not narrower is dropped, kq_shared without a bottleneck is turned off,
        a head size that does not divide the width becomes the largest option that does, and a
        student the teacher cannot be sliced into starts from scratch."""
        x = np.array([int(round(float(i))) for i in x])
        if len(x) != len(self.dims):
            self._values(x)                      # raises naming the length mismatch
        x = np.clip(x, 0, self.upper)
        idx = {n: i for i, n in enumerate(self.names)}
        v = self._values(x)

        def set_(name, value):
            opts = self.options(name)
            if value in opts:
                x[idx[name]] = opts.index(value)
                v[name] = value
                return True
            return False

        hidden = v["hidden_size"]
        if v["intra_size"] >= hidden and not set_("intra_size", 0):
            ok = [o for o in self.options("intra_size") if o < hidden]
            if ok:
                set_("intra_size", max(ok))
        if v["embedding_size"] >= hidden:
            set_("embedding_size", 0)
        if v["kq_shared"] and not v["intra_size"]:
            set_("kq_shared", False)
        width = v["intra_size"] or hidden
        if width % v["head_size"]:
            ok = [o for o in self.options("head_size") if width % o == 0]
            if ok:
                set_("head_size", max(ok))
        if v["init"] == "derived" and self.check(x):
            set_("init", "scratch")
        why = self.check(x)
        if why:
            raise SpaceError(f"cannot repair {list(x)} into a valid student: {why}")
        return x

    # -- sampling -------------------------------------------------------------------------------
    def _draw(self, seed: int, n: int, key) -> list:
        rng = np.random.default_rng(seed)
        out, seen = [], set()
        for _ in range(200):
            for x in rng.integers(0, self.sizes, size=(max(4 * n, 64), len(self.dims))):
                try:
                    c = self.decode(x)
                except SpaceError:
                    continue
                if key(c) not in seen:
                    seen.add(key(c))
                    out.append(key(c))
                    if len(out) == n:
                        return out
        raise SpaceError(f"could only draw {len(out)} distinct candidates of {n} requested; "
                         "the space has fewer valid ones")

    def sample(self, n: int, seed: int) -> list[Candidate]:
        """``n`` distinct candidates drawn uniformly from the valid ones, deterministic in
        ``seed`` (rejection sampling of index vectors: every valid candidate is equally
        likely)."""
        return self._draw(seed, n, lambda c: c)

    def sample_configs(self, n: int, seed: int) -> list[StudentConfig]:
        """``n`` distinct architectures (the init ignored), e.g. for profiling."""
        return self._draw(seed, n, lambda c: c.config)

    def count_valid(self, limit: int | None = None) -> int:
        """Number of valid index vectors (= distinct candidates), stopping at ``limit``."""
        count = 0
        for x in np.ndindex(*self.sizes):
            if self.check(x) is None:
                count += 1
                if limit is not None and count >= limit:
                    break
        return count


def _check_options(name: str, opts, typ: type, source: str) -> tuple:
    if not isinstance(opts, (list, tuple)) or not opts:
        raise SpaceError(f"{source}: dimension {name} must be a non-empty list of options, got "
                         f"{opts!r}")
    out = []
    for o in opts:
        if typ is float and isinstance(o, int) and not isinstance(o, bool):
            o = float(o)
        if not isinstance(o, typ) or (typ is int and isinstance(o, bool)):
            raise SpaceError(f"{source}: {name} option {o!r} is a {type(o).__name__}; expected "
                             f"{typ.__name__} (e.g. {_DIMS[name][0][0]!r})")
        if typ in (int, float) and (o < 0 or (o == 0 and name not in _ZERO_OK)):
            raise SpaceError(f"{source}: {name} option {o!r} must be positive"
                             + (" (0 means: none)" if name in _ZERO_OK else ""))
        if name in _ALLOWED and o not in _ALLOWED[name]:
            raise SpaceError(f"{source}: {name} option {o!r} is not one of {_ALLOWED[name]}")
        out.append(o)
    if len(set(out)) != len(out):
        raise SpaceError(f"{source}: dimension {name} lists an option twice: {opts}")
    return tuple(out)


DEFAULT_SPACE = SearchSpace.default()
