"""The trust λ (lambda_schedule: trust): the on-policy signal against a hand computation on a two-state,
two-action toy with known advantages, the critic signal, the rule that moves λ (falls within the
stated fraction of the budget under persistent evidence, holds without evidence, comes back), the
linear decay's ``until``, and bad parameters refused in one line."""

import math
import pickle

import pytest
import torch

from rlimm.coefficients import Linear
from rlimm.errors import RlimmError
from rlimm.trust import Evidence, Trust, critic_evidence, on_policy_evidence

# The toy: two full states s1, s2 sharing one visible context (the hidden part tells them apart), two
# actions. π(·|s1) = (0.5, 0.5), π(·|s2) = (0.8, 0.2); A(s1,·) = (1, −1), A(s2,·) = (−0.2, 0.8); the
# states equally likely. The teacher sees only the context: P̄ = (0.7, 0.3); the induced policy is
# Q̄ = ½(π(·|s1) + π(·|s2)) = (0.65, 0.35).
#
# By hand: E_s Σ_a P̄ A = ½[(0.7 − 0.3) + (0.7·(−0.2) + 0.3·0.8)] = ½(0.4 + 0.1) = 0.25,
#          E_s Σ_a π A  = ½[0 + (0.8·(−0.2) + 0.2·0.8)] = 0,
#          E_s Σ_a Q̄ A  = ½[(0.65 − 0.35) + (0.65·(−0.2) + 0.35·0.8)] = ½(0.3 + 0.15) = 0.225.
# naive's signal: 0.25 − 0 = 0.25; IMM's: 0.25 − 0.225 = 0.025.
PI = {"s1": (0.5, 0.5), "s2": (0.8, 0.2)}
ADV = {"s1": (1.0, -1.0), "s2": (-0.2, 0.8)}
TEACHER = (0.7, 0.3)
INDUCED = (0.65, 0.35)


def toy_rollout():
    """A rollout whose rows occur as often as π draws them (10 visits per state): its sample averages
    are the expectations themselves."""
    rows = []
    for s, counts in (("s1", (5, 5)), ("s2", (8, 2))):
        for a, count in enumerate(counts):
            rows += [(ADV[s][a], PI[s][a], TEACHER[a], INDUCED[a])] * count
    adv, pi, teacher, induced = (torch.tensor(c, dtype=torch.float64) for c in zip(*rows, strict=True))
    return adv, pi.log(), teacher.log(), induced.log()


def test_naive_signal_is_the_advantage_of_acting_like_the_teacher_by_hand():
    adv, log_pi, log_teacher, _ = toy_rollout()
    evidence = on_policy_evidence(adv, log_pi, log_teacher)
    assert evidence.mean == pytest.approx(0.25, abs=1e-12)
    assert evidence.n == 20


def test_imm_signal_compares_the_teacher_with_the_induced_policy_by_hand():
    adv, log_pi, log_teacher, log_induced = toy_rollout()
    evidence = on_policy_evidence(adv, log_pi, log_teacher, log_induced)
    assert evidence.mean == pytest.approx(0.025, abs=1e-12)


def test_a_teacher_that_is_the_induced_policy_gives_imm_no_signal():
    # IMM's consistency: the teacher already is the learner's induced policy → nothing to move.
    adv, log_pi, _, log_induced = toy_rollout()
    evidence = on_policy_evidence(adv, log_pi, log_induced, log_induced)
    assert evidence.mean == 0.0 and evidence.se == 0.0


def test_the_standard_error_is_that_of_the_per_row_terms():
    # naive with every ratio 1 (teacher = policy): nothing to compare, no evidence.
    adv, log_pi, _, _ = toy_rollout()
    assert on_policy_evidence(adv, log_pi, log_pi).se == math.inf
    # Otherwise it is the standard error of the per-row terms (ρ_t − 1)(Â_t − mean Â), by hand.
    _, _, log_teacher, _ = toy_rollout()
    terms = (torch.exp(log_teacher - log_pi) - 1) * (adv - adv.mean())
    se = on_policy_evidence(adv, log_pi, log_teacher).se
    assert se == pytest.approx(float(terms.std() / math.sqrt(20)), rel=1e-12)


