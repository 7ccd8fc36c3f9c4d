"""Training the four methods, batched: every run of one dataset size is one tensor problem.

The learner is logistic regression on all three features, ``Q(y=1|x) = σ(θ0 + θ1·x1 + θ2·x2 + θ3·x3)``,
started at θ = 0 and trained by full-batch SGD with momentum (the batch is the whole training set, so
every run is a deterministic function of its data) for a fixed number of steps, with the learning
rate divided by (1 + λ) as in the paper:

- ``baseline``:  cross-entropy (CE) on the labels;
- ``imm``:       CE + λ · mean_i KL(P̄(·|x1_i) ‖ Q̄(·|x1_i)), where the induced model
  Q̄(y=1|x1_i) = (1/n) Σ_j σ(θ0 + θ1·x1_i + θ2·x2_j + θ3·x3_j) averages the learner over the hidden
  features of *every* training example j — exact over the sample;
- ``noising``:   CE + λ · mean_i KL(P̄(·|x1_i) ‖ Q(·|x_i)), pointwise reverse distillation;
- ``interpolation``: the baseline, mixed with the teacher at prediction time,
  (1 − r)·Q(y|x) + r·P̄(y|x1) with r = λ/(1+λ).

Scaling the whole objective by 1/(1+λ) at a fixed learning rate is the same as dividing the learning
rate by (1+λ); the batched trainer does the former, the one-run reference (:func:`train_reference`, a
plain ``torch.optim.SGD`` loop over the core's :func:`~rlimm.losses.imm_loss` and
:func:`~rlimm.losses.naive_loss`) the latter, and the tests check that both agree.

Cost. The exact induced model needs n² sigmoid evaluations per step and run. Above ``imm_contexts``
training examples the IMM term is therefore evaluated, at each step, on a window of ``imm_contexts``
training contexts that slides through the sample (the examples are i.i.d., so index order is already a
random order): an unbiased minibatch of the exact-over-the-sample objective, each context still
averaged over all n hidden parts. Below that size (all the small sizes, where IMM matters) it is the
full objective at every step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from rlimm.coefficients import check_lambda
from rlimm.errors import RlimmError
from rlimm.losses import imm_loss, kl_from_teacher, naive_loss

METHODS = ("baseline", "imm", "noising", "interpolation")
#: The objective each method trains; interpolation trains the baseline and mixes at prediction time.
OBJECTIVE = {"baseline": "baseline", "interpolation": "baseline", "imm": "imm", "noising": "noising"}
#: Keep induced probabilities away from 0 and 1 so that float32 logs stay finite.
_EPS = 1e-7
#: Runs are trained in chunks whose largest per-step block (runs × contexts × n) has about this many
#: elements (1 MB in float32): it stays in the CPU cache, and the allocator reuses it instead of mapping
#: fresh pages at every step. Measured on the 2-core machine: at n = 1000, 6.7 ns per element in chunks
#: of 1M elements against 15.8 in one 10M-element block; at 1M elements the λ sweep at n = 64 still lost
#: a third of its time to page faults, at 256K none. Chunks are independent problems, so the result does
#: not depend on this.
_BLOCK_ELEMENTS = 1 << 18


@dataclass(frozen=True)
class TrainSettings:
    """Optimiser settings shared by every method.

    :param steps: full-batch gradient steps.
    :param lr: learning rate before the division by (1 + λ).
    :param momentum: heavy-ball momentum, as in ``torch.optim.SGD``. Plain gradient descent needs many
        more steps for the *scale* of the weights to converge on large training sets.
    :param imm_contexts: at most this many training contexts enter the IMM term per step (see the
        module docstring); all of them when the training set is no larger.
    """

    steps: int = 200
    lr: float = 1.0
    momentum: float = 0.9
    imm_contexts: int = 32


def logits(theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Learner logits ``θ0 + θ[1:]·x``: ``theta`` ``(B, 4)``, ``x`` ``(B, n, 3)`` → ``(B, n)``."""
    return theta[:, :1] + torch.einsum("bnf,bf->bn", x, theta[:, 1:])


def context_window(step: int, n: int, size: int) -> torch.Tensor:
    """Indices of the training contexts that enter the IMM term at ``step``: all ``n`` when
    ``n ≤ size``, else ``size`` consecutive indices (cyclically) starting at ``step · size``."""
    if n <= size:
        return torch.arange(n)
    return (torch.arange(size) + step * size) % n


