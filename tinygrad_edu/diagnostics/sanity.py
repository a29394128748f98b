"""Checks to run before a long training: `sanity_check` (Karpathy's "A recipe for training neural
networks", 2019, as one call) and `lr_find` (Smith's learning-rate range test, 2017).

Both train copies of nothing: they change the model's parameters while they run and put them
back (with `load_state_dict`) before returning, so the model is as it was given.
"""
from __future__ import annotations

import html
import math
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .. import optim
from ..autograd import no_grad
from ..nn.module import Module
from ..tensor import Tensor
from .kinds import FIRST_LOSS_FACTOR
from .report import html_table

OVERFIT_SAMPLES = 8  # the "single small batch"
OVERFIT_STEPS = 300  # Adam steps allowed to memorise it
OVERFIT_TARGET = 0.05  # "near zero": the loss falls below 5% of where it started
# With zeroed inputs a model can only learn the batch's label frequencies; real inputs must do
# clearly better than that.
INPUT_MATTERS = 0.5
GRADCHECK_SAMPLES, GRADCHECK_ENTRIES = 2, 5  # samples, and entries checked per parameter
GRADCHECK_EPS, GRADCHECK_RTOL, GRADCHECK_ATOL = 1e-6, 1e-3, 1e-6


@dataclass(frozen=True)
class Check:
    """One line of a `SanityReport`: the check's `name`, whether it passed, and what it found.
    ``kind`` names the failure (``high_init_loss``, ``cannot_overfit``, ``wrong_gradient``,
    ``ignores_input``); ``ok`` is None for a check that could not run (``message`` says why)."""

    name: str
    ok: Optional[bool]
    kind: str
    message: str


class SanityReport:
    """What `sanity_check` returns: ``.ok`` (no check failed), ``.checks`` (one `Check` per line),
    ``.kinds`` (the failed checks' kinds); ``str()`` one line per check, HTML in Jupyter."""

    def __init__(self, checks: list):
        self.checks = checks

    @property
    def ok(self) -> bool:
        """True when no check failed (a skipped check does not fail)."""
        return all(check.ok is not False for check in self.checks)

    @property
    def kinds(self) -> set:
        """The kinds of the failed checks, e.g. ``{"cannot_overfit"}``."""
        return {check.kind for check in self.checks if check.ok is False}

    def __bool__(self) -> bool:
        """``report.ok``, so ``assert report`` fails when a check found a problem."""
        return self.ok

    def __str__(self) -> str:
        lines = [f"sanity_check: {'all checks passed' if self.ok else 'problems found'}"]
        lines += [f"{_verdict(check.ok):5} {check.name}: {check.message}" for check in self.checks]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_html_(self) -> str:
        rows = [["", "check", "finding"]] + [[_verdict(c.ok), c.name, c.message] for c in self.checks]
        return f"<p>{html.escape(str(self).splitlines()[0])}</p>" + html_table(rows)


def _verdict(ok: Optional[bool]) -> str:
    return {True: "ok", False: "FAIL", None: "skip"}[ok]


