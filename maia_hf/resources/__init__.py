"""Files that ship inside the package: the Lacrimosa prompt and the default model (``maia_hf.DEFAULT_MODEL``)."""

from pathlib import Path

__all__ = ["LACRIMOSA_PROMPT", "RESOURCES"]

RESOURCES = Path(__file__).parent
# Mozart's 8 bars of the Lacrimosa as maia notewise text (see the file's header).
LACRIMOSA_PROMPT = RESOURCES / "lacrimosa_prompt.txt"
