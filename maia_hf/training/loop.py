"""The training loop: set a run up, resume it, take steps, and log, evaluate and save on schedule.

`train` is what ``recipes/train_gpt2.py`` calls. A `TrainingRun` holds what the steps share (the
prepared model, optimizer and scheduler, the data order, the loop's position), so each part of the
loop is a short function of it: `setup_run`, `resume_run`, `train_step`, `log_evaluate_save`,
`finish_run`.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import MaiaInputError
from .accelerator import make_accelerator
from .checkpoints import (
    check_output_dir,
    earlier_checkpoints,
    load_checkpoint,
    resume_checkpoint,
    save_checkpoint,
)
from .data import WindowBatches, load_or_build_corpus
from .model import build_model
from .optimization import lr_lambda, make_optimizer, total_training_steps
from .reporting import MetricsLog, plot_losses
from .validation import evaluate_loss, write_samples

__all__ = ["TrainingRun", "train"]


def _fresh_state() -> dict:
    return {"step": 0, "epoch": 0, "batch": 0, "tokens": 0, "elapsed": 0.0}


class StepClock:
    """Wall time since the run began (resumed runs included) and tokens per second since the last log line."""

    def __init__(self, elapsed: float = 0.0):
        now = time.perf_counter()
        self.began, self.window_start, self.window_tokens = now - elapsed, now, 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.began

    def close_window(self) -> tuple[float, float]:
        """(tokens per second since the last call, elapsed seconds); starts the next window."""
        now = time.perf_counter()
        rate = self.window_tokens / max(now - self.window_start, 1e-9)
        self.window_tokens, self.window_start = 0, now
        return rate, now - self.began


@dataclass
class TrainingRun:
    """What the steps of one run share (made by `setup_run`; ``state`` is what a checkpoint records)."""

    accelerator: Any
    model: Any
    optimizer: Any
    scheduler: Any
    batches: WindowBatches
    corpus: Any
    tokenizer: Any
    data_args: Any
    args: Any
    max_steps: int
    state: dict = field(default_factory=_fresh_state)
    seen_rows: list[list[int]] = field(default_factory=list)
    log: MetricsLog | None = None

    @property
    def output_dir(self) -> Path:
        return Path(self.args.output_dir)


def train(model_args, data_args, args) -> Path:
    """Train, evaluating and checkpointing as configured; returns the final model directory.

    Args:
        model_args (`ModelArguments`), data_args (`DataArguments`), args (`MaiaTrainingArguments`):
            what `parse_arguments` returns.
    """
    from tqdm.auto import tqdm

    run = setup_run(model_args, data_args, args)
    resume_run(run)
    is_main = run.accelerator.is_main_process
    resumed = run.state["step"] if args.resume_from_checkpoint else None
    run.log = MetricsLog(run.output_dir, is_main, fresh=not args.resume_from_checkpoint, resumed_step=resumed)
    progress = tqdm(total=run.max_steps, initial=run.state["step"], disable=not is_main, desc="training")
    run.model.train()
    clock = StepClock(run.state["elapsed"])
    while run.state["step"] < run.max_steps:
        loss_sum = train_step(run, clock)
        progress.update(1)
        loss = log_evaluate_save(run, loss_sum, clock)
        if loss is not None:
            progress.set_postfix(loss=f"{loss:.3f}")
        if args.stop_after is not None and run.state["step"] >= args.stop_after:
            step = run.state["step"]
            if not (args.save_steps and step % args.save_steps == 0):  # resume goes on from here, not earlier
                config = _unwrapped(run).config
                save_checkpoint(run.accelerator, run.output_dir, step, run.state, args.save_total_limit, config,
                                run.scheduler)  # fmt: skip
            run.accelerator.print(f"stopping after step {step} as asked (stop_after); checkpoint saved")
            return run.output_dir
    progress.close()
    return finish_run(run)


def setup_run(model_args, data_args, args) -> TrainingRun:
    """The accelerator, corpus, data order, model, optimizer and schedule, prepared for training."""
    from accelerate.utils import set_seed

    from ..registration import register

    register()
    accelerator = make_accelerator(args)
    output_dir = Path(args.output_dir)
    if accelerator.is_main_process:
        check_output_dir(output_dir, bool(args.resume_from_checkpoint), args.overwrite_output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    set_seed(args.seed)
    corpus, tokenizer = load_or_build_corpus(
        data_args, output_dir, accelerator.is_main_process, accelerator.wait_for_everyone
    )
    fim = None
    if data_args.fim_rate:
        from ..data import FimTransform

        tokenizer.add_fim_tokens()  # a corpus cut with an older vocabulary: the new ids come last
        fim = FimTransform(tokenizer, data_args.fim_rate, data_args.fim_max_bars, data_args.seq_len, args.seed,
                           order=data_args.fim_order)  # fmt: skip
    batches = WindowBatches(
        corpus["train"], args.per_device_train_batch_size, data_args.seq_len, tokenizer.pad_token_id, args.seed,
        accelerator.process_index, accelerator.num_processes, fim=fim,
    )  # fmt: skip
    max_steps = total_training_steps(args, batches.per_epoch)
    model = build_model(model_args, tokenizer, data_args.seq_len)
    if fim is not None:  # infilling reads the order from the model (maia_hf.data.fim.fim_order_of)
        model.config.fim_order = data_args.fim_order
    optimizer = make_optimizer(model, args)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(args, max_steps))
    if args.torch_compile:
        model = torch.compile(model)
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:  # DeepSpeed wants the micro-batch size, which it cannot read from our batches
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = args.per_device_train_batch_size
    # The scheduler counts optimizer steps; Accelerate's wrapper would step it once per process.
    model, optimizer = accelerator.prepare(model, optimizer)
    return TrainingRun(accelerator, model, optimizer, scheduler, batches, corpus, tokenizer, data_args, args, max_steps)


def resume_run(run: TrainingRun) -> None:
    """Restore the checkpoint ``resume_from_checkpoint`` names, if any; the run then goes on from its step."""
    if not run.args.resume_from_checkpoint:
        return
    checkpoint = resume_checkpoint(run.args.resume_from_checkpoint, run.output_dir)
    if checkpoint is None:
        run.accelerator.print(f"no checkpoint in {run.output_dir}/checkpoints: starting from scratch")
        return
    fallbacks = earlier_checkpoints(run.output_dir, checkpoint) if run.args.resume_from_checkpoint is True else []
    for candidate in [checkpoint, *fallbacks]:
        try:
            run.state = load_checkpoint(run.accelerator, candidate, run.scheduler)
        except Exception as exc:  # a truncated or damaged file: torch, safetensors and json raise their own types
            run.accelerator.print(f"checkpoint {candidate} could not be loaded ({type(exc).__name__}: {exc})")
            continue
        note = "" if candidate == checkpoint else f" (the newer {checkpoint.name} was damaged)"
        run.accelerator.print(f"resumed from {candidate} at step {run.state['step']}{note}")
        return
    raise MaiaInputError(
        f"no checkpoint in {run.output_dir}/checkpoints could be loaded; start afresh with --overwrite_output_dir true"
    )


def next_batch(run: TrainingRun) -> dict[str, torch.Tensor]:
    """This rank's next micro-batch on the device; advances the (epoch, batch) position."""
    state = run.state
    if run.args.record_data_order:
        run.seen_rows.append(run.batches.rows(state["epoch"], state["batch"]))
    batch = run.batches.batch(state["epoch"], state["batch"])
    state["batch"] += 1
    if state["batch"] >= run.batches.per_epoch:
        state["epoch"], state["batch"] = state["epoch"] + 1, 0
    return {k: v.to(run.accelerator.device) for k, v in batch.items()}


