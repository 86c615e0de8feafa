"""GPT-2 -> maia: keep GPT-2's transformer, re-map its token embedding onto notewise words.

``from_gpt2`` builds a :class:`MaiaForCausalLM` of the same shape as a GPT-2 checkpoint. Every
transformer block, the position embeddings and the final layer norm are copied unchanged. The token
embedding cannot be copied (GPT-2 has 50,257 BPE tokens, maia ~273 words), so each maia token's row
is set to the mean of GPT-2's embeddings of the BPE pieces of that token's text, written as it appears
inside a notewise text (with its leading space: ``" wait12"`` -> ``["Ġwait", "12"]``). The LM head
stays tied to the new embedding. See ``docs/models.md``.
"""

from __future__ import annotations

import torch

from .configuration_maia import MaiaConfig
from .modeling_maia import MaiaForCausalLM

__all__ = ["bpe_pieces", "from_gpt2"]

# GPT-2 configuration fields that define the transformer (copied); the rest is maia's own.
_SHAPE_FIELDS = (
    "n_positions",
    "n_embd",
    "n_layer",
    "n_head",
    "n_inner",
    "activation_function",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "layer_norm_epsilon",
    "initializer_range",
    "scale_attn_weights",
    "scale_attn_by_inverse_layer_idx",
    "reorder_and_upcast_attn",
)


def bpe_pieces(gpt2_tokenizer, token: str) -> list[int]:
    """GPT-2 BPE ids of a maia token as it reads inside notewise text (after a space)."""
    return gpt2_tokenizer(" " + token, add_special_tokens=False)["input_ids"]


def from_gpt2(model_or_path, tokenizer, gpt2_tokenizer=None) -> MaiaForCausalLM:
    """Build a maia model from a GPT-2 checkpoint (117M ``gpt2``, 345M ``gpt2-medium``, or any GPT-2).

    Args:
        model_or_path (`GPT2LMHeadModel` or `str`): a GPT-2 model, or a local path / hub id
            (``"openai-community/gpt2"``) to load it and its tokenizer from.
        tokenizer (`MaiaTokenizer`): the notewise tokenizer whose vocabulary the new model uses.
        gpt2_tokenizer (*optional*): GPT-2's BPE tokenizer; required when a model object is given.

    Returns:
        `MaiaForCausalLM` with GPT-2's blocks and position embeddings, re-mapped token embeddings and
        a tied LM head.
    """
    from transformers import AutoTokenizer, GPT2LMHeadModel

    if isinstance(model_or_path, str):
        source = GPT2LMHeadModel.from_pretrained(model_or_path)
        gpt2_tokenizer = gpt2_tokenizer or AutoTokenizer.from_pretrained(model_or_path)
    else:
        source = model_or_path
        if gpt2_tokenizer is None:
            raise ValueError("from_gpt2 needs gpt2_tokenizer= when given a model object (its BPE defines the mapping)")
    shape = {k: getattr(source.config, k) for k in _SHAPE_FIELDS if hasattr(source.config, k)}
    config = MaiaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **shape,
    )
    model = MaiaForCausalLM(config)

    state = {k: v for k, v in source.transformer.state_dict().items() if not k.startswith("wte.")}
    missing, unexpected = model.transformer.load_state_dict(state, strict=False)
    if unexpected or [k for k in missing if not k.startswith("wte.")]:
        raise ValueError(f"GPT-2 checkpoint does not match its own shape: missing {missing}, unexpected {unexpected}")

    source_rows = source.transformer.wte.weight.detach()
    with torch.no_grad():
        rows = torch.empty(len(tokenizer), source_rows.shape[1], dtype=source_rows.dtype)
        for token, index in tokenizer.get_vocab().items():
            rows[index] = source_rows[bpe_pieces(gpt2_tokenizer, token)].mean(dim=0)
        model.transformer.wte.weight.copy_(rows)
    model.tie_weights()
    return model
