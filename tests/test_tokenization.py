"""MaiaTokenizer: a real transformers tokenizer over the notewise vocabulary."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers import REPO

from maia_hf import MaiaTokenizer
from maia_hf.errors import MaiaInputError, MaiaTokenError
from maia_hf.io import load_pieces
from maia_hf.tokenization_maia import save_default_tokenizer


class TestVocabulary:
    def test_layout_special_then_codec_then_composers_then_fim(self, tokenizer):
        vocab = tokenizer.get_vocab()
        assert [vocab[t] for t in ("<pad>", "<unk>", "<start>", "<end>", "p21", "wait48")] == [0, 1, 2, 3, 4, 227]
        assert vocab["<composer:albeniz>"] == 228 and vocab["<composer:unknown>"] == len(tokenizer) - 4
        fim = [vocab[t] for t in ("<fim_prefix>", "<fim_suffix>", "<fim_middle>")]
        assert fim == [len(tokenizer) - 3, len(tokenizer) - 2, len(tokenizer) - 1]
        assert [tokenizer.layout.kind(i) for i in fim] == ["fim"] * 3 and tokenizer.layout.has_fim
        assert (tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 2, 3)

    def test_composers_of_both_corpora(self, tokenizer):
        for name in ("chopin", "mozart", "burgmueller", "palestrina", "monteverdi", "traditional", "unknown"):
            assert name in tokenizer.composers

    @pytest.mark.parametrize(
        ("spelling", "token"),
        [("Mozart", "mozart"), ("schumann_robert", "schumann"), ("Burgmüller", "burgmueller"), (None, "unknown")],
        ids=["capitalised", "music21-folder", "umlaut", "none"],
    )
    def test_composer_spellings(self, tokenizer, spelling, token):
        assert tokenizer.convert_ids_to_tokens(tokenizer.composer_token_id(spelling)) == f"<composer:{token}>"

    def test_unknown_composer_lists_the_known_ones(self, tokenizer):
        with pytest.raises(MaiaTokenError, match=r"composer 'Salieri' has no token; use one of albeniz, bach"):
            tokenizer.composer_token_id("Salieri")

    def test_velocity_vocabulary_is_larger_and_round_trips(self, tmp_path):
        tok = MaiaTokenizer(velocity_bins=8)
        assert "v7" in tok.get_vocab() and len(tok) == len(MaiaTokenizer()) + 8
        tok.save_pretrained(tmp_path)
        again = MaiaTokenizer.from_pretrained(tmp_path)
        assert again.codec.config.velocity_bins == 8 and again.get_vocab() == tok.get_vocab()


class TestStandardMethods:
    def test_call_and_decode(self, tokenizer):
        # <start> first, as GPT-2's tokenizer does with add_bos_token=True; no <end>: a prompt goes on.
        ids = tokenizer("p60 wait12 endp60")["input_ids"]
        assert ids == [2, 43, 191, 131]
        assert tokenizer.decode(ids, skip_special_tokens=True) == "p60 wait12 endp60"
        assert tokenizer("p60 wait12 endp60", add_special_tokens=False)["input_ids"] == [43, 191, 131]
        assert MaiaTokenizer(add_bos_token=False)("p60")["input_ids"] == [43]

    def test_unknown_word_becomes_unk_in_call_but_is_an_error_in_encode_text(self, tokenizer):
        assert tokenizer("p60 p999")["input_ids"][-1] == tokenizer.unk_token_id
        with pytest.raises(MaiaTokenError, match=r"unknown word 'p999' at position 1"):
            tokenizer.encode_text("p60 p999")

    def test_skip_special_tokens_drops_start_composer_end(self, tokenizer):
        ids = tokenizer.encode_text("p60 wait3 endp60", composer="bach")
        assert tokenizer.decode(ids, skip_special_tokens=True) == "p60 wait3 endp60"

    def test_batch_padding(self, tokenizer):
        batch = tokenizer(["p60 wait1 endp60", "p60 wait1 endp60 p62 wait1 endp62"], padding=True)
        assert batch["input_ids"][0][-3:] == [0, 0, 0] and batch["attention_mask"][0][-3:] == [0, 0, 0]


class TestMusic:
    def test_encode_score_wraps_the_piece(self, tokenizer, two_hands_midi):
        ids = tokenizer.encode_score(two_hands_midi, composer="chopin")
        tokens = tokenizer.convert_ids_to_tokens(ids)
        assert tokens[:4] == ["<start>", "<composer:chopin>", "p48", "p72"]
        assert tokens[-1] == "<end>"

    def test_transpose(self, tokenizer, two_hands_midi):
        ids = tokenizer.encode_score(two_hands_midi, transpose=-2)
        assert tokenizer.convert_ids_to_tokens(ids)[2:4] == ["p46", "p70"]

    def test_decode_to_midi_gives_back_the_notes(self, tokenizer, two_hands_midi, tmp_path, codec):
        ids = tokenizer.encode_score(two_hands_midi, composer="chopin")
        out = tokenizer.decode_to_midi(ids, tmp_path / "back.mid")
        (original,) = load_pieces(two_hands_midi, codec)
        (back,) = load_pieces(out, codec)
        assert back.notes.as_tuples() == original.notes.as_tuples()

    def test_decode_to_score_is_a_symusic_score(self, tokenizer):
        score = tokenizer.decode_to_score(tokenizer.encode_text("p60 wait12 endp60"))
        assert score.note_num() == 1 and score.ticks_per_quarter == 480

    def test_several_pieces_need_encode_scores(self, tokenizer, tmp_path):
        path = tmp_path / "two.txt"
        path.write_text("p60 wait1 endp60\np62 wait1 endp62\n")
        with pytest.raises(MaiaInputError, match=r"holds 2 pieces; use encode_scores"):
            tokenizer.encode_score(path)
        assert len(tokenizer.encode_scores(path)) == 2


class TestSavedTokenizer:
    def test_repository_tokenizer_equals_what_the_code_writes(self, tmp_path):
        save_default_tokenizer(tmp_path)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["tokenizer.json", "tokenizer_config.json"]
        for name in ("tokenizer.json", "tokenizer_config.json"):
            assert (tmp_path / name).read_text() == (REPO / "tokenizer" / name).read_text(), (
                f"tokenizer/{name} is stale: run `make tokenizer`"
            )

    def test_auto_tokenizer_without_maia(self):
        code = (
            "import sys; from transformers import AutoTokenizer; "
            "t = AutoTokenizer.from_pretrained('tokenizer'); "
            "assert 'maia_hf' not in sys.modules; "
            "print(type(t).__name__, t('p60 wait12 endp60')['input_ids'], t.eos_token)"
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
        assert out.stdout.split()[:1] == ["TokenizersBackend"]
        assert "[2, 43, 191, 131] <end>" in out.stdout  # <start> first, with or without maia

    def test_auto_tokenizer_after_import_is_a_maia_tokenizer(self):
        code = (
            "import maia_hf; from transformers import AutoTokenizer; "
            "t = AutoTokenizer.from_pretrained('tokenizer'); print(type(t).__name__, t.codec_offset)"
        )
        out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
        assert out.stdout.split() == ["MaiaTokenizer", "4"]
