import os
from pathlib import Path

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
