"""The language-modelling experiment's configuration: YAML validated by pydantic.

Unknown keys, wrong types and impossible values are refused with the key's dotted name and what is
accepted (:class:`rlimm.errors.ConfigError`, via :func:`rlimm.common.config.load_config`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from rlimm.coefficients import ratio_to_lambda
from rlimm.common.config import Ratio, StrictModel, load_config, parse_mapping
from rlimm.common.device import DeviceName

#: The methods, in report order: dropout only, Kneser-Ney noising (the naive baseline), IMM.
METHODS = ("none", "noising", "imm")
Method = Literal["none", "noising", "imm"]


class SyntheticConfig(StrictModel):
    """A corpus drawn from a random bigram chain (:mod:`rlimm.lm.synthetic`), for tests and smoke runs."""

    vocab_size: int = Field(default=12, ge=2)
    n_train: int = Field(default=4000, ge=10)
    n_valid: int = Field(default=500, ge=10)
    n_test: int = Field(default=500, ge=10)
    seed: int = Field(default=0, ge=0)


class DataConfig(StrictModel):
    """Where the words come from.

    ``data_dir`` (the PTB folder, or a folder containing ``ptb/``) may also come from ``--data-dir`` or
    the environment variable ``RLIMM_DATA_DIR``; the command line wins over the file, the file over
    the environment.
    """

    source: Literal["ptb", "synthetic"] = "ptb"
    data_dir: str | None = None
    synthetic: SyntheticConfig = Field(default_factory=SyntheticConfig)


def _refuse(title: str, loc: tuple[str, ...], message: str, value: Any) -> ValidationError:
    """A validation error at the dotted key ``loc`` (relative to the model being validated), so that a
    check across keys names the key to change, not the section that holds them."""
    error = InitErrorDetails(type=PydanticCustomError("value_error", message), loc=loc, input=value)
    return ValidationError.from_exception_data(title, [error])


class ModelConfig(StrictModel):
    """The full model: ``layers`` × ``hidden`` (the depth and the width, for both kinds).

    ``kind: lstm`` (the default) is a Zaremba-style LSTM (:mod:`rlimm.lm.model`); ``kind: transformer``
    a causal Transformer (:mod:`rlimm.lm.transformer`) with ``heads`` attention heads (a divisor of
    ``hidden``) and ``context`` learned positions (``null``: ``train.bptt``).
    """

    kind: Literal["lstm", "transformer"] = "lstm"
    hidden: int = Field(default=200, gt=0)
    layers: int = Field(default=2, gt=0)
    dropout: float = Field(default=0.25, ge=0, lt=1)
    tie_weights: bool = False
    init_scale: float = Field(default=0.1, gt=0)
    #: Attention heads per layer (Transformer only, required there).
    heads: int | None = Field(default=None, gt=0)
    #: The longest input the Transformer reads, in words (Transformer only); ``null`` = ``train.bptt``.
    context: int | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _kind_fits(self) -> ModelConfig:
        title = type(self).__name__
        if self.kind == "lstm":
            for key in ("heads", "context"):
                if getattr(self, key) is not None:
                    raise _refuse(
                        title,
                        (key,),
                        f"only model.kind transformer has {key}; remove it, or set model.kind: transformer",
                        getattr(self, key),
                    )
            return self
        if self.heads is None:
            raise _refuse(
                title, ("heads",), "required with model.kind transformer (a divisor of model.hidden)", None
            )
        if self.hidden % self.heads:
            divisors = [d for d in range(1, min(self.hidden, 32) + 1) if self.hidden % d == 0]
            raise _refuse(
                title,
                ("heads",),
                f"{self.heads} heads do not divide the width model.hidden ({self.hidden}); give one of "
                f"{', '.join(map(str, divisors))}",
                self.heads,
            )
        return self


class TrainConfig(StrictModel):
    """SGD with truncated BPTT, gradient clipping and learning-rate decay on a validation plateau."""

    batch_size: int = Field(default=20, gt=0)
    bptt: int = Field(default=35, gt=0)
    lr: float = Field(default=1.0, gt=0)
    #: The learning rate is multiplied by this after every epoch whose validation perplexity does not
    #: beat the best so far.
    lr_decay: float = Field(default=0.5, gt=0, le=1)
    #: From the end of this epoch on, decay after *every* epoch, improving or not (Zaremba et al.'s
    #: schedule, for short budgets); ``null`` = only on a plateau (the paper's rule).
    lr_decay_from_epoch: int | None = Field(default=None, gt=0)
    #: Global gradient-norm clip.
    clip: float = Field(default=5.0, gt=0)
    epochs: int = Field(default=10, gt=0)
    #: Cut every epoch after this many batches (smoke runs and tests); ``null`` = the whole split.
    max_batches_per_epoch: int | None = Field(default=None, gt=0)
    #: Columns when computing validation and test perplexity (1 = the exact, sequential figure).
    eval_batch_size: int = Field(default=10, gt=0)
    seed: int = Field(default=0, ge=0)
    #: Runs per method, with seeds ``seed … seed + seeds − 1`` (model init, dropout, noising and IMM
    #: draws); with more than one the report adds paired differences between the methods over seeds.
    seeds: int = Field(default=1, gt=0)
    #: Write a checkpoint every this many batches (and at the end of every epoch).
    checkpoint_every: int = Field(default=200, gt=0)


class NoisingConfig(StrictModel):
    """Kneser-Ney noising (Xie et al. 2017): a position is noised with probability γ0·N1+(v,•)/c(v)."""

    gamma0: float = Field(default=0.2, ge=0, le=1)


class IMMConfig(StrictModel):
    """The IMM term: λ · mean over ``positions`` random positions of a batch of KL(P_KN(·|v) ‖ Q̄(·|v))."""

    #: λ as the ratio r = λ/(1+λ) (λ = r/(1−r)); the paper's λ = 0.2 is r = 1/6.
    lambda_ratio: Ratio = 1.0 / 6.0
    #: Sampled training histories per visible word (the paper: 10).
    k: int = Field(default=10, gt=0)
    #: Words per sampled history (read from a zero state; only the last step is decoded).
    history_length: int = Field(default=20, gt=0)
    #: Positions of each batch that get an IMM term (their input word is the visible context v).
    positions: int = Field(default=16, gt=0)
    #: IMM switches on once the validation perplexity falls below this (the paper: 90); ``null`` = on
    #: from the first batch.
    switch_on_below_ppl: float | None = Field(default=None, gt=1)
    #: Apply dropout while reading the sampled histories (the reference code does not).
    dropout: bool = False

    @property
    def lam(self) -> float:
        """λ = r / (1 − r)."""
        return ratio_to_lambda(self.lambda_ratio)


class EvaluationConfig(StrictModel):
    """The restricted task (the paper's Table 5): the full model's induced bigram on the test bigrams."""

    #: Training histories averaged per context word (all of them when the word is rarer).
    induced_histories: int = Field(default=20, gt=0)
    history_length: int = Field(default=20, gt=0)


class LMConfig(StrictModel):
    """The whole experiment."""

    name: str
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    methods: list[Method] = Field(default_factory=lambda: list(METHODS))
    noising: NoisingConfig = Field(default_factory=NoisingConfig)
    imm: IMMConfig = Field(default_factory=IMMConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    #: Torch device of the full model, its batches, the Kneser-Ney tables and the IMM histories: ``auto``
    #: (CUDA when available, else the CPU), ``cpu``, ``cuda`` or ``cuda:N``; ``--device`` overrides it.
    #: The CPU gives the same results whatever the value says.
    device: DeviceName = "auto"

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"give at least one of {', '.join(METHODS)}")
        if len(set(value)) != len(value):
            raise ValueError(f"entries must be distinct, got {value}")
        return [m for m in METHODS if m in value]

    @property
    def context(self) -> int | None:
        """The Transformer's number of positions (``model.context``, else ``train.bptt``); ``None`` for
        the LSTM, which reads sequences of any length."""
        if self.model.kind != "transformer":
            return None
        return self.model.context if self.model.context is not None else self.train.bptt

    @property
    def seeds(self) -> list[int]:
        """The seeds of the runs of every method: ``train.seed … train.seed + train.seeds − 1``."""
        return list(range(self.train.seed, self.train.seed + self.train.seeds))

    @model_validator(mode="after")
    def _fits(self) -> LMConfig:
        tokens = self.train.batch_size * self.train.bptt
        if self.imm.positions > tokens:
            raise ValueError(
                f"imm.positions ({self.imm.positions}) exceeds the {tokens} positions of a batch "
                "(train.batch_size × train.bptt)"
            )
        context = self.context
        if context is None:
            return self
        given = "model.context" if self.model.context is not None else "train.bptt, as model.context is unset"
        # Every input the Transformer reads: a training or evaluation window, and both kinds of history.
        reads = {
            ("train", "bptt"): (self.train.bptt, "windows of"),
            ("imm", "history_length"): (self.imm.history_length, "histories of"),
            ("evaluation", "history_length"): (self.evaluation.history_length, "histories of"),
        }
        for loc, (length, what) in reads.items():
            if length > context:
                raise _refuse(
                    type(self).__name__,
                    loc,
                    f"{what} {length} words exceed the Transformer's context of {context} positions "
                    f"({given}); give at most {context}, or a larger model.context",
                    length,
                )
        return self


def parse_config(data: Any, source: str = "<config>") -> LMConfig:
    """Validate a mapping as an :class:`LMConfig`, raising :class:`rlimm.errors.ConfigError`."""
    return parse_mapping(LMConfig, data, source)


def load_lm_config(
    path: str | Path,
    methods: list[str] | None = None,
    epochs: int | None = None,
    device: str | None = None,
) -> LMConfig:
    """Read and validate a YAML file, with the command line's overrides.

    :param path: the YAML file.
    :param methods: replaces ``methods`` (``None``: keep the file's).
    :param epochs: replaces ``train.epochs`` (``None``: keep the file's).
    :param device: replaces ``device`` (``None``: keep the file's).
    """
    overrides = {"methods": methods, "train": {"epochs": epochs}, "device": device}
    return load_config(LMConfig, path, overrides)
