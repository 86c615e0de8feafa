"""`maia infill`: bars regenerated in place or a bridge between two passages; every bad input one line."""

from __future__ import annotations

import pytest
import symusic
import torch
from helpers import TINY_GPT

from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaTokenizer
from maia_hf.cli import main
from maia_hf.generation import read_prompt

SIX_BARS = " ".join(f"p{60 + i} wait24 endp{60 + i} wait24" for i in range(6))


@pytest.fixture(scope="module")
def fim_model(tmp_path_factory):
    """A random model with the fill-in-the-middle tokens (the tests check the plumbing, not the music)."""
    tokenizer = MaiaTokenizer()
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("fim-model")
    MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **TINY_GPT)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture
def six_bars(tmp_path):
    path = tmp_path / "six.txt"
    path.write_text(SIX_BARS + "\n")
    return path


def test_bars_are_regenerated_in_place_and_every_format_is_written(fim_model, six_bars, tmp_path, capsys):
    out = tmp_path / "out" / "filled.mid"
    assert main(["infill", str(six_bars), "--bars", "2-3", "--model", fim_model, "--out", str(out), "--no-wav",
                 "--seed", "0", "--candidates", "2"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "bars 2-3:" in printed and "kept candidate" in printed
    for suffix in (".mid", ".musicxml", ".txt", ".png"):
        assert out.with_suffix(suffix).is_file()
    notes = read_prompt(str(out)).notes.as_tuples()
    assert [n for n in notes if n[2] <= 48 or n[1] >= 144] == [(60 + i, 48 * i, 48 * i + 24) for i in (0, 3, 4, 5)]
    assert symusic.Score(str(out)).note_num() == len(notes)


def test_a_bridge_between_two_files(fim_model, tmp_path, capsys):
    (tmp_path / "a.txt").write_text("p60 wait24 endp60\n")
    (tmp_path / "b.txt").write_text("p67 wait24 endp67\n")
    out = tmp_path / "bridge.mid"
    args = ["infill", "--before", str(tmp_path / "a.txt"), "--after", str(tmp_path / "b.txt"), "--bars", "2"]
    assert main([*args, "--model", fim_model, "--out", str(out), "--no-wav", "--seed", "1"]) == 0
    notes = read_prompt(str(out)).notes.as_tuples()
    assert (60, 0, 24) in notes and (67, 144, 168) in notes
    assert "bars 2-3:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bars", "3-2"], "bars 3-2 is an empty gap"),
        (["--bars", "2-3,3-4"], "bars 2-3 and 3-4 overlap"),
        (["--bars", "9-12"], "go past the piece's last bar (6)"),
        (["--bars", "two"], "write bars as N or N-M"),
        (["--bars", "2", "--before", "x.mid"], "a bridge needs both --before and --after"),
        (["--bars", "2-3", "--temperature", "0"], "--temperature"),
    ],
)
def test_bad_gaps_get_one_line_and_exit_2(fim_model, six_bars, tmp_path, capsys, args, message):
    assert main(["infill", str(six_bars), *args, "--model", fim_model, "--out", str(tmp_path / "x.mid")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) <= 3 and message in err[-1] and "Traceback" not in "".join(err)
    assert not (tmp_path / "x.mid").exists()


def test_a_model_without_fim_tokens_says_what_to_use(six_bars, tmp_path, capsys):
    # The shipped maia-small of v0.2 has no FIM tokens; a model saved that way must be refused clearly.
    vocab = {t: i for t, i in MaiaTokenizer().get_vocab().items() if not t.startswith("<fim_")}
    old = MaiaTokenizer(vocab=vocab)
    path = tmp_path / "old-model"
    MaiaForCausalLM(MaiaConfig(vocab_size=len(old), **TINY_GPT)).save_pretrained(path)
    old.save_pretrained(path)
    assert main(["infill", str(six_bars), "--bars", "2", "--model", str(path), "--out", str(tmp_path / "x.mid")]) == 2
    assert "not trained to infill" in capsys.readouterr().err
