"""Each trainable intervention, run through ``IntervenableModel`` on a tiny MLP, against its
formula computed by hand in the test (hand-written forward, hand-built bases and masks)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

import vene as pv
from vene_train.interventions import (
    AutoencoderIntervention,
    BoundlessRotatedSpaceIntervention,
    ConsreftIntervention,
    DireftIntervention,
    JumpReLUAutoencoderIntervention,
    LoreftIntervention,
    LowRankRotatedSpaceIntervention,
    NoreftIntervention,
    PCARotatedSpaceIntervention,
    RotatedSpaceIntervention,
    SigmoidMaskIntervention,
    SigmoidMaskRotatedSpaceIntervention,
)

B = 4  # batch size


def only(im: pv.IntervenableModel):
    (iv,) = im.interventions.values()
    return iv


def build(cls, registry, model, **rep) -> pv.IntervenableModel:
    rep = {"layer": 0, "component": "block_output", "intervention_type": cls, **rep}
    return pv.IntervenableModel(rep, model, registry=registry)


def perturb(iv, scale: float = 0.3) -> None:
    """Move every parameter away from its initial value (orthogonal ones stay orthogonal)."""
    with torch.no_grad():
        for p in iv.parameters():
            p.add_(scale * torch.randn_like(p))


def hand_rotation(iv) -> torch.Tensor:
    """R from the orthogonal parametrization's own tensors: ``base @ expm(A - Aᵀ)``, A = tril(X)."""
    p = iv.rotate_layer.parametrizations.weight
    a = p.original.detach().tril()
    return p[0].base @ torch.matrix_exp(a - a.T)


def hand_low_rank_basis(iv) -> torch.Tensor:
    """A tall basis from its tensors: ``base @ (H_1 ⋯ H_k)[:, :k]``, reflections
    ``H_i = I − 2 v vᵀ / vᵀv`` with ``v = e_i + (column i of X below the diagonal)``."""
    p = iv.rotate_layer.parametrizations.weight
    x = p.original.detach()
    n, k = x.shape
    q = torch.eye(n)
    for i in range(k):
        v = torch.zeros(n)
        v[i] = 1.0
        v[i + 1 :] = x[i + 1 :, i]
        q = q @ (torch.eye(n) - 2 * torch.outer(v, v) / (v @ v))
    return p[0].base @ q[:, :k]


def pair(seed: int = 1, shape=(B, 8)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g), torch.randn(*shape, generator=g)


def at_pos(hand, fn):
    """Edit of block_output 0 applying ``fn`` to position 0 of a 2-D input ([batch, width])."""
    return hand.at_layer(0, lambda h: fn(h[:, 0])[:, None])


# ---------------------------------------------------------------------------------------------
# DAS
# ---------------------------------------------------------------------------------------------


def test_das_interchanges_first_k_rotated_dims(registry, mlp, hand):
    torch.manual_seed(0)
    im = build(RotatedSpaceIntervention, registry, mlp)
    iv = only(im)
    assert iv.embed_dim == hand.H
    perturb(iv)
    r = hand_rotation(iv)
    assert_close(r, iv.rotate_layer.weight.detach())  # our R is the parametrized weight
    assert_close(r.T @ r, torch.eye(hand.H), atol=1e-5, rtol=0)
    base, src = pair()
    hs = hand.hidden(mlp, src, 0)[:, 0]

    def swap(hb):
        rb, rs = hb @ r, hs @ r
        return torch.cat([rs[:, :3], rb[:, 3:]], -1) @ r.T

    iv.set_interchange_dim(3)
    _, out = im({"inputs_embeds": base}, [{"inputs_embeds": src}], unit_locations={"sources->base": 0})
    assert_close(out["logits"], hand.forward(mlp, base, at_pos(hand, swap)))

    # the default interchanges every rotated dim: the base takes the source's state
    iv.set_interchange_dim(None)
    _, out = im({"inputs_embeds": base}, [{"inputs_embeds": src}], unit_locations={"sources->base": 0})
    assert_close(out["logits"], hand.forward(mlp, base, at_pos(hand, lambda hb: hs)))


