"""Training diagnostics: watch a network train and say, in plain words, why it is not learning.

`Monitor(model)` hooks the model's activation modules (forward hooks, and a gradient hook on
each activation output) and reads the parameters after each optimizer step. It only reads:
training with and without a Monitor gives the same numbers. It stores a few scalars per
step and one copy of the parameters, never whole activations or gradient histories.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import functional as F
from ._files import atomic_write
from .autograd import is_grad_enabled
from .nn.layers import LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from .nn.module import Module
from .tensor import Tensor

# The activation modules a Monitor watches (see _activation_stats for what it measures on each).
_WATCHED = (Sigmoid, Tanh, ReLU, LeakyReLU, Softmax)

# Warning thresholds. Measured on the second learner's network (784-128-128-10 sigmoid, weights
# rand * sqrt(1/n), zero biases, MNIST-like inputs, SGD lr 0.1, 5 steps of 64, three seeds; see
# tests/test_diagnostics.py) against the same network with Xavier weights:
#   saturated fraction of the 2nd sigmoid layer   learner 0.82-0.88       Xavier 0.00
#   dL/d(activation) RMS, first / last layer      learner 6.3e-3-6.6e-3   Xavier 0.23-0.24
# (with sparser, dimmer inputs, pixels U(0, 1) with 80% zeros: saturation 0.36-0.40, ratio ~9e-3).
# Each healthy sigmoid layer passes back at most ~1/4 of its gradient (max sigmoid' = 0.25), so
# the ratio limit sits between the two cases, about 5x from each.
SATURATION_LIMIT = 0.5  # half the units give (almost) no gradient: the layer has mostly stopped learning
DEAD_LIMIT = 0.5  # the same reasoning for ReLU units that never fire
VANISHING_RATIO = 0.03  # the first layer gets under 3% of the gradient the last one gets
# Karpathy's rule of thumb: a healthy step changes a weight matrix by about 1e-3 of its size.
SMALL_UPDATE, LARGE_UPDATE = 1e-6, 1e-1
FIRST_LOSS_FACTOR = 1.5  # first loss above 1.5 ln C: the untrained outputs are confidently wrong
CHANCE_STEPS = 10  # accuracies needed before calling them "stuck"


@dataclass(frozen=True)
class DiagnosticWarning:
    """One finding of `Monitor.report`: a `kind` tests and code can check, and a one-line
    `message` that names the layer or parameter and suggests a fix.

    Kinds: ``saturation``, ``vanishing_gradient``, ``dead_relu``, ``small_update``,
    ``large_update``, ``high_first_loss``, ``chance_accuracy``, ``all_positive_init``,
    ``all_equal_init``, ``non_finite``.
    """

    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass
class LayerHistory:
    """Per-step statistics of one activation layer (NaN where the step did not record it).

    ``saturated`` is only filled for Sigmoid/Tanh and ``dead`` only for ReLU (else NaN);
    ``grad_rms`` is the root-mean-square of dL/d(output of this layer).
    """

    kind: str
    mean: list = field(default_factory=list)
    std: list = field(default_factory=list)
    saturated: list = field(default_factory=list)
    dead: list = field(default_factory=list)
    grad_rms: list = field(default_factory=list)


@dataclass
class ParameterHistory:
    """Per-step gradient norm and update-to-weight ratio of one parameter."""

    shape: tuple
    grad_norm: list = field(default_factory=list)
    update_ratio: list = field(default_factory=list)


class DiagnosticsReport:
    """What `Monitor.report` returns: ``str(report)`` is the table followed by the warnings;
    ``report.warnings`` is the list of `DiagnosticWarning`, ``report.kinds`` their kinds."""

    def __init__(self, table: str, warnings: list):
        self.table = table
        self.warnings = warnings

    @property
    def kinds(self) -> set:
        """The set of the warnings' kinds, e.g. ``{"saturation", "vanishing_gradient"}``."""
        return {warning.kind for warning in self.warnings}

    def __str__(self) -> str:
        if not self.warnings:
            return self.table + "\nno warnings"
        return self.table + "\nwarnings:\n" + "\n".join(f"- {w.message}" for w in self.warnings)

    __repr__ = __str__


