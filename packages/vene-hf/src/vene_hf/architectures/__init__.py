"""Site resolvers for Hugging Face transformers architectures.

One module per family holds its component table (typed data: ``{component: vene.ComponentSpec}``
with paths relative to the family's base model) and how many layers each stack has.
:func:`resolve_site` finds the transformers model inside whatever wraps it (a task head, a PEFT
wrapper, a user's own module, a multimodal model's language model), picks the family by
``config.model_type``, and resolves the representation through the table.

Families: gpt2, gpt_neo, gpt_neox, gptj, llama, mistral, mixtral, gemma, gemma2, gemma3 (text),
qwen2, qwen3, olmo, olmo2, phi3, bert, roberta, t5, esm, gpt_oss, llava, mllama, blip (and
BLIP-ITM), whisper, wav2vec2_bert and backpack_gpt2 (``vene_hf.backpack``). Anything else is reached with a dotted
module path (``"model.layers[3].mlp.output"``), which core resolves.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import attrs

from vene import EXPERT, ConfigError, Site, SiteResolutionError
from vene.sites import get_module, nearest, parse_dotted_component, resolve_from_table

from . import (
    backpack_gpt2,
    bert,
    blip,
    esm,
    gemma,
    gemma2,
    gemma3,
    gpt2,
    gpt_neo,
    gpt_neox,
    gpt_oss,
    gptj,
    llama,
    llava,
    mistral,
    mixtral,
    mllama,
    olmo,
    olmo2,
    phi3,
    qwen2,
    qwen3,
    roberta,
    t5,
    wav2vec2_bert,
    whisper,
)
from ._family import Family, Stack
from ._probes import Probe

if TYPE_CHECKING:
    from torch import nn

    from vene import RepresentationConfig

__all__ = ["FAMILIES", "Family", "Stack", "family_for", "find_hf_model", "resolve_site"]

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        gpt2.FAMILY,
        gpt_neo.FAMILY,
        gpt_neox.FAMILY,
        gptj.FAMILY,
        llama.FAMILY,
        mistral.FAMILY,
        mixtral.FAMILY,
        gemma.FAMILY,
        gemma2.FAMILY,
        gemma3.FAMILY,
        qwen2.FAMILY,
        qwen3.FAMILY,
        olmo.FAMILY,
        olmo2.FAMILY,
        phi3.FAMILY,
        bert.FAMILY,
        roberta.FAMILY,
        t5.FAMILY,
        esm.FAMILY,
        gpt_oss.FAMILY,
        llava.FAMILY,
        mllama.FAMILY,
        blip.FAMILY,
        whisper.FAMILY,
        wav2vec2_bert.FAMILY,
        backpack_gpt2.FAMILY,
    )
}
"""Every supported family, by name."""

_BY_MODEL_TYPE: dict[str, Family] = {t: f for f in FAMILIES.values() for t in f.model_types}


def family_for(model_type: str) -> Family | None:
    """The family that covers a ``config.model_type``, or None."""
    return _BY_MODEL_TYPE.get(model_type)


def _hf_models(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every transformers ``PreTrainedModel`` in ``model`` (itself included), outermost first."""
    utils = sys.modules.get("transformers.modeling_utils")
    if utils is None:  # transformers never imported: this cannot be a transformers model
        return []
    pretrained = utils.PreTrainedModel
    found = [(path, m) for path, m in model.named_modules() if isinstance(m, pretrained)]
    return sorted(found, key=lambda pm: 0 if not pm[0] else pm[0].count(".") + 1)


def _base(path: str, hf: nn.Module) -> tuple[str, nn.Module]:
    """The base model inside a task model (``GPT2LMHeadModel.transformer``), by ``base_model_prefix``."""
    prefix = getattr(hf, "base_model_prefix", "") or ""
    inner = hf._modules.get(prefix) if prefix else None
    child = hf._modules.get("model")
    if inner is None and child is not None and getattr(child, "config", None) is hf.config:
        # a task model whose base_model_prefix names no child (Gemma3ForCausalLM in
        # transformers 4.x says "language_model" and holds "model")
        prefix, inner = "model", child
    if inner is None:
        return path, hf
    return (f"{path}.{prefix}" if path else prefix), inner


