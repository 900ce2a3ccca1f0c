"""Run the parity corpus (programs/*.py) under one library and save each program's numbers.

Each program is written once, as pyvene users write it (``import pyvene as pv``, imports from
``pyvene.models...``). Under vene the runner makes the one-word edit a user makes (``pyvene`` ->
``vene`` in the import statements) and runs the same text. A program reports its numbers with
``record(name, value)`` and shares model weights across interpreters with
``shared(name, model)``: the oracle side saves the state dict (safetensors), the vene side loads
it, so both run the same weights even where transformers versions initialise differently.

    python runner.py pyvene OUTDIR     # the oracle: writes OUTDIR/<program>.json and weights
    python runner.py vene OUTDIR       # the same under vene
"""

from __future__ import annotations

import json
import pathlib
import random
import re
import sys
import traceback
from typing import Any

PROGRAMS = pathlib.Path(__file__).parent / "programs"
IMPORT = re.compile(r"^(\s*)(import|from)\s+pyvene\b", re.M)


def source_for(library: str, text: str) -> str:
    """The program's text as a user of ``library`` writes it (only import statements change)."""
    if library == "pyvene":
        return text
    return IMPORT.sub(lambda m: f"{m.group(1)}{m.group(2)} {library}", text)


def _plain(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return {"shape": list(value.shape), "data": value.detach().double().flatten().tolist()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def run_program(path: pathlib.Path, library: str, weights: pathlib.Path) -> dict[str, Any]:
    """Run one program; its recorded values (or the error it raised, as ``{"error": ...}``)."""
    import numpy as np
    import torch
    from safetensors.torch import load_file, save_file

    results: dict[str, Any] = {}

    def record(name: str, value: Any) -> None:
        results[name] = _plain(value)

    def shared(name: str, model: Any) -> Any:
        file = weights / f"{path.stem}-{name}.safetensors"
        if library == "pyvene":
            weights.mkdir(parents=True, exist_ok=True)
            state = {k: v.contiguous() for k, v in model.state_dict().items()}
            save_file({k: v.clone() for k, v in state.items()}, str(file))
        else:
            # pyvene keeps some constructor arguments (embed_dim, interchange_dim) as tensors in
            # its interventions' state dicts; vene keeps them as arguments: every key vene's
            # module has must be in the file, keys only pyvene has are left out
            saved = load_file(str(file))
            mine = model.state_dict()
            missing = set(mine) - set(saved)
            if missing:
                raise KeyError(f"shared weights {name!r} lack {sorted(missing)}")
            model.load_state_dict({k: saved[k] for k in mine}, strict=True)
        return model

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    namespace = {"__name__": "__parity__", "__file__": str(path), "record": record, "shared": shared}
    try:
        exec(compile(source_for(library, path.read_text()), str(path), "exec"), namespace)
    except Exception as e:  # a program that fails is reported, and the test says which
        return {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc(limit=-4)}
    return {"values": results}


def main(library: str, outdir: str) -> None:
    out = pathlib.Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(PROGRAMS.glob("*.py")):
        result = run_program(path, library, out.parent / "weights")
        (out / f"{path.stem}.json").write_text(json.dumps(result))
        status = "error: " + result["error"] if "error" in result else f"{len(result['values'])} values"
        print(f"{library} {path.stem}: {status}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
