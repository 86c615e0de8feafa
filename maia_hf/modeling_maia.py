"""`MaiaForCausalLM`: GPT-2 for notewise music, as a thin subclass of `GPT2LMHeadModel`.

The transformer is GPT-2's, unchanged; what maia adds is its configuration class (so the Auto classes
find it), an attention implementation that survives ``save_pretrained`` / ``from_pretrained``, and
safetensors-only loading. Attention variants (e.g. the sparse patterns) are registered attention
functions, not forks of this file.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import GPT2LMHeadModel
from transformers import initialization as init

from .configuration_maia import MaiaConfig
from .errors import MaiaInputError

__all__ = ["MaiaForCausalLM", "MaiaSoundingNotes", "bpe_pieces"]

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


class MaiaSoundingNotes(nn.Module):
    """What sounds at each position: the pitches struck and not yet released, as an input embedding.

    A notewise word ``endp60`` may close a note struck hundreds of words before, and a sparse attention
    pattern may no longer see that onset. This module gives every position the set of pitches sounding
    after its word (a multi-hot vector over the vocabulary's pitches) through one linear map, added to the
    token and position embeddings. The set is a pure function of the words read so far: ``pN`` adds pitch
    N, ``endpN`` removes it, and a word that starts a self-contained passage (``<start>`` and the
    fill-in-the-middle tokens) empties it. The map starts at zero, so a model that gains this module
    computes exactly what it computed before and learns to use it.

    Args:
        config (`MaiaConfig`): ``config.sounding_notes`` holds ``note_on_ids`` and ``note_off_ids`` (the
            ids of ``pN`` and ``endpN``, pitch by pitch) and ``reset_ids``; ``n_embd`` the width.

    Example:

    ```python
    >>> import torch
    >>> from maia_hf import MaiaConfig, MaiaTokenizer
    >>> from maia_hf.modeling_maia import MaiaSoundingNotes
    >>> tokenizer = MaiaTokenizer()
    >>> config = MaiaConfig(n_embd=16, sounding_notes=MaiaConfig.sounding_notes_of(tokenizer))
    >>> ids = torch.tensor([tokenizer.encode_text("p60 p64 wait6 endp60 wait6 endp64")])
    >>> counts = MaiaSoundingNotes(config).counts(ids)
    >>> [tokenizer.layout.pitch_min + torch.nonzero(row).flatten().tolist()[0] for row in counts[0, 2:4]]
    [60, 60]
    >>> counts[0].sum(dim=1).tolist()  # notes sounding after each word
    [0, 0, 1, 2, 2, 1, 1, 0, 0]

    ```
    """

    def __init__(self, config: MaiaConfig):
        super().__init__()
        spec = config.sounding_notes  # checked and normalised by MaiaConfig
        self.note_on_ids, self.note_off_ids, self.reset_ids = (
            spec["note_on_ids"],
            spec["note_off_ids"],
            spec["reset_ids"],
        )
        self.n_pitches = len(self.note_on_ids)
        self.weight = nn.Parameter(torch.zeros(config.n_embd, self.n_pitches))
        self._tables: dict = {}

    def _lookup(self, device):
        """Per-id tables (pitch index or -1, +1/-1/0, starts a passage), with one last entry for every other id."""
        if device not in self._tables:
            size = max(*self.note_on_ids, *self.note_off_ids, *self.reset_ids) + 2
            pitch = torch.full((size,), -1, dtype=torch.long)
            sign = torch.zeros(size, dtype=torch.long)
            pitches = torch.arange(self.n_pitches)
            pitch[self.note_on_ids], sign[self.note_on_ids] = pitches, 1
            pitch[self.note_off_ids], sign[self.note_off_ids] = pitches, -1
            reset = torch.zeros(size, dtype=torch.bool)
            reset[self.reset_ids] = True
            self._tables[device] = (pitch.to(device), sign.to(device), reset.to(device))
        return self._tables[device]

    def changes(self, input_ids: torch.LongTensor):
        """``(pitch, sign, reset)`` of each word, each shaped like ``input_ids``."""
        pitch, sign, reset = self._lookup(input_ids.device)
        index = input_ids.clamp(max=len(pitch) - 1)  # ids past the note and passage words change nothing
        return pitch[index], sign[index], reset[index]

    def counts(self, input_ids: torch.LongTensor) -> torch.LongTensor:
        """(B, T, P): how many times each pitch sounds after each word (strikes minus releases, never < 0)."""
        pitch, sign, reset = self.changes(input_ids)
        batch, length = input_ids.shape
        steps = torch.zeros(batch, length, self.n_pitches, dtype=torch.long, device=input_ids.device)
        steps.scatter_(2, pitch.clamp(min=0)[..., None], sign[..., None])
        total = steps.cumsum(dim=1)
        # Counts restart at each passage: subtract the running total at the passage's first word.
        positions = torch.arange(length, device=input_ids.device).expand(batch, length)
        start = torch.where(reset, positions, torch.full_like(positions, -1)).cummax(dim=1).values
        base = total.gather(1, start.clamp(min=0)[..., None].expand(-1, -1, self.n_pitches))
        walk = total - base * (start >= 0)[..., None]
        # A release of a note never struck (in the passage) is ignored: the walk reflected at zero is
        # walk - min(0, lowest walk so far); an offset per passage keeps earlier passages out of the minimum.
        offset = (2 * length + 1) * reset.long().cumsum(dim=1)[..., None]
        lowest = (walk - offset).cummin(dim=1).values + offset
        return walk - lowest.clamp(max=0)

    def step(self, counts: torch.LongTensor, tokens: torch.LongTensor) -> torch.LongTensor:
        """The (B, P) counts after each row reads one more word ``tokens`` (B,)."""
        pitch, sign, reset = self.changes(tokens)
        counts = counts.masked_fill(reset[:, None], 0)  # a new tensor: the caller's counts stay as they were
        rows = torch.arange(len(tokens), device=tokens.device)
        counts[rows, pitch.clamp(min=0)] += sign
        return counts.clamp(min=0)

    def forward(self, counts: torch.Tensor) -> torch.Tensor:
        """The embedding (..., n_embd) of counts (..., P): the sum of the sounding pitches' columns."""
        return nn.functional.linear((counts > 0).to(self.weight.dtype), self.weight)


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
        self.sounding = MaiaSoundingNotes(config) if getattr(config, "sounding_notes", None) else None
        self._remember_attn_implementation()

    def add_sounding_notes(self, spec: dict) -> None:
        """Give this model the sounding-notes input (`MaiaSoundingNotes`), at zero: its outputs do not change.

        Args:
            spec (`dict`): ``config.sounding_notes`` (:meth:`MaiaConfig.sounding_notes_of` a tokenizer).
        """
        from .configuration_maia import _checked_sounding_notes

        self.config.sounding_notes = _checked_sounding_notes(spec, self.config.vocab_size)
        first = self.transformer.wte.weight
        self.sounding = MaiaSoundingNotes(self.config).to(device=first.device, dtype=first.dtype)

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, MaiaSoundingNotes):
            init.zeros_(module.weight)  # a new input starts silent: the model computes what it did before

    def forward(
        self,
        input_ids=None,
        cache=None,
        attention_mask=None,
        token_type_ids=None,
        position_ids=None,
        inputs_embeds=None,
        encoder_hidden_states=None,
        encoder_attention_mask=None,
        labels=None,
        use_cache=None,
        logits_to_keep=0,
        sounding_counts=None,
        **kwargs,
    ):
        """GPT-2's forward; with ``config.sounding_notes`` the sounding pitches join the input embedding.

        ``sounding_counts`` (B, T, P) gives them for the positions of ``input_ids`` when those are not the
        whole sequence (decoding with a cache); otherwise they are computed from ``input_ids``.
        """
        if self.sounding is not None and inputs_embeds is None and input_ids is not None:
            if sounding_counts is None:
                sounding_counts = self.sounding.counts(input_ids)
            inputs_embeds = self.transformer.wte(input_ids) + self.sounding(sounding_counts)
            input_ids = None
        return super().forward(
            input_ids=input_ids,
            cache=cache,
            attention_mask=attention_mask,
            token_type_ids=token_type_ids,
            position_ids=position_ids,
            inputs_embeds=inputs_embeds,
            encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            **kwargs,
        )

    def prepare_inputs_for_generation(self, input_ids, *args, **kwargs):
        """GPT-2's, plus the sounding pitches of the positions fed this step (computed from all the ids)."""
        inputs = super().prepare_inputs_for_generation(input_ids, *args, **kwargs)
        if self.sounding is None:
            return inputs
        fed = inputs.get("input_ids")
        if fed is not None:
            inputs["sounding_counts"] = self.sounding.counts(input_ids)[:, input_ids.shape[1] - fed.shape[1] :]
        return inputs

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