def test_das_subspaces_per_example_and_partitions(registry, mlp, hand):
    torch.manual_seed(0)
    base, src = pair(2)
    hs = hand.hidden(mlp, src, 0)[:, 0]

    def expected(iv, dims_per_example):
        r = iv.rotate_layer.weight.detach()

        def swap(hb):
            rb, rs = (hb @ r).clone(), hs @ r
            for i, dims in enumerate(dims_per_example):
                rb[i, dims] = rs[i, dims]
            return rb @ r.T

        return hand.forward(mlp, base, at_pos(hand, swap))

    im = build(RotatedSpaceIntervention, registry, mlp)
    perturb(only(im))
    subs = [[0, 2], [5], [1, 3, 7], []]
    _, out = im(
        {"inputs_embeds": base},
        [{"inputs_embeds": src}],
        unit_locations={"sources->base": 0},
        subspaces=[subs],
    )
    assert_close(out["logits"], expected(only(im), subs))

    part = build(RotatedSpaceIntervention, registry, mlp, subspace_partition=[[0, 3], [3, 8]])
    perturb(only(part))
    _, out = part(
        {"inputs_embeds": base},
        [{"inputs_embeds": src}],
        unit_locations={"sources->base": 0},
        subspaces=[[[1], [0], [0, 1], [1]]],
    )
    dims = [[3, 4, 5, 6, 7], [0, 1, 2], list(range(8)), [3, 4, 5, 6, 7]]
    assert_close(out["logits"], expected(only(part), dims))


def test_das_several_units_are_concatenated(registry, mlp, hand):
    torch.manual_seed(0)
    base, src = pair(3, shape=(B, 5, 8))
    im = build(RotatedSpaceIntervention, registry, mlp, max_number_of_units=2)
    iv = only(im)
    assert iv.embed_dim == 2 * hand.H  # the units' width times max_number_of_units
    perturb(iv)
    iv.set_interchange_dim(5)
    r = iv.rotate_layer.weight.detach()
    pos_b = [[1, 3], [0, 4], [2, 3], [4, 1]]
    pos_s = [[0, 2], [1, 1], [3, 4], [2, 0]]
    hs = hand.hidden(mlp, src, 0)
    rows = torch.arange(B)[:, None]

    def swap(h):
        hb = h[rows, torch.tensor(pos_b)].reshape(B, 16)
        hsrc = hs[rows, torch.tensor(pos_s)].reshape(B, 16)
        rb, rsrc = hb @ r, hsrc @ r
        new = (torch.cat([rsrc[:, :5], rb[:, 5:]], -1) @ r.T).reshape(B, 2, 8)
        h = h.clone()
        h[rows, torch.tensor(pos_b)] = new
        return h

    _, out = im(
        {"inputs_embeds": base},
        [{"inputs_embeds": src}],
        unit_locations={"sources->base": ([pos_s], [pos_b])},
    )
    assert_close(out["logits"], hand.forward(mlp, base, hand.at_layer(0, swap)))


def test_das_whole_tensor_and_constant_source(registry, mlp, hand):
    torch.manual_seed(0)
    im = build(RotatedSpaceIntervention, registry, mlp)
    iv = only(im)
    perturb(iv)
    r = iv.rotate_layer.weight.detach()
    base, src = pair(4, shape=(B, 3, 8))
    hs = hand.hidden(mlp, src, 0)
    subs = [[0], [1, 2], [7], [3, 4, 5]]

    def swap(h):
        rb, rs = (h @ r).clone(), hs @ r
        for i, dims in enumerate(subs):
            rb[i, :, dims] = rs[i, :, dims]
        return rb @ r.T

    # no unit_locations: the whole [batch, positions, width] tensor, every position
    _, out = im({"inputs_embeds": base}, [{"inputs_embeds": src}], subspaces=[subs])
    assert_close(out["logits"], hand.forward(mlp, base, hand.at_layer(0, swap)))

    vec = torch.randn(8)
    iv.set_interchange_dim(2)

    def const(h):
        rb, rv = h @ r, vec @ r
        return torch.cat([rv[:2].expand(B, 2), rb[:, 2:]], -1) @ r.T

    x = torch.randn(B, 8)
    _, out = im({"inputs_embeds": x}, unit_locations={"base": 0}, source_representations=vec)
    assert_close(out["logits"], hand.forward(mlp, x, at_pos(hand, const)))


