"""The web demo: its handlers and limits without a browser, ``maia demo`` on the command line, and the page
itself in headless Chromium (upload a MIDI, generate, play, download).

The browser cases skip, saying why, where gradio, selenium, chromium or chromedriver is missing. With
``MAIA_DEMO_SCREENSHOT=1`` the page case serves the model shipped with maia instead of a tiny random one,
continues the Lacrimosa prompt, and saves the page as ``docs/demo.png`` (the README shows it).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import socket
import sys
import urllib.request
from pathlib import Path

import pytest
from helpers import READABLE_MIDI_FIXTURES, REPO, TINY_GPT

from maia_hf.demo import (
    PROMPT_EXAMPLES,
    UPLOAD,
    DemoLimits,
    LoadedModel,
    RequestFolders,
    Sampling,
    continue_request,
    copy_upload,
    infill_request,
    read_demo_prompt,
)
from maia_hf.errors import MaiaInputError
from maia_hf.render import find_soundfont

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOT = REPO / "docs" / "demo.png"
TAKE_SCREENSHOT = os.environ.get("MAIA_DEMO_SCREENSHOT") == "1"
WAV_POSSIBLE = shutil.which("fluidsynth") is not None and find_soundfont() is not None


def _browser_missing() -> str | None:
    for module, install in (("gradio", "pip install 'maia-hf[demo]'"), ("selenium", "pip install selenium")):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed ({install})"
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.exists():
            return f"{binary} is missing (apt-get install chromium chromium-driver)"
    return None


BROWSER_MISSING = _browser_missing()
needs_browser = pytest.mark.skipif(BROWSER_MISSING is not None, reason=BROWSER_MISSING or "")
needs_gradio = pytest.mark.skipif(importlib.util.find_spec("gradio") is None, reason="gradio is not installed")


def _save_tiny_model(path: Path) -> Path:
    import torch

    from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaTokenizer

    tokenizer = MaiaTokenizer()
    torch.manual_seed(0)
    MaiaForCausalLM(MaiaConfig(vocab_size=len(tokenizer), **TINY_GPT)).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> LoadedModel:
    return LoadedModel.load(_save_tiny_model(tmp_path_factory.mktemp("demo") / "tiny-maia"))


@pytest.fixture
def folder(tmp_path) -> Path:
    return RequestFolders(tmp_path / "requests").new()


@pytest.fixture
def two_hands(tmp_path) -> Path:
    return READABLE_MIDI_FIXTURES["two-hands"](tmp_path / "my piece.mid")


# ---- handlers and limits, without a browser ------------------------------------------------


def test_continue_request_writes_every_format_and_reports_progress(loaded, folder, two_hands):
    import symusic

    reports = []
    piece = read_demo_prompt(UPLOAD, two_hands, folder, loaded.tokenizer, DemoLimits())
    result = continue_request(loaded, piece, 2, Sampling(seed=0), folder, DemoLimits(), lambda *r: reports.append(r))
    assert {"midi", "musicxml", "notewise", "png"} <= set(result.files)
    assert ("wav" in result.files) == WAV_POSSIBLE
    assert all(Path(result.files[kind]).parent == folder for kind in ("midi", "musicxml", "png"))
    assert len(symusic.Score(str(result.files["midi"])).tracks[0].notes) > len(piece.notes)
    assert result.summary.startswith("**maia wrote ") and "constraints changed" in result.summary
    assert result.words and not result.cut_short
    assert reports and all(0 <= fraction <= 1 for fraction, _ in reports)
    assert piece.name == "my piece.mid"  # the user's name for it, not the request folder's


def test_best_of_n_lists_every_candidate_score(loaded, folder, two_hands):
    piece = read_demo_prompt(UPLOAD, two_hands, folder, loaded.tokenizer, DemoLimits())
    result = continue_request(loaded, piece, 1, Sampling(seed=0, candidates=3), folder, DemoLimits())
    assert "Best of 3 candidates: kept number" in result.summary
    scores = result.summary.split("nats: ")[1].split(")")[0].replace("*", "").split(", ")
    assert len(scores) == 3 and all(float(score) < 0 for score in scores)


def test_grid_control_keeps_every_new_onset_on_the_grid(loaded, folder, two_hands):
    codec = loaded.tokenizer.codec
    piece = read_demo_prompt(UPLOAD, two_hands, folder, loaded.tokenizer, DemoLimits())
    onsets = []
    for grid in (None, 12):
        result = continue_request(loaded, piece, 2, Sampling(seed=0, grid=grid, key_guidance=1.0), folder, DemoLimits())
        onsets.append(codec.decode(codec.words_to_indices(result.words.split())).notes.start)  # from the bar line
    assert (onsets[0] % 12).any() and len(onsets[1]) and not (onsets[1] % 12).any()


def test_upload_is_copied_under_a_fixed_name(folder, tmp_path):
    source = tmp_path / "..weird; name$.MID"
    source.write_bytes(b"MThd")
    copy = copy_upload(source, folder, DemoLimits())
    assert copy == folder / "upload.mid" and copy.read_bytes() == b"MThd"
    assert [p.name for p in folder.iterdir()] == ["upload.mid"]


def test_unreadable_suffix_is_refused_before_anything_is_written(folder, tmp_path):
    source = tmp_path / "song.wav"
    source.write_bytes(b"RIFF")
    with pytest.raises(MaiaInputError, match=r"^'song.wav' has an unknown suffix '.wav'; maia reads .mid"):
        copy_upload(source, folder, DemoLimits())
    assert list(folder.iterdir()) == []


def test_oversized_upload_gets_its_message(folder, two_hands):
    with pytest.raises(MaiaInputError, match=r"^'my piece.mid' is \d+ bytes; this demo takes files up to 10 bytes"):
        read_demo_prompt(UPLOAD, two_hands, folder, None, DemoLimits(max_upload_bytes=10))


def test_prompt_with_too_many_notes_gets_its_message(loaded, folder, two_hands):
    with pytest.raises(MaiaInputError, match="the prompt has 6 notes; this demo continues at most 3"):
        read_demo_prompt(UPLOAD, two_hands, folder, loaded.tokenizer, DemoLimits(max_prompt_notes=3))


@pytest.mark.parametrize(
    ("bars", "candidates", "message"),
    [(33, 1, "33 bars is more than this demo writes at once"), (2, 9, "9 candidates is more than this demo")],
    ids=["too-many-bars", "too-many-candidates"],
)
def test_over_long_request_gets_its_message(loaded, folder, two_hands, bars, candidates, message):
    piece = read_demo_prompt(UPLOAD, two_hands, folder, loaded.tokenizer, DemoLimits())
    with pytest.raises(MaiaInputError, match=message):
        continue_request(loaded, piece, bars, Sampling(candidates=candidates), folder, DemoLimits())


def test_bad_file_gets_the_cli_message_with_the_users_name_for_it(loaded, folder, tmp_path):
    from maia_hf.generation import read_prompt

    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not a midi file")
    with pytest.raises(MaiaInputError) as cli:
        read_prompt(bad, loaded.tokenizer)
    with pytest.raises(MaiaInputError) as demo:
        read_demo_prompt(UPLOAD, bad, folder, loaded.tokenizer, DemoLimits())
    assert str(demo.value) == str(cli.value).replace(str(bad), "bad.mid")
    assert str(folder) not in str(demo.value)


def test_no_upload_and_no_example_says_what_to_do(folder):
    with pytest.raises(MaiaInputError, match="upload a MIDI, MusicXML"):
        read_demo_prompt(UPLOAD, None, folder, None, DemoLimits())


def test_lacrimosa_example_reads_its_bars(loaded, folder):
    (lacrimosa,) = (name for name in PROMPT_EXAMPLES if "Lacrimosa" in name)
    two = read_demo_prompt(lacrimosa, None, folder, loaded.tokenizer, DemoLimits(), prompt_bars=2)
    full = read_demo_prompt(lacrimosa, None, folder, loaded.tokenizer, DemoLimits())
    assert 0 < len(two.notes) < len(full.notes)


def test_time_cap_cuts_one_continuation_short_and_says_so(loaded, folder, two_hands):
    import symusic

    piece = read_demo_prompt(UPLOAD, two_hands, folder, loaded.tokenizer, DemoLimits())
    result = continue_request(loaded, piece, 4, Sampling(seed=0), folder, DemoLimits(max_seconds=0))
    assert result.cut_short and "cap on generation time cut maia short" in result.summary
    assert len(symusic.Score(str(result.files["midi"])).tracks[0].notes) >= len(piece.notes)


def test_time_cap_on_best_of_n_gets_its_message(loaded, folder, two_hands):
    piece = read_demo_prompt(UPLOAD, two_hands, folder, loaded.tokenizer, DemoLimits())
    with pytest.raises(MaiaInputError, match="stopped the 2 candidates before they finished"):
        continue_request(loaded, piece, 4, Sampling(candidates=2), folder, DemoLimits(max_seconds=0))


def test_infill_runs_or_says_why_it_cannot(loaded, folder, two_hands):
    piece = read_demo_prompt(UPLOAD, two_hands, folder, loaded.tokenizer, DemoLimits())
    has_api = importlib.util.find_spec("maia_hf.generation.infill") is not None
    if has_api and loaded.tokenizer.layout.has_fim:
        result = infill_request(loaded, piece, 1, 1, Sampling(seed=0), folder, DemoLimits())
        assert "midi" in result.files and result.summary.startswith("**maia wrote ")
    else:
        reason = "no fill-in-the-middle tokens" if has_api else "this version of maia cannot infill yet"
        with pytest.raises(MaiaInputError, match=reason):
            infill_request(loaded, piece, 1, 1, Sampling(), folder, DemoLimits())


def test_old_request_folders_are_removed(tmp_path):
    folders = RequestFolders(tmp_path, keep_seconds=0)
    first = folders.new()
    os.utime(first, (0, 0))
    second = folders.new()
    assert not first.exists() and second.exists()


@needs_gradio
def test_page_turns_an_error_into_one_status_line():
    from maia_hf.demo.app import _page

    def fails():
        raise MaiaInputError("'x.mid' is not a MIDI file (no MThd header); check the file or its suffix")

    status, *files, words = _page(fails)
    assert status == "**Error:** 'x.mid' is not a MIDI file (no MThd header); check the file or its suffix"
    assert files == [None] * 4 and words == ""


# ---- maia demo ------------------------------------------------------------------------------


def _demo_parser() -> argparse.ArgumentParser:
    from maia_hf.commands.demo import register

    parser = argparse.ArgumentParser(prog="maia")
    register(parser.add_subparsers(dest="command"))
    return parser


def test_maia_demo_help_lists_its_flags(capsys):
    with pytest.raises(SystemExit) as exit_:
        _demo_parser().parse_args(["demo", "--help"])
    assert exit_.value.code == 0
    help_text = capsys.readouterr().out
    for flag in ("--host", "--port", "--model", "--share {true,false}", "maia-hf[demo]"):
        assert flag in help_text


@pytest.mark.parametrize(("text", "value"), [("true", True), ("false", False), ("False", False)])
def test_maia_demo_share_takes_true_or_false(text, value):
    args = _demo_parser().parse_args(["demo", "--share", text])
    assert args.share is value and args.host == "127.0.0.1" and args.port is None


def test_maia_demo_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "gradio", None)  # `import gradio` raises ImportError
    args = _demo_parser().parse_args(["demo"])
    assert args.handler(args) == 1
    err = capsys.readouterr().err
    assert err == "maia demo: error: the demo needs gradio: pip install 'maia-hf[demo]'\n"


# ---- the page in headless Chromium ----------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory):
    if BROWSER_MISSING:
        pytest.skip(BROWSER_MISSING)
    from maia_hf.compose import default_model
    from maia_hf.demo import build_demo, launch_demo

    root = tmp_path_factory.mktemp("demo-page")
    model = default_model() if TAKE_SCREENSHOT else _save_tiny_model(root / "tiny-maia")
    demo = build_demo(model, DemoLimits(), RequestFolders(root / "requests"))
    port = _free_port()
    launch_demo(demo, port=port, block=False)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1560"):
        options.add_argument(argument)
    options.binary_location = str(CHROMIUM)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    yield driver
    driver.quit()


def _upload_and_run(browser, url: str, path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(url)
    file_input = (By.CSS_SELECTOR, "#maia-continue-upload input[type=file]")
    WebDriverWait(browser, 60).until(until.presence_of_element_located(file_input)).send_keys(str(path))
    uploaded = (By.CSS_SELECTOR, "#maia-continue-upload a[href]")  # the link back to the file, once it is up
    WebDriverWait(browser, 30).until(until.presence_of_element_located(uploaded))
    browser.find_element(By.ID, "maia-continue-run").click()


def _status(browser, expected: str, timeout: float = 240) -> str:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    status = (By.ID, "maia-continue-status")
    WebDriverWait(browser, timeout).until(until.text_to_be_present_in_element(status, expected))
    return browser.find_element(*status).text


def _download(url: str) -> bytes:
    assert url.startswith("http://127.0.0.1:"), url
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


@needs_browser
def test_page_continues_an_uploaded_midi(demo_url, browser, two_hands, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    from maia_hf.io import load_pieces
    from maia_hf.resources import LACRIMOSA_PROMPT

    prompt = LACRIMOSA_PROMPT if TAKE_SCREENSHOT else two_hands
    _upload_and_run(browser, demo_url, prompt)
    status = _status(browser, "maia wrote")
    midi_link = (By.CSS_SELECTOR, "#maia-continue-midi a[href]")
    href = WebDriverWait(browser, 30).until(until.presence_of_element_located(midi_link)).get_attribute("href")
    downloaded = tmp_path / "downloaded.mid"
    downloaded.write_bytes(_download(href))
    (piece,) = load_pieces(downloaded)
    assert len(piece.notes) > len(load_pieces(prompt)[0].notes)
    assert browser.find_element(By.CSS_SELECTOR, "#maia-continue-roll img").get_attribute("src").endswith(".png")
    assert browser.find_elements(By.CSS_SELECTOR, "#maia-continue-musicxml a[href]")
    assert browser.find_elements(By.CSS_SELECTOR, "#maia-continue-audio audio")
    wav_links = browser.find_elements(By.CSS_SELECTOR, "#maia-continue-audio a[href$='.wav']")
    if wav_links:
        assert _download(wav_links[0].get_attribute("href"))[:4] == b"RIFF"
    else:  # no WAV only where it cannot be rendered, and the page says why
        assert not WAV_POSSIBLE and "No audio" in status
    if TAKE_SCREENSHOT:
        audio = browser.find_element(By.ID, "maia-continue-audio")
        WebDriverWait(browser, 30).until(lambda _: audio.text.count("0:00") < 2)  # the waveform has its length
        browser.save_screenshot(str(SCREENSHOT))


@needs_browser
def test_page_shows_the_error_of_a_bad_file(demo_url, browser, tmp_path):
    from selenium.webdriver.common.by import By

    bad = tmp_path / "broken.mid"
    bad.write_bytes(b"this is not MIDI")
    _upload_and_run(browser, demo_url, bad)
    status = _status(browser, "Error")
    assert status == "Error: 'broken.mid' is not a MIDI file (no MThd header); check the file or its suffix"
    assert not browser.find_elements(By.CSS_SELECTOR, "#maia-continue-midi a[href]")