def induced_positive_prob(theta: torch.Tensor, x: torch.Tensor, contexts: torch.Tensor) -> torch.Tensor:
    """The learner's induced model Q̄(y=1 | x1_i) at the chosen training contexts, exact over the sample.

    For a logistic learner the logit splits into a visible part ``a_i = θ0 + θ1·x1_i`` and a hidden
    part ``s_j = θ2·x2_j + θ3·x3_j``, so the (B, k, n) block of probabilities is built from two vectors
    rather than from k·n full feature rows; this is the binary special case of
    :func:`rlimm.induction.induced_probs` with a uniform belief over the sample's hidden parts.

    :param theta: ``(B, 4)`` parameters.
    :param x: ``(B, n, 3)`` training features (the hidden parts are taken from all n rows).
    :param contexts: ``(k,)`` indices of the training contexts x1_i to evaluate at.
    :return: ``(B, k)`` probabilities.
    """
    a = theta[:, :1] + theta[:, 1:2] * x[:, contexts, 0]
    s = theta[:, 2:3] * x[..., 1] + theta[:, 3:4] * x[..., 2]
    return torch.sigmoid(a[:, :, None] + s[:, None, :]).mean(dim=-1)


def two_class(p_positive: torch.Tensor) -> torch.Tensor:
    """``(..., 2)`` class probabilities ``[1 − p, p]`` from ``P(y=1)``."""
    return torch.stack([1.0 - p_positive, p_positive], dim=-1)


def objective(
    theta: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    teacher: torch.Tensor,
    kind: str,
    lam: torch.Tensor,
    step: int = 0,
    imm_contexts: int = 32,
) -> torch.Tensor:
    """Per-problem training objective ``(CE + λ · regulariser) / (1 + λ)``.

    :param theta: ``(B, 4)`` parameters.
    :param x: ``(B, n, 3)`` features; ``y``: ``(B, n)`` labels in {0, 1}.
    :param teacher: ``(B, n)`` restricted teacher P̄(y=1 | x1) at each training example.
    :param kind: ``baseline``, ``imm`` or ``noising`` (see :data:`OBJECTIVE`).
    :param lam: ``(B,)`` λ per problem (ignored by the baseline).
    :param step: the step number, which selects the IMM context window.
    :param imm_contexts: size of the IMM context window.
    :return: ``(B,)`` objectives; summing them gives each problem its own gradient.
    """
    z = logits(theta, x)
    ce = F.binary_cross_entropy_with_logits(z, y, reduction="none").mean(dim=1)
    if kind == "baseline":
        return ce
    if kind == "noising":
        # KL(P̄ ‖ Q) = CE(P̄, Q) − H(P̄): the teacher's entropy is a constant, so the soft-target
        # cross-entropy (one fused kernel, several times faster than the general KL at this size)
        # has exactly the same gradient; the reference trainer uses the core's naive_loss.
        reg = F.binary_cross_entropy_with_logits(z, teacher, reduction="none").mean(dim=1)
    elif kind == "imm":
        idx = context_window(step, x.shape[1], imm_contexts)
        q = induced_positive_prob(theta, x, idx).clamp(_EPS, 1.0 - _EPS)
        log_q = torch.stack([torch.log1p(-q), torch.log(q)], dim=-1)
        reg = kl_from_teacher(two_class(teacher[:, idx]), log_q).mean(dim=1)
    else:
        raise RlimmError(f"unknown objective '{kind}'; accepted: baseline, imm, noising")
    return (ce + lam * reg) / (1.0 + lam)