def test_low_rank_das(registry, mlp, hand):
    torch.manual_seed(0)
    im = build(LowRankRotatedSpaceIntervention, registry, mlp, low_rank_dimension=3)
    iv = only(im)
    perturb(iv)
    r = hand_low_rank_basis(iv)
    assert r.shape == (8, 3)
    assert_close(r, iv.rotate_layer.weight.detach())
    assert_close(r.T @ r, torch.eye(3), atol=1e-5, rtol=0)
    base, src = pair(5)
    hs = hand.hidden(mlp, src, 0)[:, 0]
    _, out = im({"inputs_embeds": base}, [{"inputs_embeds": src}], unit_locations={"sources->base": 0})
    assert_close(out["logits"], hand.forward(mlp, base, at_pos(hand, lambda hb: hb + (hs - hb) @ r @ r.T)))

    subs = [[0], [1, 2], [0, 2], []]

    def by_columns(hb):
        rows = []
        for i, cols in enumerate(subs):
            rc = r[:, cols]
            rows.append(hb[i] + (hs[i] - hb[i]) @ rc @ rc.T)
        return torch.stack(rows)

    _, out = im(
        {"inputs_embeds": base},
        [{"inputs_embeds": src}],
        unit_locations={"sources->base": 0},
        subspaces=[subs],
    )
    assert_close(out["logits"], hand.forward(mlp, base, at_pos(hand, by_columns)))


def test_boundless_das_mask_and_boundary_gradient(registry, mlp, hand):
    torch.manual_seed(0)
    im = build(BoundlessRotatedSpaceIntervention, registry, mlp)
    iv = only(im)
    perturb(iv.rotate_layer)
    r = iv.rotate_layer.weight.detach()
    iv.set_intervention_boundaries(0.4)
    im.set_temperature(0.5)
    assert iv.get_temperature().item() == 0.5 and "temperature" in dict(iv.named_buffers())
    t, b = 0.5, 0.4 * 8
    m = torch.tensor(
        [1 / (1 + math.exp(-(i + 0.5) / t)) / (1 + math.exp(-(b - i - 0.5) / t)) for i in range(8)]
    )
    base, src = pair(6)
    hs = hand.hidden(mlp, src, 0)[:, 0]
    _, out = im({"inputs_embeds": base}, [{"inputs_embeds": src}], unit_locations={"sources->base": 0})
    expected = hand.forward(mlp, base, at_pos(hand, lambda hb: ((1 - m) * (hb @ r) + m * (hs @ r)) @ r.T))
    assert_close(out["logits"], expected)
    out["logits"].square().sum().backward()
    assert iv.intervention_boundaries.grad is not None and iv.intervention_boundaries.grad.abs().item() > 0

    # annealed: a hard boundary at 0.5 * 8 = 4 rotated dims
    iv.set_intervention_boundaries(0.5)
    iv.set_temperature(1e-4)
    _, out = im({"inputs_embeds": base}, [{"inputs_embeds": src}], unit_locations={"sources->base": 0})
    hard = lambda hb: torch.cat([(hs @ r)[:, :4], (hb @ r)[:, 4:]], -1) @ r.T
    assert_close(out["logits"], hand.forward(mlp, base, at_pos(hand, hard)))


def test_sigmoid_mask_rotated(registry, mlp, hand):
    torch.manual_seed(0)
    im = build(SigmoidMaskRotatedSpaceIntervention, registry, mlp)
    iv = only(im)
    perturb(iv.rotate_layer)
    with torch.no_grad():
        iv.masks.copy_(torch.randn(8) * 3)
    iv.set_temperature(2.0)
    r = iv.rotate_layer.weight.detach()
    m = 1 / (1 + torch.exp(-iv.masks.detach() / 2.0))
    base, src = pair(7)
    hs = hand.hidden(mlp, src, 0)[:, 0]
    _, out = im({"inputs_embeds": base}, [{"inputs_embeds": src}], unit_locations={"sources->base": 0})
    expected = hand.forward(mlp, base, at_pos(hand, lambda hb: ((1 - m) * (hb @ r) + m * (hs @ r)) @ r.T))
    assert_close(out["logits"], expected)

    # subspaces restrict the learned mask to the named rotated dims
    subs = [[0, 1], [2], [], [3, 4, 5, 6, 7]]

    def restricted(hb):
        rows = []
        for i, dims in enumerate(subs):
            mi = torch.zeros(8)
            mi[dims] = m[dims]
            rows.append(((1 - mi) * (hb[i] @ r) + mi * (hs[i] @ r)) @ r.T)
        return torch.stack(rows)

    _, out = im(
        {"inputs_embeds": base},
        [{"inputs_embeds": src}],
        unit_locations={"sources->base": 0},
        subspaces=[subs],
    )
    assert_close(out["logits"], hand.forward(mlp, base, at_pos(hand, restricted)))