def test_ratios_are_clipped():
    # One action the policy almost never takes and the teacher always does: its ratio is clipped at c.
    adv = torch.tensor([1.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    log_pi = torch.log(torch.tensor([1e-6, 0.5, 0.5, 0.5], dtype=torch.float64))
    log_teacher = torch.log(torch.tensor([1.0, 0.5, 0.5, 0.5], dtype=torch.float64))
    clipped = on_policy_evidence(adv, log_pi, log_teacher, clip=10.0)
    # terms: (10 − 1)(1 − 0.25) and three (1 − 1)(0 − 0.25) = 0
    assert clipped.mean == pytest.approx(9 * 0.75 / 4, abs=1e-12)


def test_critic_signal_is_the_mean_difference_of_action_values():
    q_teacher = torch.tensor([1.0, 2.0, 3.0, 4.0])
    q_policy = torch.tensor([2.0, 2.0, 2.0, 2.0])
    evidence = critic_evidence(q_teacher, q_policy, q_policy + torch.tensor([0.0, 1.0, 0.0, 1.0]))
    d = torch.tensor([-1.0, 0.0, 1.0, 2.0], dtype=torch.float64)
    assert evidence.mean == pytest.approx(0.5)
    assert evidence.se == pytest.approx(float(d.std() / 2.0))
    assert evidence.scale == pytest.approx(float(torch.tensor([2.0, 3.0, 2.0, 3.0]).double().std()))


def harmful(z: float = -5.0) -> Evidence:
    return Evidence(mean=z * 0.1, se=0.1, scale=1.0, n=100)


def test_persistent_harm_takes_trust_to_the_floor_within_fall_of_the_budget():
    trust = Trust(2.0, fall=0.1, floor=0.01)
    lams = [trust.observe(harmful(), None, 1.0 - 0.01 * (i + 1), "naive") for i in range(20)]
    # Δprogress 0.01 per update: 10 updates are the fall's 10% of the budget.
    assert lams[9] == pytest.approx(2.0 * 0.01, rel=1e-9)
    assert all(b <= a for a, b in zip(lams, lams[1:], strict=False))
    assert lams[-1] == pytest.approx(0.02)


def test_no_evidence_keeps_lambda():
    trust = Trust(1.0)
    for i in range(50):
        trust.observe(Evidence(0.0, 1.0, 1.0, 10), None, 1.0 - 0.02 * (i + 1), "imm")
    assert trust(0.0) == 1.0


def test_a_learner_past_the_teacher_loses_it_whatever_the_signal():
    trust = Trust(1.0, teacher_score=50.0, fall=0.1)
    helpful = Evidence(0.5, 0.1, 1.0, 100)
    trust.observe(helpful, 40.0, 0.95, "naive")
    assert trust.weight == 1.0 and not trust.passed
    for i in range(10):
        trust.observe(helpful, 60.0, 0.95 - 0.01 * (i + 1), "naive")
    assert trust.passed and trust.weight == pytest.approx(0.01, rel=1e-9)


def test_imm_tests_the_learner_against_the_source_of_an_induced_teacher():
    trust = Trust(1.0, teacher_score=30.0, source_score=500.0)
    for i in range(20):
        trust.observe(None, 200.0, 1.0 - 0.01 * (i + 1), "imm")
    assert trust.weight == 1.0  # the expert (500) is still ahead
    naive = Trust(1.0, teacher_score=30.0, source_score=500.0)
    naive.observe(None, 200.0, 0.9, "naive")
    assert naive.weight < 1.0  # naive pulls towards the teacher's own actions (30)


def test_the_learner_passes_the_teacher_only_beyond_the_standard_error_of_its_recent_returns():
    trust = Trust(1.0, teacher_score=100.0, episodes=4)
    # last 4: 90, 130, 95, 125 → mean 110, sd 20.8, se 10.4 → 99.6 < 100: not passed
    trust.observe(None, [500.0, 90.0, 130.0, 95.0, 125.0], 0.9, "naive")
    assert not trust.passed and trust.weight == 1.0
    trust.observe(None, [120.0, 125.0, 118.0, 122.0], 0.8, "naive")
    assert trust.passed and trust.weight < 1.0
    assert not Trust(1.0, teacher_score=0.0).observe(None, [], 0.9, "naive") < 1.0  # no episode yet


def test_trust_comes_back_when_the_teacher_helps_again():
    trust = Trust(1.0, teacher_score=100.0, fall=0.1, memory=0.01)
    for i in range(10):
        trust.observe(harmful(), None, 1.0 - 0.01 * (i + 1), "naive")
    low = trust.weight
    for i in range(30):
        trust.observe(Evidence(0.5, 0.1, 1.0, 100), 20.0, 0.9 - 0.01 * (i + 1), "naive")
    assert low == pytest.approx(0.01) and trust.weight == 1.0


def test_the_pooled_z_is_stouffers_sum_of_clipped_update_z_scores():
    trust = Trust(1.0, memory=1e9)  # no forgetting
    trust.observe(Evidence(1.0, 1.0, 1.0, 10), None, 0.9, "naive")  # z = 1
    trust.observe(Evidence(-1.0, 0.5, 1.0, 10), None, 0.8, "naive")  # z = -2
    assert trust.z == pytest.approx(-1 / math.sqrt(2), rel=1e-6)
    trust.observe(Evidence(-100.0, 1.0, 1.0, 10), None, 0.7, "naive")  # z = -100, clipped to -5
    assert trust.z == pytest.approx(-6 / math.sqrt(3), rel=1e-6)


def test_evidence_that_is_not_renewed_fades_with_the_memory():
    trust = Trust(1.0, memory=0.1 / math.log(2))  # γ = 1/2 per 0.1 of progress
    trust.observe(Evidence(3.0, 1.0, 1.0, 10), None, 0.9, "naive")
    trust.observe(None, None, 0.8, "naive")
    assert trust.z == pytest.approx(1.5)  # not renewed: S halves, the denominator stays one update's
    trust.observe(Evidence(0.0, 1.0, 1.0, 10), None, 0.7, "naive")
    assert trust.z == pytest.approx(0.75 / math.sqrt(0.0625 + 1), rel=1e-6)


def test_an_update_with_one_action_throughout_carries_no_evidence():
    # Every row took the same action: the ratios differ only by the hidden part's tiny effect on π,
    # and a z computed from them would be rounding noise.
    adv = torch.tensor([0.01, 0.0101, 0.0099, 0.01], dtype=torch.float64)
    log_pi = torch.log(torch.tensor([0.9966, 0.9968, 0.9966, 0.9968], dtype=torch.float64))
    log_teacher = torch.log(torch.full((4,), 0.1, dtype=torch.float64))
    assert on_policy_evidence(adv, log_pi, log_teacher).se == math.inf


def test_an_update_whose_advantages_do_not_vary_carries_no_evidence():
    adv = torch.full((8,), -0.3, dtype=torch.float64)
    log_pi = torch.log(torch.full((8,), 0.9, dtype=torch.float64))
    evidence = on_policy_evidence(adv, log_pi, log_pi - 1.0)
    assert evidence.se == math.inf
    trust = Trust(1.0)
    trust.observe(evidence, None, 0.5, "naive")
    assert trust.z == 0.0 and trust.weight == 1.0


def test_trust_pickles_with_its_state():
    trust = Trust(1.0, teacher_score=10.0)
    trust.observe(harmful(), None, 0.9, "naive")
    copy = pickle.loads(pickle.dumps(trust))
    assert copy.weight == trust.weight and copy(0.5) == trust(0.5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threshold": -1}, "trust.threshold must be a finite number >= 0"),
        ({"fall": 0}, "trust.fall must be a finite number > 0"),
        ({"memory": "abc"}, "trust.memory must be a number"),
        ({"floor": 2}, "trust.floor must lie in (0, 1]"),
        ({"episodes": 0}, "trust.episodes must be a whole number >= 1"),
        ({"teacher_score": "x"}, "trust.teacher_score must be a number or null"),
    ],
)
def test_bad_trust_parameters_are_refused_in_one_line(kwargs, message):
    with pytest.raises(RlimmError) as err:
        Trust(1.0, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_linear_until_reaches_its_end_at_that_fraction_and_stays():
    decay = Linear(2.0, 0.0, until=0.5)
    assert decay(1.0) == 2.0
    assert decay(0.75) == pytest.approx(1.0)
    assert decay(0.5) == 0.0 and decay(0.2) == 0.0 and decay(0.0) == 0.0


def test_linear_until_one_is_the_plain_linear_schedule_bit_for_bit():
    old = lambda p, start=0.7, end=0.1: start + (end - start) * (1.0 - min(max(p, 0.0), 1.0))  # noqa: E731
    for p in torch.linspace(0, 1, 1001, dtype=torch.float64).tolist() + [1 / 3, 2 / 3, 1e-9]:
        assert Linear(0.7, 0.1)(p) == old(p)


def test_a_linear_schedule_pickled_before_until_existed_loads_as_the_plain_one():
    decay = Linear(1.0, 0.0)
    state = pickle.dumps(decay)
    legacy = pickle.loads(state)
    del legacy.__dict__["until"]  # what an object pickled before ``until`` holds
    assert legacy(0.25) == decay(0.25)


@pytest.mark.parametrize("until", [0, -0.5, 1.5, "half"])
def test_bad_until_is_refused(until):
    with pytest.raises(RlimmError, match="lambda_until"):
        Linear(1.0, 0.0, until=until)
