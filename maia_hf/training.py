"""Training under Accelerate: arguments, data order, the loop, evaluation, atomic checkpoints, exact resume.

``recipes/train_gpt2.py`` is the command (``accelerate launch recipes/train_gpt2.py --config ...``);
this module is the machinery behind it, importable and testable. Arguments are three dataclasses
parsed with `HfArgumentParser`: defaults < YAML recipe < command line, and an unknown key is an error.

The data order is ours, not a shuffled DataLoader's: epoch ``e`` visits the training windows in the
permutation drawn from ``seed + e``, rank ``r`` of ``w`` takes every ``w``-th batch of it, and a
checkpoint records (epoch, batch); so ``--resume`` continues with exactly the batches an uninterrupted
run would have seen, on any number of processes of the same world size.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import MaiaInputError

__all__ = [
    "DataArguments",
    "ModelArguments",
    "TrainArguments",
    "build_model",
    "parse_arguments",
    "train",
]

LN2 = math.log(2.0)


@dataclass
class ModelArguments:
    """Which model to train."""

    model_type: str = field(default="gpt", metadata={"help": "gpt (MaiaForCausalLM) or lstm (MaiaLstmForCausalLM)"})
    preset: str = field(default="maia-seed", metadata={"help": "maia-seed, gpt2-117m or gpt2-345m"})
    init_from: str | None = field(
        default=None, metadata={"help": "a GPT-2 checkpoint to transfer from (openai-community/gpt2, a path)"}
    )
    n_positions: int | None = field(default=None, metadata={"help": "context length (default: the preset's)"})
    n_layer: int | None = field(default=None, metadata={"help": "override the preset's layers"})
    n_head: int | None = field(default=None, metadata={"help": "override the preset's heads"})
    n_embd: int | None = field(default=None, metadata={"help": "override the preset's width"})
    n_inner: int | None = field(default=None, metadata={"help": "override the preset's inner width"})
    dropout: float = field(default=0.1, metadata={"help": "residual, embedding and attention dropout"})
    attention_dropout: float | None = field(
        default=None,
        metadata={"help": "attention dropout alone (default: --dropout); the split and flex backends need 0"},
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "sdpa, eager, maia_sparse_fixed, maia_sparse_strided"}
    )
    sparse_block: int | None = field(default=None, metadata={"help": "sparse attention block length / stride"})
    sparse_summary: int | None = field(default=None, metadata={"help": "fixed pattern: summary positions"})
    sparse_per_head_summary: bool | None = field(
        default=None, metadata={"help": "fixed pattern: a different summary sub-block per head"}
    )
    sparse_backend: str | None = field(
        default=None,
        metadata={
            "help": "sdpa (a boolean mask, everywhere), split (sparse cost on CPU, training too) or flex (GPU "
            "training); split and flex need --attention_dropout 0"
        },
    )
    lstm_hidden_size: int = field(default=512, metadata={"help": "LSTM units per layer"})
    lstm_embedding_dim: int = field(default=4, metadata={"help": "LSTM token embedding width"})
    lstm_num_layers: int = field(default=2, metadata={"help": "stacked LSTM layers"})


@dataclass
class DataArguments:
    """Which corpus, and how it is cut (see ``maia data build``)."""

    data_sources: list[str] = field(
        default_factory=lambda: ["music21:bach,mozart,beethoven,haydn,palestrina"],
        metadata={"help": "folders, files, music21:NAMES or hf:NAME; the default is the embedded music21 corpus"},
    )
    dataset_dir: str | None = field(default=None, metadata={"help": "a corpus built by `maia data build`"})
    seq_len: int = field(default=512, metadata={"help": "tokens per training window"})
    overlap: float = field(default=0.5, metadata={"help": "overlap of consecutive windows"})
    transpositions: str = field(default="-5..6", metadata={"help": "keys of the training copies"})
    validation_fraction: float = field(default=0.05, metadata={"help": "share of pieces held out for validation"})
    test_fraction: float = field(default=0.05, metadata={"help": "share of pieces held out for testing"})
    num_proc: int = field(default=1, metadata={"help": "processes for building the corpus"})


@dataclass
class TrainArguments:
    """The loop."""

    output_dir: str = field(default="runs/maia", metadata={"help": "checkpoints, metrics, samples, final model"})
    max_steps: int = field(default=1000, metadata={"help": "optimizer steps"})
    batch_size: int = field(default=16, metadata={"help": "windows per process per micro-batch"})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "micro-batches per optimizer step"})
    learning_rate: float = field(default=6e-4, metadata={"help": "peak learning rate"})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay (not on biases and norms)"})
    beta2: float = field(default=0.99, metadata={"help": "AdamW beta2"})
    warmup_steps: int = field(default=100, metadata={"help": "linear warm-up steps"})
    min_lr_ratio: float = field(default=0.1, metadata={"help": "cosine decay floor, relative to the peak"})
    max_grad_norm: float = field(default=1.0, metadata={"help": "gradient clipping"})
    eval_every: int = field(default=200, metadata={"help": "steps between validation runs (0: only at the end)"})
    eval_batches: int = field(default=50, metadata={"help": "validation batches per evaluation (0: all)"})
    save_every: int = field(default=200, metadata={"help": "steps between checkpoints (0: none)"})
    keep_checkpoints: int = field(default=2, metadata={"help": "checkpoints kept on disk"})
    log_every: int = field(default=10, metadata={"help": "steps between metric lines"})
    num_samples: int = field(default=2, metadata={"help": "continuations written as MIDI at each evaluation"})
    sample_tokens: int = field(default=256, metadata={"help": "tokens per sampled continuation"})
    seed: int = field(default=0, metadata={"help": "random seed (data order, initialisation, dropout)"})
    mixed_precision: str = field(default="auto", metadata={"help": "auto (bf16 on GPU), no, bf16, fp16"})
    compile: bool = field(default=False, metadata={"help": "torch.compile the model"})
    resume: bool = field(default=False, metadata={"help": "continue from the latest checkpoint in output_dir"})
    deepspeed_gloo: bool = field(default=False, metadata={"help": "init the process group with gloo (CPU DeepSpeed)"})
    stop_after: int | None = field(default=None, metadata={"help": "exit after this step (testing resume)"})
    record_data_order: bool = field(
        default=False, metadata={"help": "write each rank's training rows and final weight hash (testing DDP)"}
    )


ARGUMENT_CLASSES = (ModelArguments, DataArguments, TrainArguments)


# --------------------------------------------------------------------------------------------
# Arguments: defaults < YAML < command line
# --------------------------------------------------------------------------------------------


def parse_arguments(argv: list[str] | None = None) -> tuple[ModelArguments, DataArguments, TrainArguments]:
    """Parse ``--config FILE.yaml`` and ``--key value`` overrides into the three argument dataclasses.

    Raises:
        MaiaInputError: a key in the YAML or on the command line that no dataclass has (with the
            closest known keys), or a missing config file.
    """
    import yaml
    from transformers import HfArgumentParser

    argv = list(sys.argv[1:] if argv is None else argv)
    config_path = None
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise MaiaInputError("--config needs a YAML file, e.g. --config recipes/configs/tiny.yaml")
        config_path = argv[i + 1]
        del argv[i : i + 2]
    known = {f.name for cls in ARGUMENT_CLASSES for f in dataclasses.fields(cls)}
    defaults = {}
    if config_path is not None:
        path = Path(config_path)
        if not path.is_file():
            raise MaiaInputError(f"config file {config_path!r} does not exist; see recipes/configs/ for the recipes")
        defaults = yaml.safe_load(path.read_text()) or {}
        if not isinstance(defaults, dict):
            raise MaiaInputError(f"{config_path!r} must be a YAML mapping of key: value lines")
        for key in defaults:
            _check_key(key, known, f"{config_path!r}")
    for token in argv:
        if token.startswith("--"):
            _check_key(token[2:].split("=")[0].replace("-", "_"), known, "the command line")
    parser = HfArgumentParser(ARGUMENT_CLASSES)
    parser.set_defaults(**defaults)
    return parser.parse_args_into_dataclasses(args=argv)


def _check_key(key: str, known: set[str], where: str) -> None:
    if key not in known:
        close = difflib.get_close_matches(key, sorted(known), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see `python recipes/train_gpt2.py --help`"
        raise MaiaInputError(f"unknown key {key!r} in {where}{hint}")


# --------------------------------------------------------------------------------------------
# Model and data
# --------------------------------------------------------------------------------------------


def build_model(args: ModelArguments, tokenizer, seq_len: int):
    """The model the arguments describe, sized to the tokenizer and the window length."""
    from .configuration_maia import MaiaConfig, MaiaLstmConfig
    from .modeling_maia import MaiaForCausalLM
    from .modeling_maia_lstm import MaiaLstmForCausalLM

    special = {
        "vocab_size": len(tokenizer),
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }
    if args.model_type == "lstm":
        config = MaiaLstmConfig(
            embedding_dim=args.lstm_embedding_dim,
            hidden_size=args.lstm_hidden_size,
            num_layers=args.lstm_num_layers,
            dropout=args.dropout,
            **special,
        )
        return MaiaLstmForCausalLM(config)
    if args.model_type != "gpt":
        raise MaiaInputError(f"model_type must be 'gpt' or 'lstm', got {args.model_type!r}")
    if args.init_from:
        from .transfer import from_gpt2

        model = from_gpt2(args.init_from, tokenizer)
        if args.attn_implementation:
            model.set_attn_implementation(args.attn_implementation)
        return model
    overrides = {
        k: getattr(args, k)
        for k in (
            "n_layer",
            "n_head",
            "n_embd",
            "n_inner",
            "attn_implementation",
            "sparse_block",
            "sparse_summary",
            "sparse_per_head_summary",
            "sparse_backend",
        )  # fmt: skip
        if getattr(args, k) is not None
    }
    n_positions = args.n_positions or max(seq_len, 0)
    attention_dropout = args.dropout if args.attention_dropout is None else args.attention_dropout
    dropout = {"resid_pdrop": args.dropout, "embd_pdrop": args.dropout, "attn_pdrop": attention_dropout}
    config = MaiaConfig.from_preset(args.preset, n_positions=n_positions, **dropout, **special, **overrides)
    if config.n_positions < seq_len:
        raise MaiaInputError(f"n_positions {config.n_positions} is shorter than seq_len {seq_len}")
    return MaiaForCausalLM(config)


def load_or_build_corpus(args: DataArguments, output_dir: Path, is_main: bool, wait):
    """The corpus in ``dataset_dir``, or one built from ``data_sources`` into ``output_dir/data`` (cached)."""
    from .data import build_dataset, load_corpus

    path = Path(args.dataset_dir) if args.dataset_dir else output_dir / "data"
    if args.dataset_dir is None and is_main and not (path / "dataset_dict.json").exists():
        build_dataset(
            args.data_sources,
            path,
            seq_len=args.seq_len,
            overlap=args.overlap,
            transpositions=args.transpositions,
            validation_fraction=args.validation_fraction,
            test_fraction=args.test_fraction,
            num_proc=args.num_proc,
        )
    wait()
    corpus, _, tokenizer = load_corpus(path)
    if tokenizer is None:
        from .tokenization_maia import MaiaTokenizer

        tokenizer = MaiaTokenizer()
    return corpus, tokenizer


class WindowBatches:
    """Deterministic, resumable batches of padded windows for one process.

    Epoch ``e`` is the permutation of ``range(len(dataset))`` drawn from ``seed + e``, cut into
    global batches of ``batch_size * world_size`` windows; this rank takes its slice of each.
    """

    def __init__(self, dataset, batch_size: int, seq_len: int, pad_id: int, seed: int, rank: int = 0, world: int = 1):
        self.dataset = dataset.with_format("python")
        self.batch_size, self.seq_len, self.pad_id = batch_size, seq_len, pad_id
        self.seed, self.rank, self.world = seed, rank, world
        self.per_epoch = len(dataset) // (batch_size * world)
        self._order = None
        if self.per_epoch == 0:
            raise MaiaInputError(
                f"{len(dataset)} training windows are fewer than one batch of {batch_size} x {world} processes; "
                "lower batch_size or add data"
            )

    def rows(self, epoch: int, index: int) -> list[int]:
        """Dataset rows of batch ``index`` of epoch ``epoch`` for this rank."""
        if self._order is None or self._order[0] != epoch:
            generator = torch.Generator().manual_seed(self.seed + epoch)
            self._order = (epoch, torch.randperm(len(self.dataset), generator=generator).tolist())
        start = index * self.batch_size * self.world + self.rank * self.batch_size
        return self._order[1][start : start + self.batch_size]

    def batch(self, epoch: int, index: int) -> dict[str, torch.Tensor]:
        """Batch ``index`` of epoch ``epoch`` for this rank: input_ids, attention_mask, labels."""
        return collate(self.dataset[self.rows(epoch, index)]["input_ids"], self.seq_len, self.pad_id)


def collate(rows: list[list[int]], seq_len: int, pad_id: int) -> dict[str, torch.Tensor]:
    """Pad windows on the right to ``seq_len``; padding is masked out of attention and loss."""
    input_ids = torch.full((len(rows), seq_len), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), seq_len), dtype=torch.long)
    for i, row in enumerate(rows):
        row = row[:seq_len]
        input_ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
        mask[i, : len(row)] = 1
    labels = input_ids.masked_fill(mask == 0, -100)
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


# --------------------------------------------------------------------------------------------
# Optimisation
# --------------------------------------------------------------------------------------------


def make_optimizer(model, args: TrainArguments) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices and embeddings, not on biases and layer norms."""
    decay, no_decay = [], []
    for _, parameter in model.named_parameters():
        if parameter.requires_grad:
            (decay if parameter.dim() >= 2 else no_decay).append(parameter)
    groups = [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=args.learning_rate, betas=(0.9, args.beta2))


