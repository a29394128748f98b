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
    (N, C) as targets (see ``F.cross_entropy``). Do not apply softmax first.

    `weight` (one per class) may come first, as in PyTorch, and is a buffer (in the state dict
    when given); the other options are keywords with ``F.cross_entropy``'s meanings.

    >>> import tinygrad_edu as tg
    >>> from tinygrad_edu import nn
    >>> loss_fn = nn.CrossEntropyLoss(weight=[1.0, 2.0], ignore_index=0)
    >>> round(loss_fn(tg.zeros(2, 2), [0, 1]).item(), 4)
    0.6931
    """

    def __init__(self, weight=None, *, ignore_index: int = -100, reduction: str = "mean",
                 label_smoothing: float = 0.0):
        super().__init__(reduction=reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
        self.register_buffer("weight", weight)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, logits, target):
        return F.cross_entropy(logits, target, reduction=self.reduction, weight=self.weight,
                               ignore_index=self.ignore_index, label_smoothing=self.label_smoothing)


CrossEntropy = CrossEntropyLoss


class NLLLoss(_Loss):
    """Negative log-likelihood of log-probabilities (e.g. from ``LogSoftmax``) and class indices.

    `weight` (one per class) may come first, as in PyTorch, and is a buffer; ``ignore_index`` is a
    keyword (see ``F.nll_loss``)."""

    def __init__(self, weight=None, *, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction=reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, log_probs, target):
        return F.nll_loss(log_probs, target, reduction=self.reduction, weight=self.weight,
                          ignore_index=self.ignore_index)


class BCELoss(_Loss):
    """Binary cross-entropy of probabilities in [0, 1] (see ``F.binary_cross_entropy``)."""

    def forward(self, probs, target):
        return F.binary_cross_entropy(probs, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on raw scores: sigmoid and BCE in one stable step."""

    def forward(self, logits, target):
        return F.binary_cross_entropy_with_logits(logits, target, reduction=self.reduction)
