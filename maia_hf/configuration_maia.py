"""`MaiaConfig`: a GPT-2 configuration with the notewise vocabulary and ``model_type="maia"``."""

from __future__ import annotations

from transformers import GPT2Config, PreTrainedConfig

from .errors import MaiaInputError

__all__ = ["PRESETS", "MaiaConfig", "MaiaLstmConfig"]

# Size of the default MaiaTokenizer vocabulary: 4 special + 88 p + 88 endp + 48 wait + 45 composers.
DEFAULT_VOCAB_SIZE = 273

# Named shapes. maia-seed is the original maia GPT; the gpt2-* presets are GPT-2's own shapes (so that
# GPT-2 checkpoints transfer into them) with the notewise vocabulary.
PRESETS: dict[str, dict] = {
    "maia-seed": {"n_layer": 6, "n_head": 8, "n_embd": 256, "n_inner": 1024, "n_positions": 512},
    "gpt2-117m": {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_inner": None, "n_positions": 1024},
    "gpt2-345m": {"n_layer": 24, "n_head": 16, "n_embd": 1024, "n_inner": None, "n_positions": 1024},
}


class MaiaConfig(GPT2Config):
    """Configuration of a maia GPT: GPT-2 with the notewise vocabulary and maia's special-token ids.

    Defaults are the original maia GPT (``maia-seed``): 6 layers, 8 heads, 256-dim states,
    1024-dim inner layer, 512 positions. Other shapes: :meth:`from_preset`.

    Unlike plain GPT-2, the attention implementation chosen here (``attn_implementation="eager"``,
    ``"sdpa"``, or a registered one such as ``"maia_sparse_fixed"``) is written to ``config.json`` as
    ``maia_attn_implementation`` and restored by ``from_pretrained``.

    Args:
        vocab_size (`int`, *optional*, defaults to 273): size of the tokenizer's vocabulary.
        n_positions (`int`, *optional*, defaults to 512): longest context in tokens.
        n_embd (`int`, *optional*, defaults to 256), n_layer (`int`, *optional*, defaults to 6),
        n_head (`int`, *optional*, defaults to 8), n_inner (`int`, *optional*, defaults to 1024):
            the transformer's shape.
        pad_token_id, bos_token_id, eos_token_id (`int`, *optional*, defaults to 0, 2, 3):
            ``<pad>``, ``<start>`` and ``<end>`` in the default tokenizer.
        maia_attn_implementation (`str`, *optional*): the persisted attention implementation; set it
            through ``attn_implementation``.
        sparse_block (`int`, *optional*, defaults to 128): for ``"maia_sparse_fixed"`` the block length
            ``l``, for ``"maia_sparse_strided"`` the stride ``l`` (Child et al., 2019). See
            ``docs/sparse_attention.md``.
        sparse_summary (`int`, *optional*, defaults to 16): for ``"maia_sparse_fixed"``, the summary
            positions ``c`` at the end of each block that every later position attends to (``1 <= c <= l``).
        sparse_per_head_summary (`bool`, *optional*, defaults to `False`): for ``"maia_sparse_fixed"``,
            give head ``h`` its own summary sub-block of ``c`` positions, the ``(h mod l/c)``-th from the end
            of each block, instead of the last ``c`` positions for every head.
        sparse_backend (`str`, *optional*, defaults to ``"sdpa"``): how the sparse patterns run:
            ``"sdpa"`` (a boolean mask; exact everywhere, dense cost), ``"split"`` (the pattern cut into
            dense pieces run by SDPA's fused CPU kernel and merged exactly: sparse cost for training and
            inference on CPU; padded batches, cached steps and dropout use ``"sdpa"``) or ``"flex"``
            (FlexAttention skipping masked blocks; training on GPU; without a CPU backward or dropout it
            falls back to ``"sdpa"`` with a warning).

    Example:

    ```python
    >>> from maia_hf import MaiaConfig
    >>> MaiaConfig().n_layer, MaiaConfig.from_preset("gpt2-117m").n_embd
    (6, 768)

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
        maia_attn_implementation: str | None = None,
        sparse_block: int = 128,
        sparse_summary: int = 16,
        sparse_per_head_summary: bool = False,
        sparse_backend: str = "sdpa",
        **kwargs,
    ):
        if sparse_backend not in ("sdpa", "flex", "split"):
            raise MaiaInputError(f"unknown sparse_backend {sparse_backend!r}; choose 'sdpa', 'flex' or 'split'")
        chosen = kwargs.get("attn_implementation") or maia_attn_implementation
        if chosen in ("maia_sparse_fixed", "maia_sparse_strided") and sparse_block < 1:
            raise MaiaInputError(f"sparse_block must be a positive block length, got {sparse_block}")
        # The summary belongs to the fixed pattern alone (a strided stride below 16 needs no summary).
        if chosen == "maia_sparse_fixed" and not 1 <= sparse_summary <= sparse_block:
            raise MaiaInputError(
                f"sparse_summary must be between 1 and sparse_block ({sparse_block}), got {sparse_summary}"
            )
        self.sparse_block = sparse_block
        self.sparse_summary = sparse_summary
        self.sparse_per_head_summary = sparse_per_head_summary
        self.sparse_backend = sparse_backend
        if chosen is not None:
            kwargs["attn_implementation"] = chosen
        self.maia_attn_implementation = chosen
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

    @classmethod
    def from_preset(cls, name: str, **overrides) -> MaiaConfig:
        """A configuration of a named shape: ``maia-seed``, ``gpt2-117m`` or ``gpt2-345m``.

        Raises:
            MaiaInputError: an unknown preset name (the message lists the known ones).
        """
        if name not in PRESETS:
            raise MaiaInputError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


class MaiaLstmConfig(PreTrainedConfig):
    """Configuration of the original maia's LSTM baseline.

    Args:
        vocab_size (`int`, *optional*, defaults to 273): size of the tokenizer's vocabulary.
        embedding_dim (`int`, *optional*, defaults to 4): token embedding width; the original maia used
            the fourth root of its ~150-word vocabulary.
        hidden_size (`int`, *optional*, defaults to 512): units of each LSTM layer.
        num_layers (`int`, *optional*, defaults to 2): stacked LSTM layers.
        dropout (`float`, *optional*, defaults to 0.0): dropout between the LSTM layers.
        initializer_range (`float`, *optional*, defaults to 0.02): std of the output layer init.
        use_cache (`bool`, *optional*, defaults to `True`): return the LSTM state for generation.

    Example:

    ```python
    >>> from maia_hf import MaiaLstmConfig
    >>> MaiaLstmConfig().hidden_size
    512

    ```
    """

    model_type = "maia-lstm"

    def __init__(
        self,
        vocab_size: int = DEFAULT_VOCAB_SIZE,
        embedding_dim: int = 4,
        hidden_size: int = 512,
        num_layers: int = 2,
        dropout: float = 0.0,
        initializer_range: float = 0.02,
        use_cache: bool = True,
        pad_token_id: int = 0,
        bos_token_id: int = 2,
        eos_token_id: int = 3,
        **kwargs,
    ):
        self.vocab_size = vocab_size
        self.embedding_dim = embedding_dim
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        self.initializer_range = initializer_range
        self.use_cache = use_cache
        kwargs.setdefault("tie_word_embeddings", False)
        super().__init__(pad_token_id=pad_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id, **kwargs)