def lr_lambda(args: TrainArguments):
    """Linear warm-up to the peak, then cosine decay to ``min_lr_ratio`` of it at ``max_steps``."""

    def factor(step: int) -> float:
        if step < args.warmup_steps:
            return (step + 1) / max(1, args.warmup_steps)
        progress = min(1.0, (step - args.warmup_steps) / max(1, args.max_steps - args.warmup_steps))
        return args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


# --------------------------------------------------------------------------------------------
# Checkpoints: written to a temporary folder, then renamed; `latest` is replaced atomically
# --------------------------------------------------------------------------------------------


def save_checkpoint(accelerator, output_dir: Path, step: int, state: dict, keep: int) -> Path:
    """Write a checkpoint atomically: a killed run leaves either the old or the new one, never half."""
    root = output_dir / "checkpoints"
    final = root / f"step-{step:07d}"
    partial = root / f".step-{step:07d}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()  # every rank has written its part (DeepSpeed shards) before the rename
    if accelerator.is_main_process:
        (partial / "trainer_state.json").write_text(json.dumps(state, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(partial, final)
        pointer = root / ".latest.partial"
        pointer.write_text(final.name)
        os.replace(pointer, root / "latest")
        checkpoints = sorted(p for p in root.glob("step-*") if p.is_dir())
        for old in checkpoints[: max(0, len(checkpoints) - keep)]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def latest_checkpoint(output_dir: Path) -> Path | None:
    pointer = output_dir / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = output_dir / "checkpoints" / pointer.read_text().strip()
    return path if (path / "trainer_state.json").is_file() else None


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def evaluate_loss(model, dataset, tokenizer, seq_len: int, batch_size: int, max_batches: int, accelerator) -> dict:
    """Validation loss in nats per token, perplexity, bits per token and bits per note (notes = ``p`` words)."""
    model.eval()
    codec, offset = tokenizer.codec, tokenizer.codec_offset
    first_on, last_on = offset + codec.on_offset, offset + codec.on_offset + codec.n_pitches
    total_nats = torch.zeros((), dtype=torch.float64, device=accelerator.device)
    counts = torch.zeros(2, dtype=torch.float64, device=accelerator.device)  # tokens, notes
    rows = dataset.with_format("python")
    n_batches = math.ceil(len(rows) / batch_size)
    if max_batches:
        n_batches = min(n_batches, max_batches)
    for b in range(accelerator.process_index, n_batches, accelerator.num_processes):
        batch = collate(rows[b * batch_size : (b + 1) * batch_size]["input_ids"], seq_len, tokenizer.pad_token_id)
        batch = {k: v.to(accelerator.device) for k, v in batch.items()}
        with accelerator.autocast():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        targets = batch["labels"][:, 1:]
        nll = torch.nn.functional.cross_entropy(
            logits[:, :-1].float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-100, reduction="sum"
        )
        total_nats += nll.double()
        counts[0] += (targets != -100).sum()
        counts[1] += ((targets >= first_on) & (targets < last_on)).sum()
    total_nats = accelerator.reduce(total_nats, reduction="sum")
    counts = accelerator.reduce(counts, reduction="sum")
    model.train()
    tokens, notes = counts.tolist()
    loss = float(total_nats) / max(tokens, 1)
    return {
        "val_loss": loss,
        "val_perplexity": math.exp(min(loss, 50)),
        "val_bits_per_token": loss / LN2,
        "val_bits_per_note": float(total_nats) / LN2 / max(notes, 1),
        "val_tokens": int(tokens),
    }


def write_samples(model, tokenizer, dataset, out_dir: Path, step: int, n: int, tokens: int, seed: int) -> list[Path]:
    """Continue the openings of a few validation windows and write them as MIDI."""
    from .generation import continue_piece
    from .io import write_midi

    paths = []
    model.eval()
    rows = dataset.with_format("python")
    for i in range(min(n, len(rows))):
        ids = rows[i]["input_ids"][: max(8, len(rows[i]["input_ids"]) // 4)]
        prompt = tokenizer.decode_to_piece(ids)
        composer = next(
            (t[len("<composer:") : -1] for t in tokenizer.convert_ids_to_tokens(ids[:2]) if t.startswith("<composer:")),
            None,
        )
        (result,) = continue_piece(
            model, tokenizer, prompt, composer=composer, max_new_tokens=tokens, seed=seed + i, progress=False
        )
        paths.append(write_midi(result.piece, out_dir / f"step-{step:07d}-{i}.mid"))
    model.train()
    return paths


def plot_losses(metrics_file: Path, out_png: Path) -> None:
    """Training and validation loss against steps, from the JSONL metrics."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = [], []
    for line in metrics_file.read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            train.append((record["step"], record["loss"]))
        if "val_loss" in record:
            val.append((record["step"], record["val_loss"]))
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if train:
        ax.plot(*zip(*train, strict=True), label="train", linewidth=1)
    if val:
        ax.plot(*zip(*val, strict=True), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out_png)
    plt.close(fig)


# --------------------------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------------------------


def train(model_args: ModelArguments, data_args: DataArguments, args: TrainArguments) -> Path:
    """Train, evaluating and checkpointing as configured; returns the final model directory."""
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs, set_seed
    from tqdm.auto import tqdm

    from .registration import register

    register()
    handlers = [InitProcessGroupKwargs(backend="gloo")] if args.deepspeed_gloo else []
    precision = args.mixed_precision
    if precision == "auto":
        precision = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    accelerator = Accelerator(
        mixed_precision=precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        kwargs_handlers=handlers,
    )
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched != accelerator.num_processes:
        raise MaiaInputError(
            f"{launched} processes were launched but each trains alone (world size {accelerator.num_processes}): "
            "on a CPU machine launch with ACCELERATE_USE_CPU=1 accelerate launch --multi_gpu --num_processes N"
        )
    plugin = accelerator.state.deepspeed_plugin
    if plugin is None and os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        raise MaiaInputError(
            "launched with a DeepSpeed config, but Accelerate set up plain DDP because ACCELERATE_USE_CPU is set: "
            "on a CPU machine unset ACCELERATE_USE_CPU and launch with DS_ACCELERATOR=cpu and --deepspeed_gloo true"
        )
    how = f"DeepSpeed ZeRO stage {plugin.zero_stage}" if plugin else accelerator.distributed_type.value
    accelerator.print(
        f"training with {accelerator.num_processes} process(es), {how}, on {accelerator.device}, "
        f"mixed precision {precision}"
    )
    output_dir = Path(args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    set_seed(args.seed)

    corpus, tokenizer = load_or_build_corpus(
        data_args, output_dir, accelerator.is_main_process, accelerator.wait_for_everyone
    )
    model = build_model(model_args, tokenizer, data_args.seq_len)
    optimizer = make_optimizer(model, args)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(args))
    if args.compile:
        model = torch.compile(model)
    if plugin is not None:  # DeepSpeed wants the micro-batch size, which it cannot read from our batches
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = args.batch_size
    # The scheduler counts optimizer steps; Accelerate's wrapper would step it once per process.
    model, optimizer = accelerator.prepare(model, optimizer)
    accelerator.register_for_checkpointing(scheduler)
    batches = WindowBatches(
        corpus["train"], args.batch_size, data_args.seq_len, tokenizer.pad_token_id, args.seed,
        accelerator.process_index, accelerator.num_processes,
    )  # fmt: skip

    state = {"step": 0, "epoch": 0, "batch": 0, "tokens": 0, "elapsed": 0.0}
    if args.resume:
        checkpoint = latest_checkpoint(output_dir)
        if checkpoint is None:
            accelerator.print(f"no checkpoint in {output_dir}/checkpoints: starting from scratch")
        else:
            accelerator.load_state(str(checkpoint))
            state = json.loads((checkpoint / "trainer_state.json").read_text())
            accelerator.print(f"resumed from {checkpoint} at step {state['step']}")

    metrics_file = output_dir / "metrics.jsonl"
    if accelerator.is_main_process and not args.resume:
        metrics_file.write_text("")
    writer = _tensorboard(output_dir) if accelerator.is_main_process else None
    progress = tqdm(
        total=args.max_steps, initial=state["step"], disable=not accelerator.is_main_process, desc="training"
    )
    model.train()
    seen_rows: list[list[int]] = []
    began, window_tokens, window_start = time.perf_counter() - state["elapsed"], 0, time.perf_counter()
    while state["step"] < args.max_steps:
        loss_sum = 0.0
        for _ in range(args.gradient_accumulation_steps):
            if args.record_data_order:
                seen_rows.append(batches.rows(state["epoch"], state["batch"]))
            batch = {k: v.to(accelerator.device) for k, v in batches.batch(state["epoch"], state["batch"]).items()}
            state["batch"] += 1
            if state["batch"] >= batches.per_epoch:
                state["epoch"], state["batch"] = state["epoch"] + 1, 0
            with accelerator.accumulate(model), accelerator.autocast():
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and args.max_grad_norm:
                    accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
                optimizer.step()
                if accelerator.sync_gradients:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach().float()
            tokens = int(batch["attention_mask"].sum()) * accelerator.num_processes
            state["tokens"] += tokens
            window_tokens += tokens
        state["step"] += 1
        progress.update(1)
        step = state["step"]
        if step % args.log_every == 0 or step == args.max_steps:
            loss_value = float(accelerator.reduce(loss_sum / args.gradient_accumulation_steps, reduction="mean"))
            now = time.perf_counter()
            record = {
                "step": step, "loss": loss_value, "lr": scheduler.get_last_lr()[0], "tokens": state["tokens"],
                "tokens_per_second": window_tokens / max(now - window_start, 1e-9), "elapsed": now - began,
            }  # fmt: skip
            window_tokens, window_start = 0, now
            _log(accelerator, metrics_file, writer, record)
            progress.set_postfix(loss=f"{loss_value:.3f}")
        last = step == args.max_steps
        if (args.eval_every and step % args.eval_every == 0) or last:
            _evaluate(accelerator, model, tokenizer, corpus, data_args, args, step, metrics_file, writer)
        state["elapsed"] = time.perf_counter() - began
        if (args.save_every and step % args.save_every == 0) or last:
            save_checkpoint(accelerator, output_dir, step, state, args.keep_checkpoints)
        if args.stop_after is not None and step >= args.stop_after:
            accelerator.print(f"stopping after step {step} as asked (stop_after)")
            return output_dir
    progress.close()
    if args.record_data_order:
        _record_rank(accelerator, output_dir, seen_rows, model)
    final = output_dir / "final"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped = getattr(unwrapped, "_orig_mod", unwrapped)
        unwrapped.save_pretrained(final)
        tokenizer.save_pretrained(final)
        plot_losses(metrics_file, output_dir / "loss.png")
    accelerator.end_training()
    return final


def _evaluate(accelerator, model, tokenizer, corpus, data_args, args, step, metrics_file, writer) -> None:
    if "validation" not in corpus or len(corpus["validation"]) == 0:
        return
    result = evaluate_loss(
        model, corpus["validation"], tokenizer, data_args.seq_len, args.batch_size, args.eval_batches, accelerator
    )
    _log(accelerator, metrics_file, writer, {"step": step, **result})
    accelerator.print(
        f"step {step}: validation loss {result['val_loss']:.4f} nats, {result['val_bits_per_token']:.3f} bits/token, "
        f"{result['val_bits_per_note']:.3f} bits/note"
    )
    if accelerator.is_main_process and args.num_samples:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped = getattr(unwrapped, "_orig_mod", unwrapped)
        out = Path(args.output_dir) / "samples"
        write_samples(
            unwrapped, tokenizer, corpus["validation"], out, step, args.num_samples, args.sample_tokens, args.seed
        )
        plot_losses(metrics_file, Path(args.output_dir) / "loss.png")


def _record_rank(accelerator, output_dir: Path, rows: list[list[int]], model) -> None:
    """This rank's training rows and a hash of its final weights (to check that DDP really shares work)."""
    import hashlib

    digest = hashlib.sha256()
    for _, tensor in sorted(accelerator.unwrap_model(model).state_dict().items()):
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    record = {"rank": accelerator.process_index, "world": accelerator.num_processes, "rows": rows}
    record["weights_sha256"] = digest.hexdigest()
    (output_dir / f"rank-{accelerator.process_index}.json").write_text(json.dumps(record))


def _log(accelerator, metrics_file: Path, writer, record: dict) -> None:
    if not accelerator.is_main_process:
        return
    with open(metrics_file, "a") as f:
        f.write(json.dumps(record) + "\n")
    if writer is not None:
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)):
                writer.add_scalar(key, value, record["step"])


def _tensorboard(output_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(output_dir / "tensorboard"))