def find_hf_model(model: nn.Module) -> tuple[str, nn.Module, Family] | None:
    """``(path, base model, family)`` of the outermost transformers model of a known family.

    Wrappers are looked through: a task head's base model (``base_model_prefix``), a PEFT
    model's wrapped model, any module holding a transformers model, a multimodal model's
    language model. Returns None when ``model`` holds no transformers model of a known family.
    """
    for path, hf in _hf_models(model):
        family = family_for(getattr(hf.config, "model_type", ""))
        if family is not None:
            base_path, base = _base(path, hf)
            return base_path, base, family
    return None


def _unknown_family(model: nn.Module, hf: list[tuple[str, nn.Module]], component: str) -> SiteResolutionError:
    types = sorted({str(getattr(m.config, "model_type", "?")) for _, m in hf})
    return SiteResolutionError(
        f"cannot resolve component {component!r}: {type(model).__name__} is a transformers model of "
        f"type {', '.join(types)}, which vene-hf has no table for. Supported families: "
        f"{', '.join(sorted(FAMILIES))}. Use a dotted module path ending in .input or .output "
        "instead, e.g. 'model.layers[3].mlp.output' (module paths as in model.named_modules())."
    )


def resolve_site(model: nn.Module, representation: RepresentationConfig) -> Site | None:
    """Resolve ``representation`` on a transformers ``model``; None when the model is not one.

    Dotted module paths are left to core (None). A transformers model of an unknown family
    raises :class:`vene.SiteResolutionError` naming the supported families; an unknown
    component or an out-of-range layer raises it with the valid choices.
    """
    hf = _hf_models(model)
    if not hf or parse_dotted_component(representation.component) is not None:
        return None
    found = find_hf_model(model)
    if found is None:
        raise _unknown_family(model, hf, representation.component)
    prefix, base, family = found
    return _resolve(family, model, base, prefix, representation)


def _resolve(
    family: Family, model: nn.Module, base: nn.Module, prefix: str, rep: RepresentationConfig
) -> Site:
    config = base.config
    component = rep.component
    stack = family.stack_of(component)
    if stack is None and family.plain_names is not None:
        plain = family.plain_names(base)
        if plain is not None and family.stack_of(plain + component) is not None:
            component = plain + component
            stack = family.stack_of(component)
            rep = attrs.evolve(rep, component=component)
    if stack is None:
        table = family.components
        raise SiteResolutionError(
            f"unknown component {component!r} for {family.name}.{nearest(component, table)} "
            f"Components: {', '.join(sorted(table))}; or give a dotted module path such as "
            "'layers[3].mlp.output'."
        )
    spec = stack.components[component]
    num_layers = stack.num_layers(config)
    kwargs: dict[str, Any] = {
        "config": config,
        "num_layers": num_layers,
        "prefix": prefix,
        "family": family.name,
    }
    if EXPERT in spec.path:
        _check_expert(family, config, rep)
    probe = spec.context if isinstance(spec.context, Probe) else None
    if probe is None:
        return resolve_from_table(stack.components, model, rep, **kwargs)
    # the probe creates the last `depth` path segments: resolve (and check) their owner
    owner_spec = attrs.evolve(spec, path=spec.path[: -probe.depth], context=None)
    owner = resolve_from_table({component: owner_spec}, model, rep, **kwargs)
    if probe.check is not None:
        problem = probe.check(get_module(model, owner.module))
        if problem:
            raise SiteResolutionError(problem)
    full = spec.site(config, rep.layer, rep.moe_key, prefix).module
    return attrs.evolve(owner, module=full, context=probe.bind(owner.module))


def _check_expert(family: Family, config: Any, rep: RepresentationConfig) -> None:
    n = family.num_experts(config) if family.num_experts is not None else None
    key = rep.moe_key
    if key is None:
        raise ConfigError(
            f"component {rep.component!r} belongs to one expert of a mixture-of-experts layer; set "
            f"moe_key=<expert index> (0..{n - 1 if n else '?'}) on the representation."
        )
    if isinstance(key, bool) or not isinstance(key, int) or (n is not None and not 0 <= key < n):
        raise ConfigError(
            f"moe_key={key!r} is not an expert of this {family.name} model, which has {n} experts "
            f"per layer; use an int in 0..{n - 1 if n else '?'}."
        )