def train_step(run: TrainingRun, clock: StepClock) -> torch.Tensor:
    """One optimizer step over ``gradient_accumulation_steps`` micro-batches; returns their summed loss."""
    accelerator, model, optimizer, args = run.accelerator, run.model, run.optimizer, run.args
    loss_sum = 0.0
    for _ in range(args.gradient_accumulation_steps):
        batch = next_batch(run)
        with accelerator.accumulate(model), accelerator.autocast():
            loss = model(**batch).loss
            accelerator.backward(loss)
            if accelerator.sync_gradients and args.max_grad_norm:
                accelerator.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            if accelerator.sync_gradients:
                run.scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        loss_sum += loss.detach().float()
        tokens = int(batch["attention_mask"].sum()) * accelerator.num_processes
        run.state["tokens"] += tokens
        clock.window_tokens += tokens
    run.state["step"] += 1
    return loss_sum


def log_evaluate_save(run: TrainingRun, loss_sum: torch.Tensor, clock: StepClock) -> float | None:
    """After a step: a metric line, an evaluation and a checkpoint where they are due (all at the last step).

    Returns the training loss when a metric line was written, else None.
    """
    args, step = run.args, run.state["step"]
    last = step == run.max_steps
    loss = None
    if step % args.logging_steps == 0 or last:
        loss = float(run.accelerator.reduce(loss_sum / args.gradient_accumulation_steps, reduction="mean"))
        tokens_per_second, elapsed = clock.close_window()
        record = {
            "step": step, "loss": loss, "lr": run.scheduler.get_last_lr()[0], "tokens": run.state["tokens"],
            "tokens_per_second": tokens_per_second, "elapsed": elapsed,
        }  # fmt: skip
        run.log.write(record)
    if (args.eval_steps and step % args.eval_steps == 0) or last:
        evaluate_and_sample(run, step)
    run.state["elapsed"] = clock.elapsed()
    if (args.save_steps and step % args.save_steps == 0) or last:
        config = _unwrapped(run).config
        save_checkpoint(run.accelerator, run.output_dir, step, run.state, args.save_total_limit, config, run.scheduler)
    return loss


