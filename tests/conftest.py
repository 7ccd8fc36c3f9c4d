import os
from pathlib import Path

import gymnasium as gym
import pytest
import torch

# The networks under test are tiny: one thread is faster and keeps timings stable on busy machines.
torch.set_num_threads(1)

#: The reference data (``ptb/``, ``imm_reference/``): ``$RLIMM_DATA_DIR``, else ``../shared/data`` next to
#: the checkout.
DATA_ENV = "RLIMM_DATA_DIR"
DATA_ROOT = Path(os.environ.get(DATA_ENV) or Path(__file__).resolve().parents[2] / "shared" / "data")


def in_ci() -> bool:
    """Whether the tests run in CI (``CI=true``, as GitHub Actions and most CI services set it)."""
    return os.environ.get("CI") == "true"


def require_data(path: Path, what: str) -> Path:
    """``path`` if it exists; otherwise skip the test locally, but *fail* it in CI, where a missing data
    set must not turn a test that checks the algorithm into a silent skip."""
    path = Path(path)
    if path.exists():
        return path
    message = f"{what} not found at {path} (set {DATA_ENV})"
    if in_ci():
        pytest.fail(f"{message}; data is required in CI (CI=true)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def ptb_dir() -> Path:
    """The Penn Treebank folder (Mikolov's split), skipped locally and failed in CI when missing."""
    return require_data(DATA_ROOT / "ptb", "Penn Treebank")


@pytest.fixture(scope="session")
def imm_reference_dir() -> Path:
    """The reference outputs of the paper's code (``imm_reference/``), skipped locally and failed in CI
    when missing."""
    return require_data(DATA_ROOT / "imm_reference", "IMM reference data")


#: Episodes of the grid environment in the RL tests: short, so that a rollout spans several of them.
GRID_EPISODE_STEPS = 50


@pytest.fixture
def grid_env() -> gym.Env:
    """A fresh toroidal grid (11 × 11, four moves) with episodes of ``GRID_EPISODE_STEPS`` steps; an
    environment has state, so each test gets its own."""
    import rlimm.envs as E  # imported here: the tests that use no RL fixture do not load the RL stack

    return gym.make(E.GRID_ID, max_episode_steps=GRID_EPISODE_STEPS)


@pytest.fixture(scope="session")
def grid_restriction():
    """The grid's column-only restriction (``x`` visible, the row ``y`` hidden), shared by every test:
    nothing changes a restriction after it is built."""
    import rlimm.envs as E

    return E.FactoredRestriction.for_env(gym.make(E.GRID_ID), ["x"])


@pytest.fixture(scope="session")
def grid_teacher(grid_restriction):
    """The grid's FIB teacher for the column-only restriction (a frozen table of action probabilities
    per column), shared by every test."""
    import rlimm.envs as E
    from rlimm.agents.teachers import pomdp_teacher

    return pomdp_teacher(gym.make(E.GRID_ID), grid_restriction, "fib")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """In CI, a skip on missing data is a failure, also in test files that call ``pytest.skip`` with
    their own message: any runtime skip whose reason names ``$RLIMM_DATA_DIR`` (the convention of every
    data-dependent test) becomes a failure."""
    outcome = yield
    report = outcome.get_result()
    if not (in_ci() and report.skipped and call.excinfo is not None):
        return
    if call.excinfo.errisinstance(pytest.skip.Exception) and DATA_ENV in str(call.excinfo.value):
        report.outcome = "failed"
        report.longrepr = f"{call.excinfo.value} — data is required in CI (CI=true)"
