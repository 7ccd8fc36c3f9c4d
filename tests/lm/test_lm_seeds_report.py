"""The multi-seed part of ``summary.md``: means over seeds and paired differences by seed."""

from __future__ import annotations

import pandas as pd
import pytest

from rlimm.common.stats import paired_difference
from rlimm.lm.seeds_report import RATIO, means_table, paired_table, with_ratio

LABELS = {"none": "none", "noising": "noising", "imm": "IMM"}


def _results(rows):
    columns = ["method", "seed", "val_ppl", "test_ppl", "induced_bigram_test_ppl", "kn_bigram_test_ppl"]
    return with_ratio(pd.DataFrame(rows, columns=columns))


def test_differences_are_paired_by_seed_over_the_seeds_both_methods_finished():
    results = _results(
        [
            ("none", 0, 110.0, 105.0, 200.0, 180.0),
            ("none", 1, 112.0, 108.0, 202.0, 180.0),
            ("none", 2, 111.0, 107.0, 199.0, 180.0),
            ("imm", 0, 108.0, 104.0, 190.0, 180.0),
            ("imm", 2, 109.5, 104.0, 185.0, 180.0),  # seed 1 not finished: pairs are seeds 0 and 2
            ("noising", 1, 113.0, 109.0, 201.0, 180.0),  # one seed only: no interval
        ]
    )
    assert results[RATIO].tolist()[0] == pytest.approx(200 / 180)
    lines = paired_table(results)
    d = paired_difference([108.0, 109.5], [110.0, 111.0])
    assert d.mean == pytest.approx(-1.75)
    ratio = paired_difference([190 / 180, 185 / 180], [200 / 180, 199 / 180])
    imm_none = next(line for line in lines if line.startswith("| IMM − none |"))
    assert f"{d.mean:+.2f} [{d.low:+.2f}, {d.high:+.2f}] (2)" in imm_none
    assert f"{ratio.mean:+.3f} [{ratio.low:+.3f}, {ratio.high:+.3f}] (2)" in imm_none
    # IMM and noising share no seed, noising and none share one: no interval, the count says why.
    assert "| IMM − noising | – (0) | – (0) | – (0) |" in lines
    assert "| noising − none | – (1) | – (1) | – (1) |" in lines


def test_means_carry_their_standard_error_and_a_single_seed_has_none():
    results = _results(
        [
            ("none", 0, 110.0, 105.0, 200.0, 180.0),
            ("none", 1, 112.0, 107.0, 200.0, 180.0),
            ("imm", 0, 108.0, 104.0, 190.0, 180.0),
        ]
    )
    lines = means_table(results, LABELS)
    # Mean 111, standard error sd/√n = √2/√2 = 1.
    assert "| none | 2 | 111.00 ± 1.00 | 106.00 ± 1.00 | 1.111 ± 0.000 |" in lines
    assert "| IMM | 1 | 108.00 | 104.00 | 1.056 |" in lines
