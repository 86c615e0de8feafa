"""Files that ship inside the package."""

from pathlib import Path

RESOURCES = Path(__file__).parent
# Mozart's 8 bars of the Lacrimosa as maia notewise text (see the file's header).
LACRIMOSA_PROMPT = RESOURCES / "lacrimosa_prompt.txt"
