"""`MaiaConfig`: a GPT-2 configuration with the notewise vocabulary and ``model_type="maia"``.

Also `SparsePattern`, the one check of the sparse attention settings, and the patterns as index
predicates: they live here, without torch, because a saved model directory carries this file.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import GPT2Config

from .errors import MaiaInputError

__all__ = [
    "PRESETS",
    "SPARSE_BACKENDS",
    "MaiaConfig",
    "SparsePattern",
    "fixed_allows",
    "strided_allows",
]

# Size of the default MaiaTokenizer vocabulary: 4 special + 88 p + 88 endp + 48 wait + 45 composers + 3 FIM.
DEFAULT_VOCAB_SIZE = 276

# Named shapes. maia-seed is the original maia GPT; the gpt2-* presets are GPT-2's own shapes (so that
# GPT-2 checkpoints transfer into them) with the notewise vocabulary.
PRESETS: dict[str, dict] = {
    "maia-seed": {"n_layer": 6, "n_head": 8, "n_embd": 256, "n_inner": 1024, "n_positions": 512},
    "gpt2-117m": {"n_layer": 12, "n_head": 12, "n_embd": 768, "n_inner": None, "n_positions": 1024},
    "gpt2-345m": {"n_layer": 24, "n_head": 16, "n_embd": 1024, "n_inner": None, "n_positions": 1024},
}

# How the sparse patterns run (docs/sparse_attention.md compares them).
SPARSE_BACKENDS = ("sdpa", "flex", "split")
# The registered sparse attention implementations and the pattern each one runs.
_SPARSE_IMPLEMENTATIONS = {"maia_sparse_fixed": "fixed", "maia_sparse_strided": "strided"}


# --------------------------------------------------------------------------------------------
# The sparse patterns (Child et al., 2019) as pure index predicates: they take integer tensors (or
# ints) that broadcast, and use nothing but operators, so they need no torch import.
# --------------------------------------------------------------------------------------------


def _summary_start(block: int, summary: int, head):
    """First position, within a block, of the summary sub-block used by ``head`` (None: the last ``c``)."""
    if head is None:
        return block - summary
    return block - summary * (head % (block // summary) + 1)


def fixed_allows(q_pos, kv_pos, block: int, summary: int, head=None):
    """Fixed pattern: ``kv_pos <= q_pos`` and (same block, or ``kv_pos`` a summary position of its block).

    Example:

    ```python
    >>> from maia_hf.configuration_maia import fixed_allows
    >>> fixed_allows(9, 3, block=4, summary=1), fixed_allows(9, 2, block=4, summary=1)
    (True, False)

    ```
    """
    start = _summary_start(block, summary, head)
    in_summary = (kv_pos % block >= start) & (kv_pos % block < start + summary)
    return (kv_pos <= q_pos) & ((q_pos // block == kv_pos // block) | in_summary)


def strided_allows(q_pos, kv_pos, stride: int):
    """Strided pattern: ``kv_pos <= q_pos`` and (one of the previous ``stride``, or a multiple of it back).

    Example:

    ```python
    >>> from maia_hf.configuration_maia import strided_allows
    >>> strided_allows(9, 1, stride=4), strided_allows(9, 2, stride=4)
    (True, False)

    ```
    """
    # Written without q_pos - kv_pos: on [n, n] grids that would be an int64 tensor 8x the boolean mask.
    near = kv_pos > q_pos - stride
    same_phase = q_pos % stride == kv_pos % stride
    return (kv_pos <= q_pos) & (near | same_phase)


def _check_sparse_backend(backend: str) -> None:
    if backend not in SPARSE_BACKENDS:
        *others, last = (repr(name) for name in SPARSE_BACKENDS)
        raise MaiaInputError(f"unknown sparse_backend {backend!r}; choose {', '.join(others)} or {last}")


@dataclass(frozen=True)
class SparsePattern:
    """One sparse pattern with its sizes, validated: what ``MaiaConfig`` and the attention functions read.

    Args:
        kind (`str`): ``"fixed"`` or ``"strided"``.
        block (`int`): block length (fixed) or stride (strided), ``l``.
        summary (`int`, *optional*, defaults to 1): summary positions per block ``c`` (fixed only,
            ``1 <= c <= l``).
        per_head_summary (`bool`, *optional*, defaults to `False`): a distinct summary sub-block per head.
        backend (`str`, *optional*, defaults to ``"sdpa"``): ``"sdpa"``, ``"flex"`` or ``"split"``.

    Raises:
        MaiaInputError: an unknown kind or backend, or sizes outside those ranges.

    Example:

    ```python
    >>> from maia_hf.configuration_maia import SparsePattern
    >>> pattern = SparsePattern("fixed", block=8, summary=2, per_head_summary=True)
    >>> pattern.varies_by_head, pattern.allows(None, 12, 7), pattern.allows(None, 12, 3)
    (True, True, False)
    >>> SparsePattern("fixed", block=8, summary=16)
    Traceback (most recent call last):
    ...
    maia_hf.errors.MaiaInputError: sparse_summary must be between 1 and sparse_block (8), got 16

    ```
    """

    kind: str
    block: int
    summary: int = 1
    per_head_summary: bool = False
    backend: str = "sdpa"

    def __post_init__(self):
        if self.kind not in ("fixed", "strided"):
            raise MaiaInputError(f"unknown sparse pattern {self.kind!r}; choose 'fixed' or 'strided'")
        if int(self.block) < 1:
            raise MaiaInputError(f"sparse_block must be a positive block length, got {self.block}")
        # The summary belongs to the fixed pattern alone (a strided stride below 16 needs no summary).
        if self.kind == "fixed" and not 1 <= int(self.summary) <= int(self.block):
            raise MaiaInputError(
                f"sparse_summary must be between 1 and sparse_block ({self.block}), got {self.summary}"
            )
        _check_sparse_backend(self.backend)

    @classmethod
    def from_config(cls, config, kind: str) -> SparsePattern:
        """The pattern a (Maia) configuration asks for; plain GPT-2 configs get the defaults."""
        return cls(
            kind,
            block=getattr(config, "sparse_block", 128),
            summary=getattr(config, "sparse_summary", 16),
            per_head_summary=bool(getattr(config, "sparse_per_head_summary", False)),
            backend=getattr(config, "sparse_backend", "sdpa"),
        )

    @property
    def varies_by_head(self) -> bool:
        """Whether heads see different summaries (a per-head summary with at least two sub-blocks)."""
        return self.kind == "fixed" and self.per_head_summary and self.block // self.summary > 1

    def allows(self, head, q_pos, kv_pos):
        """Whether ``q_pos`` may attend to ``kv_pos`` (sequence positions; broadcasting tensors or ints)."""
        if self.kind == "strided":
            return strided_allows(q_pos, kv_pos, self.block)
        return fixed_allows(q_pos, kv_pos, self.block, self.summary, head if self.varies_by_head else None)


def _checked_sounding_notes(spec, vocab_size: int) -> dict | None:
    """``sounding_notes`` as the model reads it, or one clear error."""
    if not spec:
        return None
    if not isinstance(spec, dict) or not {"note_on_ids", "note_off_ids"} <= set(spec):
        raise MaiaInputError(
            "sounding_notes must be a dict with note_on_ids and note_off_ids (and reset_ids); "
            "build it with MaiaConfig.sounding_notes_of(tokenizer)"
        )
    spec = {key: [int(i) for i in spec.get(key, [])] for key in ("note_on_ids", "note_off_ids", "reset_ids")}
    if len(spec["note_on_ids"]) != len(spec["note_off_ids"]) or not spec["note_on_ids"]:
        raise MaiaInputError(
            f"sounding_notes needs one note-off id per note-on id, got {len(spec['note_on_ids'])} and "
            f"{len(spec['note_off_ids'])}"
        )
    ids = [i for values in spec.values() for i in values]
    if min(ids) < 0 or max(ids) >= vocab_size:
        raise MaiaInputError(
            f"sounding_notes ids must lie in the vocabulary (0..{vocab_size - 1}), got {min(ids)}..{max(ids)}"
        )
    return spec


class MaiaConfig(GPT2Config):
    """Configuration of a maia GPT: GPT-2 with the notewise vocabulary and maia's special-token ids.

    Defaults are the original maia GPT (``maia-seed``): 6 layers, 8 heads, 256-dim states,
    1024-dim inner layer, 512 positions. Other shapes: :meth:`from_preset`.

    Unlike plain GPT-2, the attention implementation chosen here (``attn_implementation="eager"``,
    ``"sdpa"``, or a registered one such as ``"maia_sparse_fixed"``) is written to ``config.json`` as
    ``maia_attn_implementation`` and restored by ``from_pretrained``.

    Args:
        vocab_size (`int`, *optional*, defaults to 276): size of the tokenizer's vocabulary.
        n_positions (`int`, *optional*, defaults to 512): longest context in tokens.
        n_embd (`int`, *optional*, defaults to 256), n_layer (`int`, *optional*, defaults to 6),
        n_head (`int`, *optional*, defaults to 8), n_inner (`int`, *optional*, defaults to 1024):
            the transformer's shape.
        pad_token_id, bos_token_id, eos_token_id (`int`, *optional*, defaults to 0, 2, 3):
            ``<pad>``, ``<start>`` and ``<end>`` in the default tokenizer.
        maia_attn_implementation (`str`, *optional*): the persisted attention implementation; set it
            through ``attn_implementation``.
        sparse_block (`int`, *optional*, defaults to 128): for ``"maia_sparse_fixed"`` the block length
            ``l``, for ``"maia_sparse_strided"`` the stride ``l`` (Child et al., 2019). See
            ``docs/sparse_attention.md``.
        sparse_summary (`int`, *optional*, defaults to 16): for ``"maia_sparse_fixed"``, the summary
            positions ``c`` at the end of each block that every later position attends to (``1 <= c <= l``).
        sparse_per_head_summary (`bool`, *optional*, defaults to `False`): for ``"maia_sparse_fixed"``,
            give head ``h`` its own summary sub-block of ``c`` positions, the ``(h mod l/c)``-th from the end
            of each block, instead of the last ``c`` positions for every head.
        activation_function (`str`, *optional*, defaults to ``"gelu_pytorch_tanh"``): GPT-2's tanh GELU
            (the same function as GPT-2's ``"gelu_new"``, which saved GPT-2 configurations keep) computed by
            one fused kernel, forward and backward.
        sparse_backend (`str`, *optional*, defaults to ``"sdpa"``): how the sparse patterns run, ``"sdpa"``,
            ``"split"`` or ``"flex"`` (their costs and fallbacks: ``docs/sparse_attention.md``).
        sounding_notes (`dict`, *optional*): give each position the pitches sounding there as an input
            (`~maia_hf.modeling_maia.MaiaSoundingNotes`): ``{"note_on_ids": [...], "note_off_ids": [...],
            "reset_ids": [...]}``, the ids of each pitch's ``pN`` and ``endpN`` and of the words that start a
            passage; :meth:`sounding_notes_of` reads them from a tokenizer. None (the default): no such input.

    Example:

    ```python
    >>> from maia_hf import MaiaConfig
    >>> MaiaConfig().n_layer, MaiaConfig.from_preset("gpt2-117m").n_embd
    (6, 768)

    ```
    """

    model_type = "maia"

    def __init__(
        self,
        vocab_size: int = DEFAULT_VOCAB_SIZE,
        n_positions: int = 512,
        n_embd: int = 256,
        n_layer: int = 6,
        n_head: int = 8,
        n_inner: int | None = 1024,
        pad_token_id: int = 0,
        bos_token_id: int = 2,
        eos_token_id: int = 3,
        maia_attn_implementation: str | None = None,
        sparse_block: int = 128,
        sparse_summary: int = 16,
        sparse_per_head_summary: bool = False,
        sparse_backend: str = "sdpa",
        activation_function: str = "gelu_pytorch_tanh",
        sounding_notes: dict | None = None,
        **kwargs,
    ):
        _check_sparse_backend(sparse_backend)
        self.sounding_notes = _checked_sounding_notes(sounding_notes, vocab_size)
        chosen = kwargs.get("attn_implementation") or maia_attn_implementation
        if chosen in _SPARSE_IMPLEMENTATIONS:
            SparsePattern(
                _SPARSE_IMPLEMENTATIONS[chosen], sparse_block, sparse_summary, sparse_per_head_summary, sparse_backend
            )
        self.sparse_block = sparse_block
        self.sparse_summary = sparse_summary
        self.sparse_per_head_summary = sparse_per_head_summary
        self.sparse_backend = sparse_backend
        if chosen is not None:
            kwargs["attn_implementation"] = chosen
        self.maia_attn_implementation = chosen
        super().__init__(
            vocab_size=vocab_size,
            n_positions=n_positions,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            n_inner=n_inner,
            activation_function=activation_function,
            pad_token_id=pad_token_id,
            bos_token_id=bos_token_id,
            eos_token_id=eos_token_id,
            **kwargs,
        )

    @staticmethod
    def sounding_notes_of(tokenizer) -> dict:
        """The ``sounding_notes`` setting for a `MaiaTokenizer`'s vocabulary (its pitches, in order).

        Example:

        ```python
        >>> from maia_hf import MaiaConfig, MaiaTokenizer
        >>> spec = MaiaConfig.sounding_notes_of(MaiaTokenizer())
        >>> len(spec["note_on_ids"]), spec["note_on_ids"][0], spec["note_off_ids"][0], spec["reset_ids"]
        (88, 4, 92, [2, 273, 274, 275])

        ```
        """
        layout = tokenizer.layout
        fim = [i for i in (layout.fim_prefix, layout.fim_suffix, layout.fim_middle) if i is not None]
        return {
            "note_on_ids": list(range(layout.on, layout.on + layout.n_pitches)),
            "note_off_ids": list(range(layout.off, layout.off + layout.n_pitches)),
            "reset_ids": [layout.bos, *fim],
        }

    @classmethod
    def from_preset(cls, name: str, **overrides) -> MaiaConfig:
        """A configuration of a named shape: ``maia-seed``, ``gpt2-117m`` or ``gpt2-345m``.

        Raises:
            MaiaInputError: an unknown preset name (the message lists the known ones).
        """
        if name not in PRESETS:
            raise MaiaInputError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})
