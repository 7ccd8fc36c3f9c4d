"""Penn Treebank (Mikolov split) as integer id tensors.

Every line of a split file is one sentence; its words are separated by spaces and the newline becomes
the token ``<eos>``. Each split is additionally *preceded by one* ``<eos>``, so its id tensor starts
with the eos id: the first word of the file then has a real left context, which a bigram model needs
(PTB's first training word, ``aer``, would otherwise have no continuation count at all).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from rlimm.errors import RlimmError

DATA_ENV = "RLIMM_DATA_DIR"
SPLITS = ("train", "valid", "test")
EOS = "<eos>"


def _split_file(split: str) -> str:
    return f"ptb.{split}.txt"


def _has_all_splits(folder: Path) -> bool:
    return all((folder / _split_file(split)).is_file() for split in SPLITS)


def resolve_ptb_dir(data_dir: str | Path | None = None) -> Path:
    """Find the folder holding ``ptb.train.txt``, ``ptb.valid.txt`` and ``ptb.test.txt``.

    :param data_dir: the PTB folder itself (``data.data_dir``, which the command line's ``--data-dir``
        overrides); for convenience a folder that contains a ``ptb/`` sub-folder with the files is
        accepted too. If None, ``$RLIMM_DATA_DIR/ptb`` is used.
    :return: the PTB folder.
    :raises RlimmError: if no folder is given, the folder does not exist or a split file is missing.
    """
    if data_dir is not None and str(data_dir) != "":
        folder = Path(data_dir).expanduser()
        how = "data.data_dir"
        # Accept the parent of ptb/ as well, the same layout RLIMM_DATA_DIR uses.
        if folder.is_dir() and not _has_all_splits(folder) and _has_all_splits(folder / "ptb"):
            folder = folder / "ptb"
    else:
        env = os.environ.get(DATA_ENV, "")
        if not env:
            raise RlimmError(
                "no Penn Treebank data folder given: set data.data_dir to a folder holding "
                f"ptb.train.txt, ptb.valid.txt and ptb.test.txt, or set {DATA_ENV} to a folder that "
                "contains ptb/"
            )
        folder = Path(env).expanduser() / "ptb"
        how = f"{DATA_ENV}={env}"
    if not folder.is_dir():
        raise RlimmError(
            f"Penn Treebank folder {folder} (from {how}) does not exist; expected a folder holding "
            "ptb.train.txt, ptb.valid.txt and ptb.test.txt"
        )
    for split in SPLITS:
        path = folder / _split_file(split)
        if not path.is_file():
            raise RlimmError(
                f"Penn Treebank file {path} (from {how}) does not exist; the folder must hold "
                "ptb.train.txt, ptb.valid.txt and ptb.test.txt"
            )
    return folder


def read_tokens(path: Path) -> list[str]:
    """Read a whitespace-tokenised text file: the words of every line followed by ``<eos>``.

    :param path: the text file (UTF-8).
    :return: the tokens; a file with ``n`` lines yields its words plus ``n`` ``<eos>`` tokens (a final
        line without a newline still counts as a line).
    :raises RlimmError: if the file cannot be read.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RlimmError(f"cannot read text file {path}: {exc}; expected a UTF-8 text file") from exc
    lines = text.split("\n")
    if lines and lines[-1] == "":  # the newline ending the last line does not start a new line
        lines.pop()
    tokens: list[str] = []
    for line in lines:
        tokens.extend(line.split())
        tokens.append(EOS)
    return tokens


