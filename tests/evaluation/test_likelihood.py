"""The negative log-likelihood: nll_sums against the models' own loss, padding and first scored positions,
and validation_nll scoring every token of a split once."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import TINY_GPT

from maia_hf.evaluation.likelihood import _chunks, _scoring_plan, likelihood_summary, nll_sums, validation_nll


@pytest.fixture(scope="module")
def tiny_gpt(tokenizer):
    from maia_hf import MaiaConfig, MaiaForCausalLM

    torch.manual_seed(0)
    return MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **TINY_GPT)).eval()


def encoded(tokenizer, text: str) -> list[int]:
    return tokenizer.encode_text(text, composer="bach")


PIECES = ("p60 wait12 endp60 p64 wait6 endp64", "p60 p67 wait24 endp60 endp67 p62 wait12 endp62 p65 wait3 endp65")


def test_nll_sums_equal_the_models_loss_with_padding_ignored(tiny_gpt, tokenizer):
    rows = [encoded(tokenizer, text) for text in PIECES]
    length = max(len(r) for r in rows)
    ids = torch.full((2, length), tokenizer.pad_token_id)
    mask = torch.zeros((2, length), dtype=torch.long)
    for i, row in enumerate(rows):  # padded on the right, as training batches are
        ids[i, : len(row)], mask[i, : len(row)] = torch.tensor(row), 1
    sums = nll_sums(tiny_gpt, ids, mask, tokenizer.layout)
    assert sums.dtype == torch.float64 and sums.shape == (3,)
    nats, tokens, notes = sums.tolist()
    with torch.no_grad():
        loss = tiny_gpt(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100)).loss
    assert tokens == sum(len(r) - 1 for r in rows)  # padding neither scored nor counted
    assert notes == 2 + 4  # the p words of both pieces
    assert nats / tokens == pytest.approx(float(loss), rel=1e-5)
    # Each row alone scores what it scored in the padded batch.
    alone = sum(nll_sums(tiny_gpt, torch.tensor([row]), layout=tokenizer.layout) for row in rows)
    assert alone.tolist() == pytest.approx(sums.tolist(), rel=1e-5)


def test_nll_sums_from_the_first_scored_position(tiny_gpt, tokenizer):
    ids = torch.tensor([encoded(tokenizer, PIECES[1])] * 2)  # <start> <composer:bach> p60 p67 wait24 ...
    with torch.no_grad():
        logp = torch.log_softmax(tiny_gpt(input_ids=ids).logits.float(), dim=-1)
    target_nats = -logp[0, :-1].gather(-1, ids[0, 1:, None])[:, 0].double()  # (T-1,): targets 1..T-1
    nats, tokens, notes = nll_sums(tiny_gpt, ids, first_scored=torch.tensor([1, 4])).tolist()
    assert tokens == (ids.shape[1] - 1) + (ids.shape[1] - 4)
    assert notes == 0  # no layout: notes are not counted
    assert nats == pytest.approx(float(target_nats.sum() + target_nats[3:].sum()), rel=1e-6)
    _, _, notes = nll_sums(tiny_gpt, ids, layout=tokenizer.layout, first_scored=torch.tensor([1, 4])).tolist()
    assert notes == 4 + 2  # p60 and p67 (positions 2 and 3) are the first row's alone


def test_likelihood_summary_of_nothing_is_undefined():
    summary = likelihood_summary(0.0, 0, 0)
    assert all(math.isnan(summary[k]) for k in ("loss", "perplexity", "bits_per_token", "bits_per_note"))
    assert (summary["tokens"], summary["notes"]) == (0, 0)
    assert math.isnan(likelihood_summary(10.0, 5, 0)["bits_per_note"])
    assert likelihood_summary(1e6, 1, 1)["perplexity"] == math.inf  # a diverged model does not raise


@pytest.mark.parametrize("model_index", [0, 1], ids=["gpt-48-positions", "lstm"])
def test_validation_nll_scores_every_token_once(corpus, models, model_index):
    from datasets import load_from_disk

    from maia_hf.compose import load_model
    from maia_hf.evaluation.corpus import read_sequences

    model, tokenizer = load_model(models[model_index])
    validation = load_from_disk(str(corpus))["validation"]
    nll = validation_nll(model, tokenizer, validation, max_windows=0, batch_size=4)
    sequences = read_sequences(validation)
    assert len(validation) > 2 and nll["windows"] == len(validation)
    assert nll["tokens"] == sum(len(ids) - 1 for _, ids in sequences.values())  # windows of 64, GPT of 48
    on = tokenizer.layout.on + np.arange(tokenizer.layout.n_pitches)
    assert nll["notes"] == sum(int(np.isin(ids[1:], on).sum()) for _, ids in sequences.values())
    assert nll["nats_per_token"] == pytest.approx(math.log(len(tokenizer)), abs=0.3)  # random weights
    assert nll["bits_per_token"] == pytest.approx(nll["nats_per_token"] / math.log(2))
    assert nll["bits_per_note"] == pytest.approx(nll["bits_per_token"] * nll["tokens"] / nll["notes"])


def reference_validation_nll(model, tokenizer, split, max_windows: int) -> dict:
    """validation_nll written out by hand, token by token: log-softmax, gather, sum of the scored targets."""
    plan = _scoring_plan(split, max_windows)
    rows = split.select([row for row, _ in plan])["input_ids"]
    nats, tokens, notes = 0.0, 0, 0
    for ids, (_, first) in zip(rows, plan, strict=True):
        for chunk, scored_from in _chunks(list(ids), first, model.config.n_positions):
            x = torch.tensor([chunk])
            with torch.no_grad():
                logp = torch.log_softmax(model(input_ids=x).logits.float(), dim=-1)[0]  # (T, V)
            for t in range(scored_from, len(chunk)):
                nats -= float(logp[t - 1, chunk[t]])
                tokens += 1
                notes += bool(tokenizer.layout.is_note_on(chunk[t]))
    return {"windows": len(plan), "tokens": tokens, "notes": notes, "nats_per_token": nats / tokens,
            "bits_per_token": nats / tokens / math.log(2), "bits_per_note": nats / math.log(2) / notes,
            "perplexity": math.exp(nats / tokens)}  # fmt: skip


def test_validation_nll_equals_the_formula_written_out(corpus, models):
    from datasets import load_from_disk

    from maia_hf.compose import load_model

    model, tokenizer = load_model(models[0])  # 48 positions: windows of 64 are scored in chunks
    validation = load_from_disk(str(corpus))["validation"]
    nll = validation_nll(model, tokenizer, validation, max_windows=5, batch_size=3)
    expected = reference_validation_nll(model, tokenizer, validation, max_windows=5)
    assert list(nll) == list(expected)
    for key in ("windows", "tokens", "notes"):
        assert nll[key] == expected[key], key
    for key in ("nats_per_token", "bits_per_token", "bits_per_note", "perplexity"):
        assert nll[key] == pytest.approx(expected[key], rel=1e-6), key


def test_validation_nll_equals_the_models_loss_on_whole_sequences(tmp_path, models, build_corpus):
    from datasets import load_from_disk

    from maia_hf.compose import load_model
    from maia_hf.evaluation.corpus import read_sequences

    one_window = build_corpus(tmp_path, "long-windows", seq_len=1024)  # every sequence fits one window
    model, tokenizer = load_model(models[1])
    validation = load_from_disk(str(one_window))["validation"]
    nll = validation_nll(model, tokenizer, validation, max_windows=0)
    assert len(validation) == 1  # one piece, one window
    total, count = 0.0, 0
    for _, ids in read_sequences(validation).values():
        x = torch.from_numpy(ids)[None]
        with torch.no_grad():
            loss = model(input_ids=x, labels=x).loss
        total, count = total + float(loss) * (len(ids) - 1), count + len(ids) - 1
    assert nll["tokens"] == count
    assert nll["nats_per_token"] == pytest.approx(total / count, rel=1e-5)
