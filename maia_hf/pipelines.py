"""Pipelines: ``text-generation`` and ``music-generation``, thin wrappers over :mod:`maia_hf.generation`.

Both sample through the notewise constraints and the sliding window of
:func:`~maia_hf.generation.sample_with_sliding_window`, so a prompt plus new tokens may run past the
model's positions. ``pipeline("text-generation")`` keeps transformers' output (``[{"generated_text":
...}]``) and, for a `MaiaTokenizer`, one space at the seam of prompt and continuation (transformers 5
glues ``"endp60"`` and ``"p62"`` into ``"endp60p62"``); with any other tokenizer it is transformers' own.
``pipeline("music-generation")`` reads a prompt as :func:`~maia_hf.generation.read_prompt` does and
returns the continuation as notewise text and MIDI bytes.
"""

from __future__ import annotations

import torch
from transformers import GenerationConfig, Pipeline, SuppressTokensLogitsProcessor, TextGenerationPipeline

from .errors import MaiaInputError
from .generation import DEFAULT_MAX_NOTE_QUARTERS, continue_ids, continue_piece, read_prompt
from .io import piece_to_symusic

__all__ = ["MaiaTextGenerationPipeline", "MusicGenerationPipeline"]

# generate() parameters every model's generation config (or the pipeline) sets that mean nothing to sampling.
_INERT_PARAMETERS = {
    "_from_model_config", "transformers_version", "generation_config", "bos_token_id", "eos_token_id",
    "pad_token_id", "decoder_start_token_id", "use_cache", "output_attentions", "output_hidden_states",
}  # fmt: skip
_SAMPLING_PARAMETERS = ("do_sample", "top_k", "top_p", "temperature", "num_return_sequences", "max_new_tokens")


def _sampling_parameters(pipe: Pipeline, generate_kwargs: dict, defaults: dict, extra=()) -> dict:
    """This call's generate() parameters as maia's sampler takes them, on top of ``defaults``.

    The parameters are transformers': the call's, the pipeline's, then the model's generation config.
    One the sampler cannot honour (``num_beams=4``, ``repetition_penalty``...) is an error, never ignored.
    """
    params = pipe._get_set_generation_params(pipe._prepare_generate_kwargs(dict(generate_kwargs)))
    handled = set(_SAMPLING_PARAMETERS) | set(extra)
    plain = GenerationConfig._get_default_generation_params()
    unsupported = sorted(
        k for k, v in params.items() if k not in handled | _INERT_PARAMETERS and v is not None and v != plain.get(k)
    )
    if unsupported:
        given = ", ".join(f"{k}={params[k]!r}" for k in unsupported)
        raise MaiaInputError(
            f"maia's pipelines sample with the notewise constraints and do not take {given}; "
            f"they take {', '.join(sorted(handled))} (call model.generate() for the rest)"
        )
    return {**defaults, **{k: params[k] for k in handled if params.get(k) is not None}}