def test_sigmoid_mask_per_feature_on_each_unit(registry, mlp, hand):
    torch.manual_seed(0)
    im = build(SigmoidMaskIntervention, registry, mlp, max_number_of_units=2)
    iv = only(im)
    assert iv.embed_dim == hand.H  # localist: one unit's width
    with torch.no_grad():
        iv.mask.copy_(torch.randn(8) * 0.02)
    m = 1 / (1 + torch.exp(-iv.mask.detach() / 0.01))
    base, src = pair(8, shape=(B, 4, 8))
    hs = hand.hidden(mlp, src, 0)

    def mix(h):
        h = h.clone()
        h[:, [1, 2]] = (1 - m) * h[:, [1, 2]] + m * hs[:, [0, 3]]
        return h

    _, out = im(
        {"inputs_embeds": base}, [{"inputs_embeds": src}], unit_locations={"sources->base": ([0, 3], [1, 2])}
    )
    assert_close(out["logits"], hand.forward(mlp, base, hand.at_layer(0, mix)))


# ---------------------------------------------------------------------------------------------
# PCA
# ---------------------------------------------------------------------------------------------


def test_pca_fit_from_collected_activations(registry, mlp, hand):
    torch.manual_seed(0)
    data = torch.randn(64, 8) @ torch.randn(8, 8)
    collect = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention_type": pv.CollectIntervention},
        mlp,
        registry=registry,
    )
    (_, collected), _ = collect({"inputs_embeds": data}, unit_locations={"base": 0})

    im = build(PCARotatedSpaceIntervention, registry, mlp, low_rank_dimension=3)
    iv = only(im)
    assert iv.fit(collected) is iv and iv.pca_components.shape == (3, 8)
    iv.set_interchange_dim(2)

    # the same basis by hand: eigenvectors of the standardised covariance (float64)
    h = hand.hidden(mlp, data, 0)[:, 0].double()
    mean, std = h.mean(0), h.std(0, correction=0)
    z = (h - mean) / std
    vals, vecs = torch.linalg.eigh(z.T @ z / (len(z) - 1))
    top = vecs[:, torch.argsort(vals, descending=True)[:2]]  # [8, 2]
    proj = (top @ top.T).float()  # sign-free
    c = iv.pca_components[:2]
    assert_close(c.T @ c, proj, atol=1e-4, rtol=0)
    assert_close(iv.pca_mean, mean.float())
    assert_close(iv.pca_std, std.float())
    assert_close(
        iv.explained_variance_[:2], vals.sort(descending=True).values[:2].float(), atol=1e-4, rtol=1e-4
    )

    base, src = pair(9)
    hs = hand.hidden(mlp, src, 0)[:, 0]
    m, s = mean.float(), std.float()
    swap = lambda hb: hb + (((hs - m) / s - (hb - m) / s) @ proj) * s
    _, out = im({"inputs_embeds": base}, [{"inputs_embeds": src}], unit_locations={"sources->base": 0})
    assert_close(out["logits"], hand.forward(mlp, base, at_pos(hand, swap)), atol=1e-4, rtol=1e-4)

    # built from a basis instead of fitted, all 8 components: interchanging all of them is a swap
    full = PCARotatedSpaceIntervention(embed_dim=8, pca_components=vecs.T.float(), pca_mean=m, pca_std=s)
    im2 = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention": full}, mlp, registry=registry
    )
    _, out = im2({"inputs_embeds": base}, [{"inputs_embeds": src}], unit_locations={"sources->base": 0})
    assert_close(out["logits"], hand.forward(mlp, base, at_pos(hand, lambda hb: hs)), atol=1e-4, rtol=1e-4)


# ---------------------------------------------------------------------------------------------
# autoencoders
# ---------------------------------------------------------------------------------------------