def evaluate_and_sample(run: TrainingRun, step: int) -> None:
    """Validation metrics into the log; on the main process, sampled continuations and the loss plot."""
    accelerator, args, validation = run.accelerator, run.args, run.corpus.get("validation")
    if validation is None or len(validation) == 0:
        return
    result = evaluate_loss(
        run.model, validation, run.tokenizer, run.data_args.seq_len, args.per_device_eval_batch_size,
        args.eval_batches, accelerator,
    )  # fmt: skip
    run.log.write({"step": step, **result})
    accelerator.print(
        f"step {step}: validation loss {result['val_loss']:.4f} nats, {result['val_bits_per_token']:.3f} bits/token, "
        f"{result['val_bits_per_note']:.3f} bits/note"
    )
    if accelerator.is_main_process and args.num_samples:
        samples = run.output_dir / "samples"
        write_samples(
            _unwrapped(run), run.tokenizer, validation, samples, step, args.num_samples, args.sample_tokens, args.seed
        )
        plot_losses(run.log.path, run.output_dir / "loss.png")


def finish_run(run: TrainingRun) -> Path:
    """Save the final model and tokenizer (and the loss plot); returns ``output_dir/final``."""
    accelerator = run.accelerator
    if run.args.record_data_order:
        _record_rank(run)
    final = run.output_dir / "final"
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        model = _unwrapped(run)
        model.generation_config = sampling_generation_config(run.tokenizer)
        model.save_pretrained(final)
        run.tokenizer.save_pretrained(final)
        plot_losses(run.log.path, run.output_dir / "loss.png")
    accelerator.end_training()
    return final


def sampling_generation_config(tokenizer):
    """How a maia model generates by default: top-k sampling (greedy decoding repeats the prompt)."""
    from transformers import GenerationConfig

    return GenerationConfig(
        do_sample=True, top_k=5, max_new_tokens=512, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip


def _unwrapped(run: TrainingRun):
    """The model without its DDP / DeepSpeed wrapper and without torch.compile's."""
    model = run.accelerator.unwrap_model(run.model)
    return getattr(model, "_orig_mod", model)


def _record_rank(run: TrainingRun) -> None:
    """This rank's training rows and a hash of its final weights (to check that DDP really shares work)."""
    accelerator = run.accelerator
    digest = hashlib.sha256()
    for _, tensor in sorted(accelerator.unwrap_model(run.model).state_dict().items()):
        digest.update(tensor.detach().float().cpu().numpy().tobytes())
    record = {"rank": accelerator.process_index, "world": accelerator.num_processes, "rows": run.seen_rows}
    record["weights_sha256"] = digest.hexdigest()
    (run.output_dir / f"rank-{accelerator.process_index}.json").write_text(json.dumps(record))
