"""The whole ``maia evaluate`` run for two tiny random models on a tiny corpus: its numbers, and its errors."""

from __future__ import annotations

import json
import math

import pytest

from maia_hf.cli import main


def test_well_formedness_rates():
    from maia_hf.evaluation import well_formedness

    totals = dict(tokens=2000, ignored_note_offs=4, closed_at_end=2, restruck=1, skipped_specials=3)
    w = well_formedness({**totals, "pieces_with_repairs": 2}, pieces=4)
    assert w["repairs_per_1000_tokens"] == 5.0 and w["ignored_note_offs_per_1000_tokens"] == 2.0
    assert w["skipped_specials_per_1000_tokens"] == 1.5 and w["share_of_pieces_with_repairs"] == 0.5


def test_the_reports_numbers_are_sane(report_dir, tokenizer):
    report = json.loads((report_dir / "report.json").read_text())
    real = report["real"]
    assert report["data"]["real_excerpts"] == 3 and report["data"]["held_out_split"] == "test"
    assert report["data"]["train_pieces"] == 7 and report["data"]["reference_sequences"] == 14  # 2 keys each
    assert set(report["models"]) == {"tiny-gpt", "tiny-lstm"}
    for name, m in report["models"].items():
        nll = m["nll"]
        assert nll["tokens"] > 100
        assert nll["nats_per_token"] == pytest.approx(math.log(len(tokenizer)), abs=0.3), name  # random weights
        assert nll["bits_per_note"] > nll["bits_per_token"] > 0
        # Random weights write few of the corpus's n-grams; real music from the same hand writes many.
        assert 0 <= m["bleu"]["bleu"] <= real["bleu"]["bleu"] <= 1
        assert m["bleu"]["precision_1"] < real["bleu"]["precision_1"]
        assert len(m["cumulative_bleu"]["5"]) == 3
        for stat in ("pitch_range", "polyphony", "pitch_class_entropy"):
            assert m["statistics"][stat]["mean"] > 0
            assert m["overlap"][stat]["overlap"] is None or 0 <= m["overlap"][stat]["overlap"] <= 1
        assert m["statistics"]["pitch_class_entropy"]["mean"] <= math.log2(12)
        memorisation = m["memorisation"]
        assert 0 <= memorisation["share_copying"] <= 1 and len(memorisation["per_piece"]) == 3
        loose = m["well_formedness"]
        assert loose["pieces"] == 3 and loose["tokens"] > 0
        assert loose["repairs_per_1000_tokens"] > 0  # random weights without constraints: ill-formed
        kinds = ("ignored_note_offs", "closed_at_end", "restruck", "skipped_specials")
        assert loose["repairs_per_1000_tokens"] == pytest.approx(1000 * sum(loose[k] for k in kinds) / loose["tokens"])
        assert 0 < m["generation"]["intervention_rate"] <= 1  # ... so the constraints step in
        d = m["discriminator"]
        assert (d["real"], d["generated"], d["folds"]) == (3, 3, 3) and 0 <= d["accuracy"] <= 1
    assert real["memorisation"]["longest_ngram_max"] >= 1
    fill = report["models"]["tiny-gpt"]["infilling"]  # trained (here: marked) to fill in the middle
    assert fill["order"] == "spm" and "infilling" not in report["models"]["tiny-lstm"]
    assert fill["gaps"] == 0 or fill["bits_per_token_with_suffix"] > 0
    markdown = (report_dir / "report.md").read_text()
    assert "## Infilling" in markdown and "| tiny-gpt | spm |" in markdown
    assert real["statistics"]["scale_consistency"]["mean"] > 0.5


def test_evaluate_names_a_missing_model(tmp_path, corpus, capsys):
    assert main(["evaluate", "--model", str(tmp_path / "nope"), "--data", str(corpus), "--out", str(tmp_path)]) == 2
    assert "nope" in capsys.readouterr().err


def test_best_of_n_reaches_generation_and_a_bad_count_is_refused(monkeypatch):
    import pytest

    import maia_hf.generation as generation
    from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaInputError, MaiaTokenizer
    from maia_hf.evaluation.run import EvaluationConfig, generate_samples

    with pytest.raises(MaiaInputError, match="candidates"):
        EvaluationConfig(candidates=0)
    seen = []
    real = generation.continue_piece

    def recording(*args, **kwargs):
        seen.append(kwargs["candidates"])
        return real(*args, **kwargs)

    monkeypatch.setattr(generation, "continue_piece", recording)
    tokenizer = MaiaTokenizer()
    model = MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), n_layer=1, n_head=2, n_embd=16, n_positions=64))
    samples, _ = generate_samples(model.eval(), tokenizer, ["bach"], EvaluationConfig(pieces=2, bars=1, candidates=3))
    assert len(samples) == 2 and seen == [3, 3]


