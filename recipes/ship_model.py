"""Ship a trained model as maia's default model — only if it beats the one that ships now.

    python recipes/ship_model.py --checkpoint RUN/checkpoints/latest --data CORPUS --card docs/maia-small.md
    python recipes/ship_model.py --model RUN/final --data CORPUS --card docs/maia-small.md

The candidate (a finished run's ``final/`` or a training checkpoint; a checkpoint without ``config.json``
takes the configuration of ``--config-from``, by default the shipped model's) and the shipped model
(``--base``, default ``maia_hf.DEFAULT_MODEL``) are scored on the same validation split of ``--data``, each
token once (``maia_hf.evaluation.validation_nll``). The candidate ships only with fewer bits per token;
a candidate trained to fill in the middle must also use what comes after a gap: on every held-out gap
(``maia_hf.evaluation.infilling.infilling_nll``, all validation windows) its middle must cost fewer bits
given prefix and suffix than given the prefix alone (``--force`` ships anyway; ``--skip-infilling`` leaves
the infilling figures out). Shipping writes the weights (safetensors), the configuration without the
``auto_map`` of ``trust_remote_code`` copies (inside the package the code is the package), a generation
configuration that samples (``do_sample``, top-k 5, a 512-token default), the tokenizer, and the card as
``README.md``; the directory must stay under 30 MB. Never the optimizer or other checkpoint state.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

LIMIT_BYTES = 30 * 1024 * 1024
SHIPPED = ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json")


def parse_args(argv=None) -> argparse.Namespace:
    import maia_hf

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="a model directory (a finished run's final/)")
    source.add_argument("--checkpoint", type=Path, help="a training checkpoint (RUN/checkpoints/step-N or latest)")
    parser.add_argument("--data", type=Path, required=True, help="the corpus whose validation split decides")
    parser.add_argument("--card", type=Path, help="the model card (Markdown with YAML front matter)")
    parser.add_argument("--base", type=Path, default=Path(maia_hf.DEFAULT_MODEL), help="the model to beat")
    parser.add_argument("--config-from", type=Path, help="configuration for a checkpoint without one (--base)")
    parser.add_argument("--dest", type=Path, default=Path(maia_hf.DEFAULT_MODEL), help="where to ship")
    parser.add_argument("--force", action="store_true", help="ship even if the candidate is not better")
    parser.add_argument("--report", type=Path, help="write the comparison as JSON here")
    parser.add_argument(
        "--sources",
        nargs="+",
        metavar="PREFIX",
        help="decide on the validation pieces whose source starts with one of these (the shipped model's own "
        "validation set when the corpus has grown; e.g. piano-midi-de/ music21:bach/ for maia-small v1)",
    )
    parser.add_argument("--compare-only", action="store_true", help="compare and report; ship nothing")
    parser.add_argument("--skip-infilling", action="store_true",
                        help="do not measure infilling (the figures and the check that the suffix helps)")  # fmt: skip
    return parser.parse_args(argv)


def load_candidate(args):
    """The candidate model, in eval mode, and the tokenizer it was trained with."""
    from maia_hf import MaiaForCausalLM, MaiaTokenizer

    if args.model is not None:
        return MaiaForCausalLM.from_pretrained(args.model).eval(), MaiaTokenizer.from_pretrained(args.model)
    checkpoint = args.checkpoint
    if checkpoint.name == "latest" and checkpoint.is_file():
        checkpoint = checkpoint.parent / checkpoint.read_text().strip()
    if not (checkpoint / "model.safetensors").is_file():
        raise SystemExit(f"ship_model: error: {checkpoint} has no model.safetensors; give a checkpoint folder")
    if (checkpoint / "config.json").is_file():
        model = MaiaForCausalLM.from_pretrained(checkpoint)
    else:
        from safetensors.torch import load_file

        model = MaiaForCausalLM.from_pretrained(args.config_from or args.base)
        missing, unexpected = model.load_state_dict(load_file(checkpoint / "model.safetensors"), strict=False)
        if unexpected or [k for k in missing if k != "lm_head.weight"]:  # the head is tied to the embedding
            raise SystemExit(f"ship_model: error: {checkpoint} does not fit the configuration: {missing or unexpected}")
        model.tie_weights()
    tokenizer_dir = checkpoint if (checkpoint / "tokenizer.json").is_file() else args.base
    tokenizer = MaiaTokenizer.from_pretrained(tokenizer_dir)
    if model.config.vocab_size > len(tokenizer):  # trained on with FIM windows: the run added the FIM tokens
        tokenizer.add_fim_tokens()
    if model.config.vocab_size != len(tokenizer):
        raise SystemExit(f"ship_model: error: {checkpoint} has {model.config.vocab_size} token rows but its tokenizer "
                         f"{len(tokenizer)}; give the checkpoint's own tokenizer")  # fmt: skip
    return model.eval(), tokenizer


def compare(candidate, base, tokenizer, data: Path, sources=None, infilling: bool = True) -> dict:
    """Both models' likelihood on the same validation split, each token once; with ``sources``, also on
    its pieces from those sources, which then decide. With ``infilling`` and a candidate that has the
    fill-in-the-middle tokens, both models' bits per middle token on every held-out gap (``infilling``; the
    shipped model's only if it has the tokens too)."""
    from maia_hf import MaiaForCausalLM
    from maia_hf.data import load_corpus
    from maia_hf.evaluation import validation_nll

    corpus, _, _ = load_corpus(data)
    splits = {"all": corpus["validation"]}
    if sources:
        splits["sources"] = corpus["validation"].filter(lambda row: row["source"].startswith(tuple(sources)))
    if any(len(split) == 0 for split in splits.values()):
        raise SystemExit(f"ship_model: error: {data} has no validation windows (from {sources}); check --sources")
    base_model = MaiaForCausalLM.from_pretrained(base).eval()
    result = {"corpus": str(data), "source_prefixes": sources, "decides": "sources" if sources else "all", "splits": {}}
    for name, split in splits.items():
        result["splits"][name] = {
            "windows": len(split),
            "candidate": validation_nll(candidate, tokenizer, split, max_windows=0),
            "base": validation_nll(base_model, tokenizer, split, max_windows=0),
        }
    if infilling and tokenizer.layout.has_fim:
        from maia_hf.evaluation.infilling import infilling_nll

        fits = base_model.config.vocab_size == len(tokenizer)
        result["infilling"] = {
            "candidate": infilling_nll(candidate, tokenizer, corpus["validation"], max_windows=0),
            "base": infilling_nll(base_model, tokenizer, corpus["validation"], max_windows=0) if fits else None,
        }
    return result