def test_autoencoder_interchanges_latents(registry, mlp, hand):
    torch.manual_seed(0)
    im = build(AutoencoderIntervention, registry, mlp, latent_dim=6)
    iv = only(im)
    perturb(iv, 0.1)
    enc, dec = iv.autoencoder.encoder[0], iv.autoencoder.decoder[0]
    encode = lambda x: torch.relu((x - dec.bias) @ enc.weight.T + enc.bias)
    decode = lambda z: z @ dec.weight.T + dec.bias
    base, src = pair(10)
    hb = hand.hidden(mlp, base, 0)[:, 0]
    hs = hand.hidden(mlp, src, 0)[:, 0]
    subs = [[0, 1], [5], [2, 3, 4], []]
    z = encode(hb).detach().clone()
    for i, dims in enumerate(subs):
        z[i, dims] = encode(hs)[i, dims].detach()
    res = im(
        {"inputs_embeds": base},
        [{"inputs_embeds": src}],
        unit_locations={"sources->base": 0},
        subspaces=[subs],
        return_dict=True,
    )
    assert_close(res.intervened_outputs["logits"], hand.forward(mlp, base, at_pos(hand, lambda h: decode(z))))
    (latent,) = res.latents[im.sorted_keys[0]]
    assert_close(latent[:, 0], z)

    keep = AutoencoderIntervention(embed_dim=8, latent_dim=6, keep_error=True)
    keep.load_state_dict(iv.state_dict())
    im2 = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention": keep}, mlp, registry=registry
    )
    _, out = im2(
        {"inputs_embeds": base},
        [{"inputs_embeds": src}],
        unit_locations={"sources->base": 0},
        subspaces=[subs],
    )
    err = lambda h: decode(z) + (h - decode(encode(h)))
    assert_close(out["logits"], hand.forward(mlp, base, at_pos(hand, err)))


def write_sae(path, d=8, latent=12, seed=0):
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    weights = {
        "W_enc": torch.randn(d, latent, generator=g) * 0.5,
        "b_enc": torch.randn(latent, generator=g) * 0.1,
        "threshold": torch.rand(latent, generator=g) * 0.3,
        "W_dec": torch.randn(latent, d, generator=g) * 0.5,
        "b_dec": torch.randn(d, generator=g) * 0.1,
    }
    save_file(weights, str(path))
    return weights


def test_jumprelu_sae_from_safetensors(registry, mlp, hand, tmp_path):
    w = write_sae(tmp_path / "sae.safetensors")
    iv = JumpReLUAutoencoderIntervention.from_safetensors(tmp_path / "sae.safetensors", keep_error=True)
    assert (iv.embed_dim, iv.latent_dim) == (8, 12)
    for k, v in w.items():
        assert torch.equal(getattr(iv, k).detach(), v)

    def encode(x):  # Gemma Scope's reference
        pre = x @ w["W_enc"] + w["b_enc"]
        return (pre > w["threshold"]) * torch.nn.functional.relu(pre)

    decode = lambda z: z @ w["W_dec"] + w["b_dec"]
    im = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention": iv}, mlp, registry=registry
    )
    base, src = pair(11)
    hs = hand.hidden(mlp, src, 0)[:, 0]
    subs = [[0, 3], [1], [], list(range(12))]

    def swap(h):
        z = encode(h).clone()
        for i, dims in enumerate(subs):
            z[i, dims] = encode(hs)[i, dims]
        return decode(z) + h - decode(encode(h))

    _, out = im(
        {"inputs_embeds": base},
        [{"inputs_embeds": src}],
        unit_locations={"sources->base": 0},
        subspaces=[subs],
    )
    assert_close(out["logits"], hand.forward(mlp, base, at_pos(hand, swap)))

    # steering: no source; feature 3 raised by 2.5 adds 2.5 * W_dec[3] (the error is kept)
    iv.set_latent_steering({3: 2.5})
    _, out = im({"inputs_embeds": base}, unit_locations={"base": 0})

    def steer(h):
        z = encode(h).clone()
        z[:, 3] += 2.5
        return decode(z) + h - decode(encode(h))

    assert_close(out["logits"], hand.forward(mlp, base, at_pos(hand, steer)))
    assert_close(out["logits"], hand.forward(mlp, base, at_pos(hand, lambda h: h + 2.5 * w["W_dec"][3])))

    # the threshold is a step: latents at or under it are exactly zero
    z = iv.encode(hand.hidden(mlp, base, 0)[:, 0])
    pre = hand.hidden(mlp, base, 0)[:, 0] @ w["W_enc"] + w["b_enc"]
    assert torch.equal(z == 0, (pre <= w["threshold"]) | (pre <= 0))