def sanity_check(model: Module, loss_fn: Callable, inputs, targets) -> SanityReport:
    """Karpathy's checks before training, in one call.

    1. **Loss at initialisation**: a cross-entropy classifier over C classes should start near ln C
       (uniform guesses); far above means confidently wrong initial outputs.
    2. **Overfit one small batch**: Adam (lr 1e-2) on the first 8 samples for up to 300 steps
       must bring the loss under 5% of its start; if not, the model or the loss is broken.
    3. **Gradient check**: backward against central differences, in float64, on 2 samples and
       5 random entries of every parameter.
    4. **Does the loss depend on the input**: the same overfitting with the inputs zeroed must
       end clearly worse (a model that ignores its input learns just as well without it).

    Parameters
    ----------
    model : nn.Module
    loss_fn : callable
        ``loss_fn(model(x), y)`` returns the scalar loss Tensor, e.g. ``F.cross_entropy``.
    inputs, targets : array_like or Tensor
        A batch of training data (the first samples are used).

    Returns
    -------
    SanityReport
        Its parameters (and train/eval mode) are put back as they were before returning.

    Examples
    --------
    >>> import numpy as np, tinygrad_edu as tg
    >>> import tinygrad_edu.functional as F
    >>> from tinygrad_edu import nn
    >>> _ = tg.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 3))
    >>> x, y = np.random.default_rng(0).normal(size=(16, 4)), np.arange(16) % 3
    >>> report = sanity_check(model, F.cross_entropy, x, y)
    >>> report.ok, sorted(report.kinds)
    (True, [])
    """
    if not isinstance(model, Module):
        raise TypeError(f"sanity_check needs an nn.Module, got {type(model).__name__}")
    x = np.asarray(inputs.data if isinstance(inputs, Tensor) else inputs)
    y = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if len(x) != len(y):
        raise ValueError(f"sanity_check: {len(x)} inputs but {len(y)} targets")
    if len(x) < 2:
        raise ValueError(f"sanity_check needs at least 2 samples, got {len(x)}")
    if not any(True for _ in model.parameters()):
        raise ValueError("sanity_check: the model has no parameters to train, so there is nothing to check")
    with _restored(model):
        checks = [_init_loss_check(model, loss_fn, x, y)]
        small_x, small_y = x[:OVERFIT_SAMPLES], y[:OVERFIT_SAMPLES]
        start, real = _overfit(model, loss_fn, small_x, small_y)
    with _restored(model):
        zeroed = _overfit(model, loss_fn, np.zeros_like(small_x), small_y)[1]
    with _restored(model):
        checks.append(_gradient_check(model, loss_fn, x[:GRADCHECK_SAMPLES], y[:GRADCHECK_SAMPLES]))
    reached = real <= OVERFIT_TARGET * start
    checks.insert(1, Check(
        "overfit one batch", reached, "cannot_overfit",
        f"the loss on {len(small_x)} samples went from {start:.4g} to {real:.4g} in at most {OVERFIT_STEPS} "
        "Adam steps" + ("" if reached else
                        f" (not under {OVERFIT_TARGET:.0%} of its start): the model cannot even memorise a "
                        "few samples; look for a bug in the forward pass or the loss, or a frozen layer"),
    ))
    matters = real < INPUT_MATTERS * zeroed
    checks.append(Check(
        "loss depends on input", matters, "ignores_input",
        f"with the inputs zeroed the same training ends at {zeroed:.4g} (real inputs: {real:.4g})"
        + ("" if matters else ": the model learns as well without its input; check that forward uses x "
                              "and that inputs and targets belong together"),
    ))
    return SanityReport(checks)


class _restored:
    """Put the model's parameters, buffers and mode back on exit, whatever happened inside."""

    def __init__(self, model: Module):
        self.model = model

    def __enter__(self):
        self.state = {key: np.array(value, copy=True) for key, value in self.model.state_dict().items()}
        self.modes = [(module, module.training) for module in self.model.modules()]
        self.grads = [(p, p.grad) for p in self.model.parameters()]
        return self

    def __exit__(self, *exc_info):
        for p, grad in self.grads:  # load_state_dict keeps each array's dtype: float64 copies go back
            p.grad = grad
        for name, p in self.model.named_parameters():
            p.data = self.state[name].copy()
        self.model.load_state_dict(self.state)
        for module, training in self.modes:
            module.training = training
        return False


def _loss(model, loss_fn, x, y) -> Tensor:
    loss = loss_fn(model(Tensor(x)), y)
    if not isinstance(loss, Tensor) or loss.size != 1:
        raise ValueError("sanity_check: loss_fn(model(x), y) must return a one-element Tensor")
    return loss


