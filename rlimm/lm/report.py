"""``results.csv`` and ``summary.md`` of a language-modelling output folder.

Both are rebuilt from every finished method's ``metrics.json`` in the folder, so that methods run by
separate processes (one per method) end up in one table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from rlimm.common.files import atomic_write_text
from rlimm.lm.config import METHODS, LMConfig
from rlimm.lm.experiment import KN_BIGRAM, read_metrics

COLUMNS = (
    "method",
    "epochs",
    "best_epoch",
    "val_ppl",
    "test_ppl",
    "induced_bigram_test_ppl",
    "kn_bigram_test_ppl",
    "lambda",
    "imm_on_from_epoch",
    "train_seconds",
    "seconds_per_batch",
    "eval_seconds",
)
_LABEL = {"none": "none (dropout only)", "noising": "KN noising", "imm": "IMM"}


def collect(out: Path, config: LMConfig) -> pd.DataFrame:
    """One row per method of ``OUT`` trained for (at least) the configured epochs, in report order."""
    rows: list[dict[str, Any]] = []
    for method in METHODS:
        metrics = read_metrics(out / method)
        if metrics is not None and metrics.get("epochs", 0) >= config.train.epochs:
            rows.append({c: metrics.get(c) for c in COLUMNS})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def markdown(results: pd.DataFrame, config: LMConfig, kn: dict[str, Any] | None = None) -> str:
    """The summary: perplexities, then the restricted task (the paper's Table 5).

    :param kn: the Kneser-Ney bigram's own ``val_ppl`` and ``test_ppl``, if known.
    """
    m, tc, imm = config.model, config.train, config.imm
    lines = [
        f"# {config.name}: LSTM language model with a Kneser-Ney bigram teacher",
        "",
        f"Data: {config.data.source}. Model: {m.layers}×{m.hidden} LSTM, dropout {m.dropout}. "
        f"SGD lr {tc.lr}, ×{tc.lr_decay} on a validation plateau"
        + ("" if tc.lr_decay_from_epoch is None else f" and after every epoch from {tc.lr_decay_from_epoch}")
        + f", clip {tc.clip}, batch {tc.batch_size}, "
        f"bptt {tc.bptt}, {tc.epochs} epochs. IMM: λ = {imm.lam:.4g} (ratio {imm.lambda_ratio:.4g}), "
        f"k = {imm.k} histories of {imm.history_length} words at {imm.positions} positions per batch, "
        + (
            "on from the start."
            if imm.switch_on_below_ppl is None
            else f"on once validation perplexity < {imm.switch_on_below_ppl:g}."
        )
        + f" Noising: γ0 = {config.noising.gamma0}.",
        "",
        "## Perplexity",
        "",
        "| method | epochs | best epoch | validation | test | train time | s / batch |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results.itertuples(index=False):
        lines.append(
            f"| {_LABEL[r.method]} | {r.epochs} | {r.best_epoch} | {_fmt(r.val_ppl)} | {_fmt(r.test_ppl)} | "
            f"{_fmt(r.train_seconds / 60, 1)} min | {_fmt(r.seconds_per_batch, 3)} |"
        )
    lines += [
        "",
        "## Restricted task: next word from the previous word only (the paper's Table 5)",
        "",
        f"Perplexity on the test bigrams of the LSTM's induced bigram (its next-word distribution "
        f"averaged over {config.evaluation.induced_histories} training histories of "
        f"{config.evaluation.history_length} words ending in the previous word) and of the Kneser-Ney "
        "bigram itself. Without IMM the bigram wins; IMM should narrow the gap.",
        "",
        "| method | induced bigram | Kneser-Ney bigram | ratio |",
        "| --- | --- | --- | --- |",
    ]
    for r in results.itertuples(index=False):
        ratio = r.induced_bigram_test_ppl / r.kn_bigram_test_ppl
        lines.append(
            f"| {_LABEL[r.method]} | {_fmt(r.induced_bigram_test_ppl)} | {_fmt(r.kn_bigram_test_ppl)} | "
            f"{ratio:.3f} |"
        )
    if results.empty:
        lines.append("| (no finished method yet) | | | |")
    if kn is not None:
        lines += [
            "",
            f"The Kneser-Ney bigram teacher on its own: validation perplexity {kn['val_ppl']:.2f}, "
            f"test perplexity {kn['test_ppl']:.2f} (modified discounts, fitted on the training split).",
        ]
    return "\n".join(lines) + "\n"


def write_report(out: Path, config: LMConfig) -> tuple[pd.DataFrame, Path, Path]:
    """Write ``results.csv`` and ``summary.md`` (atomically) and return the table and both paths."""
    results = collect(out, config)
    csv, md = out / "results.csv", out / "summary.md"
    atomic_write_text(csv, results.to_csv(index=False))
    kn_file = out / KN_BIGRAM
    kn = json.loads(kn_file.read_text()) if kn_file.is_file() else None
    atomic_write_text(md, markdown(results, config, kn))
    return results, csv, md
