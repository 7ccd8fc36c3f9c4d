"""A compare config with the RL Zoo's settings and no budgets takes the Zoo's n_timesteps."""

import pytest

from rlimm.errors import RlimmError
from rlimm.rl.config import load_compare_config


@pytest.fixture
def zoo_config(tmp_path):
    path = tmp_path / "zoo.yaml"
    path.write_text("name: z\nenv: {id: CartPole-v1}\nalgo: {name: ppo, hyperparams: zoo}\nmethods: [none]\n")
    return path


def test_the_zoo_budget_is_the_default(zoo_config):
    config = load_compare_config(zoo_config)
    assert (config.budgets, config.budget_unit) == ([100000], "timesteps")  # rl_zoo3's ppo.yml


def test_given_budgets_win(zoo_config):
    config = load_compare_config(zoo_config, {"budgets": [5000], "budget_unit": "timesteps"})
    assert config.budgets == [5000]


@pytest.mark.parametrize("overrides", [{"algo": {"hyperparams": "default"}}, {"budget_unit": "updates"}])
def test_no_budget_without_the_zoo_is_refused(zoo_config, overrides):
    with pytest.raises(RlimmError, match="'budgets': give at least one training budget"):
        load_compare_config(zoo_config, overrides)
