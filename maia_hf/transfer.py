"""GPT-2 -> maia: keep GPT-2's transformer, re-map its token embedding onto notewise words.

``from_gpt2`` builds a :class:`MaiaForCausalLM` of the same shape as a GPT-2 checkpoint. Every
transformer block, the position embeddings and the final layer norm are copied unchanged. The token
embedding cannot be copied (GPT-2 has 50,257 BPE tokens, maia ~273 words), so each maia token's row
is set to the mean of GPT-2's embeddings of the BPE pieces of that token's text, written as it appears
inside a notewise text (with its leading space: ``" wait12"`` -> ``["Ġwait", "12"]``). The LM head
stays tied to the new embedding. See ``docs/models.md``.
"""

from __future__ import annotations

from .modeling_maia import MaiaForCausalLM, bpe_pieces

__all__ = ["bpe_pieces", "from_gpt2"]

# The implementation lives on the model class, as nanoGPT's ``GPT.from_pretrained``; this name stays
# for one release.
from_gpt2 = MaiaForCausalLM.from_gpt2