def test_continuations_of_the_excerpts_prompts(monkeypatch, corpus, models, tokenizer, tmp_path):
    """--prompt-bars: each piece continues the bars before its real excerpt, and is the continuation alone."""
    import maia_hf.generation as generation
    from maia_hf.evaluation import EvaluationConfig, evaluate_models
    from maia_hf.evaluation.corpus import load_evaluation_corpus

    seen = []
    real = generation.continue_piece

    def recording(model, tokenizer, prompt, **kwargs):
        seen.append((prompt, kwargs))
        return real(model, tokenizer, prompt, **kwargs)

    monkeypatch.setattr(generation, "continue_piece", recording)
    config = EvaluationConfig(
        pieces=3,
        bars=2,
        tokens_per_bar=40,
        nll_windows=4,
        prompt_bars=1,
        key_guidance=0.5,
        max_note_quarters=2,
        top_p=0.9,
    )
    report = evaluate_models([str(models[0])], corpus, tmp_path / "report", config, progress=False)
    real_names = (tmp_path / "report" / "samples" / "real.txt").read_text().splitlines()
    assert sum("after bars" in line for line in real_names) == 3
    excerpts = load_evaluation_corpus(corpus, tokenizer, 3, 2, config.max_reference_words, 0, prompt_bars=1).excerpts
    assert len(seen) == 6  # 3 constrained, 3 unconstrained, each continuing its excerpt's prompt
    for (prompt, kwargs), excerpt in zip(seen, excerpts * 2, strict=True):
        assert prompt.notes.as_tuples() == excerpt.prompt.as_tuples() and len(prompt.notes)
        assert kwargs["composer"] == excerpt.composer and kwargs["key_guidance"] == 0.5
        assert kwargs["max_note_quarters"] == 2 and kwargs["top_p"] == 0.9
    generated = (tmp_path / "report" / "samples" / "tiny-gpt.txt").read_text()
    assert generated.count("# name") == 3
    for piece in generated.split("# name:")[1:]:  # each the continuation alone, no note over 2 quarters
        notes = tokenizer.codec.decode(tokenizer.codec.words_to_indices(piece.split("\n", 2)[2].split())).notes
        assert len(notes) and (notes.end - notes.start).max() <= 24 and notes.end.max() <= 96
    assert (
        "continuing the 1 bar before each real excerpt, in its place, key guidance 0.5 (top-k 5, top-p 0.9, "
        "temperature 1.0, seed 0, notes of at most 2 quarters)" in (tmp_path / "report" / "report.md").read_text()
    )
    assert report["settings"]["prompt_bars"] == 1


def test_continued_pieces_are_timed_from_the_prompts_end(monkeypatch):
    from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaTokenizer
    from maia_hf.codec import NoteArray
    from maia_hf.evaluation.run import EvaluationConfig, generate_samples

    tokenizer = MaiaTokenizer()
    torch_model = MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), n_layer=1, n_head=2, n_embd=16, n_positions=64))
    prompt = NoteArray.from_lists([60, 64, 67], [0, 48, 96], [48, 96, 130])  # 3 bars: the continuation starts at 144
    config = EvaluationConfig(pieces=2, bars=1, tokens_per_bar=60)
    samples, _ = generate_samples(torch_model.eval(), tokenizer, ["bach"], config, prompts=[prompt])
    for s in samples:
        assert s.length == 48 and len(s.notes) and s.notes.start.min() >= 0 and s.notes.end.max() <= 48


def test_a_bad_prompt_length_or_guidance_is_refused():
    from maia_hf import MaiaInputError
    from maia_hf.evaluation import EvaluationConfig

    with pytest.raises(MaiaInputError, match="prompt bars must be >= 0"):
        EvaluationConfig(prompt_bars=-1)
    with pytest.raises(MaiaInputError, match="key"):
        EvaluationConfig(key_guidance=-2)
    with pytest.raises(MaiaInputError, match="quarter notes"):
        EvaluationConfig(max_note_quarters=-1)
    assert main(["evaluate", "--model", "m", "--data", "d", "--out", "o", "--prompt-bars", "-1"]) == 2
