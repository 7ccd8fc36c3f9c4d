"""The shared scaffold of the experiments: atomic writes, summary statistics, the subcommand helpers and
strict configs (``rlimm/common``)."""

from __future__ import annotations

import argparse
import math
import os

import pydantic
import pytest

from rlimm.common.command import (
    add_jobs_option,
    add_threads_option,
    jobs_or_cores,
    parse_key_values,
    parse_settings,
    positive_int,
)
from rlimm.common.config import Ratio, StrictModel, load_config
from rlimm.common.files import atomic_write, atomic_write_text
from rlimm.common.stats import paired_difference, summarize, t95
from rlimm.errors import ConfigError, RlimmError

# ------------------------------------------------------------------------------------------ files


def test_atomic_write_text_leaves_only_the_file(tmp_path):
    path = tmp_path / "summary.md"
    assert atomic_write_text(path, "old\n") == path
    atomic_write_text(path, "new\n")
    assert path.read_text() == "new\n"
    assert os.listdir(tmp_path) == ["summary.md"]  # no temporary file left behind


def test_atomic_write_gives_a_hidden_temporary_path_with_the_same_suffix(tmp_path):
    seen = []

    def write(tmp):
        seen.append(tmp)
        tmp.write_bytes(b"\x00\x01")

    path = atomic_write(tmp_path / "model.pt", write)
    assert path.read_bytes() == b"\x00\x01"
    (tmp,) = seen
    assert tmp.parent == tmp_path and tmp.name.startswith(".") and tmp.suffix == ".pt" and tmp != path
    assert os.listdir(tmp_path) == ["model.pt"]


def test_a_failing_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text("old contents\n")

    def fail_halfway(tmp):
        tmp.write_text("half a fi")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail_halfway)
    assert path.read_text() == "old contents\n"
    assert os.listdir(tmp_path) == ["results.csv"]


def test_a_failing_first_write_creates_nothing(tmp_path):
    def fail(tmp):
        tmp.write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "metrics.json", fail)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------------------------------ stats


def test_summarize_by_hand():
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert s.n == 4
    assert s.mean == 2.5
    # Sample sd (n − 1): sqrt(((1.5² + 0.5²) · 2) / 3) = sqrt(5/3); sem = sd / sqrt(4).
    assert s.sem == pytest.approx(math.sqrt(5.0 / 3.0) / 2.0, rel=1e-12)
    # Linear interpolation between order statistics 1, 2, 3, 4 at positions 0.1·3 and 0.9·3.
    assert s.p10 == pytest.approx(1.3, rel=1e-12)
    assert s.p90 == pytest.approx(3.7, rel=1e-12)
    assert all(isinstance(v, float) for v in (s.mean, s.sem, s.p10, s.p90))


def test_summarize_one_value_has_no_standard_error():
    s = summarize([7.0])
    assert (s.n, s.mean, s.p10, s.p90) == (1, 7.0, 7.0, 7.0)
    assert math.isnan(s.sem)


def test_paired_difference_by_hand():
    a, b = [0.5, 0.7, 0.9], [0.4, 0.5, 0.6]
    # Differences 0.1, 0.2, 0.3: mean 0.2, sample sd 0.1, half-width t(0.975, 2) · 0.1 / sqrt(3),
    # t(0.975, 2) = 4.302653 (Student's t tables, 2 degrees of freedom).
    half = 4.302653 * 0.1 / math.sqrt(3.0)
    d = paired_difference(a, b)
    assert d.n == 3
    assert d.mean == pytest.approx(0.2, rel=1e-12)
    assert d.low == pytest.approx(0.2 - half, rel=1e-6)
    assert d.high == pytest.approx(0.2 + half, rel=1e-6)
    # scale = 100: percentage points.
    pp = paired_difference(a, b, scale=100.0)
    assert (pp.n, pp.mean, pp.low, pp.high) == pytest.approx(
        (3, 20.0, 20.0 - 100 * half, 20.0 + 100 * half), rel=1e-6
    )
    # a − b, not b − a.
    assert paired_difference(b, a).mean == pytest.approx(-0.2, rel=1e-12)


def test_paired_interval_uses_the_t_quantile_of_n_minus_one_degrees_of_freedom():
    # n = 10: t(0.975, 9) = 2.2622 (tables); the differences 1..10 have sd sqrt(55/6).
    d = paired_difference([float(x) for x in range(1, 11)], [0.0] * 10)
    sd = math.sqrt(sum((x - 5.5) ** 2 for x in range(1, 11)) / 9)
    assert d.high - d.mean == pytest.approx(2.2622 * sd / math.sqrt(10), abs=1e-4)
    assert d.mean - d.low == pytest.approx(2.2622 * sd / math.sqrt(10), abs=1e-4)
    # n = 2: t(0.975, 1) = 12.706; differences 1 and 3: mean 2, sd sqrt(2), half-width 12.706.
    d = paired_difference([1.0, 3.0], [0.0, 0.0])
    assert (d.mean, d.low, d.high) == pytest.approx((2.0, 2.0 - 12.706, 2.0 + 12.706), abs=1e-3)
    # Many pairs: the quantile approaches the normal one, 1.96.
    assert t95(10_000) == pytest.approx(1.96, abs=1e-3)
    assert t95(10) == pytest.approx(2.2622, abs=1e-4) and t95(2) == pytest.approx(12.706, abs=1e-3)
    assert t95(10) > t95(30) > t95(1000) > 1.959964
    with pytest.raises(ValueError, match="at least 2"):
        t95(1)


