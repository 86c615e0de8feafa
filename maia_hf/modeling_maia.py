"""`MaiaForCausalLM`: GPT-2 for notewise music, as a thin subclass of `GPT2LMHeadModel`.

The transformer is GPT-2's, unchanged; what maia adds is its configuration class (so the Auto classes
find it), an attention implementation that survives ``save_pretrained`` / ``from_pretrained``, and
safetensors-only loading. Attention variants (e.g. the sparse patterns) are registered attention
functions, not forks of this file.
"""

from __future__ import annotations

from transformers import GPT2LMHeadModel

from .configuration_maia import MaiaConfig

__all__ = ["MaiaForCausalLM"]


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
    torch.Size([1, 6, 273])

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
