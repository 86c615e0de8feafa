"""The `maia` command: subcommands, exit codes, one-line errors."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from helpers import REPO

from maia_hf.cli import main
from maia_hf.codec import NotewiseCodec
from maia_hf.io import load_pieces
from maia_hf.resources import LACRIMOSA_PROMPT


def run_maia(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maia_hf", *args], cwd=REPO, capture_output=True, text=True)


def test_help_answers_without_importing_torch():
    out = run_maia("--help")
    assert out.returncode == 0 and "tokenize" in out.stdout and "roundtrip" in out.stdout
    code = "import sys; sys.argv = ['maia']; import maia_hf.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    code = "import sys; sys.argv = ['maia']; from maia_hf.cli import build_parser; build_parser(); print(*sys.modules)"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split()
    assert "torch" not in loaded and "transformers" not in loaded  # the parser reads the defaults of generate


def test_tokenize_then_detokenize(two_hands_midi, tmp_path, capsys):
    text = tmp_path / "piece.txt"
    assert main(["tokenize", str(two_hands_midi), "--composer", "chopin", "--out", str(text)]) == 0
    lines = text.read_text().splitlines()
    assert "# composer: chopin" in lines and "# time_signature: 0 3 4" in lines
    assert lines[-1].startswith("p48 p72 wait12 endp72 p55 p74")
    out = tmp_path / "back.mid"
    assert main(["detokenize", str(text), "--out", str(out)]) == 0
    codec = NotewiseCodec()
    assert load_pieces(out, codec)[0].notes.as_tuples() == load_pieces(two_hands_midi, codec)[0].notes.as_tuples()


def test_tokenize_to_stdout_with_special_tokens_and_transposition(two_hands_midi, capsys):
    assert main(["tokenize", str(two_hands_midi), "--transpose", "3", "--special-tokens"]) == 0
    words = capsys.readouterr().out.splitlines()[-1].split()
    assert words[:4] == ["<start>", "<composer:unknown>", "p51", "p75"] and words[-1] == "<end>"


def test_roundtrip_prints_a_table_and_total(two_hands_midi, capsys):
    assert main(["roundtrip", str(two_hands_midi)]) == 0
    out = capsys.readouterr().out
    assert "two_hands.mid" in out and "total (1 pieces, 0 unreadable)" in out
    assert "1 off the grid (quantized)" in out and "1 same pitch and onset as another (merged)" in out


def test_bad_input_exits_nonzero_with_one_line(tmp_path):
    fake = tmp_path / "fake.mid"
    fake.write_text("hello")
    out = run_maia("tokenize", str(fake))
    assert out.returncode == 2
    assert out.stderr.strip().splitlines() == [
        f"maia tokenize: error: '{fake}' is not a MIDI file (no MThd header); check the file or its suffix"
    ]


def test_detokenize_unknown_word(tmp_path):
    text = tmp_path / "bad.txt"
    text.write_text("p60 wait4 endp60 p61 wait99\n")
    out = run_maia("detokenize", str(text), "--out", str(tmp_path / "x.mid"))
    assert out.returncode == 2 and "unknown word 'wait99' at position 4" in out.stderr
    assert not (tmp_path / "x.mid").exists()


def test_roundtrip_reports_unreadable_files_and_fails(tmp_path, two_hands_midi, capsys):
    empty = tmp_path / "empty.mid"
    empty.write_bytes(b"")
    assert main(["roundtrip", str(two_hands_midi), str(empty)]) == 1
    out = capsys.readouterr().out
    assert "is empty (0 bytes)" in out and "total (1 pieces, 1 unreadable)" in out


def test_generate_without_the_shipped_model_says_so(tmp_path, capsys, monkeypatch):
    import maia_hf.compose

    monkeypatch.setattr(maia_hf.compose, "default_model", lambda: None)
    assert main(["generate", "--out", str(tmp_path / "x.mid")]) == 2
    err = capsys.readouterr().err
    assert "maia_hf.DEFAULT_MODEL is missing from this installation; pass --model DIR" in err


def test_lacrimosa_with_the_shipped_model_reaches_bar_thirty(tmp_path, capsys):
    import symusic

    assert main(["lacrimosa", "--out", str(tmp_path), "--no-wav"]) == 0
    out = capsys.readouterr().out
    assert "maia-small to 30 bars of 12/8" in out
    assert re.search(r"key: \w+ (major|minor) prompt, .* correlate at r = -?\d\.\d\d", out)
    assert re.search(r"metre: \d+% .*of onsets on the 12/8 eighth-note grid, .*longest note \d+\.\d", out)
    score = symusic.Score(str(tmp_path / "lacrimosa.mid"))
    assert 29 * 6 * 480 < score.end() <= 30 * 6 * 480  # ends in bar 30 (12/8: 6 quarters of 480 ticks)
    (piece,) = load_pieces(tmp_path / "lacrimosa.mid", NotewiseCodec())
    (prompt,) = load_pieces(LACRIMOSA_PROMPT, NotewiseCodec())
    assert piece.notes.take(piece.notes.start < 576).as_tuples() == prompt.notes.as_tuples()  # Mozart's bars kept


def test_lacrimosa_without_a_model_writes_the_prompt(tmp_path, capsys, monkeypatch):
    import maia_hf.compose

    monkeypatch.setattr(maia_hf.compose, "default_model", lambda: None)
    assert main(["lacrimosa", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "8 bars of 12/8, 194 notes" in out and "identical to the prompt" in out
    assert "maia_hf.DEFAULT_MODEL is missing from this installation: pass --model DIR" in out
    (piece,) = load_pieces(tmp_path / "lacrimosa-prompt.mid", NotewiseCodec())
    assert len(piece.notes) == 194


def test_candidates_below_one_is_refused_before_the_model_loads(tmp_path, capsys):
    for command in ("generate", "lacrimosa"):
        args = [command, "--model", str(tmp_path / "nowhere"), "--candidates", "0", "--out", str(tmp_path / "out")]
        assert main(args) == 2  # about the candidates, not the missing model: nothing was loaded
        assert capsys.readouterr().err.strip().splitlines() == [
            f"maia {command}: error: --candidates must be a whole number >= 1 (sample N, keep the likeliest), got 0"
        ]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--grid", "5"],
            "--grid must be 'auto', 'off' or a number of steps that divides 48 (6 is an eighth note), got 5",
        ),
        (
            ["--grid", "often"],
            "--grid must be 'auto', 'off' or a number of steps that divides 48 (6 is an eighth note), got 'often'",
        ),
        (
            ["--key-guidance", "-1"],
            "--key-guidance must be a number from 0 (off) to 10 (1 weighs the model and the "
            "prompt's pitch classes alike), got -1.0",
        ),
    ],
    ids=["grid-not-dividing-a-bar", "grid-word", "negative-key-guidance"],
)
def test_bad_guidance_is_refused_before_the_model_loads(tmp_path, capsys, flags, message):
    for command in ("generate", "lacrimosa", "infill"):
        args = [command, "--model", str(tmp_path / "nowhere"), *flags, "--out", str(tmp_path / "out.mid")]
        args += ["piece.mid", "--bars", "2-3"] if command == "infill" else []
        assert main(args) == 2
        assert capsys.readouterr().err.strip().splitlines() == [f"maia {command}: error: {message}"]


@pytest.mark.parametrize(
    ("setup", "out_name", "message"),
    [
        ("midi-as-text", "back.mid", "is a MIDI file, not notewise text; `maia tokenize` reads it"),
        ("empty", "back.mid", r"holds no notewise words \(an empty file\?\); nothing was written"),
        ("text", "back.ogg", "--out '.*back.ogg': write one of .mid"),
    ],
    ids=["midi-given-to-detokenize", "empty-text", "unknown-output-suffix"],
)
def test_detokenize_bad_inputs_get_one_line(tmp_path, two_hands_midi, setup, out_name, message, capsys):
    source = {"midi-as-text": two_hands_midi, "empty": tmp_path / "empty.txt", "text": tmp_path / "p.txt"}[setup]
    if setup == "empty":
        source.write_text("\n")
    if setup == "text":
        source.write_text("p60 wait12 endp60\n")
    assert main(["detokenize", str(source), "--out", str(tmp_path / out_name)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0])
    assert not (tmp_path / out_name).exists()


@pytest.mark.parametrize("suffix", [".musicxml", ".txt", ".mid"])
def test_detokenize_writes_the_format_its_suffix_names(tmp_path, suffix, capsys):
    source = tmp_path / "p.txt"
    source.write_text("# time_signature: 0 3 4\np60 wait12 endp60 p64 wait24 endp64\n")
    out = tmp_path / f"back{suffix}"
    assert main(["detokenize", str(source), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out  # every command's "wrote" lines go to standard output
    (piece,) = load_pieces(out, NotewiseCodec())
    assert piece.notes.as_tuples() == [(60, 0, 12), (64, 12, 36)]


def test_roundtrip_of_nothing_readable_is_not_lossless(tmp_path, capsys):
    wav = tmp_path / "tone.wav"
    wav.write_bytes(b"RIFF....WAVE")
    assert main(["roundtrip", str(wav)]) == 2
    captured = capsys.readouterr()
    assert "no piece could be read" in captured.err and "lossless" not in captured.out.splitlines()[-1]


def test_tokenize_names_composers_in_any_spelling_and_refuses_unknown_ones(two_hands_midi, capsys):
    assert main(["tokenize", str(two_hands_midi), "--composer", "J.S. Bach", "--special-tokens"]) == 0
    assert "<composer:bach>" in capsys.readouterr().out
    assert main(["tokenize", str(two_hands_midi), "--composer", "nobody", "--special-tokens"]) == 2
    err = capsys.readouterr().err
    assert "--composer 'nobody' has no token; use one of albeniz, bach" in err and "<composer:nobody>" not in err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--bars", "1000000000"], "--bars must be a whole number between 1 and 1,000"),
        (["--max-new-tokens", "1000000000000"], "--max-new-tokens must be a whole number between 1 and 200,000"),
        (["--max-new-tokens", "0"], "--max-new-tokens must be a whole number between 1"),
        (["--max-new-tokens", "-5"], "--max-new-tokens must be a whole number between 1"),
        (["--num-return-sequences", "0"], "--num-return-sequences must be a whole number between 1 and 64"),
        (["--prompt-bars", "0"], "--prompt-bars must be a whole number between 1"),
        (["--prompt-bars", "-1"], "--prompt-bars must be a whole number between 1"),
        (["--top-k", "-3"], "--top-k must be a whole number >= 0"),
        (["--top-p", "1.5"], "--top-p must be above 0 and at most 1"),
        (["--temperature", "0"], "--temperature must be above 0"),
    ],
    ids=[
        "bars",
        "huge-budget",
        "zero-budget",
        "negative-budget",
        "no-sequences",
        "prompt-bars-0",
        "prompt-bars-neg",
        "top-k",
        "top-p",
        "temperature",
    ],  # fmt: skip
)
def test_generate_flags_are_checked_before_the_model_loads(tmp_path, capsys, monkeypatch, flags, message):
    import maia_hf.compose

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the flags were checked")

    monkeypatch.setattr(maia_hf.compose, "load_model", no_model)
    assert main(["generate", "--prompt", "p60 wait12 endp60", *flags, "--out", str(tmp_path / "x.mid")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_generate_into_a_folder_that_cannot_exist_is_refused(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "x.mid"
    assert main(["generate", "--prompt", "p60 wait12 endp60", "--bars", "1", "--out", str(out)]) == 2
    assert "cannot create its folder" in capsys.readouterr().err and blocker.read_text() == "not a folder"


def test_tokenize_says_what_it_wrote_on_standard_output(two_hands_midi, tmp_path, capsys):
    out = tmp_path / "piece.txt"
    assert main(["tokenize", str(two_hands_midi), "--out", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"wrote 1 piece(s) to {out}\n" and captured.err == ""


@pytest.mark.parametrize(
    ("flags", "shown"),
    [([], False), (["--verbose"], True), (["--verbose", "after"], True)],
    ids=["quiet-by-default", "verbose-before-the-command", "verbose-after-the-command"],
)
def test_library_noise_shows_only_with_verbose(tiny_maia_dir, tmp_path, capsys, flags, shown):
    from transformers.utils import logging as transformers_logging

    generate = ["generate", "--model", str(tiny_maia_dir), "--max-new-tokens", "4", "--no-wav",
                "--out", str(tmp_path / "x.mid")]  # fmt: skip
    argv = [*generate, "--verbose"] if flags[1:] == ["after"] else [*flags, *generate]
    assert main(argv) == 0
    assert ("Loading weights" in capsys.readouterr().err) is shown  # transformers' bar for a 20 MB model
    assert transformers_logging.is_progress_bar_enabled()  # main() gives a caller in this process the defaults back


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet", "verbose"])
def test_deepspeed_and_accelerate_notes_follow_verbose(caplog, verbose):
    """The loggers behind "Setting accelerator to CPU" (DeepSpeed) and "Removed shared tensor" (Accelerate)."""
    import logging

    from maia_hf.registration import set_library_verbosity

    set_library_verbosity(verbose)
    try:
        with caplog.at_level(logging.WARNING):
            logging.getLogger("DeepSpeed").warning("Setting accelerator to CPU.")
            logging.getLogger("accelerate.utils.other").warning("Removed shared tensor {'lm_head.weight'}")
            logging.getLogger("DeepSpeed").error("a real DeepSpeed error")
    finally:
        set_library_verbosity(None)
    assert ("Setting accelerator to CPU" in caplog.text) is verbose and (
        "Removed shared tensor" in caplog.text
    ) is verbose
    assert "a real DeepSpeed error" in caplog.text  # errors always show


def test_help_documents_verbose():
    out = run_maia("--help")
    assert "--verbose" in out.stdout and "before or after COMMAND" in out.stdout
