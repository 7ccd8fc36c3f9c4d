"""Every shipped config validates, and the paper's configs say what the paper did."""

from pathlib import Path

import pytest

from rlimm.rl.config import load_compare_config as load_config

CONFIGS = sorted((Path(__file__).resolve().parents[2] / "configs").glob("grid_*.yaml"))


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads_and_expands(path):
    config = load_config(path)
    assert config.name == path.stem
    assert config.runs()


def test_paper_config_is_the_papers_setting():
    config = load_config(CONFIGS[0].with_name("grid_paper.yaml"))
    assert config.seeds == 30 and config.budgets == [50, 100, 200] and config.lambda_ratio == "paper_grid"
    assert config.algo.kwargs == {"n_steps": 50, "learning_rate": 0.01, "gamma": 0.9}
    assert (config.evaluation.episodes, config.evaluation.steps) == (10, 22)
    assert config.env.kwargs["reward_variance"] == 0.1 and config.env.episode_steps == 50
    runs = config.runs()
    assert len(runs) == 3 * 3 * 30
    assert {(r.budget, r.lambda_ratio) for r in runs if r.method == "imm"} == {
        (50, 0.2),
        (100, 0.2),
        (200, 0.1),
    }


TRAIN_CONFIGS = sorted(CONFIGS[0].parent.glob("train_*.yaml"))


@pytest.mark.parametrize("path", TRAIN_CONFIGS, ids=[p.stem for p in TRAIN_CONFIGS])
def test_train_config_loads(path):
    from rlimm.rl.config import load_train_config

    config = load_train_config(path)
    assert config.n_timesteps > 0 and config.algo.name in ("reinforce", "ppo", "a2c")


def test_linear_ratio_rule_clips_and_rounds():
    from rlimm.rl.config import LinearRatioRule

    rule = LinearRatioRule(intercept=0.1891, slope=-0.0002, low=0.05, high=0.5)
    assert rule.ratio(100) == pytest.approx(0.1691)
    assert rule.ratio(10_000) == 0.05 and rule.ratio(-5000) == 0.5
    rounded = LinearRatioRule(intercept=0.1891, slope=-0.0002, round_to=0.1)
    # The paper's grid rule is this line rounded to one decimal.
    assert [rounded.ratio(b) for b in (50, 100, 200, 500)] == pytest.approx([0.2, 0.2, 0.1, 0.1])
    with pytest.raises(ValueError, match="must not exceed"):
        LinearRatioRule(intercept=0, slope=0, low=0.6, high=0.5)


def test_the_task_suite_loads_with_its_three_schedules(tmp_path):
    """configs/suite/suite.yaml: six tasks, each with constant λ (three methods), trust and decaying λ
    (naive and imm; the decay reaching 0 by half the budget), 10 seeds, one budget and a learning
    curve of at least 16 points."""
    from rlimm.rl.suite import load_suite

    root = Path(__file__).resolve().parents[2] / "configs" / "suite"
    entries = load_suite(root / "suite.yaml", tmp_path)
    assert len(entries) == 18 and len({e.task for e in entries}) == 6
    schedules = {"": "constant", "_decay": "linear_decay", "_trust": "trust"}
    for e in entries:
        c = e.config
        suffix = e.folder.name[len(e.task) :]
        assert c.lambda_schedule == schedules[suffix]
        assert c.methods == (["none", "naive", "imm"] if suffix == "" else ["naive", "imm"])
        assert c.lambda_until == (0.5 if suffix == "_decay" else 1.0)
        assert c.seeds == 10 and len(c.budgets) == 1 and c.budget_unit == "timesteps"
        assert c.evaluation.every is not None and c.budgets[0] // c.evaluation.every >= 16
    assert not tmp_path.joinpath("cartpole_novel").exists()  # loading writes nothing


def test_the_induced_teacher_suite_loads_with_constant_and_trust(tmp_path):
    """configs/suite/induced.yaml: four tasks whose teacher is an induced policy (three fitted to a
    full-state expert, one exact), each with constant λ and trust, 10 seeds, curves."""
    from rlimm.rl.suite import load_suite

    root = Path(__file__).resolve().parents[2] / "configs" / "suite"
    entries = load_suite(root / "induced.yaml", tmp_path)
    assert len(entries) == 8
    solvers = {e.task: e.config.teacher.solver for e in entries}
    assert solvers == {
        "frozenlake_col_hidden_induced": "induced_optimal",
        "cartpole_novel_induced": "induced_expert",
        "inverted_pendulum_novel_induced": "induced_expert",
        "lunarlander_novel_induced": "induced_expert",
    }
    for e in entries:
        assert e.config.lambda_schedule in ("constant", "trust") and e.config.seeds == 10
        assert (
            e.config.evaluation.every is not None and e.config.budgets[0] // e.config.evaluation.every >= 16
        )


def test_a_schedules_own_settings_tell_folders_apart_only_under_it():
    from rlimm.rl.comparison import _identity, _with_defaults

    base = load_config(Path("configs/grid_quick.yaml"))
    constant = _identity(base)
    # Under a constant λ neither lambda_until nor the trust rule changes a run.
    assert _identity(base.model_copy(update={"lambda_until": 0.5})) == constant
    assert "trust" not in constant and "lambda_until" not in constant
    decay = base.model_copy(update={"lambda_schedule": "linear_decay"})
    # A linear_decay folder from before lambda_until decayed over the whole run: it matches
    # lambda_until 1 and is told apart from 0.5.
    saved = {k: v for k, v in _identity(decay).items() if k != "lambda_until"}
    assert _with_defaults(saved, decay) == _identity(decay)
    half = decay.model_copy(update={"lambda_until": 0.5})
    assert _with_defaults(saved, half) != _identity(half)
    trust = base.model_copy(update={"lambda_schedule": "trust"})
    assert _identity(trust)["trust"]["fall"] == 0.1


def test_the_schedules_give_the_agents_coefficient():
    from rlimm.coefficients import Linear
    from rlimm.rl.config import RunSpec
    from rlimm.trust import Trust

    config = load_config(Path("configs/grid_quick.yaml"))
    spec = RunSpec("imm", 100, 0, 0.5)
    assert config.teacher_coef(spec) == 1.0
    decay = config.model_copy(update={"lambda_schedule": "linear_decay", "lambda_until": 0.5})
    assert decay.teacher_coef(spec) == Linear(1.0, 0.0, 0.5)
    trust = config.model_copy(update={"lambda_schedule": "trust"})
    coef = trust.teacher_coef(spec, teacher_score=12.5)
    assert isinstance(coef, Trust) and coef.lam == 1.0 and coef.teacher_score == 12.5
    assert coef is not trust.teacher_coef(spec, teacher_score=12.5)  # a fresh state per run
    assert trust.teacher_coef(RunSpec("none", 100, 0, 0.0)) == 0.0


def test_every_teacher_solver_has_one_builder():
    """``rlimm.rl.teacher_builder.BUILDERS`` is the table from ``teacher.solver`` to its builder: each
    solver a config accepts has exactly one."""
    import typing

    from rlimm.rl.config_sections import TeacherConfig
    from rlimm.rl.teacher_builder import BUILDERS

    assert set(typing.get_args(TeacherConfig.model_fields["solver"].annotation)) == set(BUILDERS)
