"""The Hub artifact store, without the network.

Loading is checked through the Hub cache: the tests lay artifacts out under a temporary
``HF_HUB_CACHE`` exactly as ``huggingface_hub`` does (``models--user--repo/blobs``,
``snapshots/<commit>`` of symlinks into the blobs, ``refs/main``) and load them with
``HF_HUB_OFFLINE=1``. Pushing runs against an ``HfApi`` stand-in that records its calls (the store
takes the API object as a dependency); the model card is read back with huggingface_hub's own
metadata parser.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import metadata_load
from safetensors.torch import load_file
from transformers import GPT2Config, GPT2LMHeadModel

import vene as pv
from vene_hf.hub import HubArtifactStore, open_store

WIDTH = 32
COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


@pytest.fixture(scope="module")
def model() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=2, n_embd=WIDTH, n_head=4, vocab_size=97, n_positions=32,
                     bos_token_id=0, eos_token_id=None)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture
def ids() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randint(0, 97, (2, 6))


def _vector(seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(WIDTH)


def _steering(model, vector) -> pv.IntervenableModel:
    return pv.IntervenableModel(
        {"component": "transformer.h[1].output", "intervention_type": pv.AdditionIntervention,
         "source_representation": vector},
        model,
    )


def _steered_logits(model, vector, ids) -> torch.Tensor:
    """Independent expectation: a plain forward hook adding ``vector`` to block 1's output."""
    handle = model.transformer.h[1].register_forward_hook(
        lambda m, a, o: (o[0] + vector,) + o[1:] if isinstance(o, tuple) else o + vector
    )
    try:
        with torch.no_grad():
            return model(input_ids=ids).logits
    finally:
        handle.remove()


def _logits(intervenable, ids) -> torch.Tensor:
    with torch.no_grad():
        return intervenable({"input_ids": ids})[1].logits


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _put_in_hub_cache(cache: Path, repo: str, folder: Path, commit: str, ref: str | None = "main") -> Path:
    """Lay ``folder``'s files out in a Hub cache the way huggingface_hub does.

    Blobs are named by their etag: the sha256 for LFS files (weights), the git blob sha1 for the
    rest; each snapshot file is a relative symlink into ``blobs``; ``refs/<ref>`` holds the commit.
    """
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    (root / "blobs").mkdir(exist_ok=True)
    for f in sorted(folder.iterdir()):
        data = f.read_bytes()
        lfs = f.suffix == ".safetensors"
        blob = hashlib.sha256(data).hexdigest() if lfs else _git_blob_sha1(data)
        (root / "blobs" / blob).write_bytes(data)
        (snapshot / f.name).symlink_to(Path("..", "..", "blobs", blob))
    if ref is not None:
        (root / "refs").mkdir(exist_ok=True)
        (root / "refs" / ref).write_text(commit)
    return snapshot


@pytest.fixture
def offline_cache(tmp_path, monkeypatch, model):
    """A Hub cache holding 'user/steer' at two commits (main -> B), with HF_HUB_OFFLINE=1."""
    cache = tmp_path / "hub"
    for commit, seed in ((COMMIT_A, 10), (COMMIT_B, 11)):
        out = tmp_path / f"artifact-{seed}"
        _steering(model, _vector(seed)).save(str(out))
        _put_in_hub_cache(cache, "user/steer", out, commit, ref="main")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)  # "user/steer" must not name a local directory
    return cache


# ---------------------------------------------------------------------------------------------
# which locations the store takes
# ---------------------------------------------------------------------------------------------


def test_only_hub_repo_ids_open_a_store(tmp_path, monkeypatch):
    assert isinstance(open_store("user/repo", {}), HubArtifactStore)
    assert isinstance(open_store("Org-1/my_model.v2", {}), HubArtifactStore)
    for not_a_repo in ("gpt2", "/abs/path", "./rel/dir", "a/b/c", "user/re--po", "", "user/"):
        assert open_store(not_a_repo, {}) is None, not_a_repo
    monkeypatch.chdir(tmp_path)
    (tmp_path / "local").mkdir()
    (tmp_path / "local" / "file").write_text("x")
    assert open_store("local/file", {}) is None  # an existing path is never a repo id
    # through the plugin, as IntervenableModel.load and save reach it
    store = pv.default_registry().pm.hook.vene_artifact_store(location="user/repo", options={})
    assert isinstance(store, HubArtifactStore)
    assert pv.default_registry().pm.hook.vene_artifact_store(location="a/b/c", options={}) is None


def test_local_directory_round_trip(tmp_path, model, ids):
    v = _vector(3)
    _steering(model, v).save(str(tmp_path))
    saved = load_file(str(tmp_path / "interventions.safetensors"))
    assert [torch.equal(t, v) for t in saved.values()] == [True]
    loaded = pv.IntervenableModel.load(str(tmp_path), model)
    assert torch.allclose(_logits(loaded, ids), _steered_logits(model, v, ids), atol=1e-6)


