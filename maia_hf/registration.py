"""Every registration of maia with `transformers`, in one place, idempotent.

``import maia_hf`` calls :func:`register` once; calling it again does nothing. It registers:

- ``AutoConfig``: ``maia`` -> `MaiaConfig`, ``maia-lstm`` -> `MaiaLstmConfig`;
- ``AutoModelForCausalLM``: `MaiaForCausalLM`, `MaiaLstmForCausalLM`;
- ``AutoTokenizer``: `MaiaTokenizer` for both configurations;
- ``register_for_auto_class`` on all of them, so a saved model directory carries the code and an
  ``auto_map`` and loads with ``trust_remote_code=True`` where maia is not installed;
- pipelines: ``text-generation`` (a subclass that keeps words apart, identical for other models) and
  ``music-generation``;
- attention: ``maia_sparse_fixed`` and ``maia_sparse_strided`` (`maia_hf.sparse_attention`), each in both
  ``AttentionInterface`` and ``AttentionMaskInterface`` (in the first alone, transformers would run the
  model with no mask at all).

:func:`set_library_verbosity` is the ``maia`` command's and the training recipe's ``--verbose``: their
libraries' notes that say nothing about maia's work (DeepSpeed's accelerator detection, Accelerate's
"Removed shared tensor" for the tied embeddings, transformers' weight-loading bars) are hidden unless it
is given. ``import maia_hf`` alone changes no library's logging.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["register", "set_library_verbosity"]

_registered = False
# None: leave the libraries' logging as they set it (maia used as a library); False: quiet; True: verbose.
_verbose: bool | None = None


class _BelowError(logging.Filter):
    """Drop records below ERROR (DeepSpeed's logger sets its own level and handler when it is imported)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR


_DEEPSPEED_FILTER = _BelowError()


def set_library_verbosity(verbose: bool | None) -> None:
    """Hide (False) or show (True) the warnings and progress bars of transformers, Accelerate and DeepSpeed.

    Quiet: transformers logs errors only and shows no weight-loading or shard-writing bars; Accelerate's
    and DeepSpeed's loggers pass errors only. Verbose (or None, which also stops maia managing them): the
    libraries' defaults. ``TRANSFORMERS_VERBOSITY`` and ``ACCELERATE_LOG_LEVEL``, when set, still win.
    transformers is set now if it is imported, else when :func:`register` imports it; Hugging Face Hub
    download bars always show (a download is real waiting).

    Example:

    ```python
    >>> import logging
    >>> from maia_hf.registration import set_library_verbosity
    >>> set_library_verbosity(False)
    >>> logging.getLogger("accelerate").level == logging.ERROR
    True
    >>> set_library_verbosity(None)
    >>> logging.getLogger("accelerate").level == logging.NOTSET
    True

    ```
    """
    global _verbose
    _verbose = verbose
    quiet = verbose is False
    deepspeed = logging.getLogger("DeepSpeed")
    if quiet:
        deepspeed.addFilter(_DEEPSPEED_FILTER)
    else:
        deepspeed.removeFilter(_DEEPSPEED_FILTER)
    if "ACCELERATE_LOG_LEVEL" not in os.environ:
        logging.getLogger("accelerate").setLevel(logging.ERROR if quiet else logging.NOTSET)
    if "transformers" in sys.modules:
        _set_transformers_verbosity()


def _set_transformers_verbosity() -> None:
    from transformers.utils import logging as transformers_logging

    quiet = _verbose is False
    if "TRANSFORMERS_VERBOSITY" not in os.environ:
        transformers_logging.set_verbosity(logging.ERROR if quiet else logging.WARNING)
    if quiet:
        transformers_logging.disable_progress_bar()
    else:
        transformers_logging.enable_progress_bar()


def register() -> None:
    """Register maia's classes with `transformers` (safe to call many times)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface, AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.masking_utils import AttentionMaskInterface
    from transformers.pipelines import PIPELINE_REGISTRY
    from transformers.utils import logging

    from .configuration_maia import MaiaConfig
    from .configuration_maia_lstm import MaiaLstmConfig
    from .modeling_maia import MaiaForCausalLM
    from .modeling_maia_lstm import MaiaLstmForCausalLM
    from .pipelines import MaiaTextGenerationPipeline, MusicGenerationPipeline
    from .sparse_attention import fixed_mask_interface, sparse_attention_forward, strided_mask_interface
    from .tokenization_maia import MaiaTokenizer

    for config_class, model_class in ((MaiaConfig, MaiaForCausalLM), (MaiaLstmConfig, MaiaLstmForCausalLM)):
        AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
        AutoModelForCausalLM.register(config_class, model_class, exist_ok=True)
        AutoTokenizer.register(config_class, tokenizer_class=MaiaTokenizer, exist_ok=True)
        config_class.register_for_auto_class()
        model_class.register_for_auto_class("AutoModelForCausalLM")
    MaiaTokenizer.register_for_auto_class()

    for name, mask_interface in (
        ("maia_sparse_fixed", fixed_mask_interface),
        ("maia_sparse_strided", strided_mask_interface),
    ):
        AttentionInterface.register(name, sparse_attention_forward)
        AttentionMaskInterface.register(name, mask_interface)

    # Replacing the text-generation task logs a warning meant for accidental overrides; this one is
    # deliberate and changes nothing for other tokenizers.
    registry_logger = logging.get_logger("transformers.pipelines.base")
    level = registry_logger.level
    registry_logger.setLevel(logging.ERROR)
    try:
        text_generation = PIPELINE_REGISTRY.supported_tasks["text-generation"]
        PIPELINE_REGISTRY.register_pipeline(
            "text-generation",
            pipeline_class=MaiaTextGenerationPipeline,
            pt_model=text_generation["pt"],
            default=text_generation.get("default"),
            type=text_generation.get("type", "text"),
        )
        PIPELINE_REGISTRY.register_pipeline(
            "music-generation", pipeline_class=MusicGenerationPipeline, pt_model=AutoModelForCausalLM, type="text"
        )
    finally:
        registry_logger.setLevel(level)
    _registered = True
    if _verbose is not None:
        _set_transformers_verbosity()
