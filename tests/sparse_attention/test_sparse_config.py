"""The sparse settings of ``MaiaConfig``: one check (`SparsePattern`), persistence, registration, the recipe."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import REPO
from sparse_helpers import PATTERNS, UNCOMPILED_FLEX, call_registered, sparse_model
from transformers import AttentionInterface
from transformers.masking_utils import AttentionMaskInterface

from maia_hf import MaiaConfig, MaiaForCausalLM
from maia_hf.configuration_maia import SparsePattern
from maia_hf.errors import MaiaInputError
from maia_hf.sparse_attention import SplitSparseMask

pytestmark = UNCOMPILED_FLEX


class TestConfigAndRegistration:
    def test_fields_and_attention_persist(self, tmp_path):
        model = sparse_model("fixed-per-head", "flex")
        model.save_pretrained(tmp_path)
        saved = json.loads((tmp_path / "config.json").read_text())
        assert saved["maia_attn_implementation"] == "maia_sparse_fixed"
        assert (saved["sparse_block"], saved["sparse_summary"], saved["sparse_per_head_summary"]) == (8, 2, True)
        assert saved["sparse_backend"] == "flex"
        loaded = MaiaForCausalLM.from_pretrained(tmp_path).eval()
        assert loaded.config._attn_implementation == "maia_sparse_fixed"
        ids = torch.randint(4, 200, (1, 30))
        with torch.no_grad():
            torch.testing.assert_close(loaded(ids).logits, model(ids).logits, atol=1e-5, rtol=1e-5)

    def test_summary_is_checked_for_the_fixed_pattern_only(self):
        assert MaiaConfig(attn_implementation="maia_sparse_strided", sparse_block=8).sparse_block == 8
        with pytest.raises(MaiaInputError, match=r"sparse_summary must be between 1 and sparse_block \(8\), got 16"):
            MaiaConfig(attn_implementation="maia_sparse_fixed", sparse_block=8)
        with pytest.raises(MaiaInputError, match="sparse_block must be a positive block length, got 0"):
            MaiaConfig(attn_implementation="maia_sparse_strided", sparse_block=0)

    def test_bad_backend_is_refused_when_configured(self):
        with pytest.raises(MaiaInputError, match="unknown sparse_backend 'cuda'; choose 'sdpa', 'flex' or 'split'"):
            MaiaConfig(sparse_backend="cuda")

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"kind": "fixed", "block": 8, "summary": 9}, r"sparse_summary must be between 1 and sparse_block \(8\)"),
            ({"kind": "strided", "block": 0}, "sparse_block must be a positive block length, got 0"),
            ({"kind": "fixed", "block": 8, "backend": "cuda"}, "choose 'sdpa', 'flex' or 'split'"),
            ({"kind": "dilated", "block": 8}, "unknown sparse pattern 'dilated'; choose 'fixed' or 'strided'"),
        ],
        ids=["summary>block", "block=0", "backend", "kind"],
    )
    def test_the_pattern_refuses_bad_settings(self, kwargs, match):
        with pytest.raises(MaiaInputError, match=match):
            SparsePattern(**kwargs)

    @pytest.mark.parametrize("name", ["maia_sparse_fixed", "maia_sparse_strided"])
    def test_registered_in_both_interfaces(self, name):
        import maia_hf

        maia_hf.register()  # idempotent
        assert name in AttentionInterface._global_mapping
        assert name in AttentionMaskInterface._global_mapping

    @pytest.mark.parametrize("name", list(PATTERNS))
    def test_the_mask_is_applied(self, name):
        # Equal to dense causal attention would mean transformers dropped the mask (the silent trap).
        ids = torch.randint(4, 200, (1, 40))
        model = sparse_model(name, "sdpa")
        with torch.no_grad():
            sparse_logits = model(ids).logits
            model.set_attn_implementation("sdpa")
            assert (model(ids).logits - sparse_logits).abs().max() > 1e-3


def test_recipe_config_builds_a_4k_sparse_model_that_trains_at_sparse_cost():
    from maia_hf.tokenization_maia import MaiaTokenizer
    from maia_hf.training import build_model, parse_arguments

    model_args, data_args, _ = parse_arguments(["--config", str(REPO / "recipes" / "configs" / "sparse-fixed-4k.yaml")])
    assert data_args.seq_len == model_args.n_positions == 4096
    model = build_model(model_args, MaiaTokenizer.from_pretrained(REPO / "tokenizer"), data_args.seq_len)
    config = model.config
    assert (config.maia_attn_implementation, config.sparse_block, config.sparse_summary) == (
        "maia_sparse_fixed",
        128,
        16,
    )
    # The residual dropout stays; the attention's is 0, which the split backend needs to run at all.
    assert (config.sparse_backend, config.attn_pdrop, config.resid_pdrop) == ("split", 0.0, 0.1)
    _, mask = call_registered("fixed", config.sparse_backend, *(torch.randn(1, 2, 300, 8) for _ in range(3)))
    assert isinstance(mask, SplitSparseMask)