# ---------------------------------------------------------------------------------------------
# fetching through the Hub cache
# ---------------------------------------------------------------------------------------------


def test_offline_load_reads_the_hub_cache(offline_cache, model, ids):
    loaded = pv.IntervenableModel.load("user/steer", model)  # refs/main -> commit B
    assert torch.allclose(_logits(loaded, ids), _steered_logits(model, _vector(11), ids), atol=1e-6)
    older = pv.IntervenableModel.load("user/steer", model, revision=COMMIT_A)
    assert torch.allclose(_logits(older, ids), _steered_logits(model, _vector(10), ids), atol=1e-6)
    folder = HubArtifactStore().fetch("user/steer")
    assert Path(folder) == offline_cache / "models--user--steer" / "snapshots" / COMMIT_B


def test_offline_load_with_an_explicit_cache_dir(tmp_path, monkeypatch, model, ids):
    cache = tmp_path / "elsewhere"
    out = tmp_path / "artifact"
    _steering(model, _vector(12)).save(str(out))
    _put_in_hub_cache(cache, "team/steer", out, COMMIT_A)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    loaded = pv.IntervenableModel.load("team/steer", model, cache_dir=str(cache), local_files_only=True)
    assert torch.allclose(_logits(loaded, ids), _steered_logits(model, _vector(12), ids), atol=1e-6)


def test_offline_environment_set_before_import(offline_cache, model):
    """HF_HUB_OFFLINE and HF_HUB_CACHE as huggingface_hub itself reads them, in a fresh process."""
    script = (
        "import json, torch, vene as pv\n"
        "from transformers import GPT2Config, GPT2LMHeadModel\n"
        f"cfg = GPT2Config(n_layer=2, n_embd={WIDTH}, n_head=4, vocab_size=97, n_positions=32)\n"
        "im = pv.IntervenableModel.load('user/steer', GPT2LMHeadModel(cfg))\n"
        "(iv,) = im.interventions.values()\n"
        "print(json.dumps(iv.source_representation.tolist()))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(offline_cache),
           "VENE_DISABLE_PLUGINS": "train,viz"}  # faster start; they play no part here
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    got = torch.tensor(json.loads(done.stdout.strip().splitlines()[-1]))
    assert torch.equal(got, _vector(11))


def test_offline_misses_say_what_to_do(offline_cache, model, tmp_path):
    with pytest.raises(pv.ArtifactError, match="HF_HUB_OFFLINE"):
        pv.IntervenableModel.load("user/never-downloaded", model)
    with pytest.raises(pv.ArtifactError, match="not in the Hub cache"):
        pv.IntervenableModel.load("user/steer", model, revision="c" * 40)
    # a cached repo that is not a vene artifact
    other = tmp_path / "other"
    other.mkdir()
    (other / "README.md").write_text("hello")
    _put_in_hub_cache(offline_cache, "user/not-vene", other, COMMIT_A)
    with pytest.raises(pv.ArtifactError, match="no config.json"):
        pv.IntervenableModel.load("user/not-vene", model)
    with pytest.raises(pv.ConfigError, match="revison"):
        pv.IntervenableModel.load("user/steer", model, revison="main")


# ---------------------------------------------------------------------------------------------
# pushing, with a recording HfApi
# ---------------------------------------------------------------------------------------------


