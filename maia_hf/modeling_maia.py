"""`MaiaForCausalLM`: GPT-2 for notewise music, as a thin subclass of `GPT2LMHeadModel`.

The transformer is GPT-2's, unchanged; what maia adds is its configuration class (so the Auto classes
find it), an attention implementation that survives ``save_pretrained`` / ``from_pretrained``, and
safetensors-only loading. Attention variants (e.g. the sparse patterns) are registered attention
functions, not forks of this file.
"""

from __future__ import annotations

import torch
from transformers import GPT2LMHeadModel

from .configuration_maia import MaiaConfig
from .errors import MaiaInputError

__all__ = ["MaiaForCausalLM", "bpe_pieces"]

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


class MaiaForCausalLM(GPT2LMHeadModel):
    """GPT-2 language model over notewise tokens.

    Args:
        config (`MaiaConfig`): the model shape; ``config.maia_attn_implementation`` picks the attention.

    Example:

    ```python
    >>> import torch
    >>> from maia_hf import MaiaConfig, MaiaForCausalLM
    >>> model = MaiaForCausalLM(MaiaConfig(n_layer=1, n_head=2, n_embd=16, n_inner=32, n_positions=64))
    >>> ids = torch.tensor([[2, 250, 43, 191, 131, 3]])
    >>> model(input_ids=ids, labels=ids).logits.shape
    torch.Size([1, 6, 276])

    ```
    """

    config_class = MaiaConfig

    def __init__(self, config: MaiaConfig):
        super().__init__(config)
        self._remember_attn_implementation()

    def set_attn_implementation(self, attn_implementation):
        """Switch the attention implementation; the choice is kept in ``config.json`` on save."""
        super().set_attn_implementation(attn_implementation)
        self._remember_attn_implementation()

    def _remember_attn_implementation(self) -> None:
        self.config.maia_attn_implementation = self.config._attn_implementation

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, reading weights from safetensors only (never pickle)."""
        if kwargs.get("use_safetensors") is False:
            raise ValueError("maia models are stored as safetensors only; drop use_safetensors=False")
        kwargs["use_safetensors"] = True
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    @classmethod
    def from_gpt2(cls, model_or_path, tokenizer, gpt2_tokenizer=None) -> MaiaForCausalLM:
        """Build a maia model from a GPT-2 checkpoint (117M ``gpt2``, 345M ``gpt2-medium``, or any GPT-2).

        GPT-2's blocks, position embeddings and final layer norm are copied; each maia token's embedding
        is the mean of GPT-2's embeddings of that word's BPE pieces (see ``docs/models.md``).

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
            try:
                source = GPT2LMHeadModel.from_pretrained(model_or_path)
                gpt2_tokenizer = gpt2_tokenizer or AutoTokenizer.from_pretrained(model_or_path)
            except OSError as exc:
                raise MaiaInputError(
                    f"cannot load the GPT-2 checkpoint {model_or_path!r}: its weights must be in the local "
                    "Hugging Face cache, in a local folder, or reachable on the Hub (unset HF_HUB_OFFLINE, check "
                    "the network)"
                ) from exc
        else:
            source = model_or_path
            if gpt2_tokenizer is None:
                raise ValueError(
                    "from_gpt2 needs gpt2_tokenizer= when given a model object (its BPE defines the mapping)"
                )
        shape = {k: getattr(source.config, k) for k in _SHAPE_FIELDS if hasattr(source.config, k)}
        config = MaiaConfig(
            vocab_size=len(tokenizer),
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **shape,
        )
        model = cls(config)

        state = {k: v for k, v in source.transformer.state_dict().items() if not k.startswith("wte.")}
        missing, unexpected = model.transformer.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.startswith("wte.")]:
            raise ValueError(
                f"GPT-2 checkpoint does not match its own shape: missing {missing}, unexpected {unexpected}"
            )

        source_rows = source.transformer.wte.weight.detach()
        with torch.no_grad():
            rows = torch.empty(len(tokenizer), source_rows.shape[1], dtype=source_rows.dtype)
            for token, index in tokenizer.get_vocab().items():
                rows[index] = source_rows[bpe_pieces(gpt2_tokenizer, token)].mean(dim=0)
            model.transformer.wte.weight.copy_(rows)
        model.tie_weights()
        return model
