"""IMM and naive divergences: values, gradients and the inconsistency of the naive objective."""

import math

import pytest
import torch

from rlimm.induction import induced_log_probs
from rlimm.losses import imm_loss, kl_from_teacher, naive_loss

F64 = torch.float64


def _t(x):
    return torch.tensor(x, dtype=F64)


# --------------------------------------------------------------------------- kl_from_teacher


def test_kl_matches_hand_value():
    p = _t([[0.5, 0.5], [0.25, 0.75]])
    q = _t([[0.9, 0.1], [0.5, 0.5]])
    expected = _t(
        [
            0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1),
            0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5),
        ]
    )
    out = kl_from_teacher(p, q.log())
    assert out.shape == (2,)
    torch.testing.assert_close(out, expected)


def test_kl_is_zero_exactly_at_a_match_and_positive_otherwise():
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(6, 5, dtype=F64), dim=-1)
    assert torch.all(kl_from_teacher(p, p.log()).abs() < 1e-12)
    q = torch.softmax(torch.randn(6, 5, dtype=F64), dim=-1)
    assert torch.all(kl_from_teacher(p, q.log()) > 0)


def test_kl_with_one_hot_teacher_is_finite():
    p = _t([[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]])
    # model puts zero mass exactly where the teacher has none: log q = -inf there
    log_q = torch.log(_t([[0.8, 0.2, 0.0], [0.0, 0.5, 0.5]])).requires_grad_(True)
    out = kl_from_teacher(p, log_q)
    torch.testing.assert_close(out, _t([-math.log(0.8), 0.0]))
    out.sum().backward()
    assert torch.isfinite(log_q.grad).all()
    # a one-hot teacher matched exactly gives 0
    assert kl_from_teacher(_t([[0.0, 1.0]]), torch.log(_t([[0.0, 1.0]]))).item() == 0.0


def test_kl_with_one_hot_teacher_float32_is_finite():
    p = torch.tensor([[0.0, 0.0, 1.0, 0.0]])
    log_q = torch.log_softmax(torch.tensor([[2.0, -1.0, 0.5, 0.0]]), dim=-1)
    out = kl_from_teacher(p, log_q)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, -log_q[:, 2])


# --------------------------------------------------------------------------- imm / naive values


def test_imm_loss_is_zero_when_the_induced_model_equals_the_teacher():
    torch.manual_seed(1)
    logits = torch.randn(4, 3, 5, dtype=F64)
    belief = torch.softmax(torch.randn(4, 3, dtype=F64), dim=-1)
    teacher = induced_log_probs(logits, belief).exp()
    assert abs(imm_loss(teacher, logits, belief).item()) < 1e-12
    assert abs(imm_loss(induced_log_probs(logits).exp(), logits).item()) < 1e-12
    # a different teacher gives a positive loss
    other = torch.softmax(torch.randn(4, 5, dtype=F64), dim=-1)
    assert imm_loss(other, logits, belief).item() > 1e-3


def test_imm_loss_is_the_batch_mean_of_the_kl_to_the_induced_model():
    probs = _t([[[0.9, 0.1], [0.1, 0.9]], [[0.7, 0.3], [0.7, 0.3]]])
    belief = _t([[0.75, 0.25], [0.5, 0.5]])
    teacher = _t([[0.5, 0.5], [0.2, 0.8]])
    # induced: [0.75·0.9 + 0.25·0.1, ...] = [0.7, 0.3] and [0.7, 0.3]
    kl0 = 0.5 * math.log(0.5 / 0.7) + 0.5 * math.log(0.5 / 0.3)
    kl1 = 0.2 * math.log(0.2 / 0.7) + 0.8 * math.log(0.8 / 0.3)
    out = imm_loss(teacher, probs.log(), belief)
    assert out.shape == ()
    assert out.item() == pytest.approx((kl0 + kl1) / 2, rel=1e-12)


