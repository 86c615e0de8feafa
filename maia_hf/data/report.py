"""What a build did, for the console, ``build_report.json`` and the dataset card (``README.md``)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from .stats import StatsRow, format_stats, stats_markdown

__all__ = ["BuildReport", "dataset_card"]


@dataclass
class BuildReport:
    """What a build did: files read and from where, files left out and why, the figures.

    Attributes:
        skipped (`list[tuple[str, str]]`): (file, reason) for every file or piece left out.
        remarks (`list[str]`): remarks, e.g. composers without a token written as ``unknown``.
        stats (`list[StatsRow]`): pieces, sequences, notes, tokens and windows per split and composer.
    """

    out: str
    sources: list[str]
    config: dict
    codec: dict
    files: int = 0
    files_parsed: int = 0
    files_from_cache: int = 0
    pieces: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)
    canonical: dict = field(default_factory=dict)
    drum_notes_dropped: int = 0
    stats: list[StatsRow] = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        data["skipped"] = [list(s) for s in self.skipped]
        return json.dumps(data, indent=1)

    @classmethod
    def from_json(cls, text: str) -> BuildReport:
        data = json.loads(text)
        if "notes" in data:  # reports written before the field was renamed
            data["remarks"] = data.pop("notes")
        data["skipped"] = [tuple(s) for s in data["skipped"]]
        data["stats"] = [StatsRow(**row) for row in data["stats"]]
        return cls(**data)

    def summary(self) -> str:
        return (
            f"{self.files:,} files ({self.files_parsed:,} parsed, {self.files_from_cache:,} from the cache), "
            f"{self.pieces:,} pieces, {len(self.skipped):,} left out"
        )

    def format_skipped(self) -> str:
        if not self.skipped:
            return "no file left out"
        width = min(70, max(len(f) for f, _ in self.skipped))
        lines = [f"{'file':<{width}}  reason"]
        lines += [f"{_clip(file, width):<{width}}  {reason}" for file, reason in self.skipped]
        return "\n".join(lines)

    def format(self) -> str:
        """Everything the console shows at the end of a build."""
        parts = [self.summary(), "", f"left out ({len(self.skipped)}):", self.format_skipped()]
        if self.remarks:
            parts += ["", "remarks:"] + [f"  {n}" for n in self.remarks]
        parts += ["", format_stats(self.stats), "", f"wrote {self.out} in {self.seconds.get('total', 0):.1f} s"]
        return "\n".join(parts)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3) :]


def dataset_card(report: BuildReport) -> str:
    """The ``README.md`` of a built corpus: how it was made, its columns and rules, its figures."""
    config = report.config
    keys = config["transpositions"]
    lines = [
        "---",
        "tags: [music, symbolic-music, midi, notewise, maia]",
        "pretty_name: maia notewise corpus",
        "---",
        "",
        "# maia notewise corpus",
        "",
        "Built by `maia data build` (maia_hf.data) from:",
        "",
        *[f"- `{s}`" for s in report.sources],
        "",
        "Load it with `datasets.load_from_disk(DIR)` (splits `train`, `validation`, `test`) and its "
        "tokenizer with `AutoTokenizer.from_pretrained(DIR + '/tokenizer')`.",
        "",
        "## Settings",
        "",
        f"- windows of {config['seq_len']} tokens every {config['stride']} tokens "
        f"(overlap {config['overlap']}); the last window of a piece ends on its `<end>` token",
        f"- training pieces in {len(keys)} keys (transpositions {keys[0]}..{keys[-1]} semitones)"
        if keys == list(range(keys[0], keys[-1] + 1))
        else f"- training pieces transposed by {keys} semitones",
        "- validation and test pieces in their original key only",
        f"- split by piece: validation {config['validation_fraction']}, test {config['test_fraction']} "
        "of the pieces, from a hash of the piece id",
        f"- codec: {json.dumps(report.codec)}",
        "",
        "## Columns",
        "",
        "| column | meaning |",
        "|---|---|",
        "| `piece_id` | the piece: sha256 of the file's bytes (16 hex digits), `#N` for the N-th tune of a file |",
        "| `composer` | the composer token's name (`<composer:NAME>`) |",
        "| `source` | the file (and tune) the piece comes from |",
        "| `transpose` | semitones the piece was transposed by (0 outside `train`) |",
        "| `window_start` | position of the window's first token in the piece's sequence |",
        "| `n_tokens`, `n_notes` | tokens and notes of the whole (transposed) sequence the window comes from |",
        "| `input_ids` | the window's token ids |",
        "",
        "## Figures",
        "",
        report.summary() + ".",
        "",
        stats_markdown(report.stats),
        "",
        f"## Left out ({len(report.skipped)})",
        "",
    ]
    if report.skipped:
        lines += ["| file | reason |", "|---|---|"]
        lines += [f"| `{f}` | {r.replace('|', '/')} |" for f, r in report.skipped]
    else:
        lines.append("No file was left out.")
    if report.remarks:
        lines += ["", "## Remarks", "", *[f"- {n}" for n in report.remarks]]
    return "\n".join(lines) + "\n"