def test_paired_difference_needs_two_aligned_pairs():
    with pytest.raises(ValueError, match="at least 2"):
        paired_difference([1.0], [0.0])
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0, 3.0], [0.0, 1.0])


# ---------------------------------------------------------------------------------------- command


def test_positive_int_accepts_one_and_refuses_the_rest():
    assert positive_int("1") == 1
    assert positive_int("12") == 12
    for bad in ("0", "-1", "abc", "1.5", ""):
        with pytest.raises(argparse.ArgumentTypeError, match=">= 1"):
            positive_int(bad)


def test_jobs_and_threads_options_are_checked_by_the_parser(capsys):
    parser = argparse.ArgumentParser(prog="rlimm x")
    add_jobs_option(parser, "runs in parallel", default=None)
    add_threads_option(parser)
    args = parser.parse_args([])
    assert (args.jobs, args.threads) == (None, 1)
    assert jobs_or_cores(args.jobs) == (os.cpu_count() or 1)
    args = parser.parse_args(["--jobs", "3", "--threads", "2"])
    assert (args.jobs, args.threads) == (3, 2)
    assert jobs_or_cores(args.jobs) == 3
    for flag in ("--jobs", "--threads"):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([flag, "0"])
        assert exit_.value.code == 2 and flag in capsys.readouterr().err


def test_parse_key_values():
    assert parse_key_values(None, "-params") is None
    assert parse_key_values([], "-params") is None
    parsed = parse_key_values(
        ["learning_rate:0.001", "n_steps:64", "normalize:true", "net_arch:[64, 64]", "name:abc", "url:a:b"],
        "-params",
    )
    assert parsed == {
        "learning_rate": 0.001,
        "n_steps": 64,
        "normalize": True,
        "net_arch": [64, 64],
        "name": "abc",
        "url": "a:b",  # split at the first colon only
    }
    for bad in ("n_steps", ":64"):
        with pytest.raises(RlimmError, match="-params: expected key:value"):
            parse_key_values([bad], "-params")


def test_parse_settings():
    assert parse_settings("fib", "--teacher") == ("fib", {})
    assert parse_settings("fib:policy=softmax,temperature=0.5", "--teacher") == (
        "fib",
        {"policy": "softmax", "temperature": 0.5},
    )
    assert parse_settings("trained:algo=ppo,timesteps=20000,", "--teacher") == (
        "trained",
        {"algo": "ppo", "timesteps": 20000},
    )
    for bad in ("fib:policy", "fib:=1"):
        with pytest.raises(RlimmError, match="--teacher: expected NAME"):
            parse_settings(bad, "--teacher")


# ----------------------------------------------------------------------------------------- config


class _Inner(StrictModel):
    a: int = 1
    b: int = 2


class _Outer(StrictModel):
    name: str
    inner: _Inner = pydantic.Field(default_factory=_Inner)
    items: list[int] = pydantic.Field(default_factory=list)
    ratio: Ratio = 0.5


@pytest.fixture
def yaml_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: x\ninner: {a: 5}\nitems: [1, 2]\n")
    return path


def test_load_config_merges_nested_overrides(yaml_file):
    config = load_config(_Outer, yaml_file, {"inner": {"b": 7}, "name": None, "items": [3]})
    assert config.name == "x"  # None: the file's value is kept
    assert config.inner == _Inner(a=5, b=7)  # merged key by key
    assert config.items == [3]  # lists are replaced, not merged
    assert load_config(_Outer, yaml_file, {"inner": {"a": None}}).inner == _Inner(a=5, b=2)


def test_load_config_replace_puts_sections_in_place_of_the_files(yaml_file):
    config = load_config(_Outer, yaml_file, replace={"inner": {"b": 9}, "items": None})
    assert config.inner == _Inner(a=1, b=9)  # the file's inner.a is gone with its section
    assert config.items == [1, 2]  # None: kept
    # Overrides are merged first, then replace wins.
    both = load_config(_Outer, yaml_file, {"inner": {"a": 6}, "name": "y"}, replace={"inner": {"b": 0}})
    assert (both.name, both.inner) == ("y", _Inner(a=1, b=0))


def test_load_config_without_a_file_uses_defaults_and_overrides():
    config = load_config(_Outer, None, {"name": "z", "inner": {"a": 3}})
    assert (config.name, config.inner, config.items, config.ratio) == ("z", _Inner(a=3, b=2), [], 0.5)


def test_an_unknown_key_is_named_with_its_dotted_path(yaml_file, tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(_Outer, yaml_file, {"inner": {"c": 1}})
    message = str(err.value)
    assert "'inner.c': unknown key" in message and str(yaml_file) in message
    assert "\n" not in message
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnmae: y\n")
    with pytest.raises(ConfigError, match="'nmae': unknown key"):
        load_config(_Outer, bad)


def test_bad_values_name_the_key(yaml_file):
    with pytest.raises(ConfigError, match=r"'ratio': lambda ratio must lie in \[0, 1\)"):
        load_config(_Outer, yaml_file, {"ratio": 1.0})
    with pytest.raises(ConfigError, match="'inner.a'"):
        load_config(_Outer, yaml_file, {"inner": {"a": "many"}})
    with pytest.raises(ConfigError, match="'name': required key is missing"):
        load_config(_Outer, None)


def test_missing_file_and_frozen_models(tmp_path, yaml_file):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(_Outer, tmp_path / "missing.yaml")
    config = load_config(_Outer, yaml_file)
    with pytest.raises(pydantic.ValidationError):
        config.name = "changed"
