"""Sparse Transformer attention: the exact patterns, every backend against brute force, caches, padding."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from helpers import REPO
from transformers import AttentionInterface
from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface, causal_mask_function

import maia_hf.sparse_attention as sparse
from maia_hf import MaiaConfig, MaiaForCausalLM
from maia_hf.errors import MaiaInputError
from maia_hf.sparse_attention import FlexSparseMask, SplitSparseMask, fixed_pattern_mask, strided_pattern_mask

# Uncompiled FlexAttention applies mask_mod everywhere (a dense reference); the compiled kernel, which
# trusts the block structure, is checked by TestFlexBlockStructure and the slow test at the end.
pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")

TINY_SPARSE = {"n_layer": 2, "n_head": 4, "n_embd": 32, "n_inner": 64, "n_positions": 128}
BLOCK, SUMMARY = 8, 2
PATTERNS = {
    "fixed": ("maia_sparse_fixed", {}),
    "fixed-per-head": ("maia_sparse_fixed", {"sparse_per_head_summary": True}),
    "strided": ("maia_sparse_strided", {}),
}
BACKENDS = ["sdpa", "flex", "split"]


@pytest.fixture(autouse=True)
def uncompiled_flex(monkeypatch):
    import torch.nn.attention.flex_attention as flex

    monkeypatch.setattr(sparse, "COMPILE_FLEX", False)
    monkeypatch.setattr(sparse, "FLEX_MIN_QUERIES", 1)  # tiny shapes must reach FlexAttention too
    # Uncompiled flex still traces each new shape with dynamo (seconds each); its debug switch runs the
    # same dense reference in plain Python.
    monkeypatch.setattr(flex, "_FLEX_ATTENTION_DISABLE_COMPILE_DEBUG", True, raising=False)
    monkeypatch.setattr(sparse, "_warned", set())


def paper_fixed(n, l, c, head=None):
    """Child et al. (2019) eq. for the fixed pattern, element by element: A1 = same block, A2 = summary."""
    start = l - c if head is None else l - c * (head % (l // c) + 1)
    return torch.tensor(
        [[j <= i and (j // l == i // l or start <= j % l < start + c) for j in range(n)] for i in range(n)]
    )


def paper_strided(n, l):
    """A1 = {max(0, i - l) .. i}, A2 = {j : (i - j) mod l = 0}, both causal."""
    return torch.tensor([[j <= i and (j >= max(0, i - l) or (i - j) % l == 0) for j in range(n)] for i in range(n)])


def brute_force(q, k, v, allowed, scale):
    """Masked softmax attention over a boolean mask broadcastable to (B, H, Q, K); output (B, Q, H, d)."""
    scores = (q @ k.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~allowed, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1))  # fully masked rows (pads) -> 0
    return (weights @ v).transpose(1, 2)


def sparse_model(name, backend, **overrides):
    impl, extra = PATTERNS[name]
    config = MaiaConfig(
        attn_implementation=impl,
        sparse_block=BLOCK,
        sparse_summary=SUMMARY,
        sparse_backend=backend,
        **{**TINY_SPARSE, **extra, **overrides},
    )
    torch.manual_seed(0)
    return MaiaForCausalLM(config).eval()


def pattern_mask(name, n, n_head=TINY_SPARSE["n_head"], block=BLOCK, summary=SUMMARY):
    """(1, H or 1, n, n) from the public pure functions."""
    if name == "strided":
        return strided_pattern_mask(n, block)[None, None]
    if name == "fixed-per-head":
        return torch.stack([fixed_pattern_mask(n, block, summary, head=h) for h in range(n_head)])[None]
    return fixed_pattern_mask(n, block, summary)[None, None]


class TestPatterns:
    @pytest.mark.parametrize(("n", "l", "c"), [(1, 4, 1), (16, 4, 1), (37, 8, 2), (64, 16, 16), (20, 32, 4)])
    def test_fixed_matches_the_paper(self, n, l, c):
        assert torch.equal(fixed_pattern_mask(n, l, c), paper_fixed(n, l, c))

    @pytest.mark.parametrize(("n", "l"), [(1, 4), (16, 1), (37, 8), (50, 7)])
    def test_strided_matches_the_paper(self, n, l):
        assert torch.equal(strided_pattern_mask(n, l), paper_strided(n, l))

    def test_per_head_summaries_are_distinct_sub_blocks(self):
        n, l, c = 32, 16, 4
        masks = [fixed_pattern_mask(n, l, c, head=h) for h in range(6)]
        assert torch.equal(masks[0], fixed_pattern_mask(n, l, c))  # head 0: the last c positions
        assert torch.equal(masks[1], paper_fixed(n, l, c, head=1))
        last_row_summaries = [set(torch.nonzero(m[-1, :l]).flatten().tolist()) for m in masks[:4]]
        assert last_row_summaries == [{12, 13, 14, 15}, {8, 9, 10, 11}, {4, 5, 6, 7}, {0, 1, 2, 3}]
        assert torch.equal(masks[4], masks[0]) and torch.equal(masks[5], masks[1])  # l/c = 4 sub-blocks cycle

    def test_row_counts_are_sparse(self):
        # fixed: a row sees its own block and c per earlier block; strided: l back plus one per stride.
        n, l, c = 1024, 32, 4
        assert fixed_pattern_mask(n, l, c).sum(-1).max() == (n // l - 1) * c + l
        assert strided_pattern_mask(n, l).sum(-1).max() == l + (n - l) // l

    @pytest.mark.parametrize(
        ("call", "match"),
        [
            (lambda: fixed_pattern_mask(8, 4, 5), "sparse_summary must be between 1 and sparse_block"),
            (lambda: fixed_pattern_mask(8, 0, 0), "sparse_block must be a positive"),
            (lambda: strided_pattern_mask(8, 0), "sparse_block must be a positive"),
        ],
        ids=["summary>block", "block=0", "stride=0"],
    )
    def test_bad_sizes(self, call, match):
        with pytest.raises(MaiaInputError, match=match):
            call()


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


def call_registered(name, backend, q, k, v, q_offset=0, attention_mask=None, block=BLOCK, summary=SUMMARY):
    """Mask function then attention function, exactly as a GPT-2 layer reaches them."""
    impl = PATTERNS[name][0]
    config = MaiaConfig(
        sparse_block=block,
        sparse_summary=summary,
        sparse_backend=backend,
        sparse_per_head_summary=name == "fixed-per-head",
        n_head=q.shape[1],
        n_embd=q.shape[1] * q.shape[-1],
    )
    mask = ALL_MASK_ATTENTION_FUNCTIONS[impl](
        batch_size=q.shape[0],
        q_length=q.shape[2],
        kv_length=k.shape[2],
        q_offset=q_offset,
        kv_offset=0,
        mask_function=causal_mask_function,
        attention_mask=attention_mask,
        config=config,
        device=q.device,
    )
    module = torch.nn.Module().eval()
    output, _ = AttentionInterface._global_mapping[impl](module, q, k, v, mask, dropout=0.0, scaling=0.3)
    return output, mask


class TestBackendsEqualBruteForce:
    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("name", list(PATTERNS))
    @pytest.mark.parametrize("n", [5, 37, 130])
    def test_whole_sequence(self, backend, name, n):
        torch.manual_seed(n)
        q, k, v = (torch.randn(2, 4, n, 16) for _ in range(3))
        output, _ = call_registered(name, backend, q, k, v)
        torch.testing.assert_close(output, brute_force(q, k, v, pattern_mask(name, n), 0.3), atol=1e-5, rtol=1e-5)

    @pytest.mark.parametrize("backend", BACKENDS)
    @pytest.mark.parametrize("name", list(PATTERNS))
    def test_queries_after_a_cache_and_left_padding(self, backend, name):
        # 3 new queries over 40 keys; row 0 has 6 pads on the left, so its positions are index - 6.
        torch.manual_seed(1)
        q, (k, v) = torch.randn(2, 4, 3, 16), (torch.randn(2, 4, 40, 16) for _ in range(2))
        pads = 6
        attention_mask = torch.ones(2, 40, dtype=torch.long)
        attention_mask[0, :pads] = 0
        output, _ = call_registered(name, backend, q, k, v, q_offset=37, attention_mask=attention_mask)
        full = pattern_mask(name, 40)
        expected_1 = brute_force(q[1:], k[1:], v[1:], full[..., 37:, :], 0.3)
        expected_0 = brute_force(q[:1], k[:1, :, pads:], v[:1, :, pads:], full[..., 37 - pads : 40 - pads, :34], 0.3)
        torch.testing.assert_close(output[1:], expected_1, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(output[:1], expected_0, atol=1e-5, rtol=1e-5)


def blocks_visited(block_mask):
    """(B, H, q_blocks, kv_blocks) booleans: partial and full blocks as FlexAttention will visit them."""

    def dense(num, indices):
        out = torch.zeros(*indices.shape[:-1], indices.shape[-1], dtype=torch.bool)
        for index in torch.cartesian_prod(*(torch.arange(s) for s in indices.shape[:-1])).tolist():
            out[tuple(index)][indices[tuple(index)][: num[tuple(index)]].long()] = True
        return out

    partial = dense(block_mask.kv_num_blocks, block_mask.kv_indices)
    full = dense(block_mask.full_kv_num_blocks, block_mask.full_kv_indices)
    return partial, full


def check_block_structure(mask: FlexSparseMask, batch, n_head):
    """Every allowed element lies in a visited block; every 'full' block (mask_mod skipped) is all allowed."""
    block_mask = mask.block_mask
    q_len, kv_len = block_mask.seq_lengths
    size_q, size_kv = block_mask.BLOCK_SIZE
    b, h = torch.arange(batch)[:, None, None, None], torch.arange(n_head)[None, :, None, None]
    elements = block_mask.mask_mod(b, h, torch.arange(q_len)[None, None, :, None], torch.arange(kv_len))
    elements = elements.expand(batch, n_head, q_len, kv_len)
    partial, full = blocks_visited(block_mask)
    assert not (partial & full).any()
    visited = (partial | full).expand(batch, n_head, -1, -1)
    full = full.expand(batch, n_head, -1, -1)
    for qb in range(visited.shape[2]):
        for kb in range(visited.shape[3]):
            tile = elements[:, :, qb * size_q : (qb + 1) * size_q, kb * size_kv : (kb + 1) * size_kv]
            assert (visited[:, :, qb, kb] | ~tile.flatten(2).any(-1)).all(), (qb, kb)
            assert (~full[:, :, qb, kb] | tile.flatten(2).all(-1)).all(), (qb, kb)
    return visited[0, 0]


class TestFlexBlockStructure:
    @pytest.mark.parametrize("name", list(PATTERNS))
    @pytest.mark.parametrize("n", [8, 100, 300])
    def test_plain_sequences(self, name, n):
        q, k, v = (torch.zeros(1, 4, n, 16) for _ in range(3))
        _, mask = call_registered(name, "flex", q, k, v)
        check_block_structure(mask, 1, 4)

    @pytest.mark.parametrize("name", list(PATTERNS))
    def test_padding_and_cache(self, name):
        q, (k, v) = torch.zeros(2, 4, 3, 16), (torch.zeros(2, 4, 200, 16) for _ in range(2))
        attention_mask = torch.ones(2, 200, dtype=torch.long)
        attention_mask[0, :50] = 0
        _, mask = call_registered(name, "flex", q, k, v, q_offset=197, attention_mask=attention_mask)
        check_block_structure(mask, 2, 4)

    def test_fixed_skips_blocks(self):
        # 1024 tokens, l = 128, c = 16: query block L visits ceil(16 L / 128) summary blocks and 1 own block.
        config = MaiaConfig(sparse_block=128, sparse_summary=16, sparse_backend="flex", n_head=2, n_embd=32)
        mask = ALL_MASK_ATTENTION_FUNCTIONS["maia_sparse_fixed"](
            batch_size=1, q_length=1024, kv_length=1024, mask_function=causal_mask_function, config=config
        )
        visited = check_block_structure(mask, 1, 1)
        assert visited.sum(-1).tolist() == [1, 2, 2, 2, 2, 2, 2, 2]
        assert visited.sum() == 15  # dense causal attention visits 36 blocks of 128 x 128


def test_flex_leaves_short_query_runs_to_sdpa(monkeypatch):
    # Decoding steps and short prompts fit in one query block: nothing to skip, and no recompiles.
    monkeypatch.setattr(sparse, "FLEX_MIN_QUERIES", 128)
    q, k, v = torch.zeros(1, 4, 1, 16), torch.zeros(1, 4, 300, 16), torch.zeros(1, 4, 300, 16)
    _, decode = call_registered("fixed", "flex", q, k, v, q_offset=299)
    q = torch.zeros(1, 4, 300, 16)
    _, prefill = call_registered("fixed", "flex", q, k, v)
    assert isinstance(decode, torch.Tensor) and decode.shape == (1, 1, 1, 300)
    assert isinstance(prefill, FlexSparseMask)


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


class TestFlexFallback:
    def test_cpu_training_falls_back_to_sdpa_with_a_message(self):
        flex, sdpa = sparse_model("fixed", "flex", attn_pdrop=0.0), sparse_model("fixed", "sdpa", attn_pdrop=0.0)
        ids = torch.randint(4, 200, (2, 30))
        losses = []
        with pytest.warns(UserWarning, match="FlexAttention has no backward pass on CPU.*sparse_backend='sdpa'"):
            for model in (flex, sdpa):
                loss = model(ids, labels=ids).loss
                loss.backward()
                losses.append(loss)
        torch.testing.assert_close(losses[0], losses[1])
        grads = [m.transformer.h[0].attn.c_attn.weight.grad for m in (flex, sdpa)]
        torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)

    def test_dropout_falls_back_too(self):
        model = sparse_model("strided", "flex", attn_pdrop=0.5).train()
        with torch.no_grad(), pytest.warns(UserWarning, match=r"no attention dropout \(attn_pdrop=0.5\)"):
            model(torch.randint(4, 200, (1, 20)))

    def test_warns_once(self):
        model = sparse_model("fixed", "flex").train()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for _ in range(3):
                model(torch.randint(4, 200, (1, 20)), labels=torch.randint(4, 200, (1, 20))).loss.backward()
        assert sum("maia sparse attention" in str(w.message) for w in caught) == 1


class TestSplitBackend:
    # Lengths below, at and across l, ragged last blocks, the paper's sizes, and l = 1 and 2 (no or a
    # one-key "previous block" piece for strided); per-head summaries need l / c >= 2.
    @pytest.mark.parametrize(
        ("name", "n", "block", "summary"),
        [
            (name, n, block, summary)
            for name in PATTERNS
            for n, block, summary in [(5, 8, 2), (37, 8, 2), (130, 8, 2), (300, 128, 16), (23, 2, 1), (23, 1, 1)]
            if not (name == "fixed-per-head" and block // summary < 2)
        ],
    )
    def test_gradients_equal_brute_force(self, name, n, block, summary):
        torch.manual_seed(n)
        q, k, v = (torch.randn(2, 4, n, 16, dtype=torch.float64, requires_grad=True) for _ in range(3))
        output, mask = call_registered(name, "split", q, k, v, block=block, summary=summary)
        assert isinstance(mask, SplitSparseMask)  # the split path ran, not a fallback
        expected = brute_force(q, k, v, pattern_mask(name, n, block=block, summary=summary), 0.3)
        torch.testing.assert_close(output, expected, atol=1e-10, rtol=1e-10)
        grad = torch.randn_like(output)
        for ours, theirs in zip(
            torch.autograd.grad(output, (q, k, v), grad), torch.autograd.grad(expected, (q, k, v), grad), strict=True
        ):
            torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=1e-10)

    def test_half_precision_keeps_the_kernels_float_log_sum_exp(self):
        torch.manual_seed(0)
        q, k, v = (torch.randn(1, 4, 300, 16, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        output, _ = call_registered("fixed", "split", q, k, v, block=128, summary=16)
        output.float().sum().backward()  # the kernel's backward wants its float32 log-sum-exp back
        reference = [t.detach().float().requires_grad_() for t in (q, k, v)]
        expected = brute_force(*reference, pattern_mask("fixed", 300, block=128, summary=16), 0.3)
        expected.sum().backward()
        assert output.dtype == torch.bfloat16
        torch.testing.assert_close(output.float(), expected, atol=3e-2, rtol=3e-2)
        torch.testing.assert_close(q.grad.float(), reference[0].grad, atol=3e-2, rtol=3e-2)

    def test_model_trains_on_cpu_without_a_fallback(self):
        split, sdpa = sparse_model("fixed", "split", attn_pdrop=0.0), sparse_model("fixed", "sdpa", attn_pdrop=0.0)
        ids = torch.randint(4, 200, (2, 30))
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no "computing with SDPA instead"
            losses = [m(ids, labels=ids).loss for m in (split, sdpa)]
            for loss in losses:
                loss.backward()
        torch.testing.assert_close(losses[0], losses[1])
        grads = [m.transformer.h[0].attn.c_attn.weight.grad for m in (split, sdpa)]
        torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)

    @pytest.mark.parametrize("name", ["fixed", "strided"])
    def test_padding_and_cached_steps_use_the_dense_mask(self, name):
        q, k, v = (torch.randn(2, 4, 20, 16) for _ in range(3))
        padded = torch.ones(2, 20, dtype=torch.long)
        padded[0, :3] = 0
        _, mask = call_registered(name, "split", q, k, v, attention_mask=padded)
        assert mask.dtype == torch.bool and mask.shape[-2:] == (20, 20)
        _, mask = call_registered(name, "split", q[:, :, -1:], k, v, q_offset=19)
        assert mask.dtype == torch.bool and mask.shape[-2:] == (1, 20)

    def test_dropout_falls_back_to_sdpa(self):
        model = sparse_model("fixed", "split", attn_pdrop=0.5).train()
        with torch.no_grad(), pytest.warns(UserWarning, match=r"split backend has no attention dropout"):
            model(torch.randint(4, 200, (1, 20)))


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


@pytest.mark.slow
@pytest.mark.parametrize("name", list(PATTERNS))
def test_compiled_flex_equals_brute_force(monkeypatch, name):
    # The compiled kernel visits only the listed blocks and skips mask_mod in 'full' ones (~1 min to compile).
    import torch.nn.attention.flex_attention as flex

    monkeypatch.setattr(sparse, "COMPILE_FLEX", True)
    monkeypatch.setattr(flex, "_FLEX_ATTENTION_DISABLE_COMPILE_DEBUG", False, raising=False)
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 4, 1000, 32) for _ in range(3))
    output, _ = call_registered(name, "flex", q, k, v, block=128, summary=16)
    expected = brute_force(q, k, v, pattern_mask(name, 1000, block=128, summary=16), 0.3)
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)
