"""vene.patching on core's models: every sweep cell against a plain-hook re-run of that patch."""

from __future__ import annotations

import json
import sys

import pytest
import torch
from conftest import TinyTransformer

import vene as pv
import vene.patching as vp

torch.set_num_threads(1)


def _module_for(model, kind, layer):
    block = model.layers[layer]
    return {"resid": (block, "out"), "mlp": (block.mlp, "out"), "heads": (block.attn.o, "in")}[kind]


def plain_patched(model, run_ids, donor_ids, patches, read=-1):
    """Run ``run_ids`` with each ``(kind, layer, run_pos, donor_pos, head)`` state taken from a
    run of ``donor_ids``, with forward hooks written here; returns the logits at ``read``."""
    recorded = {}
    handles = []
    for kind, layer, _, _, _ in patches:
        mod, side = _module_for(model, kind, layer)
        key = (kind, layer)
        if side == "out":
            handles.append(mod.register_forward_hook(lambda m, i, o, key=key: recorded.__setitem__(key, o.clone())))
        else:
            handles.append(mod.register_forward_pre_hook(lambda m, a, key=key: recorded.__setitem__(key, a[0].clone())))
    with torch.no_grad():
        model(donor_ids)
    for h in handles:
        h.remove()
    handles = []
    heads = model.layers[0].attn.heads
    for kind, layer, rp, dp, head in patches:
        mod, side = _module_for(model, kind, layer)
        src = recorded[(kind, layer)]

        def edit(x, rp=rp, dp=dp, head=head, src=src):
            x = x.clone()
            if head is None:
                x[:, rp] = src[:, dp]
            else:
                d = x.shape[-1] // heads
                x[:, rp, head * d : (head + 1) * d] = src[:, dp, head * d : (head + 1) * d]
            return x

        if side == "out":
            handles.append(mod.register_forward_hook(lambda m, i, o, edit=edit: edit(o)))
        else:
            handles.append(mod.register_forward_pre_hook(lambda m, a, edit=edit: (edit(a[0]),)))
    try:
        with torch.no_grad():
            return model(run_ids)[:, read]
    finally:
        for h in handles:
            h.remove()


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TinyTransformer(vocab=11, d=8, heads=2, layers=3).eval()


@pytest.fixture
def pair():
    g = torch.Generator().manual_seed(3)
    return torch.randint(0, 11, (1, 6), generator=g), torch.randint(0, 11, (1, 6), generator=g)


METRIC = vp.logit_diff(2, 5)


@pytest.mark.parametrize("kind", ["resid", "mlp"])
@pytest.mark.parametrize("chunk_size", [1, 4, None])
def test_every_cell_equals_a_plain_hook_rerun(model, pair, registry, kind, chunk_size):
    base, source = pair
    res = vp.activation_patching(model, {"input_ids": base}, {"input_ids": source}, METRIC, kind=kind,
                                 chunk_size=chunk_size, registry=registry)
    assert res.dims == ("layer", "position") and res.scores.shape == (3, 6)
    for layer in range(3):
        for p in range(6):
            want = METRIC(plain_patched(model, base, source, [(kind, layer, p, p, None)]))
            assert res.scores[layer, p] == pytest.approx(float(want), abs=1e-5)
    assert res.baselines["base"] == pytest.approx(float(METRIC(model(base)[:, -1].detach())), abs=1e-6)
    assert res.baselines["source"] == pytest.approx(float(METRIC(model(source)[:, -1].detach())), abs=1e-6)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("chunk_size", [1, 5])
def test_heads_patch_one_head_at_every_position(model, pair, registry, chunk_size):
    base, source = pair
    res = vp.activation_patching(model, {"input_ids": base}, {"input_ids": source}, METRIC, kind="heads",
                                 chunk_size=chunk_size, registry=registry)
    assert res.dims == ("layer", "head") and res.coords["head"] == [0, 1]
    for layer in range(3):
        for h in range(2):
            want = METRIC(plain_patched(model, base, source, [("heads", layer, p, p, h) for p in range(6)]))
            assert res.scores[layer, h] == pytest.approx(float(want), abs=1e-5)


def test_noise_direction_runs_the_source_with_base_states(model, pair, registry):
    base, source = pair
    res = vp.activation_patching(model, {"input_ids": base}, {"input_ids": source}, METRIC, direction="noise",
                                 layers=[0, 2], positions=[1, 5], registry=registry)
    for i, layer in enumerate([0, 2]):
        for j, p in enumerate([1, 5]):
            want = METRIC(plain_patched(model, source, base, [("resid", layer, p, p, None)]))
            assert res.scores[i, j] == pytest.approx(float(want), abs=1e-5)
    assert res.normalized()[0, 0] == pytest.approx(
        (float(res.scores[0, 0]) - res.baselines["source"]) / (res.baselines["base"] - res.baselines["source"]))


