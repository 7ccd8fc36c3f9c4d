"""Every shipped config validates, and the paper's configs say what the paper did."""

from pathlib import Path

import pytest

from rlimm.experiments.config import load_config
from rlimm.experiments.runner import expand

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("grid_*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads_and_expands(path):
    config = load_config(path)
    assert config.name == path.stem
    assert expand(config)


def test_paper_config_is_the_papers_setting():
    config = load_config(CONFIGS[0].with_name("grid_paper.yaml"))
    assert config.seeds == 30 and config.budgets == [50, 100, 200] and config.lambda_ratio == "paper_grid"
    assert config.algo.kwargs == {"n_steps": 50, "learning_rate": 0.01, "gamma": 0.9}
    assert (config.evaluation.episodes, config.evaluation.steps) == (10, 22)
    assert config.env.kwargs["reward_variance"] == 0.1 and config.env.episode_steps == 50
    runs = expand(config)
    assert len(runs) == 3 * 3 * 30
    assert {(r.budget, r.lambda_ratio) for r in runs if r.method == "imm"} == {
        (50, 0.2),
        (100, 0.2),
        (200, 0.1),
    }
