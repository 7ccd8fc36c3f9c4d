"""What ``rlimm report`` reads (:mod:`rlimm.rl.report_inputs`): tasks and where their reference score
comes from, the random policy's scores and their cache, and the normalised tables."""

from pathlib import Path

import pandas as pd
import pytest

from rlimm.errors import RlimmError
from rlimm.rl.report_inputs import group_tasks, normalised_curves, normalised_finals, score_random
from rlimm.rl.result_folders import Folder, FolderRecord


def folder(name: str, env: str = "CartPole-v1", seeds=(0, 1), **record) -> Folder:
    """A compare folder of ``env`` whose runs of none and imm score the seed + 1 (imm: + 2)."""
    final = pd.DataFrame(
        [
            {"method": m, "algo": "ppo", "teacher": "" if m == "none" else "t", "budget": 10,
             "lambda_ratio": 0.0 if m == "none" else 0.5, "seed": s,
             "score": s + (1.0 if m == "none" else 2.0)}
            for m in ("none", "imm")
            for s in seeds
        ]
    )  # fmt: skip
    teacher = {"teacher": "t", "scores": [9.0 for _ in seeds]}
    return Folder(
        Path(name),
        FolderRecord.model_validate({"env": {"id": env}, **record}),
        final,
        10,
        list(seeds),
        teacher,
    )


def test_a_reference_comes_from_the_flag_then_the_config_then_gymnasium():
    named = folder("a", reference_score=300.0)
    (task,) = group_tasks([named], {"CartPole-v1": 200.0})
    assert (task.reference, task.reference_from) == (200.0, "--reference")
    (task,) = group_tasks([named], {})
    assert (task.reference, task.reference_from) == (300.0, "reference_score of the config")
    (task,) = group_tasks([folder("b")], {})
    assert (task.reference, task.reference_from) == (475.0, "reward_threshold in gymnasium's registry")


def test_folders_of_one_task_must_agree_on_their_reference():
    with pytest.raises(RlimmError, match="name different reference scores"):
        group_tasks([folder("a", reference_score=1.0), folder("b", reference_score=2.0)], {})
    with pytest.raises(RlimmError, match="no reference score"):
        group_tasks([folder("grid", env="rlimm/ToroidalGrid-v0")], {})


def test_two_tasks_of_one_env_are_told_apart_by_their_first_folder():
    hidden = folder("hidden", restriction={"visible": ["theta"]})
    tasks = group_tasks([folder("full"), hidden, folder("again", seeds=(2,))], {})
    assert [t.label for t in tasks] == ["CartPole-v1 (full)", "CartPole-v1 (hidden)"]
    assert [f.path.name for f in tasks[0].folders] == ["full", "again"] and tasks[0].seeds == [0, 1, 2]


def test_random_scores_reuse_the_cache_and_run_only_the_seeds_it_lacks():
    (task,) = group_tasks([folder("a", seeds=(0, 1, 2))], {})
    asked = []

    def scorer(env, evaluation, seeds):
        asked.append(list(seeds))
        return [10.0 * s for s in seeds]

    record = task.folders[0].record
    cache = [{"env": record.env.model_dump(), "evaluation": record.evaluation.model_dump(), "seeds": [1],
              "scores": [4.0]}]  # fmt: skip
    (saved,) = score_random([task], cache, scorer)
    assert asked == [[0, 2]]
    assert task.random_scores == (0.0, 4.0, 20.0) and task.random == 8.0
    assert saved["seeds"] == [0, 1, 2] and saved["scores"] == [0.0, 4.0, 20.0] and saved["mean"] == 8.0
    task.reference = 8.0
    with pytest.raises(RlimmError, match="equals a random policy's score"):
        score_random([task], cache, scorer)


def test_tables_are_normalised_per_task_and_a_shared_teacher_counts_once():
    tasks = group_tasks([folder("a"), folder("b")], {"CartPole-v1": 11.0})
    for task in tasks:
        task.random = 1.0
    final, teacher = normalised_finals(tasks)
    assert len(final) == 8 and set(final["folder"]) == {"a", "b"}
    assert final["normalised"].tolist() == pytest.approx(((final["score"] - 1) / 10).tolist())
    assert [a.label for a in final["algorithm"]] == ["none", "none", "imm", "imm"] * 2
    # Both folders of the task carry teacher t's scores: once in the table.
    assert teacher["score"].tolist() == [9.0, 9.0] and teacher["normalised"].tolist() == [0.8, 0.8]


def test_curves_of_runs_not_in_the_final_table_are_left_out():
    a = folder("a")
    a.curves = pd.DataFrame(
        [{"method": m, "lambda_ratio": r, "seed": 0, "step": 5, "score": 3.0} for m, r in
         (("none", 0.0), ("imm", 0.5), ("imm", 0.8))]
    )  # fmt: skip
    (task,) = group_tasks([a], {"CartPole-v1": 5.0})
    final, _ = normalised_finals([task])
    curves = normalised_curves([task], final)
    assert [c.label for c in curves["algorithm"]] == ["none", "imm"]
    assert curves["normalised"].tolist() == [0.6, 0.6] and set(curves["task"]) == {"CartPole-v1"}