def test_window_patches_consecutive_layers_at_once(model, pair, registry):
    base, source = pair
    res = vp.activation_patching(model, {"input_ids": base}, {"input_ids": source}, METRIC, window=2,
                                 chunk_size=3, registry=registry)
    for layer in range(3):
        window = [x for x in (layer - 1, layer) if 0 <= x < 3]
        for p in range(6):
            want = METRIC(plain_patched(model, base, source, [("resid", w, p, p, None) for w in window]))
            assert res.scores[layer, p] == pytest.approx(float(want), abs=1e-5)


def test_component_list_gives_a_component_dim(model, pair, registry):
    base, source = pair
    res = vp.activation_patching(model, {"input_ids": base}, {"input_ids": source}, METRIC,
                                 kind=["resid", "mlp"], layers=[1], registry=registry)
    assert res.dims == ("component", "layer", "position") and res.scores.shape == (2, 1, 6)
    want = METRIC(plain_patched(model, base, source, [("mlp", 1, 4, 4, None)]))
    assert res.scores[1, 0, 4] == pytest.approx(float(want), abs=1e-5)


def test_position_pairs_align_inputs_of_different_lengths(model, registry):
    g = torch.Generator().manual_seed(5)
    base, source = torch.randint(0, 11, (1, 6), generator=g), torch.randint(0, 11, (1, 4), generator=g)
    with pytest.raises(pv.UnitLocationError, match="position_pairs"):
        vp.activation_patching(model, {"input_ids": base}, {"input_ids": source}, METRIC, registry=registry)
    res = vp.activation_patching(model, {"input_ids": base}, {"input_ids": source}, METRIC,
                                 position_pairs=[(3, 5), (1, 2)], registry=registry)
    assert res.coords["position"] == [5, 2]
    for layer in range(3):
        for j, (s, b) in enumerate([(3, 5), (1, 2)]):
            want = METRIC(plain_patched(model, base, source, [("resid", layer, b, s, None)]))
            assert res.scores[layer, j] == pytest.approx(float(want), abs=1e-5)


def test_metric_at_another_position(model, pair, registry):
    base, source = pair
    metric = vp.target_prob(4, position=2)
    res = vp.activation_patching(model, {"input_ids": base}, {"input_ids": source}, metric, chunk_size=2,
                                 registry=registry)
    for layer in range(3):
        for p in range(6):
            want = metric(plain_patched(model, base, source, [("resid", layer, p, p, None)], read=2))
            assert res.scores[layer, p] == pytest.approx(float(want), abs=1e-6)
    assert torch.allclose(res.scores[:, 3:], torch.tensor(res.baselines["base"]), atol=1e-6)  # causal


def test_kl_and_plain_function_metrics(model, pair, registry):
    base, source = pair
    ref = model(base)[0, -1].detach()
    res = vp.activation_patching(model, {"input_ids": base}, {"input_ids": source}, vp.kl_divergence(ref),
                                 layers=[2], registry=registry)
    want = plain_patched(model, base, source, [("resid", 2, 5, 5, None)])
    kl = (ref.log_softmax(-1).exp() * (ref.log_softmax(-1) - want.log_softmax(-1))).sum(-1)
    assert res.scores[0, 5] == pytest.approx(float(kl), abs=1e-6)
    assert res.baselines["base"] == pytest.approx(0.0, abs=1e-6)

    def top_logit(logits):
        return logits.max(-1).values

    res = vp.activation_patching(model, {"input_ids": base}, {"input_ids": source}, top_logit, layers=[0],
                                 registry=registry)
    assert res.metric == "top_logit"
    assert res.scores[0, 0] == pytest.approx(float(top_logit(plain_patched(model, base, source, [("resid", 0, 0, 0, None)]))), abs=1e-5)


