"""Model factories: random models from configs, and pretrained ones from disk or the Hub cache.

Nothing here reaches the network: "pretrained" models are tiny models written with
``save_pretrained`` (and a word-level tokenizer built with the tokenizers library), read back from
a local directory or from a Hub cache laid out the way huggingface_hub writes it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import GPT2Config, LlamaConfig, PreTrainedTokenizerFast

import vene as pv
import vene_hf.factories as factories

SMALL = {"vocab_size": 50}
DECODER = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
           "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 32, **SMALL}

# factory -> (config class, tiny config fields, model class)
CASES = {
    "create_gpt2": ("GPT2Config", {"n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 32, **SMALL},
                    "GPT2Model"),
    "create_gpt2_lm": ("GPT2Config", {"n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 32,
                                      **SMALL}, "GPT2LMHeadModel"),
    "create_gpt_neo": ("GPTNeoConfig", {"num_layers": 2, "attention_types": [[["global", "local"], 1]],
                                        "hidden_size": 16, "num_heads": 2, "window_size": 8,
                                        "max_position_embeddings": 32, **SMALL}, "GPTNeoForCausalLM"),
    "create_gpt_neox": ("GPTNeoXConfig", {"hidden_size": 16, "num_hidden_layers": 1,
                                          "num_attention_heads": 2, "intermediate_size": 32,
                                          "max_position_embeddings": 32, **SMALL}, "GPTNeoXForCausalLM"),
    "create_gptj": ("GPTJConfig", {"n_embd": 16, "n_layer": 1, "n_head": 2, "rotary_dim": 4,
                                   "n_positions": 32, **SMALL}, "GPTJForCausalLM"),
    "create_llama": ("LlamaConfig", DECODER, "LlamaForCausalLM"),
    "create_mistral": ("MistralConfig", DECODER, "MistralForCausalLM"),
    "create_gemma": ("GemmaConfig", {**DECODER, "head_dim": 8}, "GemmaForCausalLM"),
    "create_qwen2": ("Qwen2Config", DECODER, "Qwen2ForCausalLM"),
    "create_bert": ("BertConfig", {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                   "intermediate_size": 32, "max_position_embeddings": 32, **SMALL},
                    "BertForMaskedLM"),
    "create_t5": ("T5Config", {"d_model": 16, "d_kv": 8, "d_ff": 32, "num_layers": 1, "num_heads": 2,
                               **SMALL}, "T5ForConditionalGeneration"),
    "create_backpack_gpt2": ("BackpackGPT2Config", {"n_layer": 1, "n_embd": 16, "n_head": 2, "n_positions": 32,
                                                    "num_senses": 4, **SMALL}, "BackpackGPT2LMHeadModel"),
}


def _class(name):
    """A transformers class, or one of vene_hf's own models (the Backpack)."""
    from vene_hf import backpack

    return getattr(backpack, name, None) or getattr(transformers, name)


def test_every_factory_is_listed_and_exposed_through_vene():
    assert sorted(factories.FACTORIES) == sorted(CASES)
    for name, factory in factories.FACTORIES.items():
        assert getattr(pv, name) is factory
        assert factory.__name__ == name and factory.__doc__


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_config_builds_a_random_model_offline(name):
    config_class, fields, model_class = CASES[name]
    config = _class(config_class)(**fields)
    torch.manual_seed(0)
    cfg, tokenizer, model = getattr(pv, name)(config=config)
    assert cfg is config and tokenizer is None
    assert type(model) is _class(model_class)
    assert not model.training
    ids = torch.randint(0, 50, (1, 4))
    extra = {"decoder_input_ids": ids} if name == "create_t5" else {}
    with torch.no_grad():
        out = model(input_ids=ids, **extra)
    width = fields.get("hidden_size") or fields.get("n_embd") or fields.get("d_model")
    first = out.last_hidden_state if name == "create_gpt2" else out.logits
    assert first.shape[-1] == (width if name == "create_gpt2" else 50)


def test_config_as_dict_dtype_and_model_class():
    cfg, _, model = pv.create_llama(config=DECODER, dtype=torch.float64)
    assert isinstance(cfg, LlamaConfig) and cfg.hidden_size == 16
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    _, _, clf = pv.create_bert(config=CASES["create_bert"][1],
                               model_class=transformers.BertForSequenceClassification)
    assert type(clf) is transformers.BertForSequenceClassification


