"""Penn Treebank loading, vocabularies and the synthetic bigram corpus (rlimm.lm.data, rlimm.lm.synthetic)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rlimm.errors import RlimmError
from rlimm.lm.data import (
    DATA_ENV,
    EOS,
    build_vocabulary,
    corpus_from_tokens,
    load_ptb,
    read_tokens,
    resolve_ptb_dir,
)
from rlimm.lm.synthetic import synthetic_bigram_corpus


@pytest.fixture(scope="module")
def ptb(ptb_dir):  # skipped without the data, failed in CI (conftest.py)
    return load_ptb(ptb_dir)


def write_ptb(folder: Path, train: str, valid: str, test: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split, text in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"ptb.{split}.txt").write_text(text, encoding="utf-8")
    return folder


def test_real_ptb_sizes_and_leading_eos(ptb):
    # Published token counts (words + one <eos> per line) plus the leading <eos> of each split.
    assert ptb.train.shape == (929_589 + 1,)
    assert ptb.valid.shape == (73_760 + 1,)
    assert ptb.test.shape == (82_430 + 1,)
    assert len(ptb.vocab) == 10_000
    eos = ptb.vocab.eos_id
    assert ptb.vocab.words[eos] == EOS
    for split in (ptb.train, ptb.valid, ptb.test):
        assert split.dtype == torch.int64
        assert int(split[0]) == eos
    # The first word of the training file follows the leading <eos>.
    assert ptb.vocab.words[int(ptb.train[1])] == "aer"
    # Ids are ordered by descending training frequency.
    freq = torch.bincount(ptb.train[1:], minlength=len(ptb.vocab))
    assert bool((freq[:-1] >= freq[1:]).all())
    assert ptb.vocab.words[0] == "the"


def test_ptb_dir_from_environment(monkeypatch, ptb_dir):
    monkeypatch.setenv(DATA_ENV, str(ptb_dir.parent))
    assert resolve_ptb_dir() == ptb_dir


def test_explicit_dir_wins_over_environment(tmp_path, monkeypatch):
    folder = write_ptb(tmp_path / "mine", " a b \n", " a \n", " b \n")
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "elsewhere"))
    assert resolve_ptb_dir(folder) == folder
    # The parent of a ptb/ folder is accepted as well.
    nested = write_ptb(tmp_path / "root" / "ptb", " a b \n", " a \n", " b \n")
    assert resolve_ptb_dir(tmp_path / "root") == nested


def test_no_data_dir_says_how_to_give_it(monkeypatch):
    monkeypatch.delenv(DATA_ENV, raising=False)
    with pytest.raises(RlimmError) as err:
        resolve_ptb_dir()
    assert "data.data_dir" in str(err.value) and DATA_ENV in str(err.value)


def test_missing_folder_named(tmp_path, monkeypatch):
    missing = tmp_path / "nowhere"
    with pytest.raises(RlimmError, match="nowhere"):
        load_ptb(missing)
    monkeypatch.setenv(DATA_ENV, str(missing))
    with pytest.raises(RlimmError) as err:
        resolve_ptb_dir()
    assert str(missing / "ptb") in str(err.value)


def test_missing_split_file_named(tmp_path):
    folder = write_ptb(tmp_path / "ptb", " a b \n", " a \n", " b \n")
    (folder / "ptb.test.txt").unlink()
    with pytest.raises(RlimmError) as err:
        load_ptb(folder)
    assert str(folder / "ptb.test.txt") in str(err.value)


def test_unknown_valid_token_names_file_line_and_token(tmp_path):
    folder = write_ptb(tmp_path / "ptb", " a b c \n b a \n", " a b \n b zebra a \n", " c \n")
    with pytest.raises(RlimmError) as err:
        load_ptb(folder)
    message = str(err.value)
    assert str(folder / "ptb.valid.txt") in message
    assert "line 2" in message and "'zebra'" in message


def test_small_files_load(tmp_path):
    # The last line lacks a newline: it is still a line and ends with <eos>.
    folder = write_ptb(tmp_path / "ptb", " a b a \n b c", " c a \n", " b \n")
    assert read_tokens(folder / "ptb.train.txt") == ["a", "b", "a", EOS, "b", "c", EOS]
    corpus = load_ptb(folder)
    v = corpus.vocab
    # a:2, b:2, <eos>:2, c:1; ties broken by the word ("<" sorts before letters).
    assert v.words == (EOS, "a", "b", "c")
    assert corpus.train.tolist() == [0, 1, 2, 1, 0, 2, 3, 0]
    assert corpus.valid.tolist() == [0, 3, 1, 0]
    assert corpus.test.tolist() == [0, 2, 0]


def test_vocabulary_ids_are_deterministic():
    tokens = ["x", "y", EOS, "y", "z", EOS, "x", "w", EOS]
    vocab = build_vocabulary(tokens)
    assert vocab.words == (EOS, "x", "y", "w", "z")
    assert vocab.index == {w: i for i, w in enumerate(vocab.words)}
    assert build_vocabulary(list(reversed(tokens))).words == vocab.words
    assert vocab.encode(["z", "x"]).tolist() == [4, 1]


def test_vocabulary_needs_eos_and_encode_names_unknown_token():
    with pytest.raises(RlimmError, match="<eos>"):
        build_vocabulary(["a", "b"])
    vocab = build_vocabulary(["a", EOS])
    with pytest.raises(RlimmError) as err:
        vocab.encode(["a", EOS, "a", "q"], source="my-file.txt")
    message = str(err.value)
    assert "my-file.txt" in message and "'q'" in message and "line 2" in message and "token 4" in message


def test_corpus_from_tokens_prepends_eos_and_rejects_unknown():
    corpus = corpus_from_tokens(["a", "b", EOS], ["b", EOS], ["a", EOS])
    eos = corpus.vocab.eos_id
    for split in (corpus.train, corpus.valid, corpus.test):
        assert int(split[0]) == eos
    assert corpus.train.numel() == 4
    with pytest.raises(RlimmError, match="'c'"):
        corpus_from_tokens(["a", EOS], ["a", EOS], ["c", EOS])


def test_synthetic_corpus_is_deterministic():
    a = synthetic_bigram_corpus(seed=3)
    b = synthetic_bigram_corpus(seed=3)
    c = synthetic_bigram_corpus(seed=4)
    assert torch.equal(a.transition, b.transition)
    assert a.corpus.vocab == b.corpus.vocab
    for split in ("train", "valid", "test"):
        assert torch.equal(getattr(a.corpus, split), getattr(b.corpus, split))
    assert not torch.equal(a.corpus.train, c.corpus.train)
    assert a.corpus.train.numel() == 4000 + 1 and a.corpus.valid.numel() == 500 + 1
    assert len(a.corpus.vocab) == 12 and EOS in a.corpus.vocab.index


def test_synthetic_transition_in_corpus_id_order():
    data = synthetic_bigram_corpus(vocab_size=10, n_train=100_000, seed=1)
    T, corpus = data.transition, data.corpus
    V = len(corpus.vocab)
    assert T.shape == (V, V) and T.dtype == torch.float64
    assert torch.allclose(T.sum(1), torch.ones(V, dtype=torch.float64), atol=1e-12)
    assert bool((T >= 0).all())
    # Sparse rows: a few reachable words each.
    assert int((T > 0).sum(1).max()) <= 4
    # Empirical bigram frequencies of the training split match T in the corpus's id order.
    tokens = corpus.train
    counts = torch.zeros(V, V, dtype=torch.float64)
    counts.index_put_((tokens[:-1], tokens[1:]), torch.ones(tokens.numel() - 1, dtype=torch.float64), True)
    empirical = counts / counts.sum(1, keepdim=True)
    assert float((empirical - T).abs().max()) < 0.04
    # The ids are frequency-ordered, so T's id order differs from the generating order for this seed.
    assert corpus.vocab.words != tuple([EOS] + [f"w{i}" for i in range(1, V)])


def test_synthetic_rejects_bad_sizes():
    with pytest.raises(RlimmError, match="vocab_size"):
        synthetic_bigram_corpus(vocab_size=1)
    with pytest.raises(RlimmError, match="n_valid"):
        synthetic_bigram_corpus(n_valid=0)
    with pytest.raises(RlimmError, match="n_train"):
        synthetic_bigram_corpus(vocab_size=50, n_train=5)
