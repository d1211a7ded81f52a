"""What every proxy shares: the result type, the context of real batches and teacher targets,
student initialisation, and timing."""

from __future__ import annotations

import dataclasses
import math
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence
from measurements.errors import InputError, StateError

if TYPE_CHECKING:  # the types only; importing this module loads no ML library
    import numpy as np

    from ..config import StudentConfig
    from ..data import Example
    from ..model import Encoder
    from ..tokenizer import TextEncoder
    from ..train import DistillConfig

__all__ = ["ProxyResult", "ProxyContext", "make_context", "build_student", "INITS", "timed", "result"]

INITS = ("random", "teacher", "derived")


@dataclasses.dataclass(frozen=True)
class ProxyResult:
    name: str
    value: float
    cost_s: float             # wall time: the student's init, compilation and computation
    seed: int                 # the student's initialisation seed
    higher_is_better: bool = True

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class ProxyContext:
    """The shared, student-independent inputs of the proxies (built once by
    :func:`make_context`; its cost is not charged to any proxy).

    ``batches`` are real texts tokenised to (B, max_len) int32 arrays; ``teacher_emb`` holds
    the teacher's mean-pooled (not normalised) embedding of each batch, (B, H_teacher).
    ``batch_texts`` are the texts of the batches, in order. ``texts`` is the corpus flash
    distillation trains on, ``stsb_pairs`` what it is scored on.
    """

    teacher: "Encoder"
    tokenizer: "TextEncoder"
    batches: tuple[dict[str, "np.ndarray"], ...]
    teacher_emb: tuple["np.ndarray", ...]
    batch_texts: tuple[str, ...] = ()
    texts: Sequence[str] = ()
    stsb_pairs: Sequence["Example"] | None = None
    seed: int = 0                                   # the seed the batches were drawn with
    seq_len: int = 128                              # sequence length the FLOPs are counted at
    flash_config: "DistillConfig | None" = None     # None: flash_distill's own defaults


def make_context(teacher: "Encoder", tokenizer: "TextEncoder", texts: Sequence[str], *,
                 seed: int = 0, n_batches: int = 2, batch_size: int = 32, max_len: int = 64,
                 stsb_pairs: Sequence["Example"] | None = None, seq_len: int = 128,
                 flash_config: "DistillConfig | None" = None) -> ProxyContext:
    """Draw ``n_batches`` x ``batch_size`` distinct texts (a permutation of ``texts`` seeded by
    ``seed``), tokenise each batch to exactly ``max_len`` positions (truncated or padded, so
    every batch has one shape and each proxy compiles once) and run the teacher on them."""
    import jax
    import numpy as np
    from flax import nnx

    from ..model import mean_pool

    need = n_batches * batch_size
    if n_batches <= 0 or batch_size <= 1 or max_len <= 1:
        raise InputError(f"n_batches={n_batches}, batch_size={batch_size} (>1) and max_len="
                         f"{max_len} (>1) must be positive")
    pool = [t for t in dict.fromkeys(texts) if t.strip()]
    if len(pool) < need:
        raise InputError(f"{len(pool)} distinct texts cannot fill {n_batches} batches of "
                         f"{batch_size}; pass more texts or smaller --batches/--batch-size")
    order = np.random.default_rng(seed).permutation(len(pool))[:need]
    chosen = tuple(pool[i] for i in order)
    batches = []
    for k in range(n_batches):
        b = tokenizer(list(chosen[k * batch_size:(k + 1) * batch_size]))
        out = {}
        for name, v in b.items():
            fill = tokenizer.pad_id if name == "input_ids" else 0
            v = v[:, :max_len]
            out[name] = np.pad(v, ((0, 0), (0, max_len - v.shape[1])), constant_values=fill)
        batches.append(out)
    graph, state = nnx.split(teacher)

    @jax.jit
    def t_emb(state, b):
        out = nnx.merge(graph, state)(b["input_ids"], b["attention_mask"], b["token_type_ids"])
        return mean_pool(out.last_hidden_state, b["attention_mask"], normalize=False)

    emb = tuple(np.asarray(t_emb(state, b)) for b in batches)
    return ProxyContext(teacher, tokenizer, tuple(batches), emb, chosen, texts=texts,
                        stsb_pairs=stsb_pairs, seed=seed, seq_len=seq_len,
                        flash_config=flash_config)


def build_student(config: "StudentConfig", ctx: ProxyContext, init: str = "random",
                  seed: int = 0) -> "Encoder":
    """The student at initialisation: ``random`` (:func:`distill.model.init_encoder`),
    ``teacher`` (then the teacher's tensors where shapes allow, as the Distiller does with
    ``DistillConfig.init='teacher'``), or ``derived`` (:func:`distill.derive.derive_student`,
    given the context's first batch)."""
    from ..losses import layer_map
    from ..model import init_encoder
    from ..train import init_from_teacher

    if init not in INITS:
        raise InputError(f"unknown init {init!r}; expected one of {', '.join(INITS)}")
    tcfg = ctx.teacher.config
    if config.vocab_size != tcfg.vocab_size:
        raise InputError(f"student vocab_size={config.vocab_size} differs from the teacher's "
                         f"{tcfg.vocab_size}; they must share the tokenizer")
    if init == "derived":
        try:
            from ..derive import derive_student
        except ModuleNotFoundError as e:
            if e.name != f"{__package__.rsplit('.', 1)[0]}.derive":
                raise
            raise InputError("init='derived' needs distill/derive.py (derive_student), which "
                             "this version does not have; use init='random' or 'teacher'") \
                from None
        return derive_student(config, ctx.teacher, batch=ctx.batches[0], seed=seed)
    student = init_encoder(config, seed)
    if init == "teacher":
        init_from_teacher(student, ctx.teacher, layer_map(config.num_layers, tcfg.num_layers))
    return student


def timed(name: str, seed: int, compute: Callable[[], float], *,
          higher_is_better: bool = True) -> ProxyResult:
    """Run ``compute`` (which builds the student itself), time it, check the value."""
    t0 = time.perf_counter()
    value = float(compute())
    return result(name, value, time.perf_counter() - t0, seed, higher_is_better)


def result(name: str, value: float, cost_s: float, seed: int,
           higher_is_better: bool = True) -> ProxyResult:
    """A proxy's result, its value checked."""
    value = float(value)
    if not math.isfinite(value):
        raise StateError(f"proxy {name} gave a non-finite value ({value}) for seed {seed}")
    return ProxyResult(name, value, cost_s, seed, higher_is_better)