class MaiaTextGenerationPipeline(TextGenerationPipeline):
    """`TextGenerationPipeline` that continues notewise text with :func:`~maia_hf.generation.continue_ids`.

    With a `MaiaTokenizer`, the prompt's ids are continued exactly as written, under the notewise
    constraints (``constrained=False`` turns them off; ``max_note_quarters=`` sets the longest note;
    ``candidates=N`` returns for each sequence the likeliest of N sampled as one batch), over a sliding
    window; ``max_new_tokens``, ``max_length``, ``num_return_sequences``, ``do_sample``, ``top_k``,
    ``top_p``, ``temperature`` and ``suppress_tokens`` mean what they mean to ``generate()``,
    and ``return_full_text`` / ``return_tensors`` what they mean to the pipeline. The continuation is not
    made to end: the text may stop with notes sounding. Other tokenizers get transformers' pipeline.

    Example:

    ```python
    >>> import maia_hf
    >>> from transformers import pipeline
    >>> generator = pipeline("text-generation", model=maia_hf.DEFAULT_MODEL)
    >>> (out,) = generator("p62 p65 wait6 endp62 endp65", max_new_tokens=8, do_sample=False)
    >>> out["generated_text"].startswith("p62 p65 wait6 endp62 endp65 "), len(out["generated_text"].split()) <= 13
    (True, True)

    ```
    """

    def _forward(self, model_inputs, **generate_kwargs):
        from .tokenization_maia import MaiaTokenizer

        if not isinstance(self.tokenizer, MaiaTokenizer):
            return super()._forward(model_inputs, **generate_kwargs)
        maia_options = ("constrained", "max_note_quarters", "candidates")
        options = {k: generate_kwargs.pop(k) for k in maia_options if k in generate_kwargs}
        generate_kwargs.pop("prefix_length", None)  # a prefix is part of input_ids here
        input_ids, mask = model_inputs["input_ids"], model_inputs.get("attention_mask")
        plain = GenerationConfig._get_default_generation_params()
        settings = _sampling_parameters(
            self, generate_kwargs, {k: plain[k] for k in _SAMPLING_PARAMETERS if k in plain},
            extra=("max_length", "suppress_tokens"),
        )  # fmt: skip
        budget = settings.pop("max_new_tokens", None) or max(settings.get("max_length", 0) - input_ids.shape[-1], 0)
        settings.pop("max_length", None)
        suppress = settings.pop("suppress_tokens", None)
        processors = [SuppressTokensLogitsProcessor(suppress, device=self.model.device)] if suppress else None
        rows = []
        for b in range(input_ids.shape[0]):
            prompt = input_ids[b] if mask is None else input_ids[b][mask[b].bool()]
            new = continue_ids(
                self.model, self.tokenizer, prompt.tolist(), max_new_tokens=budget, logits_processor=processors,
                **options, **settings,
            )  # fmt: skip
            rows.append([input_ids[b].tolist() + ids for ids in new])
        return {
            "generated_sequence": _pad(rows, self.tokenizer.pad_token_id),
            "input_ids": input_ids if input_ids.shape[-1] else None,
            "prompt_text": model_inputs["prompt_text"],
        }

    def postprocess(self, model_outputs, **kwargs):
        from .tokenization_maia import MaiaTokenizer

        records = super().postprocess(model_outputs, **kwargs)
        prompt = model_outputs.get("prompt_text")
        if not isinstance(self.tokenizer, MaiaTokenizer) or not isinstance(prompt, str) or not prompt:
            return records
        for record in records:
            text = record.get("generated_text")
            if isinstance(text, str) and text.startswith(prompt) and len(text) > len(prompt):
                rest = text[len(prompt) :]
                if not prompt[-1].isspace() and not rest[0].isspace():
                    record["generated_text"] = prompt + " " + rest
        return records


def _pad(rows: list[list[list[int]]], pad_token_id: int) -> torch.LongTensor:
    """Sequences (prompt, sequence, ids) as one (prompts, sequences, longest) tensor, padded on the right."""
    width = max(len(ids) for row in rows for ids in row)
    return torch.tensor([[ids + [pad_token_id] * (width - len(ids)) for ids in row] for row in rows])