class Monitor:
    """Record activation, gradient and update statistics while a model trains.

    Parameters
    ----------
    model : nn.Module
        The network. Its Sigmoid, Tanh, ReLU, LeakyReLU and Softmax modules are watched
        (activations applied as functions inside ``forward``, e.g. ``x.sigmoid()``, are not seen).
    every : int
        Record one step in `every` (steps in between cost nothing).

    Call ``monitor.step(loss, scores, targets)`` once per training step, *after*
    ``optimizer.step()`` (it reads ``p.grad``, which is kept until the next ``zero_grad``).
    Forward passes are recorded only in training mode with grad enabled, so evaluation under
    ``tg.no_grad()`` or ``model.eval()`` does not mix into the statistics. The hooks stay on
    the model until `remove` is called, or the ``with`` block of the Monitor ends.

    Examples
    --------
    >>> import numpy as np
    >>> import tinygrad_edu as tg
    >>> import tinygrad_edu.functional as F
    >>> from tinygrad_edu import nn, optim
    >>> rng = np.random.default_rng(0)
    >>> model = nn.Sequential(nn.Linear(50, 20), nn.Sigmoid(), nn.Linear(20, 3))
    >>> model[0].weight.data[...] = rng.random((20, 50))     # all positive: a bad start
    >>> opt = optim.SGD(model.parameters(), lr=0.1)
    >>> x, y = rng.random((32, 50)), rng.integers(0, 3, 32)
    >>> with Monitor(model) as monitor:
    ...     for _ in range(3):
    ...         scores = model(tg.Tensor(x))
    ...         loss = F.cross_entropy(scores, y)
    ...         opt.zero_grad(); loss.backward(); opt.step()
    ...         monitor.step(loss, scores, y)
    >>> [warning.kind for warning in monitor.report().warnings]
    ['all_positive_init', 'saturation', 'small_update']
    """

    def __init__(self, model: Module, every: int = 1):
        if not isinstance(model, Module):
            raise TypeError(f"Monitor needs an nn.Module, got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int (record one step in `every`), got {every!r}")
        self.model, self.every = model, every
        self.steps: list = []  # index (0, 1, ...) of each recorded step
        self.loss: list = []
        self.accuracy: list = []
        self.num_classes: Optional[int] = None
        self.cross_entropy = False  # whether the first recorded loss came from cross-entropy
        self.layers: dict = {}
        self.params: dict = {}
        self._count = 0  # step() calls so far
        self._order: list = []  # layer names in the order the forward pass first called them
        self._pending: dict = {}  # layer name -> sums over the forwards/backwards of this step
        self._handles: list = []
        self._tensor_handles: list = []
        self._attached = True
        self._non_finite: dict = {}  # (name, "parameter"/"gradient"/"loss") -> first step seen

        for name, module in model.named_modules():
            if isinstance(module, _WATCHED):
                self.layers[name] = LayerHistory(type(module).__name__)
                self._handles.append(module.register_forward_hook(self._forward_hook(name)))
        self._params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.params = {name: ParameterHistory(tuple(p.shape)) for name, p in self._params}
        # Checked now, on the initial weights, so no second copy of them is kept.
        self._initial_problems = _initial_weight_problems(self._params)
        self._snapshot = {name: p.data.copy() for name, p in self._params}

    # ---- recording -------------------------------------------------------------------------
    def _recording(self) -> bool:
        return self._attached and self._count % self.every == 0

    def _forward_hook(self, name: str):
        def hook(module, inputs, output):
            if not (self._recording() and module.training and is_grad_enabled()):
                return None
            if not isinstance(output, Tensor):
                return None
            if name not in self._order:
                self._order.append(name)
            sums = self._pending.setdefault(name, {})
            for key, value in _activation_stats(module, output.data).items():
                sums[key] = sums.get(key, 0.0) + value
            sums["forwards"] = sums.get("forwards", 0) + 1
            if output.requires_grad:
                self._tensor_handles.append(output.register_hook(self._grad_hook(name)))
            return None

        return hook

    def _grad_hook(self, name: str):
        def hook(grad):
            if self._attached:
                g = np.asarray(grad.data, dtype=np.float64)
                rms = math.sqrt(float(np.mean(g * g))) if g.size else 0.0
                sums = self._pending.setdefault(name, {})
                sums["grad_rms"] = sums.get("grad_rms", 0.0) + rms
                sums["backwards"] = sums.get("backwards", 0) + 1
            return None

        return hook

    def step(self, loss=None, scores=None, targets=None) -> None:
        """Record this training step; call it right after ``optimizer.step()``.

        Parameters
        ----------
        loss : Tensor or float, optional
            The step's loss. When it is ``F.cross_entropy(..., reduction='mean')`` (or
            ``nn.CrossEntropyLoss()``) and `scores` are given, the first loss is compared with
            ln C, the loss of an untrained classifier over C classes.
        scores, targets : optional
            The model's outputs (N, C) and the class labels, for the accuracy (``F.accuracy``).
        """
        recording = self._recording()
        index, self._count = self._count, self._count + 1
        if not recording:
            self._take_snapshot_if_next_records()
            return
        self.steps.append(index)
        if scores is not None and targets is not None:
            self.accuracy.append(F.accuracy(scores, targets))
        else:
            self.accuracy.append(math.nan)
        if scores is not None and self.num_classes is None:
            self.num_classes = int(np.shape(scores.data if isinstance(scores, Tensor) else scores)[-1])
        self.loss.append(_loss_value(loss))
        if len(self.steps) == 1:
            ctx = getattr(loss, "grad_fn", None)
            # After backward the node keeps its op and options (only arrays and inputs are freed).
            self.cross_entropy = (
                ctx is not None
                and ctx.name == "SoftmaxCrossEntropy"
                and getattr(ctx, "reduction", None) == "mean"
            )
        if loss is not None and not math.isfinite(self.loss[-1]):
            self._non_finite.setdefault(("loss", "loss"), index)

        for name, history in self.layers.items():
            sums = self._pending.get(name, {})
            forwards, backwards = sums.get("forwards", 0), sums.get("backwards", 0)
            for key in ("mean", "std", "saturated", "dead"):
                value = sums.get(key, math.nan) / forwards if forwards and key in sums else math.nan
                getattr(history, key).append(value)
            history.grad_rms.append(sums["grad_rms"] / backwards if backwards else math.nan)
        self._pending = {}
        self._tensor_handles = []  # the outputs they hook belong to this step's graph, now spent

        for name, p in self._params:
            history, before = self.params[name], self._snapshot[name]
            grad = p.grad.data if p.grad is not None else None
            history.grad_norm.append(float(np.linalg.norm(grad)) if grad is not None else math.nan)
            scale = float(np.linalg.norm(before))
            with np.errstate(invalid="ignore"):  # inf - inf: the NaN check below reports it
                change = float(np.linalg.norm(p.data.astype(np.float64) - before))
            history.update_ratio.append(change / scale if scale > 0 else math.nan)
            if not np.all(np.isfinite(p.data)):
                self._non_finite.setdefault((name, "parameter"), index)
            if grad is not None and not np.all(np.isfinite(grad)):
                self._non_finite.setdefault((name, "gradient"), index)
        self._take_snapshot_if_next_records()

    def _take_snapshot_if_next_records(self) -> None:
        # The update ratio of a recorded step compares with the weights just before that step.
        if self._count % self.every == 0:
            for name, p in self._params:
                np.copyto(self._snapshot[name], p.data)

    # ---- hooks off ---------------------------------------------------------------------------
    def remove(self) -> None:
        """Take every hook off the model; what was recorded stays readable."""
        for handle in self._handles + self._tensor_handles:
            handle.remove()
        self._handles, self._tensor_handles = [], []
        self._attached = False

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *exc_info) -> None:
        self.remove()

    # ---- report --------------------------------------------------------------------------------
    def report(self, last: int = 10) -> DiagnosticsReport:
        """A table of the statistics, averaged over the `last` recorded steps, and the warnings.

        Returns
        -------
        DiagnosticsReport
            ``print(report)`` shows it; ``report.warnings`` lists `DiagnosticWarning` objects.
        """
        if last < 1:
            raise ValueError(f"last must be at least 1, got {last}")
        layer_rows = {name: _recent(self.layers[name], last) for name in self._layer_order()}
        param_rows = {name: _recent(history, last) for name, history in self.params.items()}
        table = self._table(layer_rows, param_rows, last)
        warnings = list(self._initial_problems)
        warnings += self._layer_warnings(layer_rows)
        warnings += self._parameter_warnings(param_rows)
        warnings += self._loss_warnings()
        return DiagnosticsReport(table, warnings)

    def _layer_order(self) -> list:
        called = [name for name in self._order if name in self.layers]
        return called + [name for name in self.layers if name not in called]

    def _label(self, name: str) -> str:
        return f"layer {name or '(model)'} ({self.layers[name].kind})"

    def _table(self, layer_rows: dict, param_rows: dict, last: int) -> str:
        recorded = len(self.steps)
        window = min(last, recorded)
        lines = [
            f"Training diagnostics: {recorded} step(s) recorded; statistics are means over the last {window}"
        ]
        if recorded == 0:
            lines.append(
                "(nothing recorded yet: call monitor.step(loss, scores, targets) after optimizer.step())"
            )
        summary = self._loss_summary()
        if summary:
            lines.append(summary)
        if layer_rows:
            rows = [["layer", "mean", "std", "saturated", "dead", "grad rms"]]
            for name, stats in layer_rows.items():
                rows.append([
                    self._label(name)[len("layer "):], _fmt(stats["mean"]), _fmt(stats["std"]),
                    _pct(stats["saturated"]), _pct(stats["dead"]), _sci(stats["grad_rms"]),
                ])
            lines += _columns(rows)
        else:
            lines.append("(no Sigmoid/Tanh/ReLU/LeakyReLU/Softmax module in this model: no layer statistics)")
        rows = [["parameter", "shape", "grad norm", "update/weight"]]
        for name, stats in param_rows.items():
            shape = str(self.params[name].shape)
            rows.append([name, shape, _sci(stats["grad_norm"]), _sci(stats["update_ratio"])])
        lines += _columns(rows)
        return "\n".join(lines)

    def _loss_summary(self) -> str:
        parts = []
        losses = [value for value in self.loss if not math.isnan(value)]
        if losses:
            parts.append(f"loss: first {losses[0]:.4g}, last {losses[-1]:.4g}")
            classes = self.num_classes
            if self.cross_entropy and classes:
                parts[-1] += f" (an untrained classifier gives ln {classes} = {math.log(classes):.4g})"
        accuracies = [value for value in self.accuracy if not math.isnan(value)]
        if accuracies:
            parts.append(f"accuracy: last {accuracies[-1]:.1%}")
        return "; ".join(parts)

    def _layer_warnings(self, rows: dict) -> list:
        found = []
        for name, stats in rows.items():
            label = self._label(name)
            if stats["saturated"] >= SATURATION_LIMIT:
                found.append(DiagnosticWarning(
                    "saturation",
                    f"{label}: {stats['saturated']:.0%} of units saturated — gradients vanish; "
                    "see nn.init.xavier_uniform_",
                ))
            if stats["dead"] >= DEAD_LIMIT:
                found.append(DiagnosticWarning(
                    "dead_relu",
                    f"{label}: {stats['dead']:.0%} of units dead (zero for the whole batch) — they never "
                    "learn; use nn.init.kaiming_normal_(w, nonlinearity='relu'), nn.LeakyReLU or a lower lr",
                ))
        with_grad = [name for name, stats in rows.items() if not math.isnan(stats["grad_rms"])]
        if len(with_grad) >= 2:
            first_name, last_name = with_grad[0], with_grad[-1]
            first, last_layer = rows[first_name]["grad_rms"], rows[last_name]["grad_rms"]
            if last_layer > 0 and first < VANISHING_RATIO * last_layer:
                found.append(DiagnosticWarning(
                    "vanishing_gradient",
                    f"gradients vanish toward the input: dL/d(output) RMS {first:.1e} at "
                    f"{self._label(first_name)} vs {last_layer:.1e} at {self._label(last_name)}, "
                    f"{_times(last_layer, first)} weaker; use nn.init.xavier_uniform_ (sigmoid/tanh) "
                    "or ReLU with nn.init.kaiming_normal_",
                ))
        return found

    def _parameter_warnings(self, rows: dict) -> list:
        found = []
        for name, stats in rows.items():
            if len(self.params[name].shape) < 2:
                continue  # bias vectors start at zero and move relatively far: not a symptom
            ratio, grad_norm = stats["update_ratio"], stats["grad_norm"]
            if grad_norm == 0:
                found.append(DiagnosticWarning(
                    "vanishing_gradient",
                    f"{name}: gradient exactly zero — nothing reaches this weight; check for dead units "
                    "right after it, or a detach()/no_grad in the forward",
                ))
            elif ratio < SMALL_UPDATE:
                found.append(DiagnosticWarning(
                    "small_update",
                    f"{name}: update/weight ratio {ratio:.1e} per step — barely changing; raise lr, or "
                    "fix a vanishing gradient if one is reported (about 1e-3 is healthy)",
                ))
            elif ratio > LARGE_UPDATE:
                found.append(DiagnosticWarning(
                    "large_update",
                    f"{name}: update/weight ratio {ratio:.1e} per step — jumping around; lower lr "
                    "(about 1e-3 is healthy)",
                ))
        by_step: dict = {}  # one line per step where something first went non-finite
        for (name, where), step in self._non_finite.items():
            by_step.setdefault(step, []).append("the loss" if name == "loss" else f"{name} ({where})")
        for step in sorted(by_step):
            found.append(DiagnosticWarning(
                "non_finite",
                f"step {step}: NaN/Inf in {', '.join(by_step[step])} — lower lr, look for log(0) or "
                "division by zero; tg.detect_anomaly() names the op that made it",
            ))
        return found

    def _loss_warnings(self) -> list:
        found = []
        classes = self.num_classes
        first = self.loss[0] if self.loss else math.nan
        if self.cross_entropy and classes and classes > 1 and math.isfinite(first):
            expected = math.log(classes)
            if first > FIRST_LOSS_FACTOR * expected:
                found.append(DiagnosticWarning(
                    "high_first_loss",
                    f"first loss {first:.3g} is far above ln({classes}) ≈ {expected:.2f}, the loss of an "
                    "untrained classifier — the initial outputs are confidently wrong; use smaller "
                    "initial weights (nn.init.xavier_uniform_)",
                ))
        accuracies = [value for value in self.accuracy if not math.isnan(value)]
        if classes and classes > 1 and len(accuracies) >= CHANCE_STEPS:
            recent, chance = float(np.mean(accuracies[-CHANCE_STEPS:])), 1.0 / classes
            # Within 30% of chance (at most 5 points): at chance, the accuracy of a batch of 64 varies
            # by ~4 points, the mean of 10 such batches by ~1.
            if abs(recent - chance) <= min(0.3 * chance, 0.05):
                found.append(DiagnosticWarning(
                    "chance_accuracy",
                    f"accuracy {recent:.0%} = chance for {classes} classes after {len(accuracies)} steps: "
                    "the network has not learned anything; check labels match inputs, the lr, and the "
                    "warnings above",
                ))
        return found

    # ---- plot ----------------------------------------------------------------------------------
    def plot(self, path) -> str:
        """Draw the recorded histories into an image file (PNG, SVG, PDF: from the suffix).

        Needs matplotlib (``pip install tinygrad_edu[examples]``). Uses the Agg canvas
        directly, so no window opens and pyplot's global state is left alone. The file is
        written to a temporary name beside `path` and renamed, so it is never half-written.
        Returns `path`.
        """
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
            from matplotlib.ticker import MaxNLocator
        except ImportError as error:
            raise ImportError(
                "Monitor.plot needs matplotlib: pip install tinygrad_edu[examples] "
                "(or pip install matplotlib)"
            ) from error
        path = os.fspath(path)
        figure = Figure(figsize=(13, 7), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.subplots(2, 3).ravel()
        self._panel(axes[0], "loss", {"loss": self.loss})
        self._panel(axes[1], "accuracy", {"accuracy": self.accuracy})
        fractions = {}
        for name in self._layer_order():
            history = self.layers[name]
            if not np.all(np.isnan(history.saturated)):
                fractions[f"{name} saturated"] = history.saturated
            if not np.all(np.isnan(history.dead)):
                fractions[f"{name} dead"] = history.dead
        self._panel(axes[2], "saturated / dead fraction", fractions)
        activation_grads = {self._label(name): self.layers[name].grad_rms for name in self._layer_order()}
        self._panel(axes[3], "dL/d(activation) RMS", activation_grads, log=True)
        grad_norms = {name: history.grad_norm for name, history in self.params.items()}
        self._panel(axes[4], "parameter gradient norm", grad_norms, log=True)
        ratios = {name: history.update_ratio for name, history in self.params.items()}
        self._panel(axes[5], "update / weight per step", ratios, log=True)
        if self.num_classes and not np.all(np.isnan(self.accuracy)):
            axes[1].axhline(1 / self.num_classes, color="gray", linestyle="--", label="chance")
            axes[1].legend(fontsize="small")
        if self.params and self.steps:
            axes[5].axhline(1e-3, color="gray", linestyle="--", label="healthy ~1e-3")
            axes[5].legend(fontsize="small")
        for ax in axes:
            ax.set_xlabel("step")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        suffix = os.path.splitext(path)[1]
        with atomic_write(path) as file:
            figure.savefig(file, format=suffix[1:].lower() or "png")
        return path

    def _panel(self, ax, title: str, series: dict, log: bool = False) -> None:
        ax.set_title(title)
        drawn = False
        for label, values in series.items():
            values = np.asarray(values, dtype=np.float64)
            if values.size and not np.all(np.isnan(values)):
                ax.plot(self.steps, values, label=label, marker="." if values.size < 30 else None)
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "nothing recorded", ha="center", va="center", transform=ax.transAxes)
            return
        if log:
            ax.set_yscale("log", nonpositive="mask")
        if len(series) > 1:
            ax.legend(fontsize="small")