def test_jumprelu_load_sae_weights_checks_names_and_shapes(tmp_path):
    iv = JumpReLUAutoencoderIntervention(embed_dim=8, latent_dim=12)
    w = write_sae(tmp_path / "sae.safetensors")
    log = {k: v for k, v in w.items() if k != "threshold"} | {"log_threshold": w["threshold"].log()}
    iv.load_sae_weights(log)
    assert_close(iv.threshold.detach(), w["threshold"])
    with pytest.raises(pv.ArtifactError, match="lack b_dec"):
        iv.load_sae_weights({k: v for k, v in w.items() if k != "b_dec"})
    with pytest.raises(pv.ArtifactError, match=r"W_enc has shape \(12, 8\)"):
        iv.load_sae_weights(w | {"W_enc": w["W_enc"].T})
    with pytest.raises(pv.ArtifactError, match="2 .safetensors files"):
        write_sae(tmp_path / "other.safetensors")
        JumpReLUAutoencoderIntervention.from_safetensors(tmp_path)


# ---------------------------------------------------------------------------------------------
# ReFT
# ---------------------------------------------------------------------------------------------


def _reft_expected(iv, h, subs=None):
    """pyreft's formulas, written out from the intervention's tensors."""
    if isinstance(iv, NoreftIntervention):
        wp, bp = iv.proj_layer.weight, iv.proj_layer.bias
        w, b = iv.learned_source.weight, iv.learned_source.bias
        delta = torch.relu(h @ w.T + b) - (h @ wp.T + bp)
        if subs is not None:
            delta = delta * subs
        return h + delta @ wp
    rt = iv.rotate_layer.weight  # Rᵀ, [n, r]
    if isinstance(iv, ConsreftIntervention):
        delta = iv.learned_source - h @ rt
    else:
        w, b = iv.learned_source.weight, iv.learned_source.bias
        learned = h @ w.T + b
        if isinstance(iv, LoreftIntervention):
            delta = learned - h @ rt
        else:
            delta = torch.tanh(learned)
    if subs is not None:
        delta = delta * subs
    return h + delta @ rt.T


@pytest.mark.parametrize(
    "cls, options",
    [
        (LoreftIntervention, {}),
        (NoreftIntervention, {"act_fn": "relu", "add_bias": True}),
        (DireftIntervention, {"act_fn": "tanh"}),
        (ConsreftIntervention, {}),
    ],
)
def test_reft_family_edits_each_position_without_a_source(registry, mlp, hand, cls, options):
    torch.manual_seed(0)
    iv = cls(embed_dim=8, low_rank_dimension=3, **options)
    perturb(iv)
    im = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention": iv, "max_number_of_units": 2},
        mlp,
        registry=registry,
    )
    assert iv.embed_dim == 8 and iv.keep_last_dim  # per position, not concatenated
    if hasattr(iv, "rotate_layer"):
        rt = iv.rotate_layer.weight.detach()
        assert_close(rt.T @ rt, torch.eye(3), atol=1e-5, rtol=0)
    x = torch.randn(B, 5, 8)

    def edit(h):
        h = h.clone()
        h[:, [1, 3]] = _reft_expected(iv, h[:, [1, 3]])
        return h

    with torch.no_grad():
        _, out = im({"inputs_embeds": x}, unit_locations={"base": [1, 3]})
        assert_close(out["logits"], hand.forward(mlp, x, hand.at_layer(0, edit)))

        # subspaces pick which of the r directions each example edits
        subs = [[0], [1, 2], [], [0, 1, 2]]
        mask = torch.zeros(B, 1, 3)
        for i, dims in enumerate(subs):
            mask[i, 0, dims] = 1

        def edit_sub(h):
            h = h.clone()
            h[:, [1, 3]] = _reft_expected(iv, h[:, [1, 3]], mask)
            return h

        _, out = im({"inputs_embeds": x}, unit_locations={"base": [1, 3]}, subspaces=[subs])
        assert_close(out["logits"], hand.forward(mlp, x, hand.at_layer(0, edit_sub)))


