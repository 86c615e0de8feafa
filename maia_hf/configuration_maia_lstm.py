"""`MaiaLstmConfig`: the original maia's LSTM baseline (``model_type="maia-lstm"``)."""

from __future__ import annotations

from transformers import PreTrainedConfig

from .configuration_maia import DEFAULT_VOCAB_SIZE

__all__ = ["MaiaLstmConfig"]


class MaiaLstmConfig(PreTrainedConfig):
    """Configuration of the original maia's LSTM baseline.

    Args:
        vocab_size (`int`, *optional*, defaults to 276): size of the tokenizer's vocabulary.
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