def test_imm_loss_with_rows_reads_each_example_from_its_context_row():
    # Found by mutation testing. Two distinct visible contexts, induced once each; four examples point
    # at them through `rows`.
    probs = torch.tensor(
        [[[0.9, 0.1], [0.1, 0.9]], [[0.6, 0.4], [0.2, 0.8]]], dtype=F64
    )  # induced (uniform): [0.5, 0.5] and [0.4, 0.6]
    teacher = torch.tensor([[0.3, 0.7], [0.8, 0.2], [0.5, 0.5], [0.4, 0.6]], dtype=F64)
    rows = torch.tensor([1, 0, 0, 1])

    def kl(p, q):
        return sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))

    induced = [[0.5, 0.5], [0.4, 0.6]]
    expected = sum(kl(teacher[i].tolist(), induced[r]) for i, r in enumerate(rows.tolist())) / 4
    out = imm_loss(teacher, probs.log(), rows=rows)
    assert out.shape == ()
    assert out.item() == pytest.approx(expected, rel=1e-12)
    # rows=None is row i for example i; identity rows give the same value.
    two = teacher[[1, 3]]
    assert imm_loss(two, probs.log()).item() == pytest.approx(
        imm_loss(two, probs.log(), rows=torch.tensor([0, 1])).item(), rel=1e-15
    )
    assert imm_loss(two, probs.log()).item() == pytest.approx(
        (kl(two[0].tolist(), induced[0]) + kl(two[1].tolist(), induced[1])) / 2, rel=1e-12
    )


def test_naive_loss_is_the_batch_mean_of_pointwise_kls():
    teacher = _t([[0.5, 0.5], [1.0, 0.0]])
    logits = torch.log(_t([[0.9, 0.1], [0.25, 0.75]]))
    expected = ((0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)) - math.log(0.25)) / 2
    assert naive_loss(teacher, logits).item() == pytest.approx(expected, rel=1e-12)
    assert naive_loss(torch.softmax(logits, -1), logits).abs().item() < 1e-12