def test_reft_dropout_activation_and_dtype():
    torch.manual_seed(0)
    iv = LoreftIntervention(embed_dim=8, low_rank_dimension=2, dropout=0.5, act_fn="gelu")
    h = torch.randn(B, 3, 8)
    rt = iv.rotate_layer.weight.detach()
    w, b = iv.learned_source.weight.detach(), iv.learned_source.bias.detach()
    expected = h + (torch.nn.functional.gelu(h @ w.T + b) - h @ rt) @ rt.T
    with torch.no_grad():
        iv.eval()
        assert_close(iv(h), expected)
        iv.train()
        out = iv(h)
    # pyreft drops out the whole output: each entry is 0 or scaled by 1 / (1 - p)
    kept = out != 0
    assert 0 < kept.float().mean() < 1
    assert_close(out[kept], 2 * expected[kept])

    bf = LoreftIntervention(embed_dim=8, low_rank_dimension=2, dtype=torch.bfloat16)
    assert bf.learned_source.weight.dtype == torch.bfloat16
    assert bf.rotate_layer.weight.dtype == torch.float32  # the orthogonal basis stays float32
    assert bf(h).dtype == h.dtype
    assert bf.init_kwargs["dtype"] == "bfloat16"


# ---------------------------------------------------------------------------------------------
# training: gradients reach the intervention, bases stay orthonormal
# ---------------------------------------------------------------------------------------------

ALL = [
    (RotatedSpaceIntervention, {}),
    (LowRankRotatedSpaceIntervention, {"low_rank_dimension": 3}),
    (BoundlessRotatedSpaceIntervention, {}),
    (SigmoidMaskRotatedSpaceIntervention, {}),
    (SigmoidMaskIntervention, {}),
    (AutoencoderIntervention, {"latent_dim": 6}),
    (JumpReLUAutoencoderIntervention, {"latent_dim": 12}),
    (LoreftIntervention, {"low_rank_dimension": 3}),
    (NoreftIntervention, {"low_rank_dimension": 3}),
    (DireftIntervention, {"low_rank_dimension": 3}),
    (ConsreftIntervention, {"low_rank_dimension": 3}),
]


def _trainable(cls, registry, mlp, rep):
    im = build(cls, registry, mlp, max_number_of_units=2, **rep)
    if cls is RotatedSpaceIntervention:
        only(im).set_interchange_dim(5)  # interchanging every dim would not depend on R
    return im


def _loss(im, x, src, labels):
    sources = None if isinstance(only(im), pv.SourcelessIntervention) else [{"inputs_embeds": src}]
    locs = {"base": [0, 2]} if sources is None else {"sources->base": ([0, 2], [1, 2])}
    _, out = im({"inputs_embeds": x}, sources, unit_locations=locs)
    return torch.nn.functional.cross_entropy(out["logits"].reshape(-1, 3), labels.reshape(-1))


@pytest.mark.parametrize("cls, rep", ALL, ids=[c.__name__ for c, _ in ALL])
def test_gradients_reach_the_intervention_only(registry, mlp, cls, rep):
    torch.manual_seed(0)
    im = _trainable(cls, registry, mlp, rep)
    x, src = torch.randn(B, 3, 8), torch.randn(B, 3, 8)
    labels = torch.randint(0, 3, (B, 3))
    _loss(im, x, src, labels).backward()
    params = dict(only(im).named_parameters())
    assert params and set(params) == {n for n, p in params.items() if p.requires_grad}
    for name, p in params.items():
        if cls is JumpReLUAutoencoderIntervention and name == "threshold":
            assert p.grad is None  # a step function: no gradient without an estimator
            continue
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    assert all(p.grad is None for p in mlp.parameters())
    assert im.get_trainable_parameters() and im.count_parameters() == sum(p.numel() for p in params.values())


ORTHO = [
    c
    for c in ALL
    if c[0]
    not in (
        SigmoidMaskIntervention,
        AutoencoderIntervention,
        JumpReLUAutoencoderIntervention,
        NoreftIntervention,
    )
]


