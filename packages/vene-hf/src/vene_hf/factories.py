"""Model factories (pyvene's ``create_*``): each returns ``(config, tokenizer, model)``.

Given ``config`` (a transformers config object, or a dict of its fields) a factory builds a
randomly initialised model and touches neither the network nor the disk; the tokenizer is then
``None``. Given a ``name`` (a Hub repo id or a local directory written by ``save_pretrained``) it
loads the config, the tokenizer and the weights with ``from_pretrained``, which reads the Hub cache
when ``HF_HUB_OFFLINE=1`` is set; the tokenizer is ``None`` when the checkpoint has none. The factories are exposed as ``vene.create_gpt2`` and so on
through vene-hf's ``vene_public_names`` hook.

Example::

    import vene as pv
    from transformers import GPT2Config

    config, tokenizer, model = pv.create_gpt2_lm(config=GPT2Config(n_layer=2, n_embd=64))
    config, tokenizer, model = pv.create_gpt2_lm("gpt2")  # pretrained weights
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from vene import ConfigError, VeneError
from vene.plugins import provided_names

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PretrainedConfig

__all__ = [
    "FACTORIES",
    "ModelLoadError",
    "create_gpt2",
    "create_gpt2_lm",
    "create_gpt_neo",
    "create_gpt_neox",
    "create_gptj",
    "create_llama",
    "create_mistral",
    "create_gemma",
    "create_qwen2",
    "create_bert",
    "create_t5",
    "create_backpack_gpt2",
]

Factory = Callable[..., "tuple[PretrainedConfig, Any, nn.Module]"]


class ModelLoadError(VeneError, OSError):
    """A pretrained model, config or tokenizer that could not be loaded.

    Also an ``OSError``, as transformers' own loading errors are, so existing handlers still work.
    """


def _transformers_class(name: str) -> Any:
    # Imported by name from transformers' own namespace (a fixed table below, never a name read
    # from user input or a file), so that importing vene_hf stays cheap. ``Backpack*`` names are
    # vene_hf's own Backpack model (vene_hf.backpack).
    module = "vene_hf.backpack" if name.startswith("Backpack") else "transformers"
    return getattr(importlib.import_module(module), name)


def _coerce_config(config: Any, config_cls: Any, factory: str) -> PretrainedConfig:
    if isinstance(config, Mapping):
        return config_cls(**config)
    if not isinstance(config, config_cls):
        raise ConfigError(
            f"{factory}(config=...) needs a {config_cls.__name__} (or a dict of its fields), got "
            f"{type(config).__name__}; use the factory of that architecture instead."
        )
    return config


def _load(what: str, name: str, load: Callable[[], Any], factory: str) -> Any:
    try:
        return load()
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            f"{factory}: could not load the {what} of {name!r}: {e}\nGive a local directory written "
            "by save_pretrained, a Hub repo id that is in the Hub cache (with HF_HUB_OFFLINE=1 when "
            "offline), or config=... to build a randomly initialised model without downloading."
        ) from e


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model")


def _without_tokenizer(name: str) -> bool:
    """True for a local directory that holds no tokenizer file."""
    import os

    return os.path.isdir(name) and not any(os.path.exists(os.path.join(name, f)) for f in _TOKENIZER_FILES)


def _create(
    factory: str,
    config_class: str,
    model_class: str,
    name: str,
    cache_dir: str | None,
    config: Any,
    dtype: torch.dtype | None,
    custom_class: type | None,
    options: Mapping[str, Any],
) -> tuple[PretrainedConfig, Any, nn.Module]:
    config_cls = _transformers_class(config_class)
    cls: Any = custom_class or _transformers_class(model_class)
    if config is not None:
        if options:
            raise ConfigError(
                f"{factory}: {', '.join(sorted(options))} only apply when loading by name; with "
                "config=... the model is built from the config alone."
            )
        cfg = _coerce_config(config, config_cls, factory)
        model = cls(cfg)
        if dtype is not None:
            model = model.to(dtype)
        return cfg, None, model.eval()
    if not isinstance(name, str) or not name:
        raise ConfigError(
            f"{factory} needs a model name (a Hub repo id or a local directory) or config=...; "
            f"got name={name!r}."
        )
    from transformers import AutoTokenizer

    kwargs = {"cache_dir": cache_dir, **options}
    cfg = _load("config", name, lambda: config_cls.from_pretrained(name, **kwargs), factory)
    if _without_tokenizer(name):
        tokenizer = None  # a local checkpoint without tokenizer files (transformers 4.x raises on it)
    else:
        tokenizer = _load("tokenizer", name, lambda: AutoTokenizer.from_pretrained(name, **kwargs), factory)
    if not getattr(tokenizer, "vocab_size", 1):
        # transformers builds an empty tokenizer when the checkpoint has no tokenizer files; an
        # empty vocabulary encodes nothing, so say there is none
        tokenizer = None
    load_kwargs = dict(kwargs, config=cfg)
    if dtype is not None:
        load_kwargs["dtype"] = dtype
    model = _load("weights", name, lambda: cls.from_pretrained(name, **load_kwargs), factory)
    return cfg, tokenizer, model.eval()


def _factory(fname: str, default: str, config_class: str, model_class: str, summary: str) -> Factory:
    def create(
        name: str = default,
        cache_dir: str | None = None,
        config: Any = None,
        *,
        dtype: torch.dtype | None = None,
        model_class: type | None = None,
        **from_pretrained_kwargs: Any,
    ) -> tuple[PretrainedConfig, Any, nn.Module]:
        return _create(
            fname, config_class, model_class_name, name, cache_dir, config, dtype, model_class,
            from_pretrained_kwargs,
        )

    model_class_name = model_class
    create.__name__ = create.__qualname__ = fname
    create.__module__ = __name__
    create.__doc__ = (
        f"{summary}: ``(config, tokenizer, {model_class_name})``.\n\n"
        f"With ``config`` (a ``{config_class}`` or a dict of its fields) the model is randomly "
        "initialised and the tokenizer is None; otherwise ``name`` (default "
        f"``{default!r}``) is loaded with ``from_pretrained``. ``dtype`` casts the weights; "
        "``model_class`` replaces the model class (e.g. a sequence-classification head); other "
        "keyword arguments (``revision``, ``token``, ``local_files_only``...) go to "
        "``from_pretrained``."
    )
    return create


create_gpt2 = _factory("create_gpt2", "gpt2", "GPT2Config", "GPT2Model", "GPT-2 without the LM head")
create_gpt2_lm = _factory("create_gpt2_lm", "gpt2", "GPT2Config", "GPT2LMHeadModel", "GPT-2 with its LM head")
create_gpt_neo = _factory(
    "create_gpt_neo", "roneneldan/TinyStories-33M", "GPTNeoConfig", "GPTNeoForCausalLM", "GPT-Neo"
)
create_gpt_neox = _factory(
    "create_gpt_neox", "EleutherAI/pythia-70m", "GPTNeoXConfig", "GPTNeoXForCausalLM", "GPT-NeoX (Pythia)"
)
create_gptj = _factory("create_gptj", "EleutherAI/gpt-j-6b", "GPTJConfig", "GPTJForCausalLM", "GPT-J")
create_llama = _factory(
    "create_llama", "sharpbai/alpaca-7b-merged", "LlamaConfig", "LlamaForCausalLM", "Llama"
)
create_mistral = _factory(
    "create_mistral", "mistralai/Mistral-7B-v0.1", "MistralConfig", "MistralForCausalLM", "Mistral"
)
create_gemma = _factory("create_gemma", "google/gemma-2b-it", "GemmaConfig", "GemmaForCausalLM", "Gemma")
create_qwen2 = _factory("create_qwen2", "Qwen/Qwen2-0.5B", "Qwen2Config", "Qwen2ForCausalLM", "Qwen2")
create_bert = _factory(
    "create_bert", "google-bert/bert-base-uncased", "BertConfig", "BertForMaskedLM", "BERT with its MLM head"
)
create_t5 = _factory(
    "create_t5", "google-t5/t5-small", "T5Config", "T5ForConditionalGeneration", "T5 (encoder-decoder)"
)
create_backpack_gpt2 = _factory(
    "create_backpack_gpt2",
    "stanfordnlp/backpack-gpt2",
    "BackpackGPT2Config",
    "BackpackGPT2LMHeadModel",
    "Backpack GPT-2 (Hewitt et al. 2023; vene_hf.backpack)",
)

# the names come from vene-core's one table of plugin-provided names, so that a missing vene-hf
# is reported by name; a factory is added by defining it here and naming it in that table
FACTORIES: dict[str, Factory] = {name: globals()[name] for name in provided_names("vene-hf", "public_names")}
