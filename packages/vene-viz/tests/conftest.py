"""Real data for the visualizers, computed with vene on small models built by hand.

Every sweep is computed twice: with vene (``IntervenableModel`` and its interventions) and with
plain torch forward hooks. The tests check that both agree before they plot anything, so the
figures are drawn from data whose meaning is known.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import vene as pv
from vene.plugins import Registry

VOCAB = ["<pad>", "The", "Eiffel", "Tower", "is", "in", "Paris", "Roman", "Colosseum", "Rome"]
CLEAN = ["The", "Eiffel", "Tower", "is", "in"]
CORRUPT = ["The", "Roman", "Colosseum", "is", "in"]
TARGET = "Paris"


class Attention(nn.Module):
    """Causal multi-head self-attention whose probabilities pass through ``probs`` (an Identity),
    so that they can be read at ``layers[i].attn.probs.output``."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.probs = nn.Identity()
        self.o = nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        h = self.heads
        q, k, v = (t.view(b, s, h, d // h).transpose(1, 2) for t in self.qkv(x).split(d, -1))
        scores = q @ k.transpose(-1, -2) / math.sqrt(d // h)
        causal = torch.triu(torch.ones(s, s, dtype=torch.bool), 1)
        probs = self.probs(scores.masked_fill(causal, float("-inf")).softmax(-1))
        mixed = (probs @ v).transpose(1, 2).reshape(b, s, d)  # heads side by side
        return self.o(mixed)


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.attn = Attention(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln(x))
        return x + self.mlp(x)


class TinyLM(nn.Module):
    """Token and position embeddings, ``n_layer`` attention blocks, an unembedding."""

    def __init__(self, vocab: int = len(VOCAB), d: int = 16, heads: int = 4, n_layer: int = 3) -> None:
        super().__init__()
        self.heads = heads
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(8, d)
        self.layers = nn.ModuleList(Block(d, heads) for _ in range(n_layer))
        self.unembed = nn.Linear(d, vocab)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = self.wte(input_ids) + self.wpe(torch.arange(input_ids.shape[1]))
        for layer in self.layers:
            x = layer(x)
        return self.unembed(x)


class HeadResolver:
    """A resolver plugin for TinyLM's per-head outputs (the input of ``attn.o``, heads side by side),
    written as a third party would: ``head_attention_value_output`` with unit ``h``."""

    @pv.hookimpl
    def vene_resolve_site(self, model, representation):
        if not isinstance(model, TinyLM) or representation.component != "head_attention_value_output":
            return None
        d = model.wte.embedding_dim
        return pv.Site(
            module=f"layers.{representation.layer}.attn.o", side=pv.Side.INPUT,
            dim=d // model.heads, heads=model.heads,
        )


def core_registry(*plugins: object) -> Registry:
    """Core's built-ins (and ``plugins``) without entry points, so that other installed plugins
    cannot change what these tests compute."""
    pm = pv.get_plugin_manager(load_entrypoints=False)
    for i, plugin in enumerate(plugins):
        pm.register(plugin, name=f"test-{i}")
    return Registry(pm)


def ids(words: list[str]) -> torch.Tensor:
    return torch.tensor([[VOCAB.index(w) for w in words]])


@pytest.fixture(scope="session")
def lm() -> TinyLM:
    torch.manual_seed(0)
    model = TinyLM().eval()
    # A few steps of training make the clean prompt predict the target, as in a real tracing study.
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    clean, corrupt = ids(CLEAN), ids(CORRUPT)
    for _ in range(30):
        logits = model(torch.cat([clean, corrupt]))[:, -1]
        loss = nn.functional.cross_entropy(logits, torch.tensor([VOCAB.index(TARGET), VOCAB.index("Rome")]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def target_logit(logits: torch.Tensor) -> torch.Tensor:
    return logits[:, -1, VOCAB.index(TARGET)]


@pytest.fixture(scope="session")
def patching(lm: TinyLM) -> dict[str, torch.Tensor]:
    """Activation patching of every block output, clean -> corrupt, at every position.

    ``vene``: one vectorised sweep per layer (example p patches position p); ``hooks``: the same
    with plain torch forward hooks, one position at a time. Entries are the fraction of the
    clean-vs-corrupt gap in the target logit (last position) that the patch restores.
    """
    clean, corrupt = ids(CLEAN), ids(CORRUPT)
    n_layer, seq = len(lm.layers), clean.shape[1]
    with torch.no_grad():
        base_logit = target_logit(lm(corrupt))
        gap = target_logit(lm(clean)) - base_logit
        grid = torch.zeros(n_layer, seq)
        for layer in range(n_layer):
            im = pv.IntervenableModel(
                {"component": f"layers[{layer}].output", "intervention_type": pv.VanillaIntervention}, lm,
                registry=core_registry(),
            )
            where = [[[p] for p in range(seq)]]
            _, out = im({"input_ids": corrupt.repeat(seq, 1)}, [{"input_ids": clean.repeat(seq, 1)}],
                        unit_locations={"sources->base": (where, where)})
            grid[layer] = (target_logit(out) - base_logit) / gap

        hooks = torch.zeros(n_layer, seq)
        for layer in range(n_layer):
            block = lm.layers[layer]
            saved = {}
            handle = block.register_forward_hook(lambda m, a, o, saved=saved: saved.__setitem__("h", o.clone()))
            lm(clean)
            handle.remove()
            for p in range(seq):
                def patch(m, a, o, p=p, saved=saved):
                    o = o.clone()
                    o[:, p] = saved["h"][:, p]
                    return o

                handle = block.register_forward_hook(patch)
                hooks[layer, p] = (target_logit(lm(corrupt)) - base_logit) / gap
                handle.remove()
    return {"vene": grid, "hooks": hooks, "tokens": list(CORRUPT)}


@pytest.fixture(scope="session")
def head_patching(lm: TinyLM) -> dict[str, torch.Tensor]:
    """Patching each head's output (all positions), clean -> corrupt, as a ``[layers, heads]``
    grid: with vene (unit ``h`` through a resolver plugin) and with forward pre-hooks. Entries are
    the change of the target logit at the last position."""
    registry = core_registry(HeadResolver())
    clean, corrupt = ids(CLEAN), ids(CORRUPT)
    n_layer, heads = len(lm.layers), lm.heads
    width = lm.wte.embedding_dim // heads
    with torch.no_grad():
        base_logit = target_logit(lm(corrupt))
        grid = torch.zeros(n_layer, heads)
        for layer in range(n_layer):
            im = pv.IntervenableModel(
                {"layer": layer, "component": "head_attention_value_output", "unit": "h"},
                lm, registry=registry,
            )
            which = [[[h] for h in range(heads)]]
            _, out = im({"input_ids": corrupt.repeat(heads, 1)}, [{"input_ids": clean.repeat(heads, 1)}],
                        unit_locations={"sources->base": (which, which)})
            grid[layer] = target_logit(out) - base_logit

        hooks = torch.zeros(n_layer, heads)
        for layer in range(n_layer):
            o = lm.layers[layer].attn.o
            saved = {}
            handle = o.register_forward_pre_hook(lambda m, a, saved=saved: saved.__setitem__("x", a[0].clone()))
            lm(clean)
            handle.remove()
            for h in range(heads):
                cols = slice(h * width, (h + 1) * width)

                def patch(m, a, cols=cols, saved=saved):
                    x = a[0].clone()
                    x[..., cols] = saved["x"][..., cols]
                    return (x,)

                handle = o.register_forward_pre_hook(patch)
                hooks[layer, h] = target_logit(lm(corrupt)) - base_logit
                handle.remove()
    return {"vene": grid, "hooks": hooks}


@pytest.fixture(scope="session")
def attention(lm: TinyLM) -> dict[str, torch.Tensor]:
    """Layer-1 attention probabilities of the clean prompt: collected with vene's
    CollectIntervention, and read with a plain forward hook on ``attn.probs``."""
    clean = ids(CLEAN)
    with torch.no_grad():
        im = pv.IntervenableModel(
            {"component": "layers[1].attn.probs.output", "intervention_type": pv.CollectIntervention}, lm,
            registry=core_registry(),
        )
        (_, collected), _ = im({"input_ids": clean})
        seen = {}
        handle = lm.layers[1].attn.probs.register_forward_hook(lambda m, a, o: seen.__setitem__("p", o))
        lm(clean)
        handle.remove()
    return {"vene": collected[0], "hooks": seen["p"], "tokens": list(CLEAN)}


class BoundlessMask(pv.TrainableIntervention, pv.DistributedRepresentationIntervention):
    """Boundless DAS in miniature: a learned rotation, and a learned boundary whose sigmoid mask
    says how many rotated dimensions are interchanged. Like pyvene's class, it exposes the
    attributes ``intervention_boundaries``, ``temperature`` and ``intervention_population`` and no
    mask method, so vene-viz must compute the mask from them."""

    def __init__(self, embed_dim: int, **kwargs) -> None:
        super().__init__(embed_dim=embed_dim, **kwargs)
        self.rotate = nn.utils.parametrizations.orthogonal(nn.Linear(embed_dim, embed_dim, bias=False))
        self.intervention_boundaries = nn.Parameter(torch.tensor([0.25]))
        self.temperature = nn.Parameter(torch.tensor(0.5), requires_grad=False)
        self.register_buffer("intervention_population", torch.arange(embed_dim), persistent=False)

    def weights(self) -> torch.Tensor:
        b = torch.clamp(self.intervention_boundaries, 1e-3, 1)[0] * self.embed_dim
        pop, t = self.intervention_population, self.temperature
        return torch.sigmoid(pop / t) * torch.sigmoid((b - pop) / t)

    def forward(self, base, source=None, subspaces=None, **kwargs):
        r = self.rotate.weight
        mask = self.weights()
        mixed = (1 - mask) * (base @ r.T) + mask * (source @ r.T)
        return mixed @ r


class SigmoidMask(pv.TrainableIntervention, pv.LocalistRepresentationIntervention):
    """A per-dimension learned mix of base and source: ``sigmoid(mask / T)`` (pyvene's attributes)."""

    def __init__(self, embed_dim: int, **kwargs) -> None:
        super().__init__(embed_dim=embed_dim, **kwargs)
        self.mask = nn.Parameter(torch.zeros(embed_dim))
        self.temperature = nn.Parameter(torch.tensor(0.5), requires_grad=False)

    def forward(self, base, source=None, subspaces=None, **kwargs):
        m = torch.sigmoid(self.mask / self.temperature)
        return (1 - m) * base + m * source


@pytest.fixture(scope="session")
def das_training() -> dict[str, object]:
    """Interchange-intervention training on an MLP classifier: a Boundless DAS intervention and a
    sigmoid mask learn to reproduce the counterfactual labels of interchanging the first three
    hidden dimensions at layer 0 (so the right mask covers 3 of 8 dimensions).

    Returns the trained interventions and the per-step records (loss, IIA) for the curves.
    """
    torch.manual_seed(0)
    _, _, mlp = pv.create_mlp_classifier(pv.MLPConfig(h_dim=8, n_layer=2, num_classes=3))
    base = torch.randn(64, 8)
    source = torch.randn(64, 8)
    with torch.no_grad():  # the counterfactual label: dims 0..2 of layer 0 taken from the source
        hidden = {}
        handle = mlp.mlp.h[0].register_forward_hook(lambda m, a, o: hidden.__setitem__("h", o))
        mlp(inputs_embeds=source)
        handle.remove()
        handle = mlp.mlp.h[0].register_forward_hook(
            lambda m, a, o: torch.cat([hidden["h"][..., :3], o[..., 3:]], -1)
        )
        labels = mlp(inputs_embeds=base)["logits"].argmax(-1)
        handle.remove()

    out: dict[str, object] = {}
    for name, cls, steps in (("boundless", BoundlessMask, 40), ("sigmoid", SigmoidMask, 40)):
        torch.manual_seed(1)
        im = pv.IntervenableModel(
            {"layer": 0, "component": "block_output", "intervention": cls(embed_dim=8)}, mlp,
            registry=core_registry(),
        )
        opt = torch.optim.Adam(im.get_trainable_parameters(), lr=0.1)
        records = []
        for step in range(steps):
            _, res = im({"inputs_embeds": base}, [{"inputs_embeds": source}],
                        unit_locations={"sources->base": 0})
            loss = nn.functional.cross_entropy(res["logits"], labels)
            opt.zero_grad()
            loss.backward()
            opt.step()
            record = {"step": step, "loss": loss.item()}
            if step % 5 == 4:  # accuracy is logged every 5 steps, as trainers often do
                record["iia"] = float((res["logits"].argmax(-1) == labels).float().mean())
            records.append(record)
        out[name] = next(iter(im.interventions.values()))
        out[f"{name}_records"] = records
    return out