@dataclass(frozen=True)
class Vocabulary:
    """A word <-> id mapping.

    :param words: id -> word, sorted by descending training frequency, ties broken by the word itself,
        so the ids are deterministic.
    :param index: word -> id, the inverse of ``words``.
    """

    words: tuple[str, ...]
    index: dict[str, int]

    def __post_init__(self) -> None:
        consistent = len(self.index) == len(self.words)
        if not consistent or any(self.index.get(w) != i for i, w in enumerate(self.words)):
            raise RlimmError("Vocabulary.index must be the inverse of Vocabulary.words (distinct words)")
        if EOS not in self.index:
            raise RlimmError(f"a vocabulary must contain the end-of-sentence token {EOS!r}")

    @property
    def eos_id(self) -> int:
        """The id of ``<eos>``."""
        return self.index[EOS]

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, tokens: Sequence[str], source: str = "<tokens>") -> torch.Tensor:
        """Map tokens to ids.

        :param tokens: the words, e.g. from :func:`read_tokens`.
        :param source: where the tokens come from (e.g. a file name), used in error messages.
        :return: int64 1-D tensor of ids, same length as ``tokens``.
        :raises RlimmError: on the first token outside the vocabulary, naming ``source``, the token, its
            line (counted by ``<eos>`` tokens, as in a file read by :func:`read_tokens`) and position.
        """
        get = self.index.get
        ids = torch.tensor([get(t, -1) for t in tokens], dtype=torch.int64)
        unknown = torch.nonzero(ids < 0)
        if len(unknown) > 0:
            pos = int(unknown[0, 0])
            eos_before = [i for i, t in enumerate(tokens[:pos]) if t == EOS]
            line = len(eos_before) + 1
            word_in_line = pos - (eos_before[-1] if eos_before else -1)
            raise RlimmError(
                f"{source}: line {line}, word {word_in_line} (token {pos + 1}): {tokens[pos]!r} is not in "
                f"the vocabulary; accepted are the {len(self)} words of the training data"
            )
        return ids


@dataclass(frozen=True)
class Corpus:
    """The three splits as id tensors over one vocabulary.

    :param vocab: the vocabulary (built from the training split).
    :param train: int64 1-D ids of the training split, starting with ``vocab.eos_id``.
    :param valid: same for the validation split.
    :param test: same for the test split.
    """

    vocab: Vocabulary
    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor

    def split(self, name: str) -> torch.Tensor:
        """The ids of split ``name`` (one of ``SPLITS``)."""
        if name not in SPLITS:
            raise RlimmError(f"unknown split {name!r}; accepted are {', '.join(SPLITS)}")
        return getattr(self, name)


def build_vocabulary(tokens: Sequence[str]) -> Vocabulary:
    """Build the vocabulary of ``tokens``: ids by descending frequency, ties by word.

    :param tokens: the training tokens; must contain ``<eos>``.
    :return: the vocabulary.
    :raises RlimmError: if ``<eos>`` does not occur.
    """
    counts = Counter(tokens)
    if EOS not in counts:
        raise RlimmError(f"the training tokens must contain the end-of-sentence token {EOS!r}; none found")
    words = tuple(sorted(counts, key=lambda w: (-counts[w], w)))
    return Vocabulary(words=words, index={w: i for i, w in enumerate(words)})


def _encode_split(vocab: Vocabulary, tokens: Sequence[str], source: str) -> torch.Tensor:
    # The leading <eos> gives the split's first word a left context (see the module docstring).
    eos = torch.tensor([vocab.eos_id], dtype=torch.int64)
    return torch.cat([eos, vocab.encode(tokens, source)])


def corpus_from_tokens(
    train: Sequence[str], valid: Sequence[str], test: Sequence[str], source: str = ""
) -> Corpus:
    """Build a :class:`Corpus` from token lists; the vocabulary comes from ``train`` only.

    :param train: training tokens (must contain ``<eos>``).
    :param valid: validation tokens; every token must occur in ``train``.
    :param test: test tokens; every token must occur in ``train``.
    :param source: a label for error messages (e.g. a folder or data set name); may be empty.
    :return: the corpus; each split's tensor starts with the eos id.
    :raises RlimmError: if ``<eos>`` is missing from ``train`` or a valid/test token is not in it.
    """
    vocab = build_vocabulary(train)
    prefix = f"{source} " if source else ""
    tensors = {
        name: _encode_split(vocab, toks, f"{prefix}{name} split")
        for name, toks in zip(SPLITS, (train, valid, test), strict=True)
    }
    return Corpus(vocab=vocab, **tensors)


def load_ptb(data_dir: str | Path | None = None) -> Corpus:
    """Load the Penn Treebank splits.

    :param data_dir: the PTB folder, see :func:`resolve_ptb_dir` (None: ``$RLIMM_DATA_DIR/ptb``).
    :return: the corpus; the vocabulary is built from ``ptb.train.txt`` only.
    :raises RlimmError: if the folder or a file is missing, or a valid/test token is not in the training
        vocabulary (naming the file, line number and token).
    """
    folder = resolve_ptb_dir(data_dir)
    paths = {split: folder / _split_file(split) for split in SPLITS}
    tokens = {split: read_tokens(path) for split, path in paths.items()}
    vocab = build_vocabulary(tokens["train"])
    tensors = {split: _encode_split(vocab, tokens[split], str(paths[split])) for split in SPLITS}
    return Corpus(vocab=vocab, **tensors)
