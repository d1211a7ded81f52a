import json
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
import torch
from transformers import BertModel

from distill import (CheckpointError, PRESETS, default_teacher_dir, init_encoder, load_encoder,
                     load_tokenizer, mean_pool, save_encoder)
from distill.checkpoint import read_tensors

SENTENCES = [
    "A man is playing a guitar on the street.",
    "Two dogs are running through a field of tall grass.",
    "The central bank raised interest rates by a quarter point on Tuesday.",
    "She didn't think the film was worth the price of the ticket, honestly.",
    "Hi!",
]


@pytest.fixture(scope="module")
def teacher_dir():
    return default_teacher_dir()


@pytest.fixture(scope="module")
def teacher(teacher_dir):
    return load_encoder(teacher_dir)


def _batch(directory):
    b = load_tokenizer(directory)(SENTENCES)
    assert b["attention_mask"][-1].sum() < b["attention_mask"][0].sum()  # ragged: padding used
    return b


def _torch_out(directory, batch):
    ref = BertModel.from_pretrained(str(directory)).eval()
    with torch.no_grad():
        return ref(**{k: torch.tensor(v).long() for k, v in batch.items()})


def test_parity_with_transformers(teacher, teacher_dir):
    b = _batch(teacher_dir)
    ours = teacher(jnp.asarray(b["input_ids"]), jnp.asarray(b["attention_mask"]),
                   jnp.asarray(b["token_type_ids"]))
    ref = _torch_out(teacher_dir, b)
    mask = b["attention_mask"].astype(bool)
    diff = np.abs(np.asarray(ours.last_hidden_state) - ref.last_hidden_state.numpy())
    assert diff[mask].max() <= 1e-4
    assert diff.max() <= 1e-4  # padded positions too
    # sentence embeddings: mean pooling + L2 normalisation, as all-MiniLM-L6-v2 documents
    e_ours = np.asarray(mean_pool(ours.last_hidden_state, jnp.asarray(b["attention_mask"])))
    m = torch.tensor(b["attention_mask"])[..., None].float()
    e_ref = (ref.last_hidden_state * m).sum(1) / m.sum(1)
    e_ref = torch.nn.functional.normalize(e_ref, dim=-1).numpy()
    np.testing.assert_allclose(e_ours, e_ref, atol=1e-5)
    sims = e_ours @ e_ours.T
    assert sims[0, 1] > sims[0, 2]  # guitar~dogs (both scenes) closer than guitar~bank rates


def test_student_save_load_round_trip_and_transformers_loads_bert_students(tmp_path,
                                                                            teacher_dir):
    cfg = PRESETS["bert-tiny"].replace(num_layers=1, vocab_size=30522)
    model = init_encoder(cfg, seed=3)
    d = save_encoder(model, tmp_path / "student", tokenizer_from=teacher_dir)
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in d.iterdir()}
    back = load_encoder(d)
    b = _batch(d)
    ids, mask = jnp.asarray(b["input_ids"]), jnp.asarray(b["attention_mask"])
    np.testing.assert_array_equal(np.asarray(model(ids, mask).last_hidden_state),
                                  np.asarray(back(ids, mask).last_hidden_state))
    ref = _torch_out(d, b)  # a plain-BERT student is a transformers checkpoint too
    assert np.abs(np.asarray(back(ids, mask, jnp.asarray(b["token_type_ids"]))
                             .last_hidden_state) - ref.last_hidden_state.numpy()).max() < 1e-4


def test_mobilebert_student_round_trip(tmp_path):
    cfg = PRESETS["mobilebert-tiny"].replace(num_layers=2, vocab_size=100)
    model = init_encoder(cfg, seed=0)
    back = load_encoder(save_encoder(model, tmp_path / "m"))
    assert back.config == cfg
    ids = jnp.ones((1, 6), jnp.int32)
    np.testing.assert_array_equal(np.asarray(model(ids).last_hidden_state),
                                  np.asarray(back(ids).last_hidden_state))


def test_pytorch_bin_read_without_torch(tmp_path, teacher_dir):
    d = tmp_path / "bin"
    d.mkdir()
    shutil.copy(teacher_dir / "config.json", d)
    st = read_tensors(teacher_dir)
    torch.save({f"bert.{k}": torch.from_numpy(v.copy()) for k, v in st.items()},
               d / "pytorch_model.bin")
    got = read_tensors(d)
    assert set(got) == set(st)
    for k in st:
        np.testing.assert_array_equal(got[k], st[k])


def _copy(teacher_dir, tmp_path):
    d = tmp_path / "copy"
    shutil.copytree(teacher_dir, d)
    return d


def test_missing_directory_and_files(tmp_path, teacher_dir):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_encoder(tmp_path / "nope")
    d = _copy(teacher_dir, tmp_path)
    (d / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="neither model.safetensors"):
        load_encoder(d)
    (d / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_encoder(d)


def test_truncated_checkpoint(tmp_path, teacher_dir):
    d = _copy(teacher_dir, tmp_path)
    data = (d / "model.safetensors").read_bytes()
    (d / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_encoder(d)


def test_mismatched_config(tmp_path, teacher_dir):
    d = _copy(teacher_dir, tmp_path)
    cfg = json.loads((d / "config.json").read_text())
    (d / "config.json").write_text(json.dumps({**cfg, "num_hidden_layers": 8}))
    with pytest.raises(CheckpointError, match=r"missing \['encoder.layer.6"):
        load_encoder(d)
    (d / "config.json").write_text(json.dumps({**cfg, "intermediate_size": 1024}))
    with pytest.raises(CheckpointError, match="has shape"):
        load_encoder(d)
    (d / "config.json").write_text("{broken")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_encoder(d)