# ----------------------------------------------------------------------------------------------
# causal tracing
# ----------------------------------------------------------------------------------------------
def _noised_reference(model, ids, subj, noise, restore=None):
    """A noised run with the clean state of (layer, position) restored, by hand."""
    with torch.no_grad():
        clean = {}
        hs = [b.register_forward_hook(lambda m, i, o, k=k: clean.__setitem__(k, o.clone())) for k, b in enumerate(model.layers)]
        model(ids)
        for h in hs:
            h.remove()
        hs = [model.embed.register_forward_hook(lambda m, i, o: o + torch.zeros_like(o).index_put((torch.zeros(len(subj), dtype=torch.long), torch.tensor(subj)), noise))]
        if restore is not None:
            layer, p = restore

            def put(m, i, o):
                o = o.clone()
                o[:, p] = clean[layer][:, p]
                return o

            hs.append(model.layers[layer].register_forward_hook(put))
        try:
            return model(ids)[:, -1]
        finally:
            for h in hs:
                h.remove()


def test_causal_tracing_against_hand_noised_runs(model, pair, registry):
    ids, _ = pair
    metric = vp.target_prob(3)
    res = vp.causal_tracing(model, {"input_ids": ids}, [1, 2], metric, samples=3, seed=7, embeddings="embed",
                            chunk_size=4, registry=registry)
    scale = 3.0 * float(model.embed.weight.std())
    draws = torch.randn(3, 2, 8, generator=torch.Generator().manual_seed(7)) * scale
    assert res.settings["noise_std"] == pytest.approx(scale)
    corrupted = sum(float(metric(_noised_reference(model, ids, [1, 2], draws[s]))) for s in range(3)) / 3
    assert res.baselines["corrupted"] == pytest.approx(corrupted, abs=1e-6)
    assert res.baselines["clean"] == pytest.approx(float(metric(model(ids)[:, -1])), abs=1e-6)
    for layer, p in [(0, 1), (1, 2), (2, 5), (0, 4)]:
        want = sum(float(metric(_noised_reference(model, ids, [1, 2], draws[s], (layer, p)))) for s in range(3)) / 3
        assert res.scores[layer, p] == pytest.approx(want, abs=1e-6)
    # restoring the last layer at the last position gives back the clean run exactly
    assert res.scores[2, 5] == pytest.approx(res.baselines["clean"], abs=1e-6)
    again = vp.causal_tracing(model, {"input_ids": ids}, [1, 2], metric, samples=3, seed=7, embeddings="embed",
                              chunk_size=None, registry=registry)
    assert torch.allclose(again.scores, res.scores, atol=1e-6)
    other = vp.causal_tracing(model, {"input_ids": ids}, [1, 2], metric, samples=3, seed=8, embeddings="embed",
                              registry=registry)
    assert not torch.allclose(other.scores, res.scores)


def test_causal_tracing_on_the_reference_mlp_with_inputs_embeds():
    torch.manual_seed(0)
    _, _, mlp = pv.create_mlp_classifier(pv.MLPConfig(input_dim=6, h_dim=6, n_layer=3, num_classes=4))
    x = {"inputs_embeds": torch.randn(1, 5, 6)}
    res = vp.causal_tracing(mlp, x, [0, 1], vp.target_prob(1), samples=2, noise=1.0)
    assert res.scores.shape == (3, 5)
    # the MLP treats positions independently: only the read position matters, and restoring
    # its last-layer state gives the clean metric
    assert res.scores[2, 4] == pytest.approx(res.baselines["clean"], abs=1e-6)
    assert torch.allclose(res.scores[:, :4], torch.tensor(res.baselines["corrupted"]), atol=1e-6)


