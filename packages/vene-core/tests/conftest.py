"""Small models written out by hand, so tests can recompute every forward independently."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import vene as pv
from vene._sites import parse_dotted_component, resolve_from_table
from vene.plugins import Registry


class TinyAttention(nn.Module):
    """Multi-head self-attention with separate q/k/v projections and an output projection."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.o(self.mix(x))

    def mix(self, x, q=None, k=None, v=None):
        """The attention-weighted values (input of ``o``), optionally with replaced q/k/v."""
        b, s, d = x.shape
        h = self.heads
        q = self.q(x) if q is None else q
        k = self.k(x) if k is None else k
        v = self.v(x) if v is None else v
        split = lambda t: t.view(b, s, h, d // h).transpose(1, 2)  # noqa: E731
        att = split(q) @ split(k).transpose(-1, -2) / math.sqrt(d // h)
        att = att.masked_fill(torch.triu(torch.ones(s, s, dtype=torch.bool), 1), float("-inf"))
        out = att.softmax(-1) @ split(v)
        return out.transpose(1, 2).reshape(b, s, d)


class TinyBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.attn = TinyAttention(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(x)
        return x + self.mlp(x)


class TinyTransformer(nn.Module):
    """A two-layer attention model over embeddings: ``forward(input_ids) -> logits``."""

    def __init__(self, vocab: int = 11, d: int = 8, heads: int = 2, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.layers = nn.ModuleList(TinyBlock(d, heads) for _ in range(layers))
        self.head = nn.Linear(d, vocab)

    def forward(self, input_ids: torch.Tensor, labels: torch.Tensor | None = None):
        x = self.embed(input_ids)
        for layer in self.layers:
            x = layer(x)
        logits = self.head(x)
        if labels is not None:
            return logits, nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        return logits


def run_tiny(model: TinyTransformer, ids: torch.Tensor, edit=None) -> torch.Tensor:
    """A hand-written forward of TinyTransformer; ``edit(name, layer, tensor) -> tensor``
    may replace the residual stream before ("block_in") and after ("block") each block, the
    query projection ("q") or the input of ``o`` ("mix"), all ``[batch, seq, d]``."""
    edit = edit or (lambda name, layer, t: t)
    x = model.embed(ids)
    for i, layer in enumerate(model.layers):
        x = edit("block_in", i, x)
        q = edit("q", i, layer.attn.q(x))
        mix = edit("mix", i, layer.attn.mix(x, q=q))
        x = x + layer.attn.o(mix)
        x = x + layer.mlp(x)
        x = edit("block", i, x)
    return model.head(x)


def capture(model: TinyTransformer, ids: torch.Tensor) -> dict:
    """All intermediate tensors of :func:`run_tiny`, keyed ``(name, layer)``."""
    seen = {}

    def edit(name, layer, t):
        seen[(name, layer)] = t
        return t

    run_tiny(model, ids, edit)
    return seen


@pytest.fixture
def tiny():
    torch.manual_seed(0)
    return TinyTransformer().eval()


@pytest.fixture
def ids():
    torch.manual_seed(1)
    return torch.randint(0, 11, (3, 5)), torch.randint(0, 11, (3, 5))


class _Sizes:
    def __init__(self, model: TinyTransformer) -> None:
        self.d = model.embed.embedding_dim
        self.heads = model.layers[0].attn.heads


def _d(c: _Sizes) -> int:
    return c.d


def _per_head(c: _Sizes) -> int:
    return c.d // c.heads


def _heads(c: _Sizes) -> int:
    return c.heads


L = pv.LAYER
TINY_TABLE = {
    "block_input": pv.ComponentSpec(("layers", L), pv.Side.INPUT, dim=_d),
    "block_output": pv.ComponentSpec(("layers", L), pv.Side.OUTPUT, dim=_d),
    "mlp_output": pv.ComponentSpec(("layers", L, "mlp"), pv.Side.OUTPUT, dim=_d),
    "attention_value_output": pv.ComponentSpec(("layers", L, "attn", "o"), pv.Side.INPUT, dim=_d),
    "head_attention_value_output": pv.ComponentSpec(
        ("layers", L, "attn", "o"), pv.Side.INPUT, dim=_per_head, heads=_heads
    ),
    "head_query_output": pv.ComponentSpec(
        ("layers", L, "attn", "q"), pv.Side.OUTPUT, dim=_per_head, heads=_heads
    ),
}


class TinyPlugin:
    """A resolver plugin for TinyTransformer, written as a third party would write one."""

    @pv.hookimpl
    def vene_resolve_site(self, model, representation):
        if not isinstance(model, TinyTransformer):
            return None
        if parse_dotted_component(representation.component) is not None:
            return None
        return resolve_from_table(
            TINY_TABLE, model, representation, config=_Sizes(model),
            num_layers=len(model.layers), family="tiny",
        )


@pytest.fixture
def registry() -> Registry:
    """Core's built-ins plus the TinyTransformer resolver; no entry points."""
    pm = pv.get_plugin_manager(load_entrypoints=False)
    pm.register(TinyPlugin(), name="tiny")
    return Registry(pm)
