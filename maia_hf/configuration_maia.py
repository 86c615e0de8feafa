"""`MaiaConfig`: a GPT-2 configuration with the notewise vocabulary and ``model_type="maia"``."""

from __future__ import annotations

from transformers import GPT2Config

__all__ = ["MaiaConfig"]

# Size of the default MaiaTokenizer vocabulary: 4 special + 88 p + 88 endp + 48 wait + 45 composers.
DEFAULT_VOCAB_SIZE = 273


class MaiaConfig(GPT2Config):
    """Configuration of a maia GPT: GPT-2 with the notewise vocabulary and maia's special-token ids.

    Defaults are the original maia GPT (``maia-seed``): 6 layers, 8 heads, 256-dim states,
    1024-dim inner layer, 512 positions.

    Args:
        vocab_size (`int`, *optional*, defaults to 273): size of the tokenizer's vocabulary.
        n_positions (`int`, *optional*, defaults to 512): longest context in tokens.
        n_embd (`int`, *optional*, defaults to 256), n_layer (`int`, *optional*, defaults to 6),
        n_head (`int`, *optional*, defaults to 8), n_inner (`int`, *optional*, defaults to 1024):
            the transformer's shape.
        pad_token_id, bos_token_id, eos_token_id (`int`, *optional*, defaults to 0, 2, 3):
            ``<pad>``, ``<start>`` and ``<end>`` in the default tokenizer.

    Example:

    ```python
    >>> from maia_hf import MaiaConfig
    >>> MaiaConfig().n_layer
    6

    ```
    """

    model_type = "maia"

    def __init__(
        self,
        vocab_size: int = DEFAULT_VOCAB_SIZE,
        n_positions: int = 512,
        n_embd: int = 256,
        n_layer: int = 6,
        n_head: int = 8,
        n_inner: int | None = 1024,
        pad_token_id: int = 0,
        bos_token_id: int = 2,
        eos_token_id: int = 3,
        **kwargs,
    ):
        super().__init__(
            vocab_size=vocab_size,
            n_positions=n_positions,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            n_inner=n_inner,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            **kwargs,
        )