def _init_loss_check(model, loss_fn, x, y) -> Check:
    with no_grad():
        scores = model(Tensor(x))
        loss = float(loss_fn(scores, y).item())
    if not math.isfinite(loss):
        return Check("loss at init", False, "high_init_loss",
                     f"{loss} at initialisation: the loss is not finite before any training; look for NaN or "
                     "inf in the inputs and targets, or a log of 0 in the loss")
    classes = scores.shape[-1] if scores.ndim == 2 else 0
    is_classifier = classes > 1 and (y.shape == (len(x),) and y.dtype.kind in "iu" or y.shape == scores.shape)
    expected = math.log(classes) if is_classifier else math.nan
    if not (is_classifier and _uniform_guess_scores(loss_fn, scores, y, expected)):
        return Check("loss at init", None, "high_init_loss",
                     f"{loss:.4g} (not a cross-entropy over class targets: no expected value to compare)")
    ok = expected / FIRST_LOSS_FACTOR <= loss <= FIRST_LOSS_FACTOR * expected
    message = f"{loss:.4g}, expected about ln {classes} = {expected:.4g} for uniform guesses"
    if not ok:
        message += (": the initial outputs are confidently wrong; use smaller initial weights "
                    "(nn.init.xavier_uniform_) or a zero last-layer bias" if loss > expected else
                    ": lower than guessing; check that the targets do not leak into the inputs")
    return Check("loss at init", ok, "high_init_loss", message)


def _uniform_guess_scores(loss_fn, scores: Tensor, y, expected: float) -> bool:
    """Whether uniform guesses score ln C under this loss, so ln C is the value to expect: true for
    cross-entropy of scores, and for nll of log-probabilities (all -ln C); not for squared error."""
    with no_grad():
        uniform = Tensor(np.full(scores.shape, -expected, dtype=scores.dtype))
        return math.isclose(float(loss_fn(uniform, y).item()), expected, rel_tol=1e-3)


def _overfit(model, loss_fn, x, y):
    """(first loss, lowest loss) of Adam on one batch, stopping once near zero."""
    optimizer = optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    first = lowest = math.nan
    for step in range(OVERFIT_STEPS):
        loss = _loss(model, loss_fn, x, y)
        value = float(loss.item())
        if step == 0:
            first = lowest = value
        lowest = min(lowest, value) if math.isfinite(value) else lowest
        if not math.isfinite(value) or lowest <= OVERFIT_TARGET * first / 2:
            break
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return first, lowest


def _gradient_check(model, loss_fn, x, y) -> Check:
    """Backward against central differences, in float64, on a few entries of every parameter."""
    model.eval()  # dropout would change the function between evaluations
    named = list(model.named_parameters())
    for _, p in named:
        p.data = p.data.astype(np.float64)
    x = x.astype(np.float64) if x.dtype.kind == "f" else x
    model.zero_grad()
    _loss(model, loss_fn, x, y).backward()
    rng = np.random.default_rng(0)
    worst, worst_at = 0.0, None
    for name, p in named:
        if p.grad is None:
            continue
        analytic = np.asarray(p.grad.data)
        for flat in rng.choice(p.data.size, size=min(GRADCHECK_ENTRIES, p.data.size), replace=False):
            index = np.unravel_index(flat, p.data.shape)
            original = p.data[index]
            with no_grad():
                p.data[index] = original + GRADCHECK_EPS
                above = float(_loss(model, loss_fn, x, y).item())
                p.data[index] = original - GRADCHECK_EPS
                below = float(_loss(model, loss_fn, x, y).item())
            p.data[index] = original
            numeric = (above - below) / (2 * GRADCHECK_EPS)
            excess = abs(analytic[index] - numeric) / (GRADCHECK_ATOL + GRADCHECK_RTOL * abs(numeric))
            if excess > worst or not math.isfinite(excess):
                worst, worst_at = excess, (name, tuple(int(i) for i in index), analytic[index], numeric)
    if worst_at is None or worst <= 1:
        return Check("gradient check", True, "wrong_gradient",
                     f"backward matches central differences on {len(x)} samples "
                     f"({GRADCHECK_ENTRIES} entries per parameter, float64)")
    name, index, analytic, numeric = worst_at
    return Check("gradient check", False, "wrong_gradient",
                 f"{name}{list(index)}: backward gives {analytic:.6g}, central differences {numeric:.6g} — "
                 "an op's backward is wrong, or the forward is not differentiable here (a kink, an argmax)")


