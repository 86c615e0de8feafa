"""The original maia's LSTM baseline as a `transformers` model that works with ``generate()``.

Two stacked LSTM layers of 512 units over a 4-dimensional token embedding, and a linear layer to
the vocabulary; trained with cross-entropy (and weight decay, in the recipe). The LSTM state is the
generation cache: ``generate()`` feeds one new token per step and carries ``(h, c)`` along.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_maia_lstm import MaiaLstmConfig

__all__ = ["LstmState", "MaiaLstmForCausalLM"]


class LstmState:
    """The LSTM's hidden and cell states, carried by ``generate()`` as the model's cache.

    Args:
        hidden (`torch.Tensor` of shape `(num_layers, batch, hidden_size)`)
        cell (`torch.Tensor` of shape `(num_layers, batch, hidden_size)`)
        seen_tokens (`int`): tokens consumed so far.
    """

    def __init__(self, hidden: torch.Tensor, cell: torch.Tensor, seen_tokens: int):
        self.hidden, self.cell, self.seen_tokens = hidden, cell, seen_tokens

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return self.seen_tokens

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Follow beam search: keep the states of the selected beams."""
        self.hidden = self.hidden.index_select(1, beam_idx.to(self.hidden.device))
        self.cell = self.cell.index_select(1, beam_idx.to(self.cell.device))

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.hidden = self.hidden.repeat_interleave(repeats, dim=1)
        self.cell = self.cell.repeat_interleave(repeats, dim=1)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        self.hidden, self.cell = self.hidden[:, indices], self.cell[:, indices]


class MaiaLstmForCausalLM(PreTrainedModel, GenerationMixin):
    """The LSTM baseline: embedding (4) -> 2 x LSTM (512) -> linear (vocabulary).

    Padding is not masked inside the recurrence: batches for training are unpadded windows, and a
    left-padded prompt runs its pad tokens through the LSTM first.

    Example:

    ```python
    >>> import torch
    >>> from maia_hf import MaiaLstmConfig, MaiaLstmForCausalLM
    >>> model = MaiaLstmForCausalLM(MaiaLstmConfig(hidden_size=32))
    >>> out = model.generate(torch.tensor([[2, 250]]), max_new_tokens=5, do_sample=False)
    >>> out.shape
    torch.Size([1, 7])

    ```
    """

    config_class = MaiaLstmConfig
    base_model_prefix = "lstm"
    main_input_name = "input_ids"
    _no_split_modules = []

    def __init__(self, config: MaiaLstmConfig):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.embedding_dim)
        self.lstm = nn.LSTM(
            config.embedding_dim,
            config.hidden_size,
            num_layers=config.num_layers,
            dropout=config.dropout if config.num_layers > 1 else 0.0,
            batch_first=True,
        )
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # the cache is the LSTM state, not attention keys and values

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=std)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=1.0)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`PreTrainedModel.from_pretrained`, reading weights from safetensors only (never pickle)."""
        if kwargs.get("use_safetensors") is False:
            raise ValueError("maia models are stored as safetensors only; drop use_safetensors=False")
        kwargs["use_safetensors"] = True
        return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embed_tokens

    def set_input_embeddings(self, value: nn.Embedding) -> None:
        self.embed_tokens = value

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Linear) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        cache: LstmState | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        """Next-token logits; with ``labels``, the mean cross-entropy of each next token (-100 ignored)."""
        embeddings = self.embed_tokens(input_ids)  # (B, T, E)
        state = (cache.hidden, cache.cell) if cache is not None else None
        outputs, (hidden, cell) = self.lstm(embeddings, state)  # (B, T, H)
        logits = self.lm_head(outputs)  # (B, T, V)
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)).float(), labels[:, 1:].reshape(-1), ignore_index=-100
            )
        use_cache = use_cache if use_cache is not None else self.config.use_cache
        seen = (cache.seen_tokens if cache is not None else 0) + input_ids.shape[1]
        new_cache = LstmState(hidden, cell, seen) if use_cache else None
        return CausalLMOutputWithPast(loss=loss, logits=logits, cache=new_cache)
