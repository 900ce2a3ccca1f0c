"""The record of an architecture family, and the config readers and table builders they share.

A :class:`Family` names the ``model_type`` values it covers and holds one or more :class:`Stack`
records: a table ``{component: vene.ComponentSpec}`` whose paths are relative to the family's
*base model* (``GPT2Model``, ``LlamaModel``...), and how many layers that stack has. Most families
have one stack; encoder–decoder models have one per side, with prefixed component names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from attrs import field, frozen

from vene import ComponentSpec, Side

__all__ = [
    "Family",
    "Stack",
    "hidden",
    "n_heads",
    "n_kv_heads",
    "head_dim",
    "q_width",
    "kv_width",
    "intermediate",
    "block_components",
    "attention_components",
    "decoder_components",
    "attention_weight",
    "fused_qkv_components",
    "num_hidden_layers",
    "HS",
    "sub_config",
    "nested",
    "transformers_major",
]

Config = Any
"""A ``transformers.PretrainedConfig``; typed loosely so that this module never imports it."""


@frozen
class Stack:
    """One stack of layers: its component table and how to read its number of layers."""

    components: Mapping[str, ComponentSpec]
    num_layers: Callable[[Config], int]


def _names(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _stacks(value: Iterable[Stack]) -> tuple[Stack, ...]:
    return tuple(value)


@frozen
class Family:
    """An architecture family: the ``model_type`` values it covers and its stacks."""

    name: str
    model_types: tuple[str, ...] = field(converter=_names)
    stacks: tuple[Stack, ...] = field(converter=_stacks)
    plain_names: Callable[[Any], str | None] | None = None
    """For prefixed tables (encoder–decoder): the prefix that unprefixed names take on this base
    model (``"encoder_"`` on an encoder-only T5), or None when they are ambiguous."""
    num_experts: Callable[[Config], int] | None = None
    """For mixture-of-experts families: the number of experts that ``moe_key`` indexes."""

    @property
    def components(self) -> dict[str, ComponentSpec]:
        """Every component of every stack (names are unique across stacks)."""
        out: dict[str, ComponentSpec] = {}
        for stack in self.stacks:
            out.update(stack.components)
        return out

    def stack_of(self, component: str) -> Stack | None:
        for stack in self.stacks:
            if component in stack.components:
                return stack
        return None


# -------------------------------------------------------------------------------------------
# dimensions read from the config
# -------------------------------------------------------------------------------------------


def hidden(c: Config) -> int:
    return int(c.hidden_size)


def n_heads(c: Config) -> int:
    return int(c.num_attention_heads)


def n_kv_heads(c: Config) -> int:
    """Key/value heads: ``num_key_value_heads`` under grouped-query attention, else all heads."""
    return int(getattr(c, "num_key_value_heads", None) or c.num_attention_heads)


def head_dim(c: Config) -> int:
    """``head_dim`` when the config sets it (Gemma's differs from hidden/heads), else derived."""
    return int(getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads)


def q_width(c: Config) -> int:
    return n_heads(c) * head_dim(c)


def kv_width(c: Config) -> int:
    return n_kv_heads(c) * head_dim(c)


def intermediate(c: Config) -> int:
    return int(c.intermediate_size)


# -------------------------------------------------------------------------------------------
# table builders: the structure most decoder families share, spelled once
# -------------------------------------------------------------------------------------------

Path = tuple[Any, ...]
HS = "hidden_states"  # keyword under which blocks and attention modules take their input


def block_components(
    layer: Path,
    *,
    mlp: Path,
    act: Path | None,
    mlp_out: Path | None = None,
    width: Callable[[Config], int] = hidden,
    mlp_width: Callable[[Config], int] = intermediate,
) -> dict[str, ComponentSpec]:
    """``block_*`` and ``mlp_*`` components of a layer at ``layer`` (a path with LAYER).

    ``mlp`` is the MLP module (its input is ``mlp_input``, its output ``mlp_output`` unless
    ``mlp_out`` names another module), ``act`` the activation module (``mlp_activation``).
    """
    out = {
        "block_input": ComponentSpec(layer, Side.INPUT, dim=width, keyword=HS),
        "block_output": ComponentSpec(layer, Side.OUTPUT, dim=width),  # tuple in transformers 4.x: [0]
        "mlp_input": ComponentSpec(layer + mlp, Side.INPUT, dim=width, keyword=HS),
        "mlp_output": ComponentSpec(layer + (mlp_out or mlp), Side.OUTPUT, dim=width),
    }
    if act is not None:
        out["mlp_activation"] = ComponentSpec(layer + act, Side.OUTPUT, dim=mlp_width)
    return out


def attention_components(
    attn: Path,
    *,
    q: Path,
    k: Path,
    v: Path,
    o: Path,
    prefix: str = "",
    attn_in: Path | None = None,
    attn_out: Path | None = None,
    width: Callable[[Config], int] = hidden,
    heads: Callable[[Config], int] = n_heads,
    kv_heads: Callable[[Config], int] = n_kv_heads,
    hdim: Callable[[Config], int] = head_dim,
    weight: ComponentSpec | None = None,
) -> dict[str, ComponentSpec]:
    """The attention components of one attention module with separate q/k/v/o projections.

    Paths are full (they include the layer). ``attn_in``/``attn_out`` override the modules whose
    input/output are ``attention_input``/``attention_output`` (default: ``attn``). Key and value
    heads follow ``kv_heads`` (grouped-query attention). ``weight`` is the ``attention_weight``
    spec, when the family has one.
    """

    def qw(c: Config) -> int:
        return heads(c) * hdim(c)

    def kvw(c: Config) -> int:
        return kv_heads(c) * hdim(c)

    p = prefix
    out = {
        f"{p}attention_input": ComponentSpec(attn_in or attn, Side.INPUT, dim=width, keyword=HS),
        f"{p}attention_output": ComponentSpec(attn_out or attn, Side.OUTPUT, dim=width),
        f"{p}attention_value_output": ComponentSpec(o, Side.INPUT, dim=qw),
        f"{p}head_attention_value_output": ComponentSpec(o, Side.INPUT, dim=hdim, heads=heads),
        f"{p}query_output": ComponentSpec(q, Side.OUTPUT, dim=qw),
        f"{p}key_output": ComponentSpec(k, Side.OUTPUT, dim=kvw),
        f"{p}value_output": ComponentSpec(v, Side.OUTPUT, dim=kvw),
        f"{p}head_query_output": ComponentSpec(q, Side.OUTPUT, dim=hdim, heads=heads),
        f"{p}head_key_output": ComponentSpec(k, Side.OUTPUT, dim=hdim, heads=kv_heads),
        f"{p}head_value_output": ComponentSpec(v, Side.OUTPUT, dim=hdim, heads=kv_heads),
    }
    if weight is not None:
        out[f"{p}attention_weight"] = weight
    return out


def attention_weight(attn: Path, heads: Callable[[Config], int] = n_heads) -> ComponentSpec:
    """``attention_weight`` of the attention module at ``attn``, through the probe (``_probes``)."""
    from vene import Layout

    from ._probes import ATTENTION_WEIGHT, attention_probabilities

    return ComponentSpec(
        (*attn, ATTENTION_WEIGHT),
        Side.OUTPUT,
        heads=heads,
        layout=Layout.BHSD,
        context=attention_probabilities,
    )


def decoder_components(
    layers: Path = ("layers",),
    *,
    attn: str = "self_attn",
    q: str = "q_proj",
    k: str = "k_proj",
    v: str = "v_proj",
    o: str = "o_proj",
    mlp: str = "mlp",
    act: str | None = "act_fn",
    weight: bool = True,
) -> dict[str, ComponentSpec]:
    """The table of a Llama-style decoder: ``layers[i].{self_attn.{q,k,v,o}_proj, mlp.act_fn}``.

    With ``weight``, ``attention_weight`` is probed on the attention module (see ``_probes``).
    """
    from vene import LAYER

    layer = (*layers, LAYER)
    a = (*layer, attn)
    weight_spec = attention_weight(a) if weight else None
    return {
        **block_components(layer, mlp=(mlp,), act=(mlp, act) if act else None),
        **attention_components(a, q=(*a, q), k=(*a, k), v=(*a, v), o=(*a, o), weight=weight_spec),
    }


def num_hidden_layers(c: Config) -> int:
    return int(c.num_hidden_layers)


def fused_qkv_components(
    qkv: Path,
    layout: Callable[[Config], tuple[tuple[int, ...], int | None]],
    *,
    heads: Callable[[Config], int] = n_heads,
    kv_heads: Callable[[Config], int] = n_kv_heads,
    hdim: Callable[[Config], int] = head_dim,
) -> dict[str, ComponentSpec]:
    """q/k/v components of a fused projection at ``qkv`` split by a probe (see ``FusedSplit``)."""
    from ._probes import FusedSplit, Probe

    names = ("vene_query_output", "vene_key_output", "vene_value_output")
    probe = Probe(install=FusedSplit(names=names, layout=layout))

    def width(h: Callable[[Config], int]) -> Callable[[Config], int]:
        return lambda c: h(c) * hdim(c)

    out = {}
    for part, name, h in zip(("query", "key", "value"), names, (heads, kv_heads, kv_heads)):
        path = (*qkv, name)
        out[f"{part}_output"] = ComponentSpec(path, Side.OUTPUT, dim=width(h), context=probe)
        out[f"head_{part}_output"] = ComponentSpec(path, Side.OUTPUT, dim=hdim, heads=h, context=probe)
    return out


# -------------------------------------------------------------------------------------------
# tables of sub-models (a multimodal model's language model, a wrapper's trunk)
# -------------------------------------------------------------------------------------------


def sub_config(fn: Callable[..., int], name: str) -> Callable[..., int]:
    """``fn`` read from the sub-config ``config.<name>`` (``text_config``...), arity kept."""
    import inspect

    if len(inspect.signature(fn).parameters) >= 2:
        return lambda c, layer: fn(getattr(c, name), layer)
    return lambda c: fn(getattr(c, name))


def nested(
    table: Mapping[str, ComponentSpec],
    *,
    path: Path = (),
    config: str | None = None,
    prefix: str = "",
) -> dict[str, ComponentSpec]:
    """``table`` moved under the module at ``path``, its dimensions read from ``config.<config>``.

    Component names gain ``prefix`` (``"vision."``); probes keep working, as they are bound to
    the owner path that the moved path names.
    """
    import attrs

    out = {}
    for name, spec in table.items():
        dim, heads = spec.dim, spec.heads
        if config is not None:
            dim = sub_config(dim, config) if dim is not None else None
            heads = sub_config(heads, config) if heads is not None else None
        out[prefix + name] = attrs.evolve(spec, path=(*path, *spec.path), dim=dim, heads=heads)
    return out


def transformers_major() -> int:
    """The installed transformers' major version, read from its metadata (no import)."""
    from importlib.metadata import version

    return int(version("transformers").split(".")[0])
