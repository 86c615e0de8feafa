"""Pipelines: ``text-generation`` that keeps notewise words apart, and ``music-generation``.

``pipeline("text-generation")`` of transformers 5 returns ``prompt + decode(new tokens)`` with nothing
between them, which glues two words of a word-level vocabulary into one (``"endp60p62"``). maia
registers a subclass that puts one space at that seam when the tokenizer is a `MaiaTokenizer` and
behaves exactly like the original otherwise.

``pipeline("music-generation", model=DIR)`` takes a MIDI / MusicXML / notewise-text path, MIDI bytes or
notewise text and returns the continuation as notewise text and MIDI bytes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from transformers import Pipeline, TextGenerationPipeline

from .codec import Piece
from .errors import MaiaInputError
from .io import MIDI_SUFFIXES, SCORE_SUFFIXES, TEXT_SUFFIXES, load_pieces, piece_to_symusic

__all__ = ["MaiaTextGenerationPipeline", "MusicGenerationPipeline"]


class MaiaTextGenerationPipeline(TextGenerationPipeline):
    """`TextGenerationPipeline` with the prompt and the continuation kept as separate words."""

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


class MusicGenerationPipeline(Pipeline):
    """Continue a piece of music with a maia model.

    Call it with a path (MIDI, MusicXML, .mxl, .krn, ABC, notewise .txt), MIDI bytes, or notewise text.
    Keyword arguments: ``composer`` (adds ``<composer:NAME>``), ``prompt_bars`` (keep only the first
    bars of the prompt), ``constrained`` (default True: :class:`~maia_hf.generation.NotewiseConstraintProcessor`
    keeps the output well-formed), and any ``generate()`` argument (``max_new_tokens``, ``top_k``, ``temperature``,
    ``do_sample``...). Returns ``{"notewise": continuation words, "midi": MIDI bytes of the
    continuation, "full_midi": MIDI bytes of prompt and continuation}``; the MIDI keeps the prompt's
    tempo and time signature.
    """

    _pipeline_calls_generate = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def _sanitize_parameters(self, composer=None, prompt_bars=None, constrained=None, **generate_kwargs):
        preprocess = {"composer": composer, "prompt_bars": prompt_bars}
        generate_kwargs.setdefault("max_new_tokens", 256)
        generate_kwargs.setdefault("do_sample", True)
        generate_kwargs.setdefault("top_k", 5)
        forward = {"generate_kwargs": generate_kwargs, "constrained": True if constrained is None else constrained}
        return preprocess, forward, {}

    def preprocess(self, inputs, composer=None, prompt_bars=None):
        piece = self._read_prompt(inputs)
        spq = self.tokenizer.codec.config.steps_per_quarter
        if prompt_bars:
            piece = piece.first_bars(prompt_bars, spq)
        ids = [self.tokenizer.bos_token_id, self.tokenizer.composer_token_id(composer or piece.composer)]
        ids += self.tokenizer.notes_to_ids(piece.notes)
        return {"input_ids": torch.tensor([ids]), "piece": piece}

    def _read_prompt(self, inputs) -> Piece:
        codec = self.tokenizer.codec
        if isinstance(inputs, Piece):
            return inputs
        if isinstance(inputs, (bytes, bytearray)):
            if bytes(inputs[:4]) != b"MThd":
                return self._read_prompt(bytes(inputs).decode("utf-8", errors="replace"))
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "prompt.mid"
                path.write_bytes(bytes(inputs))
                return load_pieces(path, codec)[0]
        if isinstance(inputs, Path) or (
            isinstance(inputs, str)
            and "\n" not in inputs
            and Path(inputs).suffix.lower() in MIDI_SUFFIXES + SCORE_SUFFIXES + TEXT_SUFFIXES
        ):
            pieces = load_pieces(inputs, codec)
            if not pieces:
                raise MaiaInputError(f"{str(inputs)!r} holds no piece to continue")
            return pieces[0]
        if isinstance(inputs, str):
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "prompt.txt"
                path.write_text(inputs, encoding="utf-8")
                return load_pieces(path, codec)[0] if inputs.strip() else Piece(codec.decode([]).notes)
        raise MaiaInputError(f"cannot continue a {type(inputs).__name__}; give a path, MIDI bytes or notewise text")

    def _forward(self, model_inputs, generate_kwargs=None, constrained=True):
        from transformers import LogitsProcessorList

        from .generation import DEFAULT_MAX_NOTE_QUARTERS, NotewiseConstraintProcessor, max_note_steps

        generate_kwargs = dict(generate_kwargs or {})
        input_ids = model_inputs["input_ids"].to(self.model.device)
        if constrained:
            longest = max_note_steps(DEFAULT_MAX_NOTE_QUARTERS, self.tokenizer.codec.config.steps_per_quarter)
            processor = NotewiseConstraintProcessor(
                self.tokenizer, generate_kwargs["max_new_tokens"], max_note_steps=longest
            )
            generate_kwargs["logits_processor"] = LogitsProcessorList([processor])
        sequences = self.model.generate(
            input_ids=input_ids, attention_mask=torch.ones_like(input_ids), **generate_kwargs
        )
        return {"sequence": sequences[0].cpu(), "prompt_length": input_ids.shape[1], "piece": model_inputs["piece"]}

    def postprocess(self, model_outputs):
        tokenizer, piece = self.tokenizer, model_outputs["piece"]
        spq = tokenizer.codec.config.steps_per_quarter
        new_ids = model_outputs["sequence"][model_outputs["prompt_length"] :].tolist()
        if tokenizer.eos_token_id in new_ids:
            new_ids = new_ids[: new_ids.index(tokenizer.eos_token_id)]
        continuation = tokenizer.decode_to_piece(new_ids, piece.tempos, piece.time_signatures)
        prompt_ids = tokenizer.notes_to_ids(piece.notes)
        full = tokenizer.decode_to_piece(prompt_ids + new_ids, piece.tempos, piece.time_signatures)
        return {
            "notewise": tokenizer.decode(new_ids, skip_special_tokens=True),
            "midi": piece_to_symusic(continuation, spq).dumps_midi(),
            "full_midi": piece_to_symusic(full, spq).dumps_midi(),
        }