# ---- helpers ----------------------------------------------------------------------------------
def _activation_stats(module: Module, out: np.ndarray) -> dict:
    """Mean, std, saturated fraction (Sigmoid/Tanh) and dead fraction (ReLU) of one output."""
    out = np.asarray(out, dtype=np.float64)
    stats = {"mean": float(out.mean()), "std": float(out.std())} if out.size else {}
    if out.size and isinstance(module, Sigmoid):
        stats["saturated"] = float(np.mean((out < 0.01) | (out > 0.99)))
    elif out.size and isinstance(module, Tanh):
        stats["saturated"] = float(np.mean(np.abs(out) > 0.99))
    elif out.size and isinstance(module, ReLU):
        # Units are the last axis; a unit is dead when no sample in the batch makes it fire.
        units = out.reshape(-1, out.shape[-1]) if out.ndim else out.reshape(1, 1)
        stats["dead"] = float(np.mean(np.all(units == 0, axis=0)))
    return stats


def _initial_weight_problems(params: list) -> list:
    """All-equal or all-positive weight matrices at the start, one warning per kind naming them all.

    Biases (ndim 1) are skipped: starting them all at zero is normal.
    """
    equal, positive = [], []
    for name, p in params:
        data = p.data
        if data.ndim < 2 or data.size < 2:
            continue
        if np.all(data == data.flat[0]):
            equal.append(f"{name} (all {data.flat[0]:.3g})")
        elif np.all(data >= 0):
            positive.append(name)
    found = []
    if equal:
        found.append(DiagnosticWarning(
            "all_equal_init",
            f"{', '.join(equal)}: every initial weight is the same — the units of a layer compute the same "
            "thing and stay identical (symmetry); use a random zero-mean init: nn.init.xavier_uniform_ "
            "or nn.init.kaiming_normal_",
        ))
    if positive:
        found.append(DiagnosticWarning(
            "all_positive_init",
            f"{', '.join(positive)}: every initial weight is >= 0 — sums grow with the layer width and "
            "sigmoid/tanh units saturate; use a zero-mean init: nn.init.xavier_uniform_ (sigmoid/tanh) or "
            "nn.init.kaiming_normal_ (ReLU)",
        ))
    return found


def _loss_value(loss) -> float:
    if loss is None:
        return math.nan
    if isinstance(loss, Tensor):
        if loss.size != 1:
            raise ValueError(f"Monitor.step: loss must be one number, got a tensor of shape {loss.shape}")
        return float(loss.item())
    return float(loss)


def _recent(history, last: int) -> dict:
    """Mean of each per-step list over the `last` recorded steps, ignoring NaN (not recorded)."""
    means = {}
    for key, values in vars(history).items():
        if isinstance(values, list):
            window = np.asarray(values[-last:], dtype=np.float64)
            finite = window[~np.isnan(window)]
            means[key] = float(finite.mean()) if finite.size else math.nan
    return means


def _times(big: float, small: float) -> str:
    return "infinitely" if small == 0 else f"{big / small:.0f}x"


def _fmt(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1%}"


def _sci(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2e}"


def _columns(rows: list) -> list:
    """Left-align the first column, right-align the rest, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
    return [""] + lines
