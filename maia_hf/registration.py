"""Every registration of maia with `transformers`, in one place, idempotent.

``import maia_hf`` calls :func:`register` once; calling it again does nothing.
"""

from __future__ import annotations

__all__ = ["register"]

_registered = False


def register() -> None:
    """Register maia's classes with the `transformers` Auto classes (safe to call many times)."""
    global _registered
    if _registered:
        return
    from transformers import AutoConfig, AutoTokenizer

    from .configuration_maia import MaiaConfig
    from .tokenization_maia import MaiaTokenizer

    AutoConfig.register(MaiaConfig.model_type, MaiaConfig, exist_ok=True)
    AutoTokenizer.register(MaiaConfig, tokenizer_class=MaiaTokenizer, exist_ok=True)
    _registered = True
