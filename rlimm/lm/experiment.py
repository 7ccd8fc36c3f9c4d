"""Running the methods of a language-modelling config: data, teacher, training, final evaluation.

Each run lives in its own run folder (checkpoint, best model, TensorBoard files, ``metrics.json``):
``OUT/<method>/`` with one seed (``train.seeds: 1``, the default), ``OUT/<method>/seed<S>/`` for each
seed S of several (:func:`run_folder`). A run is *finished* when its ``metrics.json`` records at least the
configured number of epochs; anything else is resumed from its checkpoint.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError

from rlimm.common.device import as_device
from rlimm.common.files import atomic_write_text
from rlimm.errors import RlimmError
from rlimm.lm.config import LMConfig
from rlimm.lm.data import Corpus, load_ptb
from rlimm.lm.evaluate import perplexity, restricted_task
from rlimm.lm.histories import HistoryIndex
from rlimm.lm.kneser_ney import KneserNeyBigram
from rlimm.lm.train import Log, Trainer

METRICS = "metrics.json"
CONFIG = "config.json"
#: Config keys that may change between sessions on one output folder: more epochs continue training,
#: the method list and the data folder's location do not change any result, and a run may move to
#: another device (a GPU's results are close to, not equal to, the CPU's).
RESUMABLE_KEYS = ("train.epochs", "methods", "data.data_dir", "device")


#: The Kneser-Ney bigram's own validation and test perplexity, in the output folder.
KN_BIGRAM = "kn_bigram.json"


def run_folder(out: Path, config: LMConfig, method: str, seed: int) -> Path:
    """The folder of one run: ``OUT/<method>`` with one seed (the layout before seeds existed, so that
    older output folders resume), ``OUT/<method>/seed<S>`` with several."""
    return out / method if config.train.seeds == 1 else out / method / f"seed{seed}"


def seed_config(config: LMConfig, seed: int) -> LMConfig:
    """``config`` with ``train.seed = seed``: the configuration of one run of several seeds (``seeds``
    is kept, so the run's saved config says which experiment it belongs to)."""
    return config.model_copy(update={"train": config.train.model_copy(update={"seed": seed})})


def run_label(config: LMConfig, method: str, seed: int) -> str:
    """How progress lines name a run: ``imm``, or ``imm seed 2`` when there are several seeds."""
    return method if config.train.seeds == 1 else f"{method} seed {seed}"


def load_corpus(config: LMConfig, data_dir: str | Path | None = None) -> Corpus:
    """The corpus of ``config`` (``data_dir`` overrides ``data.data_dir``; else ``$RLIMM_DATA_DIR``)."""
    if config.data.source == "synthetic":
        from rlimm.lm.synthetic import synthetic_bigram_corpus

        return synthetic_bigram_corpus(**config.data.synthetic.model_dump()).corpus
    return load_ptb(data_dir if data_dir is not None else config.data.data_dir)


def fit_teacher(corpus: Corpus) -> KneserNeyBigram:
    """The restricted model: a modified Kneser-Ney bigram of the training split."""
    return KneserNeyBigram.fit(corpus.train, len(corpus.vocab))


def write_json(data: Any, path: Path) -> None:
    """Write JSON atomically (:func:`rlimm.common.files.atomic_write_text`)."""
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def _with_defaults(dump: dict[str, Any]) -> dict[str, Any]:
    # A folder written before a key existed (model.kind, train.seeds, …) saved no value for it: it ran
    # with what is now the default, so the saved dump is compared with its defaults filled in.
    try:
        return LMConfig.model_validate(dump).model_dump(mode="json")
    except ValidationError:
        return dump


def config_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Dotted keys whose values differ between two config dumps, ignoring :data:`RESUMABLE_KEYS`; a key
    missing from ``old`` (saved before the key existed) counts as its default."""
    a, b = _flatten(_with_defaults(old)), _flatten(new)
    keys = sorted(set(a) | set(b))
    return [k for k in keys if a.get(k) != b.get(k) and k not in RESUMABLE_KEYS and k != "name"]


def check_output(config: LMConfig, out: Path) -> None:
    """Refuse an output folder made with an incompatible config (before anything is written)."""
    if out.exists() and not out.is_dir():
        raise RlimmError(f"{out} is a file, but the output must be a folder")
    saved = out / CONFIG
    if saved.is_file():
        try:
            old = json.loads(saved.read_text())
        except (OSError, ValueError) as err:
            raise RlimmError(f"{saved} is unreadable ({err}); use another output folder") from None
        diff = config_differences(old, config.model_dump(mode="json"))
        if diff:
            raise RlimmError(
                f"{out} holds runs of a different configuration (differs in {', '.join(diff)}); "
                "use another output folder, or the config it was made with"
            )


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """The ``metrics.json`` of a run folder, or ``None``."""
    path = run_dir / METRICS
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None  # a foreign or damaged file: the run is redone from its checkpoint


def is_finished(config: LMConfig, run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a method trained for at least the configured number of epochs (a run
    trained longer is reported as it is, with its own epoch count)."""
    metrics = read_metrics(run_dir)
    return metrics is not None and metrics.get("epochs", 0) >= config.train.epochs


def run_method(
    config: LMConfig,
    method: str,
    corpus: Corpus,
    kn: KneserNeyBigram,
    run_dir: Path,
    log: Log | None = None,
    tensorboard: bool = False,
    device: torch.device | str | None = None,
) -> dict[str, Any]:
    """Train (or resume) one method, evaluate its best model, write and return its metrics.

    :param config: the experiment, with ``train.seed`` the run's seed (:func:`seed_config`).
    :param method: ``none``, ``noising`` or ``imm``.
    :param corpus: the data.
    :param kn: the Kneser-Ney teacher fitted on ``corpus.train``.
    :param run_dir: the method's folder (created if missing).
    :param log: progress messages.
    :param tensorboard: write TensorBoard scalars.
    :param device: where to train and evaluate (``None``: ``config.device``, resolved here).
    """
    device = as_device(config.device if device is None else device)
    label = run_label(config, method, config.train.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(
        config,
        method,
        corpus.train,
        corpus.valid,
        kn,
        corpus.vocab.eos_id,
        run_dir,
        log,
        tensorboard,
        device,
        label,
    )
    trainer.run()
    p = trainer.progress

    started = time.perf_counter()
    model = trainer.best_model()
    tc, ec = config.train, config.evaluation
    test = corpus.test.to(device)
    test_ppl = perplexity(model, test, tc.eval_batch_size, tc.bptt)
    index = HistoryIndex(corpus.train.to(device), len(corpus.vocab), corpus.vocab.eos_id)
    task = restricted_task(
        model, kn.to(device), index, test, ec.induced_histories, ec.history_length, seed=tc.seed
    )
    # IMM on from the start (0), after epoch e (e), or never (None).
    switched = [r["epoch"] for r in p.history if r.get("imm_switched_on")]
    imm_from = (switched[0] if switched else 0 if p.imm_on else None) if method == "imm" else None
    batches = sum(r["batches"] for r in p.history)
    metrics = {
        "method": method,
        **({"seed": tc.seed} if tc.seeds > 1 else {}),
        "epochs": p.epoch,
        "best_epoch": p.best_epoch,
        "val_ppl": p.best_val,
        "test_ppl": test_ppl,
        "induced_bigram_test_ppl": task.induced_ppl,
        "kn_bigram_test_ppl": task.kn_ppl,
        "test_bigrams": task.bigrams,
        "lambda": trainer.lam,
        "imm_on_from_epoch": imm_from,
        "train_seconds": p.seconds,
        "seconds_per_batch": p.batch_seconds / batches if batches else math.nan,
        "eval_seconds": time.perf_counter() - started,
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "history": p.history,
    }
    write_json(metrics, run_dir / METRICS)
    if log is not None:
        log(
            f"{label}: done: val ppl {p.best_val:.2f}, test ppl {test_ppl:.2f}, induced bigram test ppl "
            f"{task.induced_ppl:.2f} (KN bigram {task.kn_ppl:.2f})"
        )
    return metrics


def run_method_in_worker(
    config: dict[str, Any],
    method: str,
    data_dir: str | None,
    run_dir: str,
    threads: int,
    quiet: bool,
    tb: bool,
    device: str | None = None,
) -> dict[str, Any]:
    """:func:`run_method` in a fresh process (picklable arguments only; used by ``--jobs``)."""
    import sys

    from rlimm.lm.config import LMConfig

    torch.set_num_threads(threads)
    cfg = LMConfig.model_validate(config)
    corpus = load_corpus(cfg, data_dir)
    log = None if quiet else (lambda msg: print(f"lm: {msg}", file=sys.stderr, flush=True))
    return run_method(cfg, method, corpus, fit_teacher(corpus), Path(run_dir), log, tb, device)