class MusicGenerationPipeline(Pipeline):
    """Continue a piece of music with a maia model (:func:`~maia_hf.generation.continue_piece`).

    Call it with anything :func:`~maia_hf.generation.read_prompt` reads: a path (MIDI, MusicXML, .mxl,
    .krn, ABC, notewise .txt), ``"music21:NAME"``, MIDI bytes, notewise text or a `Piece`. Keyword
    arguments: ``composer`` (any spelling ``maia generate --composer`` takes), ``prompt_bars`` (keep the
    prompt's first bars), ``bars`` (continue for that many bars and stop at the bar line),
    ``max_note_quarters`` (longest note), ``constrained`` (default True), ``seed``, ``candidates`` (sample
    N continuations as one batch, return the likeliest; default 1), ``grid`` (``"auto"``: keep the prompt's
    rhythmic grid, or a number of steps) and ``key_guidance`` (lean toward the prompt's pitch classes with
    this strength; :mod:`~maia_hf.generation.guidance`), and the sampling
    arguments of ``generate()``: ``max_new_tokens`` (default 256, or 160 a bar with ``bars``),
    ``do_sample`` (default True), ``top_k`` (default 5), ``top_p``, ``temperature``,
    ``num_return_sequences``. Returns ``{"notewise": continuation words, "midi": MIDI bytes of the
    continuation, "full_midi": MIDI bytes of prompt and continuation}`` (a list of them when
    ``num_return_sequences > 1``); the MIDI keeps the prompt's tempo and time signature, and the
    continuation starts at the bar line after the prompt.

    **Infilling** (a model trained with fill-in-the-middle windows): ``infill="9-12"`` (or ``(9, 12)``;
    several ranges: ``"3-4,9-12"``) regenerates those bars of the input in place
    (:func:`~maia_hf.generation.infill_piece`); ``bridge_to=<second passage>`` with ``bars=N`` writes N bars
    from the input into the second passage (:func:`~maia_hf.generation.infill_between`). Then ``"notewise"``
    and ``"midi"`` hold the new bars alone, ``"full_midi"`` the whole piece, and ``"bars"`` the bars written.

    Example:

    ```python
    >>> import maia_hf
    >>> from transformers import pipeline
    >>> music = pipeline("music-generation", model=maia_hf.DEFAULT_MODEL)
    >>> out = music("p62 p65 wait6 endp62 endp65", composer="Mozart", bars=1, seed=0)
    >>> sorted(out), out["midi"][:4]
    (['full_midi', 'midi', 'notewise'], b'MThd')

    ```
    """

    _pipeline_calls_generate = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True
    _OPTIONS = ("composer", "bars", "constrained", "max_note_quarters", "seed", "candidates", "infill", "bridge_to",
                "grid", "key_guidance")  # fmt: skip

    def _sanitize_parameters(self, prompt_bars=None, **kwargs):
        preprocess = {} if prompt_bars is None else {"prompt_bars": prompt_bars}
        forward = {k: kwargs.pop(k) for k in self._OPTIONS if k in kwargs}
        forward["generate_kwargs"] = kwargs
        return preprocess, forward, {}

    def preprocess(self, inputs, prompt_bars=None):
        return {"piece": read_prompt(inputs, self.tokenizer, prompt_bars)}

    def _forward(self, model_inputs, generate_kwargs=None, bars=None, **options):
        defaults = {"max_new_tokens": 256 if bars is None else None, "do_sample": True, "top_k": 5}
        settings = _sampling_parameters(self, generate_kwargs or {}, defaults)
        options.setdefault("max_note_quarters", DEFAULT_MAX_NOTE_QUARTERS)
        piece = model_inputs["piece"]
        infill, bridge_to = options.pop("infill", None), options.pop("bridge_to", None)
        if infill is not None or bridge_to is not None:
            return {"infills": self._infill(piece, infill, bridge_to, bars, options, settings), "piece": piece}
        continuations = continue_piece(
            self.model, self.tokenizer, piece, bars=bars, progress=False, **options, **settings
        )
        return {"continuations": continuations, "piece": piece}

    def _infill(self, piece, infill, bridge_to, bars, options, settings) -> list:
        from .compose import parse_bar_ranges
        from .errors import MaiaInputError
        from .generation import infill_between, infill_piece

        options.pop("constrained", None)  # the gap's length is a constraint: infilling is always constrained
        settings = dict(settings)
        sequences = settings.pop("num_return_sequences", 1) or 1
        if bridge_to is not None:
            if infill is not None or bars is None:
                raise MaiaInputError("bridge_to= takes bars=N (the new bars) and no infill=")
            after = read_prompt(bridge_to, self.tokenizer)
            return infill_between(self.model, self.tokenizer, piece, after, bars, num_return_sequences=sequences,
                                  **options, **settings)  # fmt: skip
        ranges = [tuple(infill)] if isinstance(infill, (tuple, list)) else parse_bar_ranges(infill)
        results = []
        for _ in range(sequences):
            current = piece
            for first, last in ranges:
                (filled,) = infill_piece(self.model, self.tokenizer, current, first, last, **options, **settings)
                current = filled.piece
            results.append(filled)
        return results

    def postprocess(self, model_outputs):
        tokenizer, piece = self.tokenizer, model_outputs["piece"]
        spq = tokenizer.codec.config.steps_per_quarter
        if "infills" in model_outputs:
            records = [
                {"notewise": f.words, "midi": piece_to_symusic(f.middle, spq).dumps_midi(),
                 "full_midi": piece_to_symusic(f.piece, spq).dumps_midi(), "bars": f.bars}
                for f in model_outputs["infills"]
            ]  # fmt: skip
            return records if len(records) > 1 else records[0]
        records = [
            {
                "notewise": c.words,
                "midi": piece_to_symusic(
                    tokenizer.decode_to_piece(c.ids, piece.tempos, piece.time_signatures), spq
                ).dumps_midi(),
                "full_midi": piece_to_symusic(c.piece, spq).dumps_midi(),
            }
            for c in model_outputs["continuations"]
        ]
        return records if len(records) > 1 else records[0]