def train(
    x: torch.Tensor,
    y: torch.Tensor,
    teacher: torch.Tensor,
    method: str,
    lam: torch.Tensor | float,
    settings: TrainSettings,
) -> torch.Tensor:
    """Train B independent problems at once (one per run, or per run and λ).

    :param x: ``(B, n, 3)`` features; ``y``: ``(B, n)`` labels; ``teacher``: ``(B, n)`` P̄(y=1|x1).
    :param method: one of :data:`METHODS`.
    :param lam: λ, one number or ``(B,)`` (one per problem).
    :param settings: optimiser settings.
    :return: ``(B, 4)`` trained parameters (no gradient).
    """
    kind = _objective_kind(method)
    runs, n = x.shape[:2]
    lam_t = torch.as_tensor(lam, dtype=x.dtype).expand(runs).clone()
    per_run = n * (min(n, settings.imm_contexts) if kind == "imm" else 1)
    chunk = max(1, _BLOCK_ELEMENTS // per_run)
    parts = []
    for lo in range(0, runs, chunk):
        part = slice(lo, lo + chunk)
        theta = torch.zeros(x[part].shape[0], 4, dtype=x.dtype, requires_grad=True)
        velocity = torch.zeros_like(theta)
        for step in range(settings.steps):
            loss = objective(
                theta, x[part], y[part], teacher[part], kind, lam_t[part], step, settings.imm_contexts
            ).sum()
            (grad,) = torch.autograd.grad(loss, theta)
            with torch.no_grad():
                # torch.optim.SGD's heavy-ball update (dampening 0): v ← μ·v + g, θ ← θ − lr·v.
                velocity.mul_(settings.momentum).add_(grad)
                theta -= settings.lr * velocity
        parts.append(theta.detach())
    return torch.cat(parts)


def train_reference(
    x: torch.Tensor,
    y: torch.Tensor,
    teacher: torch.Tensor,
    method: str,
    lam: float,
    settings: TrainSettings,
) -> torch.Tensor:
    """One run the straightforward way: ``torch.optim.SGD`` with learning rate ``lr / (1 + λ)`` on
    ``CE + λ · regulariser``, the regulariser taken from the core (:func:`rlimm.losses.imm_loss` over
    the full ``(contexts, n hidden parts, 2 classes)`` logits block, :func:`rlimm.losses.naive_loss`).

    The reference for :func:`train` in tests and the naive path of the wall-time benchmark.

    :param x: ``(n, 3)`` features; ``y``: ``(n,)`` labels; ``teacher``: ``(n,)`` P̄(y=1|x1).
    :return: ``(4,)`` trained parameters.
    """
    kind = _objective_kind(method)
    lam = check_lambda(lam) if kind != "baseline" else 0.0
    n = x.shape[0]
    theta = torch.zeros(4, dtype=x.dtype, requires_grad=True)
    opt = torch.optim.SGD([theta], lr=settings.lr / (1.0 + lam), momentum=settings.momentum)
    targets = y.long()
    for step in range(settings.steps):
        z = theta[0] + x @ theta[1:]
        two = torch.stack([torch.zeros_like(z), z], dim=-1)  # class logits [0, z]
        loss = F.cross_entropy(two, targets)
        if kind == "noising":
            loss = loss + lam * naive_loss(two_class(teacher), two)
        elif kind == "imm":
            idx = context_window(step, n, settings.imm_contexts)
            # Row i, column j: the learner at (x1_i, x2_j, x3_j).
            full = torch.cat([x[idx, None, :1].expand(-1, n, 1), x[None, :, 1:].expand(len(idx), n, 2)], -1)
            hz = theta[0] + full @ theta[1:]
            hidden_logits = torch.stack([torch.zeros_like(hz), hz], dim=-1)
            loss = loss + lam * imm_loss(two_class(teacher[idx]), hidden_logits)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return theta.detach()


def predict_positive(
    theta: torch.Tensor,
    x_test: torch.Tensor,
    method: str,
    ratio: float = 0.0,
    teacher_test: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decisions ``ŷ = 1`` on a test set shared by all problems.

    :param theta: ``(B, 4)`` trained parameters.
    :param x_test: ``(T, 3)`` test features.
    :param method: one of :data:`METHODS`; ``interpolation`` mixes with the teacher.
    :param ratio: mixing weight r = λ/(1+λ) of the teacher (interpolation only).
    :param teacher_test: P̄(y=1|x1) at the test points, ``(T,)`` or ``(B, T)`` (interpolation only).
    :return: ``(B, T)`` booleans.
    """
    z = torch.addmm(theta[:, :1], theta[:, 1:], x_test.T)  # (B, T) logits, bias added in the product
    if method != "interpolation":
        return z > 0
    if teacher_test is None:
        raise RlimmError("interpolation needs the teacher's probabilities at the test points")
    mixed = (1.0 - ratio) * torch.sigmoid(z) + ratio * teacher_test
    return mixed > 0.5


def _objective_kind(method: str) -> str:
    if method not in OBJECTIVE:
        raise RlimmError(f"unknown method '{method}'; accepted: {', '.join(METHODS)}")
    return OBJECTIVE[method]
