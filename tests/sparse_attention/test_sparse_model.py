"""A whole sparse ``MaiaForCausalLM`` on every backend: logits, caches, generation, left padding."""

from __future__ import annotations

import pytest
import torch
from sparse_helpers import BACKENDS, PATTERNS, TINY_SPARSE, UNCOMPILED_FLEX, pattern_mask, sparse_model

from maia_hf import MaiaConfig, MaiaForCausalLM

pytestmark = UNCOMPILED_FLEX


class TestModel:
    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("name", list(PATTERNS))
    def test_logits_equal_eager_with_the_pattern_mask(self, backend, name):
        ids = torch.randint(4, 200, (2, 45))
        model = sparse_model(name, backend)
        reference = MaiaForCausalLM(MaiaConfig(attn_implementation="eager", **TINY_SPARSE)).eval()
        reference.load_state_dict(model.state_dict())
        additive = torch.zeros(pattern_mask(name, 45).shape).masked_fill(~pattern_mask(name, 45), -1e30)
        with torch.no_grad():
            expected = reference(ids, attention_mask=additive.expand(2, -1, -1, -1)).logits
            torch.testing.assert_close(model(ids).logits, expected, atol=1e-5, rtol=1e-5)

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("name", list(PATTERNS))
    def test_cached_decoding_equals_recomputation(self, backend, name):
        model = sparse_model(name, backend)
        ids = torch.randint(4, 200, (1, 30))
        with torch.no_grad():
            full = model(ids).logits
            out = model(ids[:, :5], use_cache=True)
            steps = [out.logits]
            for t in range(5, 30):
                out = model(ids[:, t : t + 1], cache=out.cache, use_cache=True)
                steps.append(out.logits)
        torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_generate_with_and_without_cache(self, backend):
        model = sparse_model("fixed", backend)
        prompt = torch.tensor([[2, 250, 43, 191, 131]])
        with_cache = model.generate(prompt, max_new_tokens=20, do_sample=False, use_cache=True)
        without = model.generate(prompt, max_new_tokens=20, do_sample=False, use_cache=False)
        assert with_cache.shape[1] == 25 and torch.equal(with_cache, without)

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("name", list(PATTERNS))
    def test_left_padding_is_honoured(self, backend, name):
        model = sparse_model(name, backend)
        short, long = torch.randint(4, 200, (1, 13)), torch.randint(4, 200, (1, 24))
        batch = torch.cat([torch.cat([torch.zeros(1, 11, dtype=torch.long), short], 1), long])
        attention_mask = (torch.arange(24) >= torch.tensor([[11], [0]])).long()
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            padded = model(batch, attention_mask=attention_mask, position_ids=position_ids).logits
            torch.testing.assert_close(padded[0, 11:], model(short).logits[0], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(padded[1], model(long).logits[0], atol=1e-5, rtol=1e-5)
        assert not padded.isnan().any()

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_left_padded_generation_equals_one_by_one(self, backend):
        model = sparse_model("fixed-per-head", backend)
        prompts = [[2, 250, 43], [2, 250, 43, 191, 131, 60, 61]]
        batch = torch.tensor([[0] * 4 + prompts[0], prompts[1]])
        attention_mask = (batch != 0).long()
        together = model.generate(batch, attention_mask=attention_mask, max_new_tokens=12, do_sample=False)
        for row, prompt in enumerate(prompts):
            alone = model.generate(torch.tensor([prompt]), max_new_tokens=12, do_sample=False)
            assert together[row, -12:].tolist() == alone[0, -12:].tolist()
