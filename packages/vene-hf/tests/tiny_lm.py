"""A tiny random Llama causal LM with a word-level tokenizer, saved as a local model folder."""

from __future__ import annotations

import pathlib

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

WORDS = "The Eiffel Tower Colosseum is located in the city of Paris Rome big red house".split()
N_LAYERS = 3


def build_tiny_lm(folder: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """Write a 3-layer Llama (width 32, 4 heads, 2 key/value heads) and its tokenizer to ``folder``."""
    vocab = {"[UNK]": 0, "[PAD]": 1, **{w: i + 2 for i, w in enumerate(WORDS)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]")
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=N_LAYERS,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )
    model = LlamaForCausalLM(config)
    # random init is small; larger weights make the logits (and the differences tested) larger
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.3)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _hidden(output: object) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output  # type: ignore[index,return-value]


def block_outputs(model: nn.Module, input_ids: torch.Tensor) -> list[torch.Tensor]:
    """Each decoder layer's output hidden state [batch, seq, width], read with plain forward hooks."""
    states: list[torch.Tensor] = []
    handles = [layer.register_forward_hook(lambda m, a, o: states.append(_hidden(o).detach().clone()))
               for layer in model.model.layers]
    try:
        with torch.no_grad():
            model(input_ids=input_ids)
    finally:
        for h in handles:
            h.remove()
    return states


def logits_with_block_replaced(
    model: nn.Module, input_ids: torch.Tensor, layer: int, position: int, state: torch.Tensor
) -> torch.Tensor:
    """Last-position logits with layer ``layer``'s output at ``position`` replaced by ``state``."""

    def replace(module: nn.Module, args: object, output: object) -> object:
        h = _hidden(output).clone()
        h[:, position] = state
        return (h, *output[1:]) if isinstance(output, tuple) else h  # type: ignore[index]

    handle = model.model.layers[layer].register_forward_hook(replace)
    try:
        with torch.no_grad():
            return model(input_ids=input_ids).logits[:, -1]
    finally:
        handle.remove()