@pytest.mark.parametrize("cls, rep", ORTHO, ids=[c.__name__ for c, _ in ORTHO])
def test_bases_stay_orthonormal_through_optimizer_steps(registry, mlp, cls, rep):
    torch.manual_seed(0)
    im = _trainable(cls, registry, mlp, rep)
    iv = only(im)
    before = iv.rotate_layer.weight.detach().clone()
    opt = torch.optim.Adam(im.get_trainable_parameters(), lr=0.05)
    x, src = torch.randn(B, 3, 8), torch.randn(B, 3, 8)
    labels = torch.randint(0, 3, (B, 3))
    losses = []
    for _ in range(8):
        opt.zero_grad()
        loss = _loss(im, x, src, labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    r = iv.rotate_layer.weight.detach()
    assert not torch.allclose(r, before, atol=1e-3)
    assert_close(r.T @ r, torch.eye(r.shape[1]), atol=1e-5, rtol=0)
    assert losses[-1] < losses[0]


@pytest.mark.parametrize(
    "cls", [LowRankRotatedSpaceIntervention, LoreftIntervention, RotatedSpaceIntervention]
)
def test_weight_decay_keeps_bases_orthonormal(cls):
    # AdamW's default weight decay shrinks every entry of the parametrization's tensor, the
    # diagonal included; torch's own Householder map reads column signs from that diagonal.
    torch.manual_seed(0)
    iv = cls(embed_dim=8, low_rank_dimension=3)
    opt = torch.optim.AdamW(iv.parameters(), lr=1e-2, weight_decay=0.5)
    x = torch.randn(B, 8)
    for _ in range(10):
        opt.zero_grad()
        iv(x, x.flip(0)).square().sum().backward()
        opt.step()
    r = iv.rotate_layer.weight.detach()
    assert_close(r.T @ r, torch.eye(r.shape[1]), atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------


def test_errors_say_what_to_fix(registry, mlp):
    x, src = torch.randn(B, 8), torch.randn(B, 8)
    im = build(RotatedSpaceIntervention, registry, mlp)
    with pytest.raises(pv.ConfigError, match="needs a source"):
        im({"inputs_embeds": x}, unit_locations={"base": 0})
    with pytest.raises(pv.SubspaceError, match="out of range"):
        im(
            {"inputs_embeds": x},
            [{"inputs_embeds": src}],
            unit_locations={"sources->base": 0},
            subspaces=[[9]],
        )
    im.set_interchange_dim(9)
    with pytest.raises(pv.SubspaceError, match="interchange_dim 9"):
        im({"inputs_embeds": x}, [{"inputs_embeds": src}], unit_locations={"sources->base": 0})
    with pytest.raises(pv.ConfigError, match="low_rank_dimension"):
        build(LowRankRotatedSpaceIntervention, registry, mlp)
    with pytest.raises(pv.ConfigError, match="low_rank_dimension=9 is more than embed_dim=8"):
        build(LoreftIntervention, registry, mlp, low_rank_dimension=9)
    with pytest.raises(pv.ConfigError, match="latent_dim"):
        build(AutoencoderIntervention, registry, mlp)
    with pytest.raises(pv.ConfigError, match="embed_dim"):
        RotatedSpaceIntervention()
    with pytest.raises(pv.ConfigError, match="Did you mean: relu"):
        LoreftIntervention(embed_dim=8, low_rank_dimension=2, act_fn="rleu")
    with pytest.raises(pv.ConfigError, match="positive"):
        BoundlessRotatedSpaceIntervention(embed_dim=8).set_temperature(-1.0)
    pca = build(PCARotatedSpaceIntervention, registry, mlp)
    with pytest.raises(pv.ConfigError, match=r"call \.fit"):
        pca({"inputs_embeds": x}, [{"inputs_embeds": src}], unit_locations={"sources->base": 0})
    with pytest.raises(pv.ConfigError, match=r"shape \[k, 8\]"):
        PCARotatedSpaceIntervention(embed_dim=8, pca_components=torch.randn(3, 5))
    with pytest.raises(pv.ConfigError, match="at least 2"):
        only(pca).fit(torch.randn(1, 8))
    with pytest.raises(pv.SubspaceError, match="features run 0..11"):
        JumpReLUAutoencoderIntervention(embed_dim=8, latent_dim=12).set_latent_steering({12: 1.0})
    for err in (pv.ConfigError, pv.SubspaceError, pv.ArtifactError):
        assert issubclass(err, pv.VeneError)
