"""Training the full language model (LSTM or Transformer) with one of the three methods, resumably.

Per batch (a window of ``bptt`` steps × ``batch_size`` columns, state carried and detached; the
Transformer carries no state and reads each window as its own context, :mod:`rlimm.lm.transformer`):

- ``none``:    cross-entropy (CE) on the next words; dropout is the only regulariser;
- ``noising``: CE on a Kneser-Ney-noised window (:mod:`rlimm.lm.noising`);
- ``imm``:     CE + λ · mean KL(P_KN(·|v) ‖ Q̄(·|v)) over ``imm.positions`` random positions of the
  batch, v = the input word there and Q̄ = the k-history induced model (:mod:`rlimm.lm.histories`).
  IMM is switched on once validation perplexity < ``imm.switch_on_below_ppl`` (from the start if null).

SGD with global-norm clipping; after every epoch the validation perplexity is measured, the best model
kept, and the learning rate multiplied by ``lr_decay`` when the epoch did not beat the best (and after
every epoch from ``lr_decay_from_epoch`` on, if set).

Resuming. A checkpoint (model, optimiser, learning rate, epoch and batch position, carried state, the
state of every random generator, best validation, metrics) is written atomically every
``checkpoint_every`` batches and at the end of every epoch. A trainer built on a run folder that holds
one continues from it *bit-identically* to an uninterrupted run: every random draw comes from a
generator whose state is saved (dropout from torch's global generator — the device's, on a GPU — which
the trainer owns while it runs, noising and IMM sampling from their own).

Devices. The model, the batches, the Kneser-Ney tables and the IMM history index and batches live on
``device`` (``config.device`` by default). The noising and IMM draws come from CPU generators and are
moved there, so they are the same on every device; the initial weights are drawn on the CPU and moved.
On the CPU the results are the same whatever the device setting; on a GPU, cuDNN's LSTM kernels round
differently, so results are close to, not equal to, the CPU's (and resuming stays exact only on the
same kind of device).

TensorBoard keys (step = number of training batches done): ``lm/train_ppl``, ``lm/val_ppl``,
``lm/lr``, ``lm/lambda``, ``lm/imm_kl`` once per epoch; ``lm/batch_ppl`` (running train perplexity of
the epoch so far) every ``LOG_EVERY`` batches.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from rlimm.common.device import as_device
from rlimm.common.files import atomic_write
from rlimm.common.progress import format_duration, time_left
from rlimm.lm.batches import batchify, n_windows, window
from rlimm.lm.config import LMConfig
from rlimm.lm.evaluate import perplexity
from rlimm.lm.histories import HistoryIndex, imm_loss_for, sample_histories
from rlimm.lm.model import LanguageModel, LSTMLanguageModel, detach_hidden
from rlimm.lm.noising import KNNoiser

CHECKPOINT = "checkpoint.pt"
BEST_MODEL = "best_model.pt"
TENSORBOARD = "tensorboard"
#: TensorBoard scalar keys written once per epoch.
EPOCH_KEYS = ("lm/train_ppl", "lm/val_ppl", "lm/lr", "lm/lambda", "lm/imm_kl")
BATCH_KEY = "lm/batch_ppl"
LOG_EVERY = 100
#: Seed offsets of the method-specific generators (the model init and dropout use ``train.seed``).
_NOISE_SEED, _IMM_SEED = 1_000_003, 2_000_003

Log = Callable[[str], None]


def build_model(config: LMConfig, vocab_size: int) -> LanguageModel:
    """The model of ``config`` (``model.kind``), initialised from the global generator (seed it first)."""
    m = config.model
    if m.kind == "transformer":
        from rlimm.lm.transformer import TransformerLanguageModel

        return TransformerLanguageModel(
            vocab_size, m.hidden, m.layers, m.heads, config.context, m.dropout, m.tie_weights, m.init_scale
        )
    return LSTMLanguageModel(vocab_size, m.hidden, m.layers, m.dropout, m.tie_weights, m.init_scale)


@dataclass
class _Progress:
    """Everything besides the model and optimiser that a checkpoint must carry."""

    epoch: int = 0  # epochs completed
    batch: int = 0  # batches of the current epoch completed
    step: int = 0  # batches completed overall
    lr: float = 1.0
    hidden: tuple[torch.Tensor, ...] | None = None  # () for the Transformer
    best_val: float = math.inf
    best_epoch: int = 0
    imm_on: bool = False
    seconds: float = 0.0  # training time incl. validation, summed over sessions
    batch_seconds: float = 0.0  # time spent in training batches only
    # Running sums of the current epoch.
    ce_sum: float = 0.0
    tokens: int = 0
    kl_sum: float = 0.0
    kl_batches: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


class Trainer:
    """Trains one method of a config; resumes from ``run_dir`` when it holds a checkpoint.

    :param config: the experiment's configuration.
    :param method: ``none``, ``noising`` or ``imm``.
    :param train: 1-D training ids.
    :param valid: 1-D validation ids.
    :param kn: the Kneser-Ney bigram fitted on ``train`` (teacher of IMM, statistics of noising).
    :param eos_id: the end-of-sentence id (pads histories that reach the corpus start).
    :param run_dir: folder for the checkpoint, best model and TensorBoard files; ``None`` keeps
        everything in memory (no resuming).
    :param log: progress messages (``None``: silent).
    :param tensorboard: write TensorBoard scalars to ``run_dir/tensorboard``.
    :param device: where training computes (``None``: ``config.device``, resolved on this machine).
    :param label: how progress lines name the run (``None``: the method; ``imm seed 2`` with seeds).
    """

    def __init__(
        self,
        config: LMConfig,
        method: str,
        train: torch.Tensor,
        valid: torch.Tensor,
        kn,
        eos_id: int,
        run_dir: Path | None = None,
        log: Log | None = None,
        tensorboard: bool = False,
        device: torch.device | str | None = None,
        label: str | None = None,
    ) -> None:
        if method not in ("none", "noising", "imm"):
            raise ValueError(f"unknown method {method!r}")
        self.device = as_device(config.device if device is None else device)
        # Dropout draws from the global generator of the device it runs on.
        self._rng_devices = [self.device] if self.device.type == "cuda" else []
        kn = kn.to(self.device)
        self.config, self.method, self.kn = config, method, kn
        self.label = method if label is None else label
        self.valid = valid.to(self.device)
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.log = log
        self.tensorboard = tensorboard and self.run_dir is not None
        tc = config.train
        self.source = batchify(train, tc.batch_size).to(self.device)
        self.batches_per_epoch = n_windows(self.source, tc.bptt)
        if tc.max_batches_per_epoch is not None:
            self.batches_per_epoch = min(self.batches_per_epoch, tc.max_batches_per_epoch)

        # The model's initial weights and the dropout stream come from train.seed, whatever the
        # method: the three methods start from the same network.
        with torch.random.fork_rng(devices=self._rng_devices):
            torch.manual_seed(tc.seed)
            self.model = build_model(config, kn.vocab_size).to(self.device)
            self.rng_state = torch.get_rng_state()
            self.cuda_rng_state = self._cuda_rng()
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=tc.lr)
        self.noiser = KNNoiser.from_kn(kn, config.noising.gamma0) if method == "noising" else None
        self.noise_gen = torch.Generator().manual_seed(tc.seed + _NOISE_SEED)
        self.imm_gen = torch.Generator().manual_seed(tc.seed + _IMM_SEED)
        self.index = HistoryIndex(train.to(self.device), kn.vocab_size, eos_id) if method == "imm" else None
        self.lam = config.imm.lam if method == "imm" else 0.0
        self.progress = _Progress(lr=tc.lr, imm_on=method == "imm" and config.imm.switch_on_below_ppl is None)
        self.best_state = _clone_state(self.model)
        if self.run_dir is not None and (self.run_dir / CHECKPOINT).is_file():
            self._load()

    # ----------------------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """Whether all ``train.epochs`` epochs are done."""
        return self.progress.epoch >= self.config.train.epochs

    def run(self, max_batches: int | None = None) -> bool:
        """Train until the configured number of epochs is done.

        :param max_batches: return after this many batches of this call, without any extra
            checkpoint (simulates an interruption; for tests).
        :return: whether training is finished.
        """
        writer = self._writer()
        done = 0
        started = time.perf_counter()
        self._session = (started, self.progress.step)  # for the time left in progress lines
        try:
            # The trainer owns torch's global generator (dropout) while it runs and gives it back after.
            with torch.random.fork_rng(devices=self._rng_devices):
                torch.set_rng_state(self.rng_state)
                if self.cuda_rng_state is not None:
                    torch.cuda.set_rng_state(self.cuda_rng_state, self.device)
                while not self.finished:
                    if max_batches is not None and done >= max_batches:
                        break
                    if self.progress.batch < self.batches_per_epoch:
                        self._train_batch(writer)
                        done += 1
                        if self.progress.step % self.config.train.checkpoint_every == 0:
                            self._checkpoint(started)
                            started = time.perf_counter()
                    else:
                        self._end_epoch(writer, started)
                        started = time.perf_counter()
                self.rng_state = torch.get_rng_state()
                self.cuda_rng_state = self._cuda_rng()
        finally:
            if writer is not None:
                writer.close()
        return self.finished

    # ----------------------------------------------------------------------------------------------
    def _imm_active(self) -> bool:
        return self.method == "imm" and self.progress.imm_on

    def _cuda_rng(self) -> torch.Tensor | None:
        return torch.cuda.get_rng_state(self.device) if self._rng_devices else None

    def _timing(self) -> str:
        """``elapsed 1m02s, ETA 3m10s``: this session's time, and the time left at its rate."""
        started, first_step = getattr(self, "_session", (time.perf_counter(), self.progress.step))
        elapsed = time.perf_counter() - started
        total = self.config.train.epochs * self.batches_per_epoch
        left = time_left(elapsed, self.progress.step - first_step, total - self.progress.step)
        return f"elapsed {format_duration(elapsed)}, ETA {left}"

    def _train_batch(self, writer) -> None:
        started = time.perf_counter()
        p, tc, imm = self.progress, self.config.train, self.config.imm
        model = self.model
        model.train()
        inputs, targets = window(self.source, p.batch, tc.bptt)
        if self.noiser is not None:
            inputs, targets, _ = self.noiser(inputs, targets, self.noise_gen)
        hidden = model.init_hidden(inputs.shape[1]) if p.hidden is None else detach_hidden(p.hidden)
        logits, hidden = model(inputs, hidden)
        ce = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        loss = ce
        if self._imm_active():
            flat = inputs.flatten()
            chosen = torch.randperm(flat.numel(), generator=self.imm_gen)[: imm.positions]
            contexts = flat[chosen.to(flat.device)]
            histories = sample_histories(self.index, contexts, imm.k, imm.history_length, self.imm_gen)
            # Histories are read without dropout unless configured (as the reference code does). cuDNN
            # refuses the backward pass of an LSTM in eval mode: on a GPU that pass uses torch's own
            # LSTM kernels instead (the same function, a little slower).
            model.train(imm.dropout)
            with torch.backends.cudnn.flags(enabled=imm.dropout or self.device.type != "cuda"):
                kl = imm_loss_for(model, self.kn, contexts, histories)
            model.train()
            loss = ce + self.lam * kl
            p.kl_sum += float(kl.detach())
            p.kl_batches += 1
        self.optimizer.zero_grad(set_to_none=True)
        # Summed over the window's time steps, averaged over columns (Zaremba's and the reference
        # code's scale, for which lr = 1 and clip = 5 are tuned): T × the per-token mean.
        (loss * inputs.shape[0]).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.clip)
        for group in self.optimizer.param_groups:
            group["lr"] = p.lr
        self.optimizer.step()

        p.hidden = detach_hidden(hidden)
        p.ce_sum += float(ce.detach()) * targets.numel()
        p.tokens += targets.numel()
        p.batch += 1
        p.step += 1
        p.batch_seconds += time.perf_counter() - started
        if writer is not None and p.step % LOG_EVERY == 0:
            writer.add_scalar(BATCH_KEY, math.exp(p.ce_sum / p.tokens), p.step)
        if self.log is not None and p.batch % max(1, self.batches_per_epoch // 10) == 0:
            self.log(
                f"{self.label}: epoch {p.epoch + 1} batch {p.batch}/{self.batches_per_epoch} "
                f"train ppl {math.exp(p.ce_sum / p.tokens):.2f}, {self._timing()}"
            )

    def _end_epoch(self, writer, started: float) -> None:
        p, tc = self.progress, self.config.train
        val = perplexity(self.model, self.valid, tc.eval_batch_size, tc.bptt)
        record = {
            "epoch": p.epoch + 1,
            "train_ppl": math.exp(p.ce_sum / p.tokens),
            "val_ppl": val,
            "lr": p.lr,
            "lambda": self.lam if self._imm_active() else 0.0,
            "imm_kl": p.kl_sum / p.kl_batches if p.kl_batches else None,
            "batches": p.batch,
        }
        improved = val < p.best_val
        if improved:
            p.best_val, p.best_epoch = val, p.epoch + 1
            self.best_state = _clone_state(self.model)
            if self.run_dir is not None:
                atomic_write(self.run_dir / BEST_MODEL, partial(torch.save, self.best_state))
        scheduled = tc.lr_decay_from_epoch is not None and p.epoch + 1 >= tc.lr_decay_from_epoch
        if scheduled or not improved:
            p.lr *= tc.lr_decay
        threshold = self.config.imm.switch_on_below_ppl
        if self.method == "imm" and not p.imm_on and threshold is not None and val < threshold:
            p.imm_on = True
            record["imm_switched_on"] = True
        p.history.append(record)
        if writer is not None:
            for key in EPOCH_KEYS:
                value = record[key.removeprefix("lm/")]
                if value is not None:
                    writer.add_scalar(key, value, p.step)
            writer.flush()
        if self.log is not None:
            kl = "" if record["imm_kl"] is None else f", IMM KL {record['imm_kl']:.4f}"
            self.log(
                f"{self.label}: epoch {record['epoch']}/{tc.epochs}: train ppl {record['train_ppl']:.2f}, "
                f"val ppl {val:.2f} (best {p.best_val:.2f}), lr {record['lr']:g}{kl}, {self._timing()}"
            )
        p.epoch += 1
        p.batch = 0
        p.hidden = None  # every epoch reads the columns from the start, from a zero state
        p.ce_sum, p.tokens, p.kl_sum, p.kl_batches = 0.0, 0, 0.0, 0
        self._checkpoint(started)

    # ----------------------------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        p = self.progress
        return {
            "method": self.method,
            "config": self.config.model_dump(mode="json"),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "noise": self.noise_gen.get_state(),
                "imm": self.imm_gen.get_state(),
                **({"cuda": torch.cuda.get_rng_state(self.device)} if self._rng_devices else {}),
            },
            "progress": {k: getattr(p, k) for k in p.__dataclass_fields__},
        }

    def _checkpoint(self, started: float) -> None:
        self.progress.seconds += time.perf_counter() - started
        if self.run_dir is not None:
            atomic_write(self.run_dir / CHECKPOINT, partial(torch.save, self._state()))

    def _load(self) -> None:
        state = torch.load(self.run_dir / CHECKPOINT, weights_only=True, map_location=self.device)
        if state.get("method") != self.method:
            raise ValueError(f"{self.run_dir / CHECKPOINT} belongs to method {state.get('method')!r}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        # Generator states are CPU byte tensors wherever the checkpoint was loaded to.
        self.rng_state = state["rng"]["torch"].cpu()
        if self._rng_devices and "cuda" in state["rng"]:
            self.cuda_rng_state = state["rng"]["cuda"].cpu()
        self.noise_gen.set_state(state["rng"]["noise"].cpu())
        self.imm_gen.set_state(state["rng"]["imm"].cpu())
        progress = dict(state["progress"])
        if progress["hidden"] is not None:
            progress["hidden"] = tuple(progress["hidden"])
        self.progress = _Progress(**progress)
        best = self.run_dir / BEST_MODEL
        self.best_state = (
            torch.load(best, weights_only=True, map_location=self.device)
            if best.is_file()
            else _clone_state(self.model)
        )

    def _writer(self):
        if not self.tensorboard:
            return None
        from torch.utils.tensorboard import SummaryWriter

        # purge_step drops points that a crashed session wrote after the checkpoint we resume from.
        return SummaryWriter(str(self.run_dir / TENSORBOARD), purge_step=self.progress.step or None)

    def best_model(self) -> LanguageModel:
        """A copy of the model with the best validation perplexity so far (eval mode)."""
        with torch.random.fork_rng(devices=[]):  # the throw-away init must not move the caller's RNG
            model = build_model(self.config, self.kn.vocab_size)
        model.load_state_dict(self.best_state)
        return model.to(self.device).eval()


def _clone_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
