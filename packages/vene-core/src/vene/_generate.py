"""Generation with interventions: ``generate()``, and the clock that follows its forward calls.

The model's own ``generate`` calls its forward once per new token (once for the prompt, then
once per step, with or without the KV cache). A pre-hook on the model (the *generation clock*)
numbers those calls and records where each call's tokens start; each write's ``active`` function
reads that clock to pick the positions it intervenes in that call: the prompt's, the chosen
generated tokens', or none. Sources are read once, before generating, by the usual source passes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import torch
from attrs import evolve
from torch import Tensor

from ._base_pass import call_result, site_plan
from ._engine import RunState, Write, run_hooks
from ._errors import ConfigError, VeneError
from ._interventions import DistributedRepresentationIntervention
from ._locations import Loc
from ._units import Unit

if TYPE_CHECKING:
    from ._model import IntervenableModel

__all__ = ["generate"]


def generate(
    im: IntervenableModel,
    base: Mapping[str, Any] | Tensor,
    sources: Any = None,
    unit_locations: Any = None,
    source_representations: Any = None,
    intervene_on_prompt: bool = False,
    subspaces: Any = None,
    output_original_output: bool = False,
    intervene_on_steps: Any = None,
    intervention_additional_kwargs: Mapping[str, Any] | None = None,
    **generate_kwargs: Any,
) -> Any:
    """Generate with interventions; returns ``(original_or_None, generated_ids)``.

    ``base`` is the prompt as model inputs (``{"input_ids": ..., "attention_mask": ...}``;
    left-pad batches); ``generate_kwargs`` go to the model's ``generate``. Where the
    interventions apply:

    - ``intervene_on_prompt=True`` with ``unit_locations``: at those prompt positions.
    - ``intervene_on_prompt=True`` with ``unit_locations=None``: the whole tensor at every
      forward call, prompt and generated tokens (the steering recipe).
    - ``intervene_on_steps``: generated tokens, numbered from 1: step ``k`` is the k-th
      generated token, read at position ``prompt_len + k - 1`` by the next forward call (the
      last generated token is never read). ``"all"``, an int, or an iterable of ints. Without
      the prompt, the default is every generated token (as pyvene), also with
      ``unit_locations``: then each step's one new token is position 0 (pyvene's reading),
      and head units keep their heads.
    - a source read with ``unit_locations=None`` pairs base position ``p`` with source
      position ``p``: it covers the prompt and, by default, the generated tokens whose
      position the source has; a chosen step beyond the source is an error.

    Positions once intervened stay intervened when a call recomputes them
    (``use_cache=False``), so generating with and without the KV cache gives the same tokens.
    Sources are read once, before generating. With a collect intervention the first element is
    ``(original_or_None, activations)``: one tensor per forward call that intervened.
    Generation must feed one new token per sequence and call (greedy, sampling, beam search);
    assisted or speculative decoding is refused.
    """
    if not callable(getattr(im.model, "generate", None)):
        raise ConfigError(
            f"{type(im.model).__name__} has no generate() method; call the IntervenableModel "
            "itself to run a forward pass with interventions."
        )
    if isinstance(base, Tensor):
        base = {"input_ids": base}
    if not isinstance(base, Mapping):
        raise ConfigError(
            "generate() takes the prompt as a dict of model inputs, e.g. "
            f"{{'input_ids': ids, 'attention_mask': mask}}; got {type(base).__name__}."
        )
    if any(s.unit is Unit.T for s in im._slots):
        raise ConfigError("unit 't' (recurrent timesteps) cannot be used with generate().")
    whole = unit_locations is None
    steps = _generation_steps(intervene_on_steps, intervene_on_prompt, whole)
    explicit = intervene_on_steps is not None
    generate: Callable[..., Any] = getattr(im.model, "generate")  # noqa: B009 -- nn.Module types attributes as tensors
    original = generate(**base, **generate_kwargs) if output_original_output else None
    state = RunState()
    call = im._plan(
        base, sources, unit_locations, source_representations, subspaces, intervention_additional_kwargs
    )
    writes = im._source_passes(call, state)
    batch = call.batch
    active: dict[int, list[Write]] = {}
    for i, w in writes.items():
        mine = active.setdefault(i, [])
        fed = isinstance(w.source, Tensor) and call.kinds[i] == "run"
        if whole and fed and w.loc.unit is Unit.POS and w.source.dim() >= 3:
            mine.append(evolve(w, active=_source_active(w, intervene_on_prompt, steps, explicit)))
            continue
        if intervene_on_prompt and whole and steps == "all":
            mine.append(w)  # no `active`: the whole tensor of every call
            continue
        flattens = _flattens(w.intervention, im._slots[i].site.unit_dim(w.loc.unit))
        if not whole and not intervene_on_prompt and not explicit:
            _check_step_locations(w.loc)
        if intervene_on_prompt:
            mine.append(evolve(w, active=_prompt_active(w.loc, whole, flattens)))
        if steps:
            mine.append(evolve(w, active=_generated_active(steps, w.loc, batch, flattens)))
    with run_hooks(im.model, site_plan(im._slots, active), state, _generation_clock):
        generated = generate(**base, **generate_kwargs)
    return call_result(im._slots, im.interventions, original, generated, state, None)


def _generation_steps(steps: Any, on_prompt: bool, whole: bool) -> Any:
    """``intervene_on_steps`` -> ``"all"`` or a frozenset of generated steps (numbered from 1)."""
    if steps is None:
        if on_prompt:
            return "all" if whole else frozenset()
        return "all"  # as pyvene: every call after the prompt, with or without locations
    if isinstance(steps, str):
        if steps != "all":
            raise ConfigError(
                f"intervene_on_steps={steps!r}: give 'all', a step number, or a list of step numbers."
            )
        return "all"
    if isinstance(steps, int) and not isinstance(steps, bool):
        steps = [steps]
    try:
        chosen = frozenset(steps)
    except TypeError:
        chosen = frozenset([None])
    if not all(isinstance(k, int) and not isinstance(k, bool) for k in chosen):
        raise ConfigError(
            f"intervene_on_steps={steps!r}: give 'all', a step number, or a list of step numbers."
        )
    if any(k < 1 for k in chosen):
        raise ConfigError(
            f"intervene_on_steps={sorted(chosen)}: generated steps are numbered from 1 (step k is "
            "the k-th generated token); use intervene_on_prompt=True for the prompt."
        )
    return chosen


def _flattens(iv: Any, width: int | None) -> bool:
    """Whether the engine concatenates the units for this intervention (see ``_engine``)."""
    if not isinstance(iv, DistributedRepresentationIntervention) or iv.keep_last_dim:
        return False
    return not (width is not None and iv.embed_dim == width)


def _check_step_locations(loc: Loc) -> None:
    """pyvene's reading of locations on generated tokens: each call after the prompt feeds one
    new token, position 0 of that call, so position 0 is the only one there is."""
    if loc.index is None or loc.max_index <= 0:
        return
    raise ConfigError(
        f"unit_locations name position {loc.max_index}, but without intervene_on_prompt the "
        "interventions act on generated tokens, and each generation step feeds one new token: "
        "position 0 of that step (as in pyvene). Give position 0 to intervene every generated "
        "token, pass intervene_on_prompt=True to intervene the prompt at these positions, or "
        "intervene_on_steps=... to choose generated tokens."
    )


def _source_active(
    w: Write, on_prompt: bool, steps: Any, explicit: bool
) -> Callable[[RunState], tuple[Loc, Any] | Loc | None]:
    """A whole-tensor source, read position by position: base position p takes source position
    p, in the prompt (with ``on_prompt``) and at the generated tokens chosen, or by default
    at the generated tokens whose position the source has."""
    source: Tensor = w.source
    length = source.shape[1]
    made: dict[tuple[int, ...], tuple[Loc, Tensor]] = {}

    def active(state: RunState) -> tuple[Loc, Any] | Loc | None:
        if state.step < 0:  # a call before generate's first forward (an encoder): all of it
            return w.loc, source
        p = state.prompt_len
        if state.step == 0 and not on_prompt and not explicit and length <= p:
            raise ConfigError(_source_error(length, p, "nothing would be intervened: the source "
                                            "covers only prompt positions and "
                                            "intervene_on_prompt is False"))
        wanted: list[int] = []
        if on_prompt and state.start == 0:
            if length < p:
                raise ConfigError(_source_error(length, p, f"the prompt has {p} positions"))
            wanted.extend(range(p))
        if state.step >= 1:
            first = max(1, state.start - p + 1)
            for k in range(first, state.step + 1):
                position = p + k - 1
                if explicit:
                    if steps != "all" and k not in steps:
                        continue
                    if position >= length:
                        raise ConfigError(_source_error(
                            length, p, f"generated step {k} sits at position {position}"
                        ))
                elif position >= length:
                    continue
                wanted.append(position)
        if not wanted:
            return None
        key = (state.start, *wanted)
        if key not in made:
            rel = _positions([q - state.start for q in wanted], w.loc.unit, w.loc.batch)
            index = torch.tensor(wanted, device=source.device)
            made[key] = (rel, source.index_select(1, index))
        return made[key]

    return active


def _source_error(length: int, prompt: int, what: str) -> str:
    return (
        f"{what}, but the source has {length} positions: with unit_locations=None a source is "
        "read position by position (base position p from source position p). Intervene the "
        f"prompt with a source of at least {prompt} positions (intervene_on_prompt=True), or "
        "name the source positions to write into every generated token: "
        "unit_locations={'sources->base': (source_positions, 0)}."
    )


def _input_length(args: tuple, kwargs: dict) -> int | None:
    """How many tokens a forward call feeds (the decoder's, for encoder-decoder models)."""
    for name in ("decoder_input_ids", "decoder_inputs_embeds", "input_ids", "inputs_embeds"):
        v = kwargs.get(name)
        if isinstance(v, Tensor) and v.dim() >= 2:
            return v.shape[1]
    for v in args:
        if isinstance(v, Tensor) and v.dim() >= 2:
            return v.shape[1]
    return None


def _generation_clock(state: RunState, args: tuple, kwargs: dict) -> None:
    """Before each forward in generate(): which call this is and where its tokens start.

    Call 0 reads the prompt. Call k >= 1 reads the sequence up to position ``prompt_len + k``
    (exclusive): one token with the KV cache, all of them without.
    """
    state.step += 1
    length = _input_length(args, kwargs)
    if length is None:
        raise VeneError(
            "cannot tell how many tokens a generation step feeds: the model was called without "
            "input_ids or inputs_embeds."
        )
    if state.step == 0:
        state.prompt_len = length
        state.start = 0
        return
    end = state.prompt_len + state.step
    if length not in (1, end):
        raise VeneError(
            f"generation step {state.step} fed {length} tokens; interventions follow generation one "
            "token per forward call (greedy, sampling, beam search), so assisted or speculative "
            "decoding cannot be used with them."
        )
    state.start = end - length


def _prompt_active(loc: Loc, whole: bool, flattens: bool) -> Callable[[RunState], Loc | None]:
    """The prompt's location in calls that read the prompt, None in cached steps."""
    prompt: dict[int, Loc] = {}

    def active(state: RunState) -> Loc | None:
        if state.start != 0:  # a cached step: the prompt is in the cache, already intervened
            return None
        if whole and state.step > 0:
            # a recomputed step (no cache): the prompt positions again, not the generated ones
            if flattens:
                raise ConfigError(_NO_CACHE_DISTRIBUTED)
            if state.prompt_len not in prompt:
                prompt[state.prompt_len] = _positions(range(state.prompt_len), loc.unit, loc.batch)
            return prompt[state.prompt_len]
        return loc

    return active


def _generated_active(
    steps: Any, loc: Loc, batch: int, flattens: bool
) -> Callable[[RunState], Loc | None]:
    """The positions of the chosen generated tokens that a call reads, or None (head units keep
    the heads ``loc`` names)."""
    made: dict[tuple[int, ...], Loc] = {}

    def active(state: RunState) -> Loc | None:
        if state.step < 1:
            return None
        # step k sits at absolute position prompt_len + k - 1; this call reads [start, end)
        first = max(1, state.start - state.prompt_len + 1)
        candidates = range(first, state.step + 1)
        chosen = candidates if steps == "all" else [k for k in candidates if k in steps]
        positions = tuple(state.prompt_len + k - 1 - state.start for k in chosen)
        if not positions:
            return None
        if flattens and len(positions) > 1:
            raise ConfigError(_NO_CACHE_DISTRIBUTED)
        if positions not in made:  # with the cache every step reuses one location
            made[positions] = _positions(positions, loc.unit, batch, loc)
        return made[positions]

    return active


_NO_CACHE_DISTRIBUTED = (
    "a distributed intervention (a learned basis over the concatenated units) cannot be applied "
    "to recomputed positions one by one; generate with the KV cache (use_cache=True) or give "
    "explicit unit_locations for the prompt only."
)


def _positions(positions: Any, unit: Unit, batch: int, heads: Loc | None = None) -> Loc:
    """The same positions in every example of the batch (for head units, at the heads that
    ``heads`` names)."""
    pos = list(positions)
    t = torch.tensor([pos] * batch, dtype=torch.long)
    if unit.has_heads:
        if heads is None or heads.heads is None:
            raise ConfigError(
                "head units (h, h.pos) on generated tokens need the heads: give them in "
                "unit_locations (with position 0 for h.pos: each step's new token)."
            )
        return Loc(unit=Unit.H_POS, index=t, heads=heads.heads, max_index=max(pos),
                   max_head=heads.max_head, batch=batch)
    return Loc(unit=unit, index=t, max_index=max(pos), batch=batch)
