"""The pipelines: thin wrappers over maia_hf.generation, any length, transformers' output shape."""

from __future__ import annotations

import pytest
import symusic
import torch
from helpers import TINY_GPT, run_python
from transformers import pipeline

from maia_hf import MaiaConfig, MaiaForCausalLM
from maia_hf.errors import MaiaInputError, MaiaTokenError
from maia_hf.resources import LACRIMOSA_PROMPT

PROMPT = "p62 p65 wait6 endp62 endp65 p64 wait12 endp64"


@pytest.fixture(scope="module")
def short_model_dir(tmp_path_factory, tokenizer):
    """A tiny model with 64 positions: prompt and 200 new tokens run far past them."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("short-model")
    MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **{**TINY_GPT, "n_positions": 64})).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def text(short_model_dir):
    return pipeline("text-generation", model=str(short_model_dir))


@pytest.fixture(scope="module")
def music(short_model_dir):
    return pipeline("music-generation", model=str(short_model_dir))


def well_formed(tokenizer, words: str) -> bool:
    result = tokenizer.codec.decode(tokenizer.codec.words_to_indices(words.split()))
    return (result.ignored_note_offs, result.restruck) == (0, 0)


class TestTextGeneration:
    def test_past_the_models_positions(self, text):
        end = text.tokenizer.eos_token_id
        (out,) = text(PROMPT, max_new_tokens=200, do_sample=True, top_k=5, suppress_tokens=[end])
        words = out["generated_text"].split()
        assert out["generated_text"].startswith(PROMPT + " ") and len(words) == len(PROMPT.split()) + 200
        assert well_formed(text.tokenizer, out["generated_text"])  # the constraints are on

    def test_new_text_only_and_several_sequences(self, text):
        outs = text(PROMPT, max_new_tokens=20, return_full_text=False, num_return_sequences=3, do_sample=True)
        assert len(outs) == 3 and all(not o["generated_text"].startswith("p62 p65 wait6") for o in outs)
        assert all(0 < len(o["generated_text"].split()) <= 20 for o in outs)

    @pytest.mark.parametrize("sampling", [{"top_k": 1}, {"temperature": 1e-4}, {"top_p": 1e-6}], ids=str)
    def test_sampling_parameters_are_honoured(self, text, sampling):
        """Each of them, pushed to its limit, turns sampling into the greedy choice."""
        (greedy,) = text(PROMPT, max_new_tokens=30, do_sample=False)
        torch.manual_seed(5)
        (sampled,) = text(PROMPT, max_new_tokens=30, do_sample=True, **({"top_k": 0} | sampling))
        torch.manual_seed(5)
        (loose,) = text(PROMPT, max_new_tokens=30, do_sample=True, top_k=0, temperature=3.0)
        assert sampled["generated_text"] == greedy["generated_text"] != loose["generated_text"]

    def test_return_tensors_and_a_prompt_without_space(self, text):
        (out,) = text("p60 wait12 endp60", max_new_tokens=5, do_sample=False, return_tensors=True)
        # The tokenizer puts <start> first, so the ids begin with it, as with any bos-adding tokenizer.
        expected = text.tokenizer.convert_tokens_to_ids(["<start>", "p60", "wait12", "endp60"])
        assert out["generated_token_ids"][:4] == expected
        (glued,) = text("p60 wait12 endp60", max_new_tokens=5, do_sample=False)
        words = glued["generated_text"].split()
        assert words[:3] == ["p60", "wait12", "endp60"] and len(words) > 3 and "endp60p" not in glued["generated_text"]

    def test_candidates(self, text, monkeypatch):
        import maia_hf.pipelines

        calls, continue_ids = [], maia_hf.pipelines.continue_ids

        def recording(*args, **kwargs):
            calls.append(kwargs.get("candidates"))
            return continue_ids(*args, **kwargs)

        monkeypatch.setattr(maia_hf.pipelines, "continue_ids", recording)
        (out,) = text(PROMPT, max_new_tokens=30, do_sample=True, candidates=3)
        assert calls == [3] and well_formed(text.tokenizer, out["generated_text"])

    def test_a_parameter_it_cannot_honour_is_an_error(self, text):
        with pytest.raises(MaiaInputError, match="do not take num_beams=2"):
            text(PROMPT, max_new_tokens=5, num_beams=2)


class TestMusicGeneration:
    def test_past_the_models_positions(self, music):
        prompt = LACRIMOSA_PROMPT.read_text()  # two bars are already past the 64 positions
        out = music(prompt, prompt_bars=2, max_new_tokens=200, seed=0)
        assert len(out["notewise"].split()) > 0 and well_formed(music.tokenizer, out["notewise"])
        full = symusic.Score.from_midi(out["full_midi"])
        assert full.note_num() > symusic.Score.from_midi(out["midi"]).note_num() > 0

    def test_bars_end_at_the_bar_line_and_several_sequences_are_a_list(self, music):
        outs = music("# time_signature: 0 3 4\np60 wait36 endp60", bars=2, num_return_sequences=2, seed=1)
        assert isinstance(outs, list) and len(outs) == 2
        for out in outs:
            score = symusic.Score.from_midi(out["full_midi"])
            assert score.end() <= 3 * 3 * score.ticks_per_quarter  # the prompt's bar and two more of 3/4
        assert isinstance(music("p60 wait12 endp60", max_new_tokens=10, seed=1), dict)

    def test_candidates_give_continue_pieces_best_of_n(self, music):
        from maia_hf.generation import DEFAULT_MAX_NOTE_QUARTERS, continue_piece, read_prompt

        out = music(PROMPT, max_new_tokens=40, candidates=3, seed=2)
        (best,) = continue_piece(
            music.model, music.tokenizer, read_prompt(PROMPT, music.tokenizer), max_new_tokens=40, candidates=3,
            seed=2, top_k=5, max_note_quarters=DEFAULT_MAX_NOTE_QUARTERS, progress=False,
        )  # fmt: skip
        assert out["notewise"] == best.words and len(best.candidate_scores) == 3
        with pytest.raises(MaiaInputError, match="candidates must be a whole number >= 1"):
            music(PROMPT, max_new_tokens=5, candidates=0)

    def test_grid_and_key_guidance_reach_the_sampler(self, music, tokenizer):
        def onsets(out):
            return tokenizer.codec.decode(tokenizer.codec.words_to_indices(out["notewise"].split())).notes.start

        free = music(PROMPT, max_new_tokens=150, seed=4)
        gridded = music(PROMPT, max_new_tokens=150, seed=4, grid=12)
        assert (onsets(free) % 12).any() and not (onsets(gridded) % 12).any()
        with pytest.raises(MaiaInputError, match="key guidance leans toward the prompt's pitch classes"):
            music("", max_new_tokens=5, key_guidance=1.0)

    def test_composer_in_any_spelling(self, music):
        outs = [music(PROMPT, composer=c, max_new_tokens=30, do_sample=False)["notewise"] for c in ("Chopin", "chopin")]
        assert outs[0] == outs[1]
        with pytest.raises(MaiaTokenError, match="composer 'nobody' has no token"):
            music(PROMPT, composer="nobody", max_new_tokens=5)

    def test_longest_note(self, music, tokenizer):
        out = music("", max_new_tokens=200, max_note_quarters=0.5, seed=3)
        notes = tokenizer.codec.decode(tokenizer.codec.words_to_indices(out["notewise"].split())).notes
        assert len(notes) and int((notes.end - notes.start).max()) <= 7  # 6 steps, one over where order waits

    def test_a_bad_text_prompt_names_the_prompt(self, music):
        with pytest.raises(MaiaTokenError, match="unknown word 'p6O' at position 0 of the prompt;") as error:
            music("p6O wait12 endp60")
        assert "tmp" not in str(error.value) and ".txt" not in str(error.value)


class TestPipelines:
    def test_text_generation_keeps_words_apart(self, tiny_maia_dir):
        generator = pipeline("text-generation", model=str(tiny_maia_dir))
        (result,) = generator("p60 wait12 endp60", max_new_tokens=6, do_sample=False)
        words = result["generated_text"].split()
        assert words[:3] == ["p60", "wait12", "endp60"] and len(words) == 9
        vocab = generator.tokenizer.get_vocab()
        assert all(w in vocab for w in words)

    def test_text_generation_is_unchanged_for_other_tokenizers(self, tiny_maia_dir):
        from transformers import TextGenerationPipeline

        from maia_hf.pipelines import MaiaTextGenerationPipeline

        generator = pipeline("text-generation", model=str(tiny_maia_dir))
        assert isinstance(generator, MaiaTextGenerationPipeline) and isinstance(generator, TextGenerationPipeline)

    def test_text_generation_in_a_fresh_process(self, tiny_maia_dir):
        out = run_python(
            "import maia_hf\nfrom transformers import pipeline\n"
            f"g = pipeline('text-generation', model={str(tiny_maia_dir)!r})\n"
            "print(g('p60 wait12 endp60', max_new_tokens=4, do_sample=False)[0]['generated_text'])\n"
        )
        assert out.split()[:3] == ["p60", "wait12", "endp60"] and len(out.split()) == 7

    @pytest.mark.parametrize("kind", ["path", "bytes", "text"])
    def test_music_generation_inputs(self, tiny_maia_dir, two_hands_midi, kind):
        import symusic

        prompt = {
            "path": str(two_hands_midi),
            "bytes": two_hands_midi.read_bytes(),
            "text": "# time_signature: 0 3 4\np60 wait12 endp60",
        }[kind]
        generator = pipeline("music-generation", model=str(tiny_maia_dir))
        out = generator(prompt, max_new_tokens=30, do_sample=True, top_k=5, composer="chopin")
        assert isinstance(out["notewise"], str) and isinstance(out["midi"], bytes)
        score = symusic.Score.from_midi(out["full_midi"])
        assert (score.time_signatures[0].numerator, score.time_signatures[0].denominator) == (3, 4)
        assert score.note_num() >= 1


class TestInfilling:
    def test_infill_regenerates_the_bars_and_keeps_the_rest(self, music, tokenizer):
        prompt = " ".join(f"p{60 + i} wait24 endp{60 + i} wait24" for i in range(6))  # 6 bars of 4/4
        out = music(prompt, infill="2-3", seed=0)
        assert out["bars"] == (2, 3) and out["full_midi"][:4] == b"MThd" and well_formed(tokenizer, out["notewise"])
        from maia_hf.generation import read_prompt

        full = read_prompt(out["full_midi"], tokenizer).notes.as_tuples()
        outside = [n for n in full if n[2] <= 48 or n[1] >= 144]
        assert outside == [(60 + i, 48 * i, 48 * i + 24) for i in (0, 3, 4, 5)]

    def test_bridge_and_several_sequences(self, music):
        outs = music("p60 wait12 endp60", bridge_to="p67 wait12 endp67", bars=2, seed=0, num_return_sequences=2)
        assert isinstance(outs, list) and len(outs) == 2 and all(o["bars"] == (2, 3) for o in outs)

    def test_bars_outside_the_piece_are_one_clear_error(self, music):
        with pytest.raises(MaiaInputError, match="past the piece's last bar"):
            music("p60 wait48 endp60", infill="3-4")
