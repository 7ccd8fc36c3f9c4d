"""Cost of a training batch of ``noising`` and ``imm`` relative to ``none`` (goal: imm ≤ 2.5×).

The three trainers of a config (default ``configs/lm_cpu.yaml``, on Penn Treebank) run side by side in
one process on one thread, interleaved in chunks of batches so that a load change on a shared machine
hits all three alike; IMM is forced on from the first batch (whatever the switch-on rule says).

    .venv/bin/python benchmarks/lm_batch_cost.py --data-dir /work/shared/data
    .venv/bin/python benchmarks/lm_batch_cost.py --positions 16 24 --history-length 16 20   # a sweep

It prints the mean seconds per batch of each method, the ratios to ``none``, and seconds per epoch.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlimm.lm.config import load_lm_config  # noqa: E402
from rlimm.lm.experiment import fit_teacher, load_corpus  # noqa: E402
from rlimm.lm.train import Trainer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "lm_cpu.yaml"))
    parser.add_argument("--data-dir", help="PTB folder (default: the config's, else $RLIMM_DATA_DIR/ptb)")
    parser.add_argument("--batches", type=int, default=300, help="timed batches per method")
    parser.add_argument("--chunk", type=int, default=10, help="batches per method before switching")
    parser.add_argument("--warmup", type=int, default=5, help="untimed batches per method first")
    parser.add_argument("--positions", type=int, nargs="+", help="imm.positions values to compare")
    parser.add_argument("--history-length", type=int, nargs="+", help="imm.history_length values")
    args = parser.parse_args()
    torch.set_num_threads(1)

    config = load_lm_config(args.config)
    corpus = load_corpus(config, args.data_dir)
    kn = fit_teacher(corpus)
    positions = args.positions or [config.imm.positions]
    lengths = args.history_length or [config.imm.history_length]

    trainers: dict[str, Trainer] = {}
    for method in ("none", "noising"):
        trainers[method] = Trainer(config, method, corpus.train, corpus.valid, kn, corpus.vocab.eos_id)
    for p, length in itertools.product(positions, lengths):
        imm = config.imm.model_copy(update={"positions": p, "history_length": length})
        cfg = config.model_copy(update={"imm": imm})
        trainer = Trainer(cfg, "imm", corpus.train, corpus.valid, kn, corpus.vocab.eos_id)
        trainer.progress.imm_on = True  # measure the IMM term even if the config switches it on later
        trainers[f"imm (positions {p}, history {length})"] = trainer

    for trainer in trainers.values():
        trainer.run(max_batches=args.warmup)
    times: dict[str, list[float]] = {name: [] for name in trainers}
    done = 0
    while done < args.batches:
        n = min(args.chunk, args.batches - done)
        for name, trainer in trainers.items():
            start = time.perf_counter()
            trainer.run(max_batches=n)
            times[name].append((time.perf_counter() - start) / n)
        done += n

    per_epoch = trainers["none"].batches_per_epoch
    tc, m = config.train, config.model
    print(
        f"{config.name}: {m.layers}x{m.hidden} LSTM, V = {len(corpus.vocab)}, batch {tc.batch_size} x bptt "
        f"{tc.bptt}, k = {config.imm.k}; {args.batches} batches per method, interleaved in chunks of "
        f"{args.chunk}; 1 thread; {per_epoch} batches per epoch"
    )
    # The ratio is the mean over chunks of (chunk time / the same round's `none` chunk time): paired, so
    # that a change of machine load between rounds cancels out.
    print(f"{'method':<36} {'s/batch':>8} {'ratio':>6} {'s/epoch':>8}")
    for name, t in times.items():
        ratio = statistics.fmean(a / b for a, b in zip(t, times["none"], strict=True))
        mean = statistics.fmean(t)
        print(f"{name:<36} {mean:8.4f} {ratio:6.2f} {mean * per_epoch:8.0f}")


if __name__ == "__main__":
    main()