class RecordingApi:
    """Stands in for ``huggingface_hub.HfApi``: records calls and what the folder held."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        self.uploaded: dict[str, bytes] = {}

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        return f"https://hub.test/{repo_id}"

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", {"repo_id": repo_id, **kwargs}))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        folder = Path(kwargs["folder_path"])
        self.uploaded = {f.name: f.read_bytes() for f in folder.iterdir()}
        return SimpleNamespace(commit_url=f"https://hub.test/{kwargs['repo_id']}/commit/123", pr_url=None)


@pytest.fixture
def pretrained(tmp_path, model, monkeypatch):
    """The tiny model as from_pretrained returns it: with a Hub name and a commit hash."""
    weights = tmp_path / "weights"
    model.save_pretrained(str(weights))
    _put_in_hub_cache(tmp_path / "models", "openai-community/gpt2-tiny", weights, COMMIT_A)
    return GPT2LMHeadModel.from_pretrained(
        "openai-community/gpt2-tiny", cache_dir=str(tmp_path / "models"), local_files_only=True
    )


def test_push_creates_the_repo_writes_the_card_and_uploads_the_folder(tmp_path, pretrained):
    out = tmp_path / "artifact"
    _steering(pretrained, _vector(4)).save(str(out))
    api = RecordingApi()
    url = HubArtifactStore(api=api).push(str(out), "me/steer", token="tok", private=True,
                                         tags=["steering"])
    assert url == "https://hub.test/me/steer/commit/123"
    names = [c[0] for c in api.calls]
    assert names == ["create_repo", "upload_folder"]
    create, upload = api.calls[0][1], api.calls[1][1]
    assert create["repo_id"] == "me/steer" and create["exist_ok"] is True
    assert create["private"] is True and create["token"] == "tok"
    assert upload["repo_id"] == "me/steer" and Path(upload["folder_path"]) == out
    assert upload["token"] == "tok"
    assert {"config.json", "interventions.safetensors", "README.md"} <= set(api.uploaded)
    card = metadata_load(str(out / "README.md"))
    assert card["library_name"] == "vene"
    assert {"vene", "steering"} <= set(card["tags"])
    assert card["base_model"] == "openai-community/gpt2-tiny"
    text = (out / "README.md").read_text()
    assert 'pv.IntervenableModel.load("me/steer", model)' in text
    assert "AdditionIntervention" in text and "transformer.h.1.output" in text


def test_model_card_records_the_base_model_and_its_revision(tmp_path):
    from vene_hf.hub import model_card

    config = {
        "base_model": {"class": "LlamaForCausalLM", "name_or_path": "meta-llama/Llama-3.2-1B",
                       "revision": COMMIT_B},
        "representations": [{"component": "block_output", "layer": 3, "unit": "pos",
                             "intervention_type": "LoreftIntervention"}],
        "sites": [{"module": "model.layers.3", "side": "output", "dim": 2048}],
        "vene_version": "0.1.0",
    }
    (tmp_path / "README.md").write_text(model_card(config, "me/reft", tags=["reft"]))
    card = metadata_load(str(tmp_path / "README.md"))
    assert card["library_name"] == "vene"
    assert card["tags"] == ["vene", "interventions", "reft"]
    assert card["base_model"] == "meta-llama/Llama-3.2-1B"
    assert card["base_model_revision"] == COMMIT_B
    text = (tmp_path / "README.md").read_text()
    assert f'LlamaForCausalLM.from_pretrained("meta-llama/Llama-3.2-1B", revision="{COMMIT_B}")' in text
    assert "| 0 | `block_output` | 3 | pos | `LoreftIntervention` | `model.layers.3.output` |" in text
    # a local path is not a Hub model: no base_model in the metadata
    config["base_model"]["name_or_path"] = str(tmp_path)
    (tmp_path / "README.md").write_text(model_card(config, "me/reft"))
    assert "base_model" not in metadata_load(str(tmp_path / "README.md"))


def test_save_to_hf_hub_goes_through_the_store(tmp_path, pretrained):
    api = RecordingApi()
    url = _steering(pretrained, _vector(5)).save(
        str(tmp_path / "artifact"), save_to_hf_hub=True, hf_repo_name="me/steer", api=api,
        revision="v1", commit_message="first",
    )
    assert url.startswith("https://hub.test/me/steer")
    assert [c[0] for c in api.calls] == ["create_repo", "create_branch", "upload_folder"]
    assert api.calls[1][1]["branch"] == "v1"
    assert api.calls[2][1]["revision"] == "v1" and api.calls[2][1]["commit_message"] == "first"
    uploaded = load_file_bytes(api.uploaded["interventions.safetensors"])
    assert [torch.equal(t, _vector(5)) for t in uploaded.values()] == [True]


def load_file_bytes(data: bytes) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    return load(data)


def test_a_card_the_user_wrote_is_kept(tmp_path, model):
    out = tmp_path / "artifact"
    _steering(model, _vector(6)).save(str(out))
    (out / "README.md").write_text("# my own card\n")
    api = RecordingApi()
    HubArtifactStore(api=api).push(str(out), "me/steer")
    assert (out / "README.md").read_text() == "# my own card\n"
    assert api.uploaded["README.md"] == b"# my own card\n"
    # without a base model name (built from a config) the card has no base_model
    (out / "README.md").unlink()
    HubArtifactStore(api=api).push(str(out), "me/steer")
    assert "base_model" not in metadata_load(str(out / "README.md"))
    (out / "README.md").unlink()
    HubArtifactStore(api=api).push(str(out), "me/steer", model_card=False)
    assert not (out / "README.md").exists()


def test_push_refuses_bad_input(tmp_path, model):
    api = RecordingApi()
    with pytest.raises(pv.ArtifactError, match="no config.json"):
        HubArtifactStore(api=api).push(str(tmp_path), "me/steer")
    _steering(model, _vector(7)).save(str(tmp_path))
    with pytest.raises(pv.ConfigError, match="namespace/name"):
        HubArtifactStore(api=api).push(str(tmp_path), "not a repo")
    with pytest.raises(pv.ConfigError, match="privat"):
        HubArtifactStore(api=api).push(str(tmp_path), "me/steer", privat=True)
    with pytest.raises(pv.ConfigError, match="hf_repo_name"):
        _steering(model, _vector(7)).save(str(tmp_path), save_to_hf_hub=True)
    assert api.calls == []
