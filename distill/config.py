"""Architectures and workloads.

:class:`StudentConfig` spans standard BERT and the MobileBERT/AutoDistill search space
(Sun et al. 2020, "MobileBERT", arXiv:2004.02984; Zhang et al. 2022, "AutoDistill",
arXiv:2201.08539): factorised embeddings, an intra-block bottleneck around each layer, stacked
FFNs, NoNorm and ReLU for serving. With no bottleneck and ``num_ffn=1`` it is exactly BERT.
:class:`Workload` says how a model is served (batch, sequence length, dtype).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from pathlib import Path
from typing import Any, Mapping
from measurements.errors import InputError

__all__ = ["StudentConfig", "Workload", "PRESETS", "load_arch", "derivable", "ACTIVATIONS", "NORMS",
           "DTYPES"]

ACTIVATIONS = ("gelu", "relu")
NORMS = ("layernorm", "nonorm")
DTYPES = ("float32", "bfloat16", "float16")


@dataclasses.dataclass(frozen=True)
class StudentConfig:
    """A BERT-like encoder. Sizes are in units (channels); all must be positive.

    Without a bottleneck (``intra_size=None``) attention and FFNs run at ``hidden_size``.
    With one, each layer maps ``hidden_size -> intra_size`` on entry and back on exit, and
    attention/FFNs run at ``intra_size`` (MobileBERT's "intra-block" width).
    """

    num_layers: int
    hidden_size: int
    num_heads: int
    ffn_size: int
    embedding_size: int | None = None     # None: = hidden_size (no factorisation)
    intra_size: int | None = None          # None: no bottleneck
    num_ffn: int = 1                       # stacked FFNs per layer (MobileBERT uses 4)
    activation: str = "gelu"
    normalization: str = "layernorm"       # "nonorm": element-wise affine (MobileBERT)
    kq_shared_bottleneck: bool = False     # queries/keys from a shared bottleneck of the input
    trigram_input: bool = False            # MobileBERT's trigram embedding convolution
    vocab_size: int = 30522
    max_positions: int = 512
    type_vocab_size: int = 2
    layer_norm_eps: float = 1e-12
    pooler: bool = True

    def __post_init__(self):
        ints = ("num_layers", "hidden_size", "num_heads", "ffn_size", "num_ffn", "vocab_size",
                "max_positions", "type_vocab_size")
        for name in ints:
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise InputError(f"StudentConfig.{name}={v!r}: must be a positive integer")
        for name in ("embedding_size", "intra_size"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise InputError(f"StudentConfig.{name}={v!r}: must be a positive integer or "
                                 "None (None means: not used)")
        if self.activation not in ACTIVATIONS:
            raise InputError(f"StudentConfig.activation={self.activation!r}: expected one of "
                             f"{ACTIVATIONS}")
        if self.normalization not in NORMS:
            raise InputError(f"StudentConfig.normalization={self.normalization!r}: expected one "
                             f"of {NORMS}")
        if self.intra_size is not None and self.intra_size > self.hidden_size:
            raise InputError(f"StudentConfig.intra_size={self.intra_size} is larger than "
                             f"hidden_size={self.hidden_size}: a bottleneck must not widen; "
                             "swap them or set intra_size=None")
        if self.embedding_size is not None and self.embedding_size > self.hidden_size:
            raise InputError(f"StudentConfig.embedding_size={self.embedding_size} is larger than "
                             f"hidden_size={self.hidden_size}; factorised embeddings are "
                             "narrower than the hidden size (or None)")
        if self.kq_shared_bottleneck and self.intra_size is None:
            raise InputError("StudentConfig.kq_shared_bottleneck=True needs a bottleneck: set "
                             "intra_size (e.g. hidden_size // 4) or kq_shared_bottleneck=False")
        width = self.attention_size
        if width % self.num_heads:
            field = "intra_size" if self.intra_size else "hidden_size"
            divisors = [h for h in range(1, min(width, 64) + 1) if width % h == 0]
            raise InputError(f"StudentConfig.num_heads={self.num_heads} does not divide "
                             f"{field}={width}; choose num_heads from {divisors}")
        if not (isinstance(self.layer_norm_eps, float) and 0 < self.layer_norm_eps < 1):
            raise InputError(f"StudentConfig.layer_norm_eps={self.layer_norm_eps!r}: must be a "
                             "float in (0, 1)")

    # -- derived ----------------------------------------------------------------------------
    @property
    def attention_size(self) -> int:
        """Width attention and FFNs run at: intra_size with a bottleneck, else hidden_size."""
        return self.intra_size or self.hidden_size

    @property
    def head_size(self) -> int:
        return self.attention_size // self.num_heads

    @property
    def emb_size(self) -> int:
        return self.embedding_size or self.hidden_size

    @property
    def is_bert(self) -> bool:
        """True when the architecture is plain BERT (loadable by transformers' BertModel)."""
        return (self.intra_size is None and self.num_ffn == 1 and self.emb_size ==
                self.hidden_size and not self.trigram_input and self.normalization ==
                "layernorm")

    def replace(self, **changes) -> "StudentConfig":
        return dataclasses.replace(self, **changes)

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "StudentConfig":
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise InputError(f"unknown architecture field(s) {sorted(unknown)}; known fields: "
                             f"{sorted(fields)}")
        return cls(**d)

    @classmethod
    def from_hf_config(cls, hf: Mapping[str, Any]) -> "StudentConfig":
        """From a Hugging Face ``config.json`` (BERT, or one written by hwdistill)."""
        if "hwdistill" in hf:
            return cls.from_dict(hf["hwdistill"])
        mt = hf.get("model_type", "bert")
        if mt != "bert":
            raise InputError(f"config.json has model_type={mt!r}; hwdistill loads 'bert' "
                             "checkpoints and its own students")
        act = hf.get("hidden_act", "gelu")
        if act not in ACTIVATIONS:
            raise InputError(f"config.json hidden_act={act!r} is not supported; expected one "
                             f"of {ACTIVATIONS}")
        if hf.get("position_embedding_type", "absolute") != "absolute":
            raise InputError("only absolute position embeddings are supported; config.json has "
                             f"position_embedding_type={hf['position_embedding_type']!r}")
        return cls(num_layers=hf["num_hidden_layers"], hidden_size=hf["hidden_size"],
                   num_heads=hf["num_attention_heads"], ffn_size=hf["intermediate_size"],
                   activation=act, vocab_size=hf["vocab_size"],
                   max_positions=hf["max_position_embeddings"],
                   type_vocab_size=hf.get("type_vocab_size", 2),
                   layer_norm_eps=float(hf.get("layer_norm_eps", 1e-12)))

    def to_hf_config(self) -> dict[str, Any]:
        """A ``config.json``: transformers-compatible when the model is plain BERT, and always
        carrying the full StudentConfig under ``hwdistill``."""
        return {"architectures": ["BertModel"], "model_type": "bert",
                "num_hidden_layers": self.num_layers, "hidden_size": self.hidden_size,
                "num_attention_heads": self.num_heads, "intermediate_size": self.ffn_size,
                "hidden_act": self.activation, "vocab_size": self.vocab_size,
                "max_position_embeddings": self.max_positions,
                "type_vocab_size": self.type_vocab_size, "layer_norm_eps": self.layer_norm_eps,
                "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
                "initializer_range": 0.02, "pad_token_id": 0,
                "position_embedding_type": "absolute", "hwdistill": self.to_dict()}


@dataclasses.dataclass(frozen=True)
class Workload:
    """How a model is served: batch size, sequence length and compute dtype."""

    batch_size: int
    seq_len: int
    dtype: str = "float32"

    def __post_init__(self):
        for name in ("batch_size", "seq_len"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise InputError(f"Workload.{name}={v!r}: must be a positive integer")
        if self.dtype not in DTYPES:
            raise InputError(f"Workload.dtype={self.dtype!r}: expected one of {DTYPES}")

    @classmethod
    def parse(cls, text: str) -> "Workload":
        """``"8,128"`` or ``"8,128,bfloat16"`` (batch, sequence length[, dtype]), or how a
        workload prints: ``"8x128"``, ``"8x128 bfloat16"`` (so ``parse(str(w)) == w``)."""
        text = str(text)
        csv = text
        if "," not in text and "x" in text:           # the printed form: "BxS[ DTYPE]"
            shape, _, dtype = text.strip().partition(" ")
            csv = ",".join([*shape.split("x", 1), *([dtype] if dtype.strip() else [])])
        parts = [p.strip() for p in csv.split(",")]
        if len(parts) not in (2, 3):
            raise InputError(f"workload {text!r}: expected BATCH,SEQ_LEN[,DTYPE], e.g. 8,128, "
                             "8,128,bfloat16 or 8x128")
        try:
            b, s = int(parts[0]), int(parts[1])
        except ValueError:
            raise InputError(f"workload {text!r}: batch and sequence length must be integers, "
                             "e.g. 8,128") from None
        return cls(b, s, *parts[2:])

    def check(self, config: StudentConfig) -> None:
        if self.seq_len > config.max_positions:
            raise InputError(f"Workload.seq_len={self.seq_len} exceeds the model's "
                             f"max_positions={config.max_positions}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        return f"{self.batch_size}x{self.seq_len} {self.dtype}"


def derivable(config: StudentConfig, teacher_config: StudentConfig, *,
              otherwise: str = "init='teacher'/'random'") -> str | None:
    """None if ``config`` can be cut out of a teacher of ``teacher_config``
    (:mod:`distill.derive`), else the reason: one sentence naming the field and the fix
    (``otherwise`` names the alternative init). Pure Python: the search checks thousands."""
    s, t = config, teacher_config
    _FIX = f"or {otherwise}"
    if not t.is_bert:
        return ("init='derived' needs a plain-BERT teacher (no bottleneck, one FFN, layernorm, "
                f"unfactorised embeddings); this teacher is not: use {otherwise}")
    if s.intra_size is not None:
        return (f"init='derived' needs intra_size=None (got {s.intra_size}): the teacher has no "
                f"bottleneck; drop intra_size {_FIX}")
    if s.num_ffn != 1:
        return (f"init='derived' needs num_ffn=1 (got {s.num_ffn}): the teacher has one FFN per "
                f"layer; set num_ffn=1 {_FIX}")
    if s.trigram_input:
        return (f"init='derived' needs trigram_input=False: the teacher has plain token "
                f"embeddings; set trigram_input=False {_FIX}")
    if s.normalization != "layernorm":
        return (f"init='derived' needs normalization='layernorm' (got {s.normalization!r}): "
                f"the teacher uses LayerNorm; set normalization='layernorm' {_FIX}")
    if s.activation != t.activation:
        return (f"init='derived' needs activation == the teacher's {t.activation!r} (got "
                f"{s.activation!r}): set activation={t.activation!r} {_FIX}")
    if s.hidden_size > t.hidden_size:
        return (f"init='derived' needs hidden_size <= the teacher's {t.hidden_size} (got "
                f"{s.hidden_size}): choose a narrower hidden_size {_FIX}")
    if s.head_size != t.head_size:
        return (f"init='derived' needs head_size == the teacher's head size {t.head_size} (got "
                f"{s.head_size} = hidden_size {s.hidden_size} / num_heads {s.num_heads}): choose "
                f"num_heads = hidden_size / {t.head_size} {_FIX}")
    if s.num_heads > t.num_heads:
        return (f"init='derived' needs num_heads <= the teacher's {t.num_heads} (got "
                f"{s.num_heads}): choose fewer heads {_FIX}")
    if s.ffn_size > t.ffn_size:
        return (f"init='derived' needs ffn_size <= the teacher's {t.ffn_size} (got "
                f"{s.ffn_size}): choose a smaller ffn_size {_FIX}")
    if s.num_layers > t.num_layers:
        return (f"init='derived' needs num_layers <= the teacher's {t.num_layers} (got "
                f"{s.num_layers}): choose fewer layers {_FIX}")
    if s.vocab_size != t.vocab_size:
        return (f"init='derived' needs vocab_size == the teacher's {t.vocab_size} (got "
                f"{s.vocab_size}): the student shares the teacher's tokenizer; set vocab_size="
                f"{t.vocab_size}")
    if s.type_vocab_size > t.type_vocab_size:
        return (f"init='derived' needs type_vocab_size <= the teacher's {t.type_vocab_size} "
                f"(got {s.type_vocab_size}): set type_vocab_size={t.type_vocab_size} {_FIX}")
    if s.max_positions > t.max_positions:
        return (f"init='derived' needs max_positions <= the teacher's {t.max_positions} (got "
                f"{s.max_positions}): set max_positions={t.max_positions} {_FIX}")
    return None


_MOBILE = dict(hidden_size=512, intra_size=128, num_heads=4, ffn_size=512, embedding_size=128,
               activation="relu", normalization="nonorm", kq_shared_bottleneck=True,
               trigram_input=True, num_layers=24)
PRESETS: dict[str, StudentConfig] = {
    # Devlin et al. 2019; Turc et al. 2019 ("Well-read students learn better")
    "bert-base": StudentConfig(num_layers=12, hidden_size=768, num_heads=12, ffn_size=3072),
    "bert-medium": StudentConfig(num_layers=8, hidden_size=512, num_heads=8, ffn_size=2048),
    "bert-small": StudentConfig(num_layers=4, hidden_size=512, num_heads=8, ffn_size=2048),
    "bert-mini": StudentConfig(num_layers=4, hidden_size=256, num_heads=4, ffn_size=1024),
    "bert-tiny": StudentConfig(num_layers=2, hidden_size=128, num_heads=2, ffn_size=512),
    # Wang et al. 2020 (MiniLM); the default teacher all-MiniLM-L6-v2 has this shape
    "minilm-l6-h384": StudentConfig(num_layers=6, hidden_size=384, num_heads=12, ffn_size=1536),
    # Sun et al. 2020, Table 1 hyperparameters. Without a pooler, as google/mobilebert-uncased
    # ships (classifier_activation=False): 24,581,888 parameters, the count transformers reports.
    # For the tiny variant the paper quotes 15.1M; these hyperparameters count 18.2M (unresolved).
    "mobilebert": StudentConfig(num_ffn=4, pooler=False, **_MOBILE),
    "mobilebert-tiny": StudentConfig(num_ffn=2, pooler=False, **_MOBILE),
}


def load_arch(spec: str | Path) -> StudentConfig:
    """A preset name, a JSON/TOML file, or inline JSON."""
    text = str(spec)
    if text in PRESETS:
        return PRESETS[text]
    if text.lstrip().startswith("{"):
        return StudentConfig.from_dict(json.loads(text))
    path = Path(text)
    if path.is_file():
        if path.suffix == ".toml":
            data = tomllib.loads(path.read_text())
        else:
            data = json.loads(path.read_text())
        if "num_hidden_layers" in data or "hwdistill" in data:
            return StudentConfig.from_hf_config(data)
        return StudentConfig.from_dict(data)
    if path.is_dir() and (path / "config.json").is_file():
        return StudentConfig.from_hf_config(json.loads((path / "config.json").read_text()))
    raise InputError(f"architecture {text!r} is neither a preset ({', '.join(PRESETS)}), a "
                     "JSON/TOML file, a checkpoint directory, nor inline JSON")
