"""The paper's own grid teacher: the authors' FIB α-vectors with their tie-breaking (the first maximal
action), against a hand computation, and how it differs from rlimm's tie-sharing teacher."""

import numpy as np
import pytest

from rlimm.agents.teachers import alpha_teacher, paper_alpha_teacher
from rlimm.errors import RlimmError

UP = 0


def test_first_maximal_action_of_the_column_utilities(imm_reference_dir, grid_restriction):
    path = imm_reference_dir / "grid_fib_alphas.csv"
    teacher = paper_alpha_teacher(path, grid_restriction)
    alphas = np.loadtxt(path, delimiter=",", comments="#")  # (121, 4), state y·11 + x
    # b(x)·α as the paper computes it: a belief vector over the 121 states, 1/11 on column x's rows.
    beliefs = np.zeros((11, 121))
    for x in range(11):
        beliefs[x, np.arange(11) * 11 + x] = 1 / 11
    expected = np.eye(4)[(beliefs @ alphas).argmax(axis=1)]
    np.testing.assert_array_equal(teacher.table, expected)
    assert teacher.table[5, UP] == 1.0  # the centre column: UP, by the paper's np.argmax
    # rlimm's own alpha teacher shares the tie instead (UP and DOWN tie in the centre column).
    shared = alpha_teacher(alphas, grid_restriction).table
    assert shared[5, UP] < 1.0 and shared[5, UP] == shared[5, 1]
    others = [c for c in range(11) if c != 5]
    np.testing.assert_array_equal(shared[others], teacher.table[others])


def test_missing_or_malformed_alpha_file(tmp_path, grid_restriction):
    with pytest.raises(RlimmError, match="not found"):
        paper_alpha_teacher(tmp_path / "nope.csv", grid_restriction)
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,3,4\n")
    with pytest.raises(RlimmError, match="shape"):
        paper_alpha_teacher(bad, grid_restriction)
