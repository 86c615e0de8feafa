"""The model a recipe describes: a preset GPT with overrides, a warm start, a GPT-2 transfer, or the LSTM."""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import MaiaInputError

__all__ = ["build_model"]

# ModelArguments fields that override the preset's config when they are set.
PRESET_OVERRIDES = (
    "n_layer",
    "n_head",
    "n_embd",
    "n_inner",
    "attn_implementation",
    "sparse_block",
    "sparse_summary",
    "sparse_per_head_summary",
    "sparse_backend",
)


def build_model(args, tokenizer, seq_len: int):
    """The model the arguments describe, sized to the tokenizer and the window length.

    Args:
        args (`ModelArguments`): the model's settings.
        tokenizer (`MaiaTokenizer`): gives the vocabulary size and the special ids.
        seq_len (`int`): the training window length (the default context length).

    Raises:
        MaiaInputError: an unknown ``model_type``, or a context shorter than ``seq_len``.

    Example:

    ```python
    >>> from maia_hf import MaiaTokenizer
    >>> from maia_hf.training import ModelArguments, build_model
    >>> model = build_model(ModelArguments(n_layer=1, n_embd=32, n_head=2, n_inner=64), MaiaTokenizer(), 64)
    >>> model.config.n_layer, model.config.n_positions
    (1, 64)

    ```
    """
    from .. import MaiaConfig, MaiaForCausalLM, MaiaLstmConfig, MaiaLstmForCausalLM

    special = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if args.model_type == "lstm" and getattr(args, "sounding_notes", False):
        raise MaiaInputError("sounding_notes is an input of the GPT models; drop it for model_type lstm")
    if args.model_type == "lstm":
        config = MaiaLstmConfig(
            embedding_dim=args.lstm_embedding_dim,
            hidden_size=args.lstm_hidden_size,
            num_layers=args.lstm_num_layers,
            dropout=args.dropout,
            **special,
        )
        return MaiaLstmForCausalLM(config)
    if args.model_type != "gpt":
        raise MaiaInputError(f"model_type must be 'gpt' or 'lstm', got {args.model_type!r}")
    sounding = (
        {"sounding_notes": MaiaConfig.sounding_notes_of(tokenizer)} if getattr(args, "sounding_notes", False) else {}
    )
    if args.init_from and _is_maia_model(args.init_from):
        return _warm_start(args, tokenizer, MaiaForCausalLM, sounding)
    if args.init_from:
        if sounding:
            raise MaiaInputError(
                "sounding_notes cannot be added to a GPT-2 transfer (init_from a GPT-2 checkpoint); train the "
                "transfer first, then warm-start from it with sounding_notes: true"
            )
        model = MaiaForCausalLM.from_gpt2(args.init_from, tokenizer)
        if args.attn_implementation:
            model.set_attn_implementation(args.attn_implementation)
        return model
    overrides = {k: getattr(args, k) for k in PRESET_OVERRIDES if getattr(args, k) is not None}
    n_positions = args.n_positions or max(seq_len, 0)
    attention_dropout = args.dropout if args.attention_dropout is None else args.attention_dropout
    dropout = {"resid_pdrop": args.dropout, "embd_pdrop": args.dropout, "attn_pdrop": attention_dropout}
    config = MaiaConfig.from_preset(args.preset, n_positions=n_positions, **dropout, **special, **overrides, **sounding)
    if config.n_positions < seq_len:
        raise MaiaInputError(f"n_positions {config.n_positions} is shorter than seq_len {seq_len}")
    return MaiaForCausalLM(config)


def _is_maia_model(path: str) -> bool:
    config = Path(path) / "config.json"
    return config.is_file() and json.loads(config.read_text()).get("model_type") == "maia"


def _warm_start(args, tokenizer, model_class, sounding=None):
    """A trained maia model's weights to continue from (the optimizer starts fresh).

    Its shape and attention pattern are kept; ``sparse_backend`` and ``attn_implementation`` may change
    how the same attention is computed. The vocabulary must be the tokenizer's, or a start of it: a model
    saved before the fill-in-the-middle tokens gets rows for them (``resize_token_embeddings``, new rows at
    the mean of the old ones). ``sounding`` (``sounding_notes: true``) adds the sounding-notes input to a
    model without it, at zero, so the model starts out computing what it computed before.
    """
    overrides = {"sparse_backend": args.sparse_backend} if args.sparse_backend is not None else {}
    if args.attn_implementation is not None:
        overrides["attn_implementation"] = args.attn_implementation
    model = model_class.from_pretrained(args.init_from, **overrides)
    if model.config.vocab_size < len(tokenizer) and _is_start_of(args.init_from, tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    if model.config.vocab_size != len(tokenizer):
        raise MaiaInputError(
            f"{args.init_from!r} has a vocabulary of {model.config.vocab_size} tokens but the corpus's tokenizer has "
            f"{len(tokenizer)}; warm-start from a model built with the same tokenizer"
        )
    if sounding and model.sounding is None:
        model.add_sounding_notes(sounding["sounding_notes"])
    return model


def _is_start_of(model_dir, tokenizer) -> bool:
    """Whether the model's saved vocabulary is the first ids of ``tokenizer``'s, word for word."""
    from transformers import AutoTokenizer

    try:
        saved = AutoTokenizer.from_pretrained(model_dir)
    except (OSError, ValueError):
        return False
    return tokenizer.extends(saved)
