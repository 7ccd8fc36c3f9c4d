"""``results.csv`` and ``summary.md`` of a language-modelling output folder.

Both are rebuilt from every finished run's ``metrics.json`` in the folder, so that runs made by
separate processes (one per run) end up in one table. With several seeds (``train.seeds`` > 1) the CSV
has a ``seed`` and a ``restricted_ratio`` column and the summary adds means and paired differences over
seeds (:mod:`rlimm.lm.seeds_report`); with one seed both are as they were before seeds existed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from rlimm.common.files import atomic_write_text
from rlimm.lm.config import METHODS, LMConfig
from rlimm.lm.experiment import KN_BIGRAM, read_metrics, run_folder
from rlimm.lm.seeds_report import seeds_markdown, with_ratio

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
    """One row per run of ``OUT`` trained for (at least) the configured epochs, in report order (by
    method, then seed); with several seeds, a ``seed`` column after ``method`` and ``restricted_ratio``
    last."""
    several = config.train.seeds > 1
    columns = ["method", "seed", *COLUMNS[1:]] if several else list(COLUMNS)
    rows: list[dict[str, Any]] = []
    for method in METHODS:
        for seed in config.seeds:
            metrics = read_metrics(run_folder(out, config, method, seed))
            if metrics is not None and metrics.get("epochs", 0) >= config.train.epochs:
                rows.append({c: metrics.get(c, seed) if c == "seed" else metrics.get(c) for c in columns})
    results = pd.DataFrame(rows, columns=columns)
    return with_ratio(results) if several else results


def _model_name(config: LMConfig) -> str:
    return "Transformer" if config.model.kind == "transformer" else "LSTM"


def _model_description(config: LMConfig) -> str:
    m = config.model
    if m.kind == "transformer":
        tied = ", tied embeddings" if m.tie_weights else ""
        return f"{m.layers}×{m.hidden} Transformer ({m.heads} heads, context {config.context}{tied})"
    return f"{m.layers}×{m.hidden} LSTM"


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
    name = _model_name(config)
    seeds = (
        ""
        if tc.seeds == 1
        else f" Seeds {config.seeds[0]} … {config.seeds[-1]} ({tc.seeds} runs per method)."
    )
    lines = [
        f"# {config.name}: {name} language model with a Kneser-Ney bigram teacher",
        "",
        f"Data: {config.data.source}. Model: {_model_description(config)}, dropout {m.dropout}. "
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
        + f" Noising: γ0 = {config.noising.gamma0}."
        + seeds,
        "",
    ]
    if tc.seeds > 1:
        lines += seeds_markdown(results, _LABEL, name)
    else:
        lines += _one_seed_tables(results, config)
    if kn is not None:
        lines += [
            "",
            f"The Kneser-Ney bigram teacher on its own: validation perplexity {kn['val_ppl']:.2f}, "
            f"test perplexity {kn['test_ppl']:.2f} (modified discounts, fitted on the training split).",
        ]
    return "\n".join(lines) + "\n"


def _one_seed_tables(results: pd.DataFrame, config: LMConfig) -> list[str]:
    """The body of the summary with one seed: perplexity, then the restricted task."""
    lines = [
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
        f"Perplexity on the test bigrams of the {_model_name(config)}'s induced bigram (its next-word "
        f"distribution averaged over {config.evaluation.induced_histories} training histories of "
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
    return lines


def write_report(out: Path, config: LMConfig) -> tuple[pd.DataFrame, Path, Path]:
    """Write ``results.csv`` and ``summary.md`` (atomically) and return the table and both paths."""
    results = collect(out, config)
    csv, md = out / "results.csv", out / "summary.md"
    atomic_write_text(csv, results.to_csv(index=False))
    kn_file = out / KN_BIGRAM
    kn = json.loads(kn_file.read_text()) if kn_file.is_file() else None
    atomic_write_text(md, markdown(results, config, kn))
    return results, csv, md