# ----------------------------------------------------------------------------------------------
# attribution patching
# ----------------------------------------------------------------------------------------------
def test_attribution_equals_the_gradient_formula(model, pair, registry):
    base, source = pair
    res = vp.attribution_patching(model, {"input_ids": base}, {"input_ids": source}, METRIC, registry=registry)
    # by hand: activations of both runs, the metric's gradient at each block output of the base run
    with torch.no_grad():
        src = {}
        hs = [b.register_forward_hook(lambda m, i, o, k=k: src.__setitem__(k, o.clone())) for k, b in enumerate(model.layers)]
        model(source)
        for h in hs:
            h.remove()
    acts = {}

    def keep(k):
        def hook(m, i, o):
            o.retain_grad()
            acts[k] = o
        return hook

    emb = model.embed.weight
    emb.requires_grad_(True)  # so the block outputs are part of a graph
    hs = [b.register_forward_hook(keep(k)) for k, b in enumerate(model.layers)]
    try:
        value = METRIC(model(base)[:, -1]).sum()
        value.backward()
    finally:
        for h in hs:
            h.remove()
        emb.requires_grad_(False)
        model.zero_grad(set_to_none=True)
    for k in range(3):
        want = float(value) + ((src[k] - acts[k].detach()) * acts[k].grad)[0].sum(-1)
        assert torch.allclose(res.scores[k], want, atol=1e-5)
    assert res.method == "attribution_patching" and res.baselines["base"] == pytest.approx(float(value), abs=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_attribution_ranks_like_exact_patching(model, pair, registry):
    base, source = pair
    attr = vp.attribution_patching(model, {"input_ids": base}, {"input_ids": source}, METRIC, registry=registry)
    exact = vp.activation_patching(model, {"input_ids": base}, {"input_ids": source}, METRIC, registry=registry)

    def ranks(t):
        return t.flatten().argsort().argsort().float()

    rho = float(torch.corrcoef(torch.stack([ranks(attr.scores), ranks(exact.scores)]))[0, 1])
    assert rho > 0.95  # measured: 0.986 (Spearman) on this model and pair


def test_path_patching_through_one_receiver(model, pair, registry):
    base, source = pair
    res = vp.path_patching(model, {"input_ids": base}, {"input_ids": source}, METRIC,
                           senders=[(0, "mlp")], receivers=[(2, "heads", 1)], registry=registry)
    # by hand: run base with layer 0's MLP from source and every later MLP and head (but the
    # receiver) frozen to base, record head 1 of layer 2's o input; then run base with only that
    # head replaced
    with torch.no_grad():
        rec = {}
        def grab(store, k):
            return lambda m, i, o: store.__setitem__(k, o.clone())
        hs = [model.layers[k].mlp.register_forward_hook(grab(rec, ("b", k))) for k in range(3)]
        hs += [model.layers[k].attn.o.register_forward_pre_hook(
            lambda m, a, k=k: rec.__setitem__(("o", k), a[0].clone())) for k in range(3)]
        model(base)
        for h in hs:
            h.remove()
        hs = [model.layers[0].mlp.register_forward_hook(grab(rec, ("s", 0)))]
        model(source)
        hs[0].remove()
        hs = [model.layers[0].mlp.register_forward_hook(lambda m, i, o: rec[("s", 0)])]
        hs += [model.layers[k].mlp.register_forward_hook(lambda m, i, o, k=k: rec[("b", k)]) for k in (1, 2)]
        hs.append(model.layers[1].attn.o.register_forward_pre_hook(lambda m, a: (rec[("o", 1)],)))

        def freeze_head0(m, a):
            x = a[0].clone()
            x[..., :4] = rec[("o", 2)][..., :4]
            rec["o"] = x
            return (x,)

        hs.append(model.layers[2].attn.o.register_forward_pre_hook(freeze_head0))
        model(base)
        for h in hs:
            h.remove()

        def put(m, a):
            x = a[0].clone()
            x[..., 4:8] = rec["o"][..., 4:8]
            return (x,)

        h = model.layers[2].attn.o.register_forward_pre_hook(put)
        want = METRIC(model(base)[:, -1])
        h.remove()
    assert res.dims == ("sender",) and res.coords["sender"] == ["0.mlp"]
    assert res.scores[0] == pytest.approx(float(want), abs=1e-5)


# ----------------------------------------------------------------------------------------------
# errors
# ----------------------------------------------------------------------------------------------
def test_bad_requests_raise_vene_errors(model, pair, registry):
    base, source = {"input_ids": pair[0]}, {"input_ids": pair[1]}
    with pytest.raises(pv.ConfigError, match="unknown kind 'residual'"):
        vp.activation_patching(model, base, source, METRIC, kind="residual", registry=registry)
    with pytest.raises(pv.UnitLocationError, match="layer 3 is out of range"):
        vp.activation_patching(model, base, source, METRIC, layers=[3], registry=registry)
    with pytest.raises(pv.UnitLocationError, match="position 6 is out of range"):
        vp.activation_patching(model, base, source, METRIC, positions=[6], registry=registry)
    with pytest.raises(pv.UnitLocationError, match="negative"):
        vp.activation_patching(model, base, source, METRIC, positions=[-1], registry=registry)
    with pytest.raises(pv.ConfigError, match=r"shape \(\d+,\)"):
        vp.activation_patching(model, base, source, lambda logits: logits[:, :2], registry=registry)
    with pytest.raises(pv.ConfigError, match="direction"):
        vp.activation_patching(model, base, source, METRIC, direction="up", registry=registry)
    with pytest.raises(pv.BatchSizeError, match="batch 1"):
        vp.activation_patching(model, {"input_ids": pair[0].repeat(2, 1)}, source, METRIC, registry=registry)
    with pytest.raises(pv.ConfigError, match="chunk_size"):
        vp.activation_patching(model, base, source, METRIC, chunk_size=0, registry=registry)
    with pytest.raises(pv.ConfigError, match="window"):
        vp.activation_patching(model, base, source, METRIC, window=0, registry=registry)
    with pytest.raises(pv.ConfigError, match="get_input_embeddings"):
        vp.causal_tracing(model, base, [0], METRIC, registry=registry)
    with pytest.raises(pv.UnitLocationError, match="empty"):
        vp.causal_tracing(model, base, [], METRIC, embeddings="embed", registry=registry)
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_a_model_without_layers_is_refused():
    net = torch.nn.Sequential(torch.nn.Embedding(5, 4), torch.nn.Linear(4, 5))
    with pytest.raises(pv.ConfigError, match="block_output"):
        vp.activation_patching(net, {"input_ids": torch.zeros(1, 3, dtype=torch.long)},
                               {"input_ids": torch.ones(1, 3, dtype=torch.long)}, METRIC)


# ----------------------------------------------------------------------------------------------
# the result
# ----------------------------------------------------------------------------------------------
def test_result_round_trips_through_json(model, pair, registry, tmp_path):
    base, source = pair
    res = vp.activation_patching(model, {"input_ids": base}, {"input_ids": source}, METRIC, registry=registry)
    res = res.with_tokens([f"t{i}" for i in range(6)])
    path = tmp_path / "r.json"
    res.save(path)
    data = json.loads(path.read_text())
    assert data["dims"] == ["layer", "position"] and data["tokens"][0] == "t0"
    back = vp.PatchingResult.load(path)
    assert torch.equal(back.scores, res.scores) and back == res
    assert back.normalized().shape == (3, 6)
    start, target = res.baselines["base"], res.baselines["source"]
    assert torch.allclose(res.normalized(), (res.scores - start) / (target - start))
    html = res._repr_html_()
    assert "<table>" in html and "t5" in html
    with pytest.raises(pv.ArtifactError):
        vp.PatchingResult.from_dict({**data, "schema": "other"})
    with pytest.raises(pv.ConfigError, match="shape"):
        vp.PatchingResult(scores=torch.zeros(2, 2), dims=("layer",), coords={"layer": [0, 1]})


def test_to_pandas_long_form(model, pair, registry):
    pd = pytest.importorskip("pandas")
    res = vp.activation_patching(model, {"input_ids": pair[0]}, {"input_ids": pair[1]}, METRIC, layers=[1],
                                 registry=registry).with_tokens(list("abcdef"))
    df = res.to_pandas()
    assert isinstance(df, pd.DataFrame) and list(df.columns) == ["layer", "position", "token", "score"]
    assert len(df) == 6 and df.iloc[2]["token"] == "c" and df.iloc[2]["score"] == pytest.approx(float(res.scores[0, 2]))


def test_to_pandas_without_pandas_says_how_to_install(model, pair, registry, monkeypatch):
    res = vp.activation_patching(model, {"input_ids": pair[0]}, {"input_ids": pair[1]}, METRIC, layers=[1],
                                 registry=registry)
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(pv.ConfigError, match="pip install pandas"):
        res.to_pandas()


# --- sweeps: the bad inputs a user sends first -------------------------------------------------


def test_sweep_refuses_a_live_model_unknown_executor_and_bad_groups():
    import pytest
    import torch

    import vene.patching as vp
    from vene import ConfigError, MissingPluginError

    pairs = [({"input_ids": torch.tensor([[1, 2]])}, {"input_ids": torch.tensor([[1, 3]])})]
    with pytest.raises(ConfigError, match="model_factory must be a function"):
        vp.sweep(pairs, torch.nn.Linear(2, 2), vp.target_prob(1))
    with pytest.raises(MissingPluginError, match="no sweep executor named 'nope'"):
        vp.sweep(pairs, lambda: torch.nn.Linear(2, 2), vp.target_prob(1), executor="nope")
    with pytest.raises(ConfigError, match="layers_per_task needs the layers"):
        vp.sweep(pairs, lambda: torch.nn.Linear(2, 2), vp.target_prob(1), layers_per_task=2)
    with pytest.raises(ConfigError, match="dataset is empty"):
        vp.sweep([], lambda: torch.nn.Linear(2, 2), vp.target_prob(1))
    with pytest.raises(ConfigError, match="unknown sweep method"):
        vp.sweep(pairs, lambda: torch.nn.Linear(2, 2), vp.target_prob(1), method="nope")
