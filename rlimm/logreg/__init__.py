"""Logistic regression with a restricted teacher: IMM's proof of concept (docs/logreg.md).

Three features uniform in [-1, 1]³, a binary label from a logistic model of all three, and a
restricted teacher P̄(y | x1) that sees only the first. Modules, one job each:

- :mod:`~rlimm.logreg.data`: the true model, training sets, expected test accuracy;
- :mod:`~rlimm.logreg.restricted`: the exact teacher (quadrature) and estimated, lower-quality ones;
- :mod:`~rlimm.logreg.train`: batched training of baseline, IMM, noising and interpolation;
- :mod:`~rlimm.logreg.population`: population objectives and minimisers (n → ∞);
- :mod:`~rlimm.logreg.config`, :mod:`~rlimm.logreg.experiment`, :mod:`~rlimm.logreg.report`,
  :mod:`~rlimm.logreg.command`: the ``rlimm logreg`` experiment and its outputs.
"""

from rlimm.logreg.data import TrueModel
from rlimm.logreg.restricted import ExactTeacher, LogisticTeacher, fit_logistic_teacher
from rlimm.logreg.train import METHODS, TrainSettings

# The training functions are deliberately not re-exported here: a package attribute named ``train``
# would shadow the ``rlimm.logreg.train`` module for ``import rlimm.logreg.train as ...``.

__all__ = [
    "METHODS",
    "ExactTeacher",
    "LogisticTeacher",
    "TrainSettings",
    "TrueModel",
    "fit_logistic_teacher",
]
