"""The first search space (frozen): kept only so the committed latency benchmarks and the
profiled store stay reproducible (``hwdistill profile --archs 80`` drew its architectures
with :meth:`SpaceV1.sample`). New work uses :mod:`search.space`.

Why it was replaced: decode is many-to-one (about a quarter of index vectors repeat another
config after repair), categoricals are plain integers a kernel would treat as ordered, and
there is no ``encode``."""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from distill import StudentConfig
from measurements.errors import InputError

__all__ = ["SpaceV1", "SPACE_V1"]


@dataclasses.dataclass(frozen=True)
class SpaceV1:
    num_layers: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8)
    hidden_size: tuple[int, ...] = (128, 192, 256, 320, 384, 512)
    intra_ratio: tuple[float, ...] = (0.0, 0.25, 0.5)      # 0 = no bottleneck
    head_size: tuple[int, ...] = (32, 64)
    ffn_ratio: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0)     # of the attention width
    num_ffn: tuple[int, ...] = (1, 2, 3, 4)
    embedding_size: tuple[int, ...] = (0, 128)              # 0 = hidden size
    activation: tuple[str, ...] = ("gelu", "relu")
    normalization: tuple[str, ...] = ("layernorm", "nonorm")
    kq_shared: tuple[bool, ...] = (False, True)
    vocab_size: int = 30522
    max_positions: int = 512

    @property
    def choices(self) -> list[tuple[str, tuple]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)
                if isinstance(getattr(self, f.name), tuple)]

    @property
    def upper(self) -> np.ndarray:
        """Largest index of each dimension (pymoo's xu)."""
        return np.array([len(v) - 1 for _, v in self.choices])

    def decode(self, x: Sequence[int]) -> StudentConfig:
        if len(x) != len(self.choices):
            raise InputError(f"index vector has {len(x)} entries, the space has "
                             f"{len(self.choices)} dimensions: {[n for n, _ in self.choices]}")
        v = {}
        for (name, opts), i in zip(self.choices, x):
            i = int(round(float(i)))
            if not 0 <= i < len(opts):
                raise InputError(f"index {i} for {name} is outside 0..{len(opts) - 1}")
            v[name] = opts[i]
        hidden = v["hidden_size"]
        intra = int(hidden * v["intra_ratio"]) or None
        if intra is not None and intra < 32:
            intra = None
        width = intra or hidden
        heads = max(1, width // v["head_size"])
        while width % heads:
            heads -= 1
        emb = v["embedding_size"] or None
        if emb is not None and emb >= hidden:
            emb = None
        return StudentConfig(
            num_layers=v["num_layers"], hidden_size=hidden, num_heads=heads,
            ffn_size=int(width * v["ffn_ratio"]), embedding_size=emb, intra_size=intra,
            num_ffn=v["num_ffn"], activation=v["activation"],
            normalization=v["normalization"],
            kq_shared_bottleneck=bool(v["kq_shared"] and intra is not None),
            vocab_size=self.vocab_size, max_positions=self.max_positions, pooler=False)

    def sample(self, n: int, seed: int) -> list[StudentConfig]:
        """``n`` distinct configurations, deterministic in ``seed``."""
        rng = np.random.default_rng(seed)
        out, seen = [], set()
        for _ in range(n * 50):
            cfg = self.decode(rng.integers(0, self.upper + 1))
            if cfg not in seen:
                seen.add(cfg)
                out.append(cfg)
                if len(out) == n:
                    return out
        raise InputError(f"could only draw {len(out)} distinct architectures of {n} requested")

    sample_configs = sample        # the name the profiling commands call on any space


SPACE_V1 = SpaceV1()