def refusal(result: dict) -> str | None:
    """Why the candidate of a :func:`compare` result must not ship, or None when it may."""
    decisive = result["splits"][result["decides"]]
    if decisive["candidate"]["bits_per_token"] >= decisive["base"]["bits_per_token"]:
        return "the candidate is not better than the shipped model"
    fill = (result.get("infilling") or {}).get("candidate")
    if fill and fill["bits_per_token_with_suffix"] >= fill["bits_per_token_prefix_only"]:
        return (f"the candidate does not use what comes after a gap: its middle costs "
                f"{fill['bits_per_token_with_suffix']:.3f} bits/token with the suffix, "
                f"{fill['bits_per_token_prefix_only']:.3f} with the prefix alone")  # fmt: skip
    return None


def ship(model, tokenizer, card: Path, dest: Path) -> int:
    """Write the model directory at ``dest`` (through a temporary folder, so a failure leaves the old one)."""
    from maia_hf.training.loop import sampling_generation_config

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model"
        model.generation_config = sampling_generation_config(tokenizer)
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        for name in ("config.json", "tokenizer_config.json"):
            data = json.loads((out / name).read_text())
            data.pop("auto_map", None)
            data.pop("local_files_only", None)  # how this machine loaded it (HF_HUB_OFFLINE), not the model's
            (out / name).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        size = sum((out / name).stat().st_size for name in SHIPPED)
        if size > LIMIT_BYTES:
            raise SystemExit(f"ship_model: error: {size / 2**20:.1f} MB is over the 30 MB limit")
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        for name in SHIPPED:
            shutil.copy2(out / name, dest / name)
    shutil.copy2(card, dest / "README.md")
    return size


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.card is None and not args.compare_only:
        raise SystemExit("ship_model: error: --card is required to ship (or pass --compare-only)")
    import maia_hf  # noqa: F401  (registers the sparse attention the models use)

    candidate, tokenizer = load_candidate(args)
    result = compare(candidate, args.base, tokenizer, args.data, args.sources, infilling=not args.skip_infilling)
    for name, split in result["splits"].items():
        c, b = split["candidate"], split["base"]
        print(f"validation {name} ({c['tokens']:,} tokens, each once): candidate {c['bits_per_token']:.3f} "
              f"bits/token, {c['bits_per_note']:.2f} bits/note; shipped {b['bits_per_token']:.3f} bits/token, "
              f"{b['bits_per_note']:.2f} bits/note")  # fmt: skip
    for name, fill in (result.get("infilling") or {}).items():
        if fill is not None:
            print(f"infilling, {'candidate' if name == 'candidate' else 'shipped'} ({fill['gaps']} gaps, "
                  f"{fill['tokens']:,} middle tokens, {fill['order']}): {fill['bits_per_token_with_suffix']:.3f} "
                  f"bits/token with the suffix, {fill['bits_per_token_prefix_only']:.3f} with the prefix alone, "
                  f"{fill['bits_per_token_other_suffix']:.3f} after another gap's suffix")  # fmt: skip
    if args.report:
        args.report.write_text(json.dumps(result, indent=1))
    if args.compare_only:
        return 0
    reason = refusal(result)
    if reason is not None and not args.force:
        print(f"ship_model: {reason}; nothing shipped", file=sys.stderr)
        return 1
    size = ship(candidate, tokenizer, args.card, args.dest)
    print(f"shipped -> {args.dest} ({size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