def test_wrong_config_or_options_are_refused():
    with pytest.raises(pv.ConfigError, match="GPT2Config"):
        pv.create_gpt2(config=LlamaConfig(**DECODER))
    with pytest.raises(pv.ConfigError, match="revision"):
        pv.create_gpt2(config=GPT2Config(**CASES["create_gpt2"][1]), revision="main")
    with pytest.raises(pv.ConfigError, match="model name"):
        pv.create_gpt2(name=None)


# ---------------------------------------------------------------------------------------------
# pretrained: a local directory and the Hub cache
# ---------------------------------------------------------------------------------------------


def _tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"[UNK]": 0, "[PAD]": 1, **{w: i + 2 for i, w in enumerate("the cat sat on a mat".split())}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny GPT-2 LM and its tokenizer, written with save_pretrained."""
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    torch.manual_seed(0)
    _, _, model = pv.create_gpt2_lm(config=CASES["create_gpt2_lm"][1])
    model.save_pretrained(str(folder))
    _tokenizer().save_pretrained(str(folder))
    return folder, model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_local_directory_loads_config_tokenizer_and_weights(saved):
    folder, original = saved
    cfg, tokenizer, model = pv.create_gpt2_lm(str(folder))
    assert type(model) is transformers.GPT2LMHeadModel and not model.training
    assert cfg.n_embd == 16 and cfg.vocab_size == 50
    assert _same_weights(model, original)
    assert tokenizer("the cat sat")["input_ids"] == [2, 3, 4]
    # the same checkpoint without the LM head
    _, _, base = pv.create_gpt2(str(folder))
    assert type(base) is transformers.GPT2Model
    assert torch.equal(base.wte.weight, original.transformer.wte.weight)


def _put_in_hub_cache(cache: Path, repo: str, folder: Path, commit: str) -> None:
    """``folder``'s files as huggingface_hub caches them: blobs, snapshot symlinks, refs/main."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (root / "blobs").mkdir()
    for f in sorted(folder.iterdir()):
        data = f.read_bytes()
        blob = hashlib.sha256(data).hexdigest()
        (root / "blobs" / blob).write_bytes(data)
        (snapshot / f.name).symlink_to(Path("..", "..", "blobs", blob))
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(commit)


def test_a_hub_id_loads_from_the_hub_cache_offline(saved, tmp_path, monkeypatch):
    folder, original = saved
    cache = tmp_path / "hub"
    _put_in_hub_cache(cache, "someone/tiny-gpt2", folder, "e" * 40)
    monkeypatch.chdir(tmp_path)
    cfg, tokenizer, model = pv.create_gpt2_lm(
        "someone/tiny-gpt2", cache_dir=str(cache), local_files_only=True, dtype=torch.float64
    )
    assert model.config._name_or_path == "someone/tiny-gpt2"
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert all(torch.equal(p.double(), q) for p, q in zip(original.parameters(), model.parameters()))
    assert tokenizer.convert_ids_to_tokens([5]) == ["on"]


def test_a_missing_model_says_how_to_get_one(tmp_path):
    with pytest.raises(factories.ModelLoadError, match="config=") as info:
        pv.create_llama("someone/not-cached", cache_dir=str(tmp_path), local_files_only=True)
    assert isinstance(info.value, pv.VeneError) and isinstance(info.value, OSError)
    # a checkpoint without tokenizer files loads without a tokenizer
    only_weights = tmp_path / "weights-only"
    _, _, model = pv.create_gpt2(config=CASES["create_gpt2"][1])
    model.save_pretrained(str(only_weights))
    _, tokenizer, loaded = pv.create_gpt2(str(only_weights))
    assert tokenizer is None and _same_weights(loaded, model)


def test_core_knows_every_factory_name():
    """vene-core names the package behind each well-known name without importing it; the list
    must match what this plugin provides, so a missing vene-hf is reported by name."""
    from vene.plugins import PLUGIN_PACKAGES
    from vene_hf.factories import FACTORIES

    known = {n for n, pkg in PLUGIN_PACKAGES.items() if pkg == "vene-hf"}
    assert known == set(FACTORIES)
