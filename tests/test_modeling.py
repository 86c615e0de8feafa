"""MaiaConfig / MaiaForCausalLM: presets, attention persistence, safetensors, Auto classes, the shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import TINY_GPT, run_python
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, pipeline

from maia_hf import MaiaConfig, MaiaForCausalLM, MaiaTokenizer
from maia_hf.errors import MaiaInputError


class TestConfig:
    @pytest.mark.parametrize(
        ("preset", "shape"),
        [
            ("maia-seed", (6, 8, 256, 1024, 512)),
            ("gpt2-117m", (12, 12, 768, None, 1024)),
            ("gpt2-345m", (24, 16, 1024, None, 1024)),
        ],
    )
    def test_presets(self, preset, shape):
        config = MaiaConfig.from_preset(preset)
        assert (config.n_layer, config.n_head, config.n_embd, config.n_inner, config.n_positions) == shape
        assert config.vocab_size == len(MaiaTokenizer()) and config.model_type == "maia"

    def test_unknown_preset(self):
        with pytest.raises(MaiaInputError, match=r"unknown model preset 'gpt5'; choose one of maia-seed"):
            MaiaConfig.from_preset("gpt5")

    def test_maia_seed_parameter_count(self):
        n = sum(p.numel() for p in MaiaForCausalLM(MaiaConfig.from_preset("maia-seed")).parameters())
        d, inner, vocab, positions = 256, 1024, 276, 512  # the vocabulary with the 3 FIM tokens
        block = (d * 3 * d + 3 * d) + (d * d + d) + (d * inner + inner) + (inner * d + d) + 4 * d
        assert n == 6 * block + vocab * d + positions * d + 2 * d == 4_940_800  # LM head tied to the embedding


class TestAttentionImplementation:
    @pytest.mark.parametrize("impl", ["eager", "sdpa"])
    def test_chosen_attention_survives_save_and_load(self, tmp_path, impl):
        model = MaiaForCausalLM(MaiaConfig(attn_implementation=impl, **TINY_GPT))
        model.save_pretrained(tmp_path)
        assert json.loads((tmp_path / "config.json").read_text())["maia_attn_implementation"] == impl
        assert MaiaForCausalLM.from_pretrained(tmp_path).config._attn_implementation == impl

    def test_switching_later_is_saved_too(self, tmp_path):
        model = MaiaForCausalLM(MaiaConfig(**TINY_GPT))
        model.set_attn_implementation("eager")
        model.save_pretrained(tmp_path)
        assert AutoModelForCausalLM.from_pretrained(tmp_path).config._attn_implementation == "eager"

    def test_eager_and_sdpa_agree(self):
        torch.manual_seed(0)
        model = MaiaForCausalLM(MaiaConfig(**TINY_GPT)).eval()
        ids = torch.randint(4, 200, (2, 40))
        model.set_attn_implementation("eager")
        eager = model(ids).logits
        model.set_attn_implementation("sdpa")
        torch.testing.assert_close(model(ids).logits, eager, atol=1e-5, rtol=1e-5)


class TestSafetensorsOnly:
    def test_saves_safetensors(self, tiny_maia_dir):
        assert (tiny_maia_dir / "model.safetensors").exists()
        assert not list(tiny_maia_dir.glob("*.bin"))

    def test_refuses_pickle(self, tiny_maia_dir):
        with pytest.raises(ValueError, match="safetensors only"):
            MaiaForCausalLM.from_pretrained(tiny_maia_dir, use_safetensors=False)

    def test_a_directory_with_only_pytorch_bin_is_not_loaded(self, tiny_maia_dir):
        state = MaiaForCausalLM.from_pretrained(tiny_maia_dir).state_dict()
        (tiny_maia_dir / "model.safetensors").unlink()
        torch.save(state, tiny_maia_dir / "pytorch_model.bin")
        with pytest.raises(OSError):
            MaiaForCausalLM.from_pretrained(tiny_maia_dir)


class TestAutoClasses:
    def test_auto_classes_in_process(self, tiny_maia_dir):
        assert type(AutoConfig.from_pretrained(tiny_maia_dir)) is MaiaConfig
        assert type(AutoModelForCausalLM.from_pretrained(tiny_maia_dir)) is MaiaForCausalLM
        assert type(AutoTokenizer.from_pretrained(tiny_maia_dir)) is MaiaTokenizer

    def test_fresh_process_save_load_generate(self, tiny_maia_dir):
        out = run_python(
            "import maia_hf, torch\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            f"m = AutoModelForCausalLM.from_pretrained({str(tiny_maia_dir)!r})\n"
            f"t = AutoTokenizer.from_pretrained({str(tiny_maia_dir)!r})\n"
            "ids = torch.tensor([t.encode_text('p60 wait12 endp60', composer='bach')[:-1]])\n"
            "out = m.generate(ids, max_new_tokens=8, do_sample=False)\n"
            "print(type(m).__name__, type(t).__name__, out.shape[1])\n"
        )
        assert out.split() == ["MaiaForCausalLM", "MaiaTokenizer", "13"]

    def test_auto_map_directory_loads_with_trust_remote_code_and_no_import(self, tiny_maia_dir, tmp_path):
        config = json.loads((tiny_maia_dir / "config.json").read_text())
        assert config["auto_map"]["AutoModelForCausalLM"] == "modeling_maia.MaiaForCausalLM"
        assert (tiny_maia_dir / "modeling_maia.py").exists() and (tiny_maia_dir / "codec.py").exists()
        out = run_python(
            "import sys, torch\n"
            "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
            f"m = AutoModelForCausalLM.from_pretrained({str(tiny_maia_dir)!r}, trust_remote_code=True)\n"
            f"t = AutoTokenizer.from_pretrained({str(tiny_maia_dir)!r}, trust_remote_code=True)\n"
            "out = m.generate(torch.tensor([[2, 245, 43]]), max_new_tokens=4, do_sample=False)\n"
            "print(type(m).__name__, type(t).__name__, 'maia_hf' in sys.modules, out.shape[1])\n",
            cwd=tmp_path,
        )
        assert out.split() == ["MaiaForCausalLM", "MaiaTokenizer", "False", "7"]


class TestShippedModel:
    def test_default_model_loads_through_the_auto_classes_and_pipelines(self):
        import maia_hf

        model = AutoModelForCausalLM.from_pretrained(maia_hf.DEFAULT_MODEL)
        assert type(model) is MaiaForCausalLM and model.config.n_layer == 6 and model.config.n_embd == 256
        generator = pipeline("text-generation", model=maia_hf.DEFAULT_MODEL)
        (result,) = generator("p62 p65 wait6 endp62 endp65", max_new_tokens=8, do_sample=False)
        assert result["generated_text"].startswith("p62 p65 wait6 endp62 endp65 ")
        music = pipeline("music-generation", model=maia_hf.DEFAULT_MODEL)
        out = music("p62 p65 wait6 endp62 endp65", composer="mozart", max_new_tokens=40)
        assert out["midi"][:4] == b"MThd" and out["notewise"]

    def test_default_model_card_reports_its_figures(self):
        import maia_hf

        card = (Path(maia_hf.DEFAULT_MODEL) / "README.md").read_text()
        assert "license: cc-by-sa-4.0" in card and "bits per token" in card and "piano-midi.de" in card