def test_one_hot_teachers_give_finite_imm_and_naive_losses():
    teacher = _t([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    logits = _t([[[5.0, -5.0, 0.0], [-30.0, 2.0, 1.0]], [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]]])
    logits.requires_grad_(True)
    loss = imm_loss(teacher, logits, _t([[0.5, 0.5], [1.0, 0.0]])) + naive_loss(teacher, logits[:, 0])
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(logits.grad).all()


# --------------------------------------------------------------------------- gradients


def test_imm_loss_gradient_matches_finite_differences():
    torch.manual_seed(2)
    teacher = torch.softmax(torch.randn(3, 4, dtype=F64), dim=-1)
    teacher[0] = _t([0.0, 1.0, 0.0, 0.0])  # one-hot row
    belief = torch.softmax(torch.randn(3, 5, dtype=F64), dim=-1)
    belief[1, 2] = 0.0  # a ruled-out hidden value
    belief[1] /= belief[1].sum()
    logits = torch.randn(3, 5, 4, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: imm_loss(teacher, z, belief), (logits,))
    assert torch.autograd.gradcheck(lambda z: imm_loss(teacher, z, None), (logits,))


def test_imm_loss_gradient_by_hand_central_differences():
    torch.manual_seed(3)
    teacher = torch.softmax(torch.randn(2, 3, dtype=F64), dim=-1)
    belief = torch.softmax(torch.randn(2, 4, dtype=F64), dim=-1)
    logits = torch.randn(2, 4, 3, dtype=F64, requires_grad=True)
    imm_loss(teacher, logits, belief).backward()
    eps = 1e-6
    numeric = torch.zeros_like(logits)
    with torch.no_grad():
        for idx in range(logits.numel()):
            bump = torch.zeros(logits.numel(), dtype=F64)
            bump[idx] = eps
            bump = bump.view_as(logits)
            up = imm_loss(teacher, logits + bump, belief)
            down = imm_loss(teacher, logits - bump, belief)
            numeric.view(-1)[idx] = (up - down) / (2 * eps)
    torch.testing.assert_close(logits.grad, numeric, atol=1e-8, rtol=1e-6)


def test_naive_loss_gradient_matches_finite_differences():
    torch.manual_seed(4)
    teacher = torch.softmax(torch.randn(4, 3, dtype=F64), dim=-1)
    logits = torch.randn(4, 3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda z: naive_loss(teacher, z), (logits,))


# --------------------------------------------------------------------------- the key case

# Full model Q(y | x̄, h) that depends on h; uniform belief; teacher = its induced model.
Q_TRUE = _t([[[0.9, 0.1], [0.1, 0.9]]])  # (1 context, 2 hidden values, 2 classes)
TEACHER = _t([[0.5, 0.5]])  # 0.5·[0.9, 0.1] + 0.5·[0.1, 0.9]


def _sgd_step(params, loss, lr=1.0):
    """Plain gradient descent (torch.optim is avoided: its first use costs seconds of imports)."""
    params.grad = None
    loss.backward()
    with torch.no_grad():
        params -= lr * params.grad


def test_true_full_model_has_zero_imm_loss_but_positive_naive_loss():
    logits = Q_TRUE.log()
    assert imm_loss(TEACHER, logits).abs().item() < 1e-12
    belief = _t([[0.5, 0.5]])
    assert imm_loss(TEACHER, logits, belief).abs().item() < 1e-12
    # naive: every full context is compared to the teacher
    naive = naive_loss(TEACHER.expand(2, 2), logits[0]).item()
    # KL([.5,.5] ‖ [.9,.1]) = KL([.5,.5] ‖ [.1,.9]) = 0.5·ln(0.25 / 0.09)
    assert naive == pytest.approx(0.5 * math.log(0.25 / 0.09), rel=1e-12)
    assert naive > 0.5
    # ... and a model that ignores h does strictly better on the naive objective
    collapsed = torch.zeros(2, 2, dtype=F64)
    assert naive_loss(TEACHER.expand(2, 2), collapsed).item() < 1e-12 < naive


def test_truth_is_stationary_for_imm_but_not_for_naive():
    logits = Q_TRUE.log().clone().requires_grad_(True)
    imm_loss(TEACHER, logits).backward()
    assert logits.grad.abs().max().item() < 1e-12
    logits.grad = None
    naive_loss(TEACHER.expand(2, 2), logits[0]).backward()
    assert logits.grad.abs().max().item() > 0.1


def test_minimising_naive_loss_destroys_the_hidden_dependence():
    logits = Q_TRUE.log().clone().requires_grad_(True)
    for _ in range(60):  # the logit gap halves at each step
        _sgd_step(logits, naive_loss(TEACHER.expand(2, 2), logits[0]))
    q = torch.softmax(logits.detach(), dim=-1)[0]
    # every Q(.|h) went to the teacher: h no longer matters (measured: 2.3e-8 away after 60 steps)
    torch.testing.assert_close(q, TEACHER.expand(2, 2), atol=1e-7, rtol=0)
    # the imm loss is still 0 there (the induced model still matches) but the truth was lost: every
    # probability moved by 0.4 (0.9 → 0.5, 0.1 → 0.5)
    assert imm_loss(TEACHER, logits.detach()).item() < 1e-12
    assert (q - Q_TRUE[0]).abs().max().item() == pytest.approx(0.4, abs=1e-7)


def test_minimising_imm_loss_from_the_truth_keeps_the_truth():
    logits = Q_TRUE.log().clone().requires_grad_(True)
    for _ in range(20):
        _sgd_step(logits, imm_loss(TEACHER, logits))
    torch.testing.assert_close(torch.softmax(logits.detach(), -1), Q_TRUE, atol=1e-10, rtol=0)
