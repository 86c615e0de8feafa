"""The sounding-notes input: what it counts, that it starts silent, and that every decoder agrees on it."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import TINY_GPT
from transformers import AutoModelForCausalLM

from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaTokenizer
from maia_hf.errors import MaiaInputError
from maia_hf.generation.lean_decoder import LeanGPT2Decoder

TOKENIZER = MaiaTokenizer()
SPEC = MaiaConfig.sounding_notes_of(TOKENIZER)


def _reference_counts(ids: list[int]) -> list[dict[int, int]]:
    """Pitch -> count after each word, walked one word at a time (the definition)."""
    layout, counts, out = TOKENIZER.layout, {}, []
    for i in ids:
        if i in SPEC["reset_ids"]:
            counts = {}
        elif layout.kind(i) == "note_on":
            counts[i - layout.on] = counts.get(i - layout.on, 0) + 1
        elif layout.kind(i) == "note_off" and counts.get(i - layout.off, 0) > 0:
            counts[i - layout.off] -= 1
        out.append({p: c for p, c in counts.items() if c})
    return out


def _model(seed=0, **overrides) -> MaiaForCausalLM:
    torch.manual_seed(seed)
    config = MaiaConfig(**{**TINY_GPT, "n_positions": 64, "sounding_notes": SPEC, **overrides})
    model = MaiaForCausalLM(config).eval()
    with torch.no_grad():
        model.sounding.weight.normal_()  # a trained input, so that it changes the logits
    return model


def test_the_spec_names_every_pitch_and_the_words_that_start_a_passage():
    layout = TOKENIZER.layout
    assert len(SPEC["note_on_ids"]) == len(SPEC["note_off_ids"]) == layout.n_pitches == 88
    assert TOKENIZER.convert_ids_to_tokens(SPEC["note_on_ids"][39:40] + SPEC["note_off_ids"][39:40]) == [
        "p60",
        "endp60",
    ]
    assert set(TOKENIZER.convert_ids_to_tokens(SPEC["reset_ids"])) == {
        "<start>",
        "<fim_prefix>",
        "<fim_suffix>",
        "<fim_middle>",
    }


def test_counts_follow_strikes_releases_and_passages_word_by_word():
    words = TOKENIZER.layout
    text = "endp62 p60 p64 wait6 endp60 p60 p60 wait3 endp60 wait2 endp64 endp64 p67"
    ids = TOKENIZER.convert_tokens_to_ids(text.split())
    ids = ids + [words.fim_suffix] + TOKENIZER.convert_tokens_to_ids(["p50", "wait4"]) + [words.fim_prefix, ids[1]]
    torch.manual_seed(1)
    noise = torch.randint(4, 92 + 88, (3, 40)).tolist()  # strikes and releases in any order
    counts = _model().sounding.counts(torch.tensor([ids]))[0]
    got = [{p: int(c) for p, c in enumerate(row) if c} for row in counts]
    assert got == _reference_counts(ids)
    pitch = lambda *notes: {n - 21: c for n, c in notes}  # noqa: E731 (index of MIDI pitch n)
    assert got[0] == {} and got[4] == pitch((64, 1))  # a release of a note never struck is ignored
    assert got[6] == pitch((64, 1), (60, 2)) and got[8] == pitch((64, 1), (60, 1)) and got[11] == pitch((60, 1))
    assert got[12] == pitch((60, 1), (67, 1)) and got[13] == {} and got[14] == pitch((50, 1))  # a passage restarts
    assert got[16] == {} and got[17] == pitch((60, 1))
    for row in noise:
        mine = _model().sounding.counts(torch.tensor([row]))[0]
        assert [{p: int(c) for p, c in enumerate(r) if c} for r in mine] == _reference_counts(row)


def test_a_new_input_starts_at_zero_and_changes_nothing_until_trained():
    torch.manual_seed(0)
    plain = MaiaForCausalLM(MaiaConfig(**TINY_GPT)).eval()
    ids = torch.tensor([TOKENIZER.encode_text("p60 p64 wait12 endp60 wait24 endp64 p62 wait3", composer="bach")])
    before = plain(ids).logits
    plain.add_sounding_notes(SPEC)
    assert plain.config.sounding_notes == SPEC and not plain.sounding.weight.any()
    assert torch.equal(plain(ids).logits, before)
    with torch.no_grad():
        plain.sounding.weight.normal_()
    assert not torch.allclose(plain(ids).logits, before, atol=1e-3)


def test_saved_and_reloaded_by_the_auto_classes_with_its_weights(tmp_path):
    model = _model()
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["sounding_notes"] == SPEC
    again = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert torch.equal(again.sounding.weight, model.sounding.weight)
    ids = torch.tensor([TOKENIZER.encode_text("p60 wait6 endp60 p62 wait6", composer="bach")])
    assert torch.equal(again(ids).logits, model(ids).logits)


@pytest.mark.parametrize("attention", ["sdpa", "maia_sparse_fixed"])
def test_lean_decoder_and_generate_see_the_same_sounding_notes_as_a_full_forward(attention):
    model = _model(attn_implementation=attention, sparse_block=16, sparse_summary=4)
    text = "p60 p64 wait6 endp60 p67 wait12 endp64 endp67 p62 wait3 endp62 p60 wait4 endp60 p64 wait30 endp64 p62 wait2"
    ids = torch.tensor([TOKENIZER.encode_text(text, composer="bach")])
    with torch.no_grad():
        full = model(ids).logits[0]
        decoder = LeanGPT2Decoder(model, 1, ids.shape[1])
        steps = [decoder.prefill(ids[:, :5])[0]] + [decoder.step(ids[:, t])[0] for t in range(5, ids.shape[1])]
    assert torch.allclose(torch.stack(steps), full[4:], atol=1e-4)
    greedy = ids[:, :8]
    for _ in range(12):
        greedy = torch.cat([greedy, model(greedy).logits[:, -1].argmax(-1, keepdim=True)], dim=1)
    prompt = ids[:, :8]
    out = model.generate(
        prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False, pad_token_id=0
    )
    assert torch.equal(out, greedy)


def test_lean_decoder_keeps_each_padded_row_and_each_kept_row_its_own_notes():
    model = _model()
    long = TOKENIZER.encode_text("p60 p64 wait6 endp60 wait6 p67 wait3", composer="bach")
    short = TOKENIZER.encode_text("p50 wait6", composer="bach")
    pad = len(long) - len(short)
    ids = torch.tensor([long, [0] * pad + short])
    mask = torch.tensor([[1] * len(long), [0] * pad + [1] * len(short)])
    nxt = torch.tensor(TOKENIZER.convert_tokens_to_ids(["endp64", "endp50"]))
    with torch.no_grad():
        decoder = LeanGPT2Decoder(model, 2, len(long) + 2)
        decoder.prefill(ids, attention_mask=mask)
        both = decoder.step(nxt)
        alone = [model(torch.tensor([row + [int(t)]])).logits[0, -1] for row, t in ((long, nxt[0]), (short, nxt[1]))]
        assert torch.allclose(both, torch.stack(alone), atol=1e-4)
        decoder.retain(torch.tensor([1]))
        after = decoder.step(torch.tensor(TOKENIZER.convert_tokens_to_ids(["p52"])))
    expected = model(torch.tensor([short + [int(nxt[1])] + TOKENIZER.convert_tokens_to_ids(["p52"])])).logits[0, -1]
    assert torch.allclose(after[0], expected, atol=1e-4)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"note_on_ids": [4, 5]}, r"sounding_notes must be a dict with note_on_ids and note_off_ids"),
        ({"note_on_ids": [4, 5], "note_off_ids": [92]}, r"one note-off id per note-on id, got 2 and 1"),
        ({"note_on_ids": [4], "note_off_ids": [999]}, r"must lie in the vocabulary \(0\.\.275\), got 4\.\.999"),
    ],
)
def test_a_wrong_spec_is_refused_in_one_line(spec, message):
    with pytest.raises(MaiaInputError, match=message):
        MaiaConfig(sounding_notes=spec)


def test_a_saved_directory_with_the_input_loads_without_maia_and_generates_the_same(tmp_path):
    from helpers import run_python

    model = _model()
    path = tmp_path / "sounding"
    model.save_pretrained(path)
    TOKENIZER.save_pretrained(path)
    ids = TOKENIZER.encode_text("p60 p64 wait6 endp60 wait6", composer="bach")
    expected = model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False, pad_token_id=0)[0].tolist()
    out = run_python(
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(path)!r}, trust_remote_code=True)\n"
        f"out = m.generate(torch.tensor([{ids}]), max_new_tokens=6, do_sample=False, pad_token_id=0)\n"
        "print('maia_hf' in sys.modules, m.sounding.weight.abs().sum().item() > 0, *out[0].tolist())\n",
        cwd=tmp_path,
    )
    assert out.split() == ["False", "True", *map(str, expected)]
