"""Every trainable intervention saves through ``IntervenableModel.save`` (config.json +
safetensors) and, loaded into a fresh model, reproduces its outputs bit for bit."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file
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

B = 4


def only(im):
    (iv,) = im.interventions.values()
    return iv


def randomize(iv) -> None:
    with torch.no_grad():
        for p in iv.parameters():
            p.add_(0.3 * torch.randn_like(p))


def run(im, x, src):
    iv = only(im)
    if isinstance(iv, pv.SourcelessIntervention):
        _, out = im({"inputs_embeds": x}, unit_locations={"base": [0, 2]})
    else:
        _, out = im(
            {"inputs_embeds": x}, [{"inputs_embeds": src}], unit_locations={"sources->base": ([1, 0], [0, 2])}
        )
    return out["logits"]


def roundtrip(im, tmp_path, registry, hand) -> pv.IntervenableModel:
    directory = str(tmp_path / "artifact")
    im.save(directory)
    assert sorted(os.listdir(directory)) == ["config.json", "interventions.safetensors"]
    fresh = hand.make_mlp()  # same weights, another object
    assert fresh is not im.model
    return pv.IntervenableModel.load(directory, fresh, registry=registry)


def assert_same_state(a, b) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]), k


CASES = [
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


@pytest.mark.parametrize("cls, rep", CASES, ids=[c.__name__ for c, _ in CASES])
def test_randomized_intervention_reloads_bit_exactly(registry, hand, tmp_path, cls, rep):
    torch.manual_seed(0)
    im = pv.IntervenableModel(
        {"layer": 0, "component": "block_output", "intervention_type": cls, "max_number_of_units": 2, **rep},
        hand.make_mlp(),
        registry=registry,
    )
    randomize(only(im))
    x, src = torch.randn(B, 3, 8), torch.randn(B, 3, 8)
    before = run(im, x, src)
    assert not torch.allclose(before, im.model(x)["logits"])  # the intervention does something
    loaded = roundtrip(im, tmp_path, registry, hand)
    assert type(only(loaded)) is cls
    assert_same_state(only(im), only(loaded))
    assert torch.equal(run(loaded, x, src), before)
    with open(tmp_path / "artifact" / "config.json") as f:
        config = json.load(f)
    assert config["representations"][0]["intervention_type"] == cls.__name__


def test_trained_das_reloads_and_keeps_training(registry, hand, tmp_path):
    torch.manual_seed(0)
    im = pv.IntervenableModel(
        {
            "layer": 0,
            "component": "block_output",
            "intervention_type": RotatedSpaceIntervention,
            "max_number_of_units": 2,
        },
        hand.make_mlp(),
        registry=registry,
    )
    im.set_interchange_dim(5)
    x, src = torch.randn(B, 3, 8), torch.randn(B, 3, 8)
    labels = torch.randint(0, 3, (B, 3))
    opt = torch.optim.Adam(im.get_trainable_parameters(), lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(run(im, x, src).reshape(-1, 3), labels.reshape(-1)).backward()
        opt.step()
    before = run(im, x, src)
    loaded = roundtrip(im, tmp_path, registry, hand)
    iv = only(loaded)
    assert iv.interchange_dim == 5  # set after construction, still saved
    assert_same_state(only(im), iv)
    assert torch.equal(iv.rotate_layer.weight, only(im).rotate_layer.weight)
    assert torch.equal(run(loaded, x, src), before)
    # the parametrization came back whole: a further step keeps R orthogonal
    opt = torch.optim.Adam(loaded.get_trainable_parameters(), lr=0.05)
    torch.nn.functional.cross_entropy(run(loaded, x, src).reshape(-1, 3), labels.reshape(-1)).backward()
    opt.step()
    r = iv.rotate_layer.weight.detach()
    assert not torch.equal(r, only(im).rotate_layer.weight.detach())
    assert_close(r.T @ r, torch.eye(16), atol=1e-5, rtol=0)


def test_states_set_by_methods_are_saved(registry, hand, tmp_path):
    """Temperature, boundary, fitted PCA basis, SAE steering and a ReFT dtype survive a save."""
    torch.manual_seed(0)
    mlp = hand.make_mlp()
    boundless = BoundlessRotatedSpaceIntervention(embed_dim=16, init_boundary=0.3)
    boundless.set_temperature(0.25)
    pca = PCARotatedSpaceIntervention(embed_dim=16)
    pca.fit(torch.randn(40, 2, 8), n_components=5)  # [N, units, width], units concatenated
    pca.set_interchange_dim(3)
    sae_file = tmp_path / "sae.safetensors"
    save_file(
        {
            "W_enc": torch.randn(8, 10),
            "b_enc": torch.randn(10),
            "threshold": torch.rand(10),
            "W_dec": torch.randn(10, 8),
            "b_dec": torch.randn(8),
        },
        str(sae_file),
    )
    sae = JumpReLUAutoencoderIntervention.from_safetensors(sae_file, keep_error=True)
    sae.set_latent_steering({2: 3.0, 7: -1.0})
    reft = LoreftIntervention(embed_dim=8, low_rank_dimension=2, dtype=torch.bfloat16, act_fn="relu")
    randomize(reft)
    reps = [
        {"layer": 0, "component": "block_output", "intervention": boundless, "max_number_of_units": 2},
        {"layer": 1, "component": "block_output", "intervention": pca, "max_number_of_units": 2},
        {"layer": 0, "component": "block_input", "intervention": sae},
        {"layer": 1, "component": "block_input", "intervention": reft},
    ]
    im = pv.IntervenableModel(reps, mlp, registry=registry)
    x, src = torch.randn(B, 3, 8), torch.randn(B, 3, 8)
    # [intervention][example][unit]; one source input per intervention (each is its own group)
    locs = {"sources->base": ([[[1, 0]] * B] * 2 + [[[1]] * B] * 2, [[[0, 2]] * B] * 2 + [[[0]] * B] * 2)}
    _, before = im({"inputs_embeds": x}, [{"inputs_embeds": src}] * 4, unit_locations=locs)
    assert not torch.allclose(before["logits"], mlp(x)["logits"])
    directory = str(tmp_path / "artifact")
    im.save(directory)
    with open(os.path.join(directory, "config.json")) as f:
        kwargs = json.load(f)["intervention_kwargs"]
    assert kwargs[1]["n_components"] == 5 and kwargs[1]["interchange_dim"] == 3
    assert "pca_components" not in kwargs[1]
    assert kwargs[2]["keep_error"] is True and kwargs[2]["latent_dim"] == 10
    assert kwargs[3]["dtype"] == "bfloat16"
    weights = load_file(os.path.join(directory, "interventions.safetensors"))
    assert any(k.endswith(".temperature") for k in weights)

    loaded = pv.IntervenableModel.load(directory, hand.make_mlp(), registry=registry)
    ivs = list(loaded.interventions.values())
    assert ivs[0].get_temperature().item() == 0.25
    assert ivs[1].pca_components.shape == (5, 16) and ivs[1].interchange_dim == 3
    assert ivs[2].latent_steering[2].item() == 3.0
    assert ivs[3].learned_source.weight.dtype == torch.bfloat16
    for a, b in zip(im.interventions.values(), ivs):
        assert_same_state(a, b)
    _, after = loaded({"inputs_embeds": x}, [{"inputs_embeds": src}] * 4, unit_locations=locs)
    assert torch.equal(after["logits"], before["logits"])


def test_artifact_for_another_width_is_refused(registry, hand, tmp_path):
    im = pv.IntervenableModel(
        {
            "layer": 0,
            "component": "block_output",
            "intervention_type": LowRankRotatedSpaceIntervention,
            "low_rank_dimension": 2,
        },
        hand.make_mlp(),
        registry=registry,
    )
    im.save(str(tmp_path / "artifact"))
    _, _, wider = pv.create_mlp_classifier(pv.MLPConfig(h_dim=12, n_layer=2, num_classes=3))
    with pytest.raises(pv.ArtifactError, match="width"):
        pv.IntervenableModel.load(str(tmp_path / "artifact"), wider, registry=registry)
