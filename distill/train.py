"""Layer-wise distillation of a student from a frozen teacher (optax AdamW, jitted step).

Objective (weights in :class:`DistillConfig`): sentence-embedding MSE through a learned linear
map to the teacher's width, in-batch cosine-similarity matching (what STS-style users of the
teacher rely on), hidden-state transfer per mapped layer (TinyBERT), and attention KL
(MobileBERT). ``progressive=True`` trains layer by layer as in MobileBERT's progressive
knowledge transfer / AutoDistill's flash distillation: stage k (of L) weights the layer-k
transfer losses and the embedding losses only join in the last stage.

Batches are packed by default (:mod:`distill.packing`: several sentences per row, attention
kept inside each; the same losses and gradients as padding, on ~30% fewer positions), and with
``pair_every`` every Nth batch holds sentence pairs.

Left out on purpose: dropout (the student sees clean teacher targets; the runs are short) and
data augmentation. Determinism: the data order is a function of (seed, epoch) and there is no
other randomness after initialisation, so a run resumed from a checkpoint reproduces the
uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from measurements import hostlock
from measurements.errors import InputError

from . import losses
from .checkpoint import save_encoder
from .config import StudentConfig
from .data import batch_indices
from .model import Encoder, init_encoder, mean_pool, packed_mean_pool
from .packing import is_packed, pack_batch
from .tokenizer import TextEncoder

__all__ = ["DistillConfig", "Distiller", "DistillResult", "init_from_teacher", "INITS",
           "RECOMMENDED_LR"]

INITS = ("teacher", "random", "derived")
CALIBRATION_TEXTS = 64     # texts of the calibration batch of init="derived"
# Learning rate per init. A derived student starts near the teacher: at 1e-3 the first steps
# pull it away (4L/H256: STS-B 0.825 at init -> 0.774 after 75 steps, 0.803 after 150); at
# 2e-4 it holds (0.823, 0.827). Measured here on the real teacher, 150-step runs.
RECOMMENDED_LR = {"teacher": 1e-3, "random": 1e-3, "derived": 2e-4}


@dataclasses.dataclass(frozen=True)
class DistillConfig:
    steps: int = 1000
    minutes: float | None = None       # wall-clock budget of training (whichever ends first)
    batch_size: int = 64
    max_len: int = 64
    lr: float = 1e-3
    warmup_frac: float = 0.05
    weight_decay: float = 0.01
    clip_norm: float = 1.0
    w_embed_mse: float = 1.0
    w_similarity: float = 1.0
    w_cosine: float = 1.0
    w_hidden: float = 0.0
    w_attention: float = 0.0
    layer_map: str = "uniform"
    progressive: bool = False
    init: str = "teacher"              # "teacher" (where shapes allow) | "random" | "derived"
    #                                    (cut out of the teacher, distill.derive; its layer
    #                                    losses then follow the kept layers, not layer_map)
    mixed_precision: bool = False      # bfloat16 compute, float32 master weights
    packing: bool = True               # several sentences per row (distill.packing): same
    #                                    losses, ~30% fewer positions computed on the corpus
    pair_every: int = 0                # every Nth step is a batch of sentence pairs (0: never)
    seed: int = 0
    ckpt_every: int = 200
    eval_every: int = 0                # steps between evaluation callbacks (0: none)

    def __post_init__(self):
        if self.steps <= 0 or self.batch_size <= 1 or self.max_len <= 0:
            raise InputError(f"steps, batch_size (>1) and max_len must be positive: {self}")
        if self.pair_every < 0:
            raise InputError(f"pair_every={self.pair_every} must be >= 0 (0: no pair batches)")
        if self.init not in INITS:
            raise InputError(f"DistillConfig.init={self.init!r}: expected one of {INITS} "
                             "('derived': the student cut out of the teacher, distill.derive)")
        if self.w_embed_mse + self.w_similarity + self.w_cosine + self.w_hidden + \
                self.w_attention <= 0:
            raise InputError("all loss weights are zero: nothing to distil")


@dataclasses.dataclass(frozen=True)
class DistillResult:
    steps: int
    train_s: float
    final_loss: float
    tokens_per_s: float
    history: tuple[dict, ...]           # evaluation callback results with step and minutes


def _pca_basis(w: np.ndarray, k: int) -> np.ndarray:
    """Top-k principal directions of the rows of ``w``: (D, k)."""
    _, _, vt = np.linalg.svd(w - w.mean(0), full_matrices=False)
    return vt[:k].T


def init_from_teacher(student: Encoder, teacher: Encoder, mapping: Sequence[int]) -> int:
    """Copy teacher parameters into the student where shapes allow; returns how many tensors.

    Layer i of the student takes the parameters of teacher layer ``mapping[i]`` (1-based) whose
    paths and shapes match. Embeddings narrower than the teacher's are initialised with the
    teacher's embeddings projected on their top principal directions (one basis for word,
    position and token-type tables, so their sums stay consistent)."""
    s_flat = dict(nnx.to_flat_state(nnx.state(student, nnx.Param)))
    t_flat = {k: v.value for k, v in nnx.to_flat_state(nnx.state(teacher, nnx.Param))}
    copied = 0
    scfg, tcfg = student.config, teacher.config
    basis = None
    if scfg.hidden_size < tcfg.hidden_size or scfg.emb_size < tcfg.hidden_size:
        word = np.asarray(t_flat[("embeddings", "word", "embedding")])
        basis = _pca_basis(word, tcfg.hidden_size)
    for path, var in s_flat.items():
        src = path
        if path[0] == "layers":
            src = ("layers", mapping[path[1]] - 1) + path[2:]
        val = t_flat.get(src)
        if val is not None and val.shape == var.value.shape:
            s_flat[path] = var.replace(jnp.asarray(val))
            copied += 1
        elif path[0] == "embeddings" and path[-1] == "embedding" and basis is not None \
                and val is not None and val.shape[0] == var.value.shape[0]:
            k = var.value.shape[1]
            s_flat[path] = var.replace(jnp.asarray(np.asarray(val) @ basis[:, :k]))
            copied += 1
    nnx.update(student, nnx.from_flat_state(s_flat))
    return copied


class Heads(nnx.Module):
    """Learned linear maps from student to teacher widths (dropped after distillation)."""

    def __init__(self, s: StudentConfig, t: StudentConfig, n_layers: int, rngs: nnx.Rngs):
        self.embed = nnx.Linear(s.hidden_size, t.hidden_size, rngs=rngs)
        self.hidden = nnx.List([nnx.Linear(s.hidden_size, t.hidden_size, rngs=rngs)
                                for _ in range(n_layers)])


def _init_heads_from_plan(heads: Heads, plan) -> None:
    """With a derived student the map back to the teacher's width is known: the student state
    is ``B^T x``, so ``x ~ B s + m`` (m: the mean the student does not carry). Starting the
    heads there keeps the embedding and hidden losses from pulling the student away from the
    teacher through a random map in the first steps."""
    B = np.asarray(plan.basis)
    H = B.shape[0]

    def set_(lin, stream):
        mu = np.zeros(H) if stream is None else stream["x"].mean(0, dtype=np.float64)
        m = mu - B @ (B.T @ mu)
        lin.kernel.value = jnp.asarray(B.T, jnp.float32)
        lin.bias.value = jnp.asarray(m, jnp.float32)

    st = plan.stats
    for i, l in enumerate(plan.layers):
        set_(heads.hidden[i], st["layers"][l]["ffn"] if st else None)
    set_(heads.embed, st["layers"][plan.layers[-1]]["ffn"] if st else None)


class _Stream:
    """The k-th batch of a deterministic, epoch-reshuffled sequence of length-bucketed
    batches (:func:`~distill.data.batch_indices`), computed on demand and cached per epoch."""

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.epoch, self.groups = 0, batch_indices(lengths, batch_size, seed=seed, epoch=0)
        if not self.groups:
            raise InputError(f"{len(lengths)} texts give no full batch of {batch_size}")
        self.per_epoch = len(self.groups)

    def group(self, k: int) -> list[int]:
        e, pos = divmod(k, self.per_epoch)
        if e != self.epoch:
            self.epoch = e
            self.groups = batch_indices(self.lengths, self.batch_size, seed=self.seed, epoch=e)
        return self.groups[pos]


class Distiller:
    """Owns student, heads, optimiser and teacher; :meth:`run` trains with checkpoints."""

    def __init__(self, student_cfg: StudentConfig, teacher: Encoder, tokenizer: TextEncoder,
                 cfg: DistillConfig, *, calibration_texts: Sequence[str] | None = None):
        """``calibration_texts`` (init="derived" only): the first ``CALIBRATION_TEXTS`` of them
        form the calibration batch of :func:`distill.derive.derive_student`; without them the
        student is derived from weight norms alone."""
        self.cfg, self.tok, self.teacher = cfg, tokenizer, teacher
        tcfg = teacher.config
        if student_cfg.vocab_size != tcfg.vocab_size:
            raise InputError(f"student vocab_size={student_cfg.vocab_size} differs from the "
                             f"teacher's {tcfg.vocab_size}; they must share the tokenizer")
        self.mapping = losses.layer_map(student_cfg.num_layers, tcfg.num_layers, cfg.layer_map)
        plan = None
        if cfg.init == "derived":
            from .derive import apply_plan, plan_derivation
            batch = self.calibration_batch(calibration_texts) if calibration_texts else None
            plan = plan_derivation(student_cfg, teacher, batch=batch)
            student = apply_plan(plan, student_cfg, teacher, seed=cfg.seed)
            # student layer i is teacher layer plan.layers[i]: layer losses compare those
            self.mapping = [l + 1 for l in plan.layers]
            self.copied = len(nnx.to_flat_state(nnx.state(student, nnx.Param))) - (
                2 if student_cfg.pooler and not tcfg.pooler else 0)   # a pooler stays random
        else:
            student = init_encoder(student_cfg, cfg.seed)
            self.copied = init_from_teacher(student, teacher, self.mapping) \
                if cfg.init == "teacher" else 0
        heads = Heads(student_cfg, tcfg, student_cfg.num_layers, nnx.Rngs(cfg.seed + 1))
        if plan is not None:
            _init_heads_from_plan(heads, plan)
        self.s_graph, s_params = nnx.split(student)
        self.h_graph, h_params = nnx.split(heads)
        self.t_graph, self.t_params = nnx.split(teacher)
        self.params = {"student": s_params, "heads": h_params}
        warm = max(1, int(cfg.warmup_frac * cfg.steps))
        sched = optax.warmup_cosine_decay_schedule(0.0, cfg.lr, warm, cfg.steps, cfg.lr * 0.05)
        self.tx = optax.chain(optax.clip_by_global_norm(cfg.clip_norm),
                              optax.adamw(sched, weight_decay=cfg.weight_decay))
        self.opt_state = self.tx.init(self.params)
        self.step = 0
        self.train_s = 0.0
        self._step_fn = jax.jit(self._train_step, static_argnames=("stage",))

    # -- the objective -------------------------------------------------------------------------
    def _loss(self, params, batch, stage: int):
        cfg = self.cfg
        ids, mask, tt = batch["input_ids"], batch["attention_mask"], batch["token_type_ids"]
        packed = is_packed(batch)
        kw = {"position_ids": batch["position_ids"], "segment_ids": batch["segment_ids"]} \
            if packed else {}
        teacher = nnx.merge(self.t_graph, self.t_params)
        need_att = cfg.w_attention > 0
        t_out = teacher(ids, mask, tt, **kw, output_hidden_states=True,
                        output_attentions=need_att)
        t_out = jax.tree.map(jax.lax.stop_gradient, t_out)
        s_params = params["student"]
        if cfg.mixed_precision:
            s_params = jax.tree.map(lambda x: x.astype(jnp.bfloat16)
                                    if jnp.issubdtype(x.dtype, jnp.floating) else x, s_params)
        student = nnx.merge(self.s_graph, s_params)
        heads = nnx.merge(self.h_graph, params["heads"])
        s_out = student(ids, mask, tt, **kw, output_hidden_states=True,
                        output_attentions=need_att)
        s_out = jax.tree.map(lambda x: x.astype(jnp.float32), s_out)
        L = len(self.mapping)
        final = (not cfg.progressive) or stage >= L
        terms = {}
        if packed:
            sid, n = batch["sentence_ids"], batch["lengths"].shape[0]
            s_emb = packed_mean_pool(s_out.last_hidden_state, sid, n, normalize=False)
            t_emb = packed_mean_pool(t_out.last_hidden_state, sid, n, normalize=False)
        else:
            s_emb = mean_pool(s_out.last_hidden_state, mask, normalize=False)  # (B, Hs)
            t_emb = mean_pool(t_out.last_hidden_state, mask, normalize=False)  # (B, Ht)
        s_mapped = heads.embed(s_emb)                                         # (B, Ht)
        if final:
            terms["embed_mse"] = cfg.w_embed_mse * losses.embedding_mse(s_mapped, t_emb)
            terms["similarity"] = cfg.w_similarity * losses.similarity_mse(s_emb, t_emb) * 100
            terms["cosine"] = cfg.w_cosine * losses.embedding_cosine(s_mapped, t_emb)
        layers = range(L) if not cfg.progressive else [min(stage, L) - 1]
        for i in layers:
            t_h = t_out.hidden_states[self.mapping[i]]
            if cfg.w_hidden > 0:
                terms[f"hidden_{i}"] = cfg.w_hidden * losses.hidden_mse(
                    heads.hidden[i](s_out.hidden_states[i + 1]), t_h, mask)
            if cfg.w_attention > 0:
                terms[f"attention_{i}"] = cfg.w_attention * losses.attention_kl(
                    s_out.attentions[i], t_out.attentions[self.mapping[i] - 1], mask)
        if not terms:  # progressive stage with no layer losses configured
            terms["embed_mse"] = losses.embedding_mse(s_mapped, t_emb)
        return sum(terms.values()), terms

    def _train_step(self, params, opt_state, batch, stage: int):
        (loss, terms), grads = jax.value_and_grad(self._loss, has_aux=True)(params, batch, stage)
        updates, opt_state = self.tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, terms

    def calibration_batch(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The calibration batch of init="derived": the first ``CALIBRATION_TEXTS`` texts,
        tokenised and truncated to ``max_len`` (padded, not packed)."""
        return {k: v[:, :self.cfg.max_len]
                for k, v in self.tok(list(texts[:CALIBRATION_TEXTS])).items()}

    def prepare(self, texts: Sequence[str],
                pairs: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """One training batch: tokenised (``texts[i]`` with ``pairs[i]`` as its second segment
        if given), truncated to ``max_len`` and, with ``packing``, packed into rows of
        ``max_len`` tokens."""
        batch = {k: v[:, :self.cfg.max_len] for k, v in self.tok(texts, pairs).items()}
        return pack_batch(batch, self.cfg.max_len, pad_id=self.tok.pad_id) \
            if self.cfg.packing else batch

    def train_step(self, batch: dict[str, np.ndarray]):
        """One optimisation step on a :meth:`prepare`'d batch; returns (loss, loss terms)."""
        self.params, self.opt_state, loss, terms = self._step_fn(
            self.params, self.opt_state, batch, stage=self.stage_of(self.step))
        self.step += 1
        return loss, terms

    def stage_of(self, step: int) -> int:
        if not self.cfg.progressive:
            return 0
        L = len(self.mapping)
        return min(L, 1 + step * L // self.cfg.steps)

    # -- checkpoints ---------------------------------------------------------------------------
    def save_state(self, path: Path) -> None:
        """Training state (params, optimiser state, step, clock) as safetensors: one tensor
        per pytree leaf, in flattening order."""
        from safetensors.numpy import save_file
        leaves = jax.tree.leaves((self.params, self.opt_state))
        tmp = path.with_suffix(".tmp")
        # np.array(order="C") keeps 0-d leaves 0-d (ascontiguousarray would make them 1-d)
        save_file({f"{i:05d}": np.array(x, order="C") for i, x in enumerate(leaves)},
                  str(tmp), metadata={"step": str(self.step), "train_s": repr(self.train_s)})
        tmp.replace(path)  # atomic: a kill never leaves a half-written checkpoint

    def load_state(self, path: Path) -> None:
        from safetensors import safe_open
        try:
            with safe_open(str(path), "np") as f:
                meta = f.metadata() or {}
                saved = [f.get_tensor(k) for k in sorted(f.keys())]
            step, train_s = int(meta["step"]), float(meta["train_s"])
        except Exception as e:
            raise InputError(f"training checkpoint {path} is corrupt ({type(e).__name__}: "
                             f"{e}); delete it to start over") from e
        leaves, treedef = jax.tree.flatten((self.params, self.opt_state))
        if len(saved) != len(leaves) or any(a.shape != b.shape for a, b in zip(saved, leaves)):
            raise InputError(f"training checkpoint {path} belongs to another student or "
                             "configuration (its tensors do not match); use another --out or "
                             "delete it to start over")
        self.params, self.opt_state = jax.tree.unflatten(
            treedef, [jnp.asarray(a, dtype=b.dtype) for a, b in zip(saved, leaves)])
        self.step, self.train_s = step, train_s

    def student(self) -> Encoder:
        return nnx.merge(self.s_graph, self.params["student"])

    # -- the loop --------------------------------------------------------------------------------
    def run(self, texts: Sequence[str], workdir: str | Path, *,
            pairs: Sequence[tuple[str, str]] | None = None,
            on_eval: Callable[[Encoder, int], dict] | None = None,
            progress: bool = True, stop_after: int | None = None) -> DistillResult:
        """Train until ``cfg.steps`` (or ``cfg.minutes``); resumes from ``workdir/state.safetensors``.
        With ``cfg.pair_every`` = N, every Nth step takes its batch from ``pairs``.
        ``stop_after`` ends the call after that many steps (for tests of resumption)."""
        from tqdm import tqdm

        cfg = self.cfg
        work = Path(workdir)
        work.mkdir(parents=True, exist_ok=True)
        ckpt = work / "state.safetensors"
        hist_path = work / "history.jsonl"
        if ckpt.exists():
            self.load_state(ckpt)
        history = [json.loads(x) for x in hist_path.read_text().splitlines()] \
            if hist_path.exists() and ckpt.exists() else []
        streams = {"texts": _Stream([len(t) for t in texts], cfg.batch_size, cfg.seed)}
        if cfg.pair_every:
            if not pairs:
                raise InputError(f"DistillConfig.pair_every={cfg.pair_every} needs sentence "
                                 "pairs: pass pairs=distill.corpus.distillation_pairs(...)")
            streams["pairs"] = _Stream([len(a) + len(b) for a, b in pairs], cfg.batch_size,
                                       cfg.seed)
        t_start = time.perf_counter()
        trained_s = self.train_s
        tokens = 0
        loss = math.nan
        bar = tqdm(total=cfg.steps, initial=self.step, desc="distilling", disable=not progress)
        done_here = 0
        while self.step < cfg.steps:
            if cfg.minutes is not None and trained_s + time.perf_counter() - t_start \
                    >= cfg.minutes * 60:
                break
            n = cfg.pair_every
            if n and self.step % n == n - 1:         # the pair stream's (step // n)-th batch
                g = streams["pairs"].group(self.step // n)
                batch = self.prepare([pairs[i][0] for i in g], [pairs[i][1] for i in g])
            else:                                    # steps before this one that were not pairs
                g = streams["texts"].group(self.step - ((self.step + 1) // n if n else 0))
                batch = self.prepare([texts[i] for i in g])
            with hostlock.work():      # a timing elsewhere on this host waits for this step
                loss_a, _ = self.train_step(batch)
                jax.block_until_ready(loss_a)
            done_here += 1
            tokens += int(batch["attention_mask"].sum())
            if self.step % 10 == 0 or self.step == cfg.steps:
                loss = float(loss_a)
                el = time.perf_counter() - t_start
                bar.set_postfix(loss=f"{loss:.4f}", tok_s=f"{tokens / max(el, 1e-9):.0f}")
            bar.update(1)
            if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
                self.train_s = trained_s + time.perf_counter() - t_start
                self.save_state(ckpt)
            if on_eval and cfg.eval_every and self.step % cfg.eval_every == 0:
                t_eval = time.perf_counter()
                rec = {"step": self.step, "train_s": trained_s + t_eval - t_start,
                       **on_eval(self.student(), self.step)}
                t_start += time.perf_counter() - t_eval   # evaluation is off the clock
                history.append(rec)
                with open(hist_path, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            if stop_after is not None and done_here >= stop_after:
                break
        bar.close()
        elapsed = time.perf_counter() - t_start
        self.train_s = trained_s + elapsed
        self.save_state(ckpt)
        if not math.isfinite(loss) and done_here:
            loss = float(loss_a)
        return DistillResult(self.step, trained_s + elapsed, loss,
                             tokens / max(elapsed, 1e-9), tuple(history))

    def save_student(self, directory: str | Path, tokenizer_from: str | Path) -> Path:
        return save_encoder(self.student(), directory, tokenizer_from=tokenizer_from)
