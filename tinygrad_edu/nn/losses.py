"""Loss modules: each calls the function of the same meaning in `functional` with its `reduction`."""
from __future__ import annotations

from .. import functional as F
from .module import Module


class _Loss(Module):
    # reduction is keyword-only: PyTorch's first positional parameters are other things
    # (weight, size_average), and a silent mix-up would be worse than a TypeError.
    def __init__(self, *, reduction: str = "mean"):
        super().__init__()
        if reduction not in F.REDUCTIONS:
            raise ValueError(f"reduction must be one of {F.REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction


class MSELoss(_Loss):
    """Mean squared error; `target` must have the input's shape (see ``F.mse_loss``)."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy on raw scores (N, C), with class indices (N,) or probability rows
    (N, C) as targets (see ``F.cross_entropy``). Do not apply softmax first."""

    def forward(self, logits, target):
        return F.cross_entropy(logits, target, reduction=self.reduction)


CrossEntropy = CrossEntropyLoss


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (e.g. from ``LogSoftmax``) and class indices."""

    def forward(self, log_probs, target):
        return F.nll_loss(log_probs, target, reduction=self.reduction)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities in [0, 1] (see ``F.binary_cross_entropy``)."""

    def forward(self, probs, target):
        return F.binary_cross_entropy(probs, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on raw scores: sigmoid and BCE in one stable step."""

    def forward(self, logits, target):
        return F.binary_cross_entropy_with_logits(logits, target, reduction=self.reduction)
