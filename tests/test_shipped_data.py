"""The data shipped in distill/datasets: intact, readable, and the default when no folder is
given; what is not shipped is a clear error naming the fix."""

import gzip
import hashlib
import re

import pytest

from distill.corpus import SHIPPED_DATA, data_dir, distillation_texts, task_split


def _readme_hashes():
    text = (SHIPPED_DATA / "README.md").read_text()
    return dict(re.findall(r"^\| (\S+) \| \d+ \| ([0-9a-f]{64}) \|$", text, re.M))


def test_shipped_files_match_the_hashes_in_their_readme():
    hashes = _readme_hashes()
    assert len(hashes) == 4
    for rel, sha in hashes.items():
        raw = gzip.decompress((SHIPPED_DATA / f"{rel}.gz").read_bytes())
        assert hashlib.sha256(raw).hexdigest() == sha, rel
    assert (SHIPPED_DATA / "stsb" / "LICENSE.txt").is_file()


def test_shipped_data_is_the_default(monkeypatch):
    monkeypatch.delenv("HWDISTILL_DATA", raising=False)
    assert data_dir() == SHIPPED_DATA
    dev = task_split("stsb", "dev")
    assert len(dev) == 1500 and all(0.0 <= e.label <= 5.0 for e in dev)
    texts = distillation_texts(max_texts=None)
    assert len(texts) > 20000          # WikiText-2 valid+test sentences and STS-B train sentences


def test_what_is_not_shipped_names_the_fix(monkeypatch):
    monkeypatch.delenv("HWDISTILL_DATA", raising=False)
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        task_split("sst2", "dev")


def test_a_given_folder_wins_and_reads_plain_files(tmp_path):
    (tmp_path / "stsb").mkdir()
    raw = gzip.decompress((SHIPPED_DATA / "stsb" / "sts-dev.csv.gz").read_bytes())
    (tmp_path / "stsb" / "sts-dev.csv").write_bytes(raw[: raw.index(b"\n", 2000) + 1])
    dev = task_split("stsb", "dev", tmp_path)
    assert 0 < len(dev) < 1500
    with pytest.raises(FileNotFoundError, match="does not exist"):
        task_split("stsb", "train", tmp_path)
