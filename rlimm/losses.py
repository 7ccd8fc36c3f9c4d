"""The IMM and naive regularisers as pure torch functions.

Both are KL divergences *from* the restricted teacher P̄ (the target) to a model distribution:

- IMM:   E_x̄ KL(P̄(·|x̄) ‖ Q̄(·|x̄))  — the teacher is matched by the *induced* model.
- naive: E_x  KL(P̄(·|x̄) ‖ Q(·|x))   — every full context is pulled towards the teacher
  (reverse distillation, kickstarting with a restricted teacher, noising).

We use the KL rather than the cross-entropy: they differ by the teacher's entropy (a constant), but
the KL is zero exactly at a match, which makes logs comparable across teachers.
"""

from __future__ import annotations

import torch

from rlimm.induction import induced_log_probs


def kl_from_teacher(teacher_probs: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Per-row ``KL(p ‖ q)`` with the convention ``0 · log 0 = 0`` (one-hot teachers are fine).

    :param teacher_probs: ``(batch, n_classes)`` target probabilities (no gradient needed).
    :param log_q: ``(batch, n_classes)`` model log-probabilities.
    :return: ``(batch,)`` divergences.
    """
    p = teacher_probs
    log_p = torch.where(p > 0, torch.log(p.clamp_min(1e-38)), torch.zeros_like(p))
    # Where p == 0 the term is 0 even if log_q = -inf (0 · inf would give nan).
    terms = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))
    return terms.sum(dim=-1)


def imm_loss(
    teacher_probs: torch.Tensor,
    hidden_logits: torch.Tensor,
    belief: torch.Tensor | None = None,
    rows: torch.Tensor | None = None,
) -> torch.Tensor:
    """IMM loss: batch mean of ``KL(P̄(·|x̄) ‖ Q̄(·|x̄))``.

    :param teacher_probs: ``(batch, n_classes)`` restricted teacher at each visible context.
    :param hidden_logits: ``(n_contexts, n_hidden, n_classes)`` full-model logits for every hidden
        value (exact induction) or every sampled hidden part (sampled induction) of each context.
    :param belief: ``(n_contexts, n_hidden)`` belief over hidden values, ``None`` for a uniform average.
    :param rows: ``(batch,)`` the row of ``hidden_logits`` that holds each example's visible context,
        so that a context shared by many examples is induced once; ``None`` when row ``i`` is
        example ``i`` (``n_contexts == batch``).
    """
    log_induced = induced_log_probs(hidden_logits, belief)
    if rows is not None:
        log_induced = log_induced[rows]
    return kl_from_teacher(teacher_probs, log_induced).mean()


def naive_loss(teacher_probs: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Naive restricted-teacher loss: batch mean of ``KL(P̄(·|x̄) ‖ Q(·|x̄, x̲))`` at the full contexts.

    :param teacher_probs: ``(batch, n_classes)`` restricted teacher at each example's visible part.
    :param logits: ``(batch, n_classes)`` full-model logits at the example's full context.
    """
    return kl_from_teacher(teacher_probs, torch.log_softmax(logits, dim=-1)).mean()