@dataclass
class LRFindResult:
    """What `lr_find` returns: the learning ``rates`` tried, the smoothed ``losses`` at each,
    and the ``suggested`` rate (a tenth of the rate at the lowest loss)."""

    rates: list
    losses: list
    suggested: float

    def plot(self, path=None):
        """Loss against learning rate (log scale), the suggestion marked. Returns the matplotlib
        Figure; with `path`, also writes it there. Needs matplotlib."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError as error:
            raise ImportError("LRFindResult.plot needs matplotlib: pip install tinygrad_edu[examples] "
                              "(or pip install matplotlib)") from error
        figure = Figure(figsize=(6, 4), layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.subplots()
        ax.plot(self.rates, self.losses)
        ax.set_xscale("log")
        ax.axvline(self.suggested, color="gray", linestyle="--", label=f"suggested {self.suggested:.1e}")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("loss (smoothed)")
        ax.legend()
        if path is not None:
            figure.savefig(path)
        return figure


def lr_find(model: Module, loss_fn: Callable, loader, optimizer_class=optim.SGD, start_lr: float = 1e-7,
            end_lr: float = 10.0, steps: int = 100, stop_factor: float = 4.0, plot=None,
            **optimizer_options) -> LRFindResult:
    """Raise the learning rate geometrically over a short run and watch the loss (Smith, 2017).

    Each step takes the next batch of `loader` (cycling through it), trains with the next rate
    from `start_lr` to `end_lr`, and records the loss, smoothed exponentially (0.9) so one bad
    batch does not end the run. The run stops when the smoothed loss exceeds `stop_factor`
    times its lowest value, or is no longer finite. The suggestion is a tenth of the rate where
    the smoothed loss was lowest: there the loss still falls fast, safely below the blow-up.

    Parameters
    ----------
    model : nn.Module
        Trained during the run; its parameters, buffers and mode are put back afterwards.
    loss_fn : callable
        ``loss_fn(model(x), y)`` returns the loss.
    loader : iterable of (x, y)
        E.g. a ``DataLoader``; arrays are wrapped in Tensors.
    optimizer_class : type
        Built as ``optimizer_class(model.parameters(), lr=start_lr, **optimizer_options)``.
    plot : str or path, optional
        Also draw the curve into this file (needs matplotlib).

    Returns
    -------
    LRFindResult
        ``.rates``, ``.losses``, ``.suggested``, and ``.plot(path)``.
    """
    if not 0 < start_lr < end_lr < math.inf:
        raise ValueError(f"lr_find: need 0 < start_lr < end_lr (finite), got {start_lr} and end_lr={end_lr}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(f"lr_find: steps must be an int of at least 2, got {steps!r}")
    if not stop_factor > 1:  # at or under 1 the first rise stops the run; NaN never would
        raise ValueError(f"lr_find: stop_factor must be a number above 1, got {stop_factor!r}")
    rates, losses = [], []
    with _restored(model):
        model.train()
        optimizer = optimizer_class(model.parameters(), lr=start_lr, **optimizer_options)
        batches = _cycle(loader)
        smoothed, lowest = None, math.inf
        for step in range(steps):
            rate = start_lr * (end_lr / start_lr) ** (step / (steps - 1))
            for group in optimizer.param_groups:
                group["lr"] = rate
            batch = next(batches, None)
            if batch is None:  # a one-pass loader (a generator) has run out
                break
            x, y = batch
            loss = loss_fn(model(x if isinstance(x, Tensor) else Tensor(x)), y)
            value = float(loss.item())
            smoothed = value if smoothed is None else 0.9 * smoothed + 0.1 * value
            if not math.isfinite(smoothed):
                break
            rates.append(rate)
            losses.append(smoothed)
            lowest = min(lowest, smoothed)
            if smoothed > stop_factor * lowest:
                break
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    if not losses:
        raise ValueError("lr_find: the very first loss was not finite")
    suggested = rates[int(np.argmin(losses))] / 10
    result = LRFindResult(rates, losses, suggested)
    if plot is not None:
        result.plot(plot)
    return result


def _cycle(loader):
    """The loader's batches round and round; a one-pass iterator ends after its batches."""
    given = False
    while True:
        empty = True
        for batch in loader:
            empty, given = False, True
            yield batch
        if empty and not given:
            raise ValueError("lr_find: the loader gave no batch")
        if empty:
            return
