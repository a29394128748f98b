"""The Monitor: watch a network train and record, step by step, what the warnings read.

`Monitor(model)` hooks the model's activation modules (forward hooks, and a gradient hook on
each activation output), the model's input (a forward hook on the model) and each parameter's
gradient, and reads the parameters after each optimizer step. It only reads: training with and
without a Monitor gives the same numbers. Its memory is bounded: a fixed number of summary points
per series, one copy of the parameters and one of this step's gradients; never whole activations.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .. import functional as F
from .._files import atomic_write
from ..autograd import Context, is_grad_enabled
from ..nn.layers import BatchNorm1d, BatchNorm2d, Conv2d, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh
from ..nn.module import Module
from ..tensor import Tensor
from . import kinds
from .report import DiagnosticsReport, columns, fmt, pct, sci

# The modules a Monitor watches (see _activation_stats for what it measures on each): activations,
# and the conv and batch-norm layers of a CNN (their output's mean and spread).
_WATCHED = (Sigmoid, Tanh, ReLU, LeakyReLU, Softmax, Conv2d, BatchNorm1d, BatchNorm2d)
# Each series keeps at most this many points (see Monitor's max_points).
MAX_POINTS = 1000
# Gradient hooks kept per layer for forward passes not yet followed by step(): an evaluation
# loop in training mode must not pile them up. The oldest beyond this are taken off.
MAX_PENDING_FORWARDS = 16
# The loss nodes whose input must be logits (cross-entropy) or independent probabilities (BCE).
_LOSS_NODES = ("SoftmaxCrossEntropy", "BinaryCrossEntropy")
_GRAPH_WALK_LIMIT = 100_000  # nodes visited looking for the loss node, once


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


class Monitor:
    """Record activation, gradient and update statistics while a model trains.

    Parameters
    ----------
    model : nn.Module
        The network. Its Sigmoid, Tanh, ReLU, LeakyReLU and Softmax modules are watched
        (activations applied as functions inside ``forward``, e.g. ``x.sigmoid()``, are not seen).
    every : int
        Record one step in `every` (steps in between cost nothing).
    max_points : int
        The most points each history keeps (default 1000). When a history is full, every
        second point is dropped and the Monitor records half as often from then on, so a run
        of any length stays covered evenly in bounded memory.

    Call ``monitor.step(loss, scores, targets)`` once per training step, *after*
    ``optimizer.step()`` (it reads ``p.grad``, which is kept until the next ``zero_grad``).
    Forward passes are recorded only in training mode with grad enabled, so evaluation under
    ``tg.no_grad()`` or ``model.eval()`` does not mix into the statistics. The hooks stay on
    the model until `remove` is called, or the ``with`` block of the Monitor ends. In Jupyter
    a Monitor displays as its report's tables.

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

    def __init__(self, model: Module, every: int = 1, max_points: int = MAX_POINTS):
        if not isinstance(model, Module):
            raise TypeError(f"Monitor needs an nn.Module, got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int (record one step in `every`), got {every!r}")
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
            raise ValueError(f"max_points must be an int of at least 2, got {max_points!r}")
        self.model, self.every, self.max_points = model, every, max_points
        self._stride = every  # doubles each time the histories are thinned out
        self.steps: list = []  # index (0, 1, ...) of each recorded step
        self.loss: list = []
        self.accuracy: list = []
        self.input_rms: list = []  # root-mean-square of the model's input
        self.top_prediction_share: list = []  # share of the batch predicted as its most common class
        self.single_class_batch: list = []  # 1.0 when every target of the batch is one class
        self.val_steps: list = []
        self.val_loss: list = []
        self._train_at_val: list = []  # the training loss (recent mean) when each val_loss came
        self.input_dtype: Optional[str] = None  # set when an integer input was seen
        self.num_classes: Optional[int] = None
        self.cross_entropy = False  # whether the first recorded loss came from cross-entropy
        self.layers: dict = {}
        self.params: dict = {}
        self._count = 0  # step() calls so far
        self._order: list = []  # layer names in the order the forward pass first called them
        self._pending: dict = {}  # layer name -> sums over the forwards/backwards of this step
        self._handles: list = []
        self._tensor_handles: dict = {}  # layer name -> gradient-hook handles of this step's forwards
        self._attached = True
        self._non_finite: dict = {}  # (name, "parameter"/"gradient"/"loss") -> first step seen
        self._not_zeroed: dict = {}  # parameter name -> first step its .grad held older gradients
        self._mismatch: Optional[str] = None  # the output_loss_mismatch message, once found
        self._loss_node: Optional[str] = None  # the loss node found in the first recorded graph

        for name, module in model.named_modules():
            if isinstance(module, _WATCHED):
                self.layers[name] = LayerHistory(type(module).__name__)
                self._handles.append(module.register_forward_hook(self._forward_hook(name)))
        self._handles.append(model.register_forward_hook(self._input_hook))
        self._params = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        self.params = {name: ParameterHistory(tuple(p.shape)) for name, p in self._params}
        # Checked now, on the initial weights, so no second copy of them is kept.
        self._initial_problems = kinds.initial_weight_problems([(n, p.data) for n, p in self._params])
        self._snapshot = {name: p.data.copy() for name, p in self._params}
        # What this step's backward passes delivered to each parameter: .grad should hold no more.
        self._arrived = {name: np.zeros(p.shape, dtype=np.float64) for name, p in self._params}
        # Parameters whose hook ran this step: a step that fills .grad without running the hooks
        # (e.g. a compiled step) gives nothing to compare, and is not judged.
        self._delivered: set = set()
        for name, p in self._params:
            self._handles.append(p.register_hook(self._parameter_hook(name)))

    # ---- recording -------------------------------------------------------------------------
    def _recording(self) -> bool:
        return self._attached and self._count % self._stride == 0

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
                handles = self._tensor_handles.setdefault(name, [])
                handles.append(output.register_hook(self._grad_hook(name)))
                if len(handles) > MAX_PENDING_FORWARDS:
                    handles.pop(0).remove()
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

    def _input_hook(self, module, inputs, output):
        if not (self._recording() and module.training and is_grad_enabled()) or not inputs:
            return None
        x = inputs[0].data if isinstance(inputs[0], Tensor) else inputs[0]
        if isinstance(x, np.ndarray) and x.size:
            if x.dtype.kind in "iu" and self.input_dtype is None:
                self.input_dtype = str(x.dtype)
            rms = math.sqrt(float(np.mean(np.square(x, dtype=np.float64))))
            self._pending["input_rms"] = max(self._pending.get("input_rms", 0.0), rms)
        return None

    def _parameter_hook(self, name: str):
        def hook(grad):
            if self._recording():
                np.add(self._arrived[name], np.asarray(grad.data), out=self._arrived[name])
                self._delivered.add(name)
            return None

        return hook

    def step(self, loss=None, scores=None, targets=None, val_loss=None) -> None:
        """Record this training step; call it right after ``optimizer.step()``.

        Parameters
        ----------
        loss : Tensor or float, optional
            The step's loss. When it is ``F.cross_entropy(..., reduction='mean')`` (or
            ``nn.CrossEntropyLoss()``) and `scores` are given, the first loss is compared with
            ln C, the loss of an untrained classifier over C classes.
        scores, targets : optional
            The model's outputs (N, C) and the class labels, for the accuracy (``F.accuracy``),
            constant predictions and one-class batches.
        val_loss : float, optional
            The loss on held-out data, when you computed one (e.g. once per epoch); recorded
            on every step it is given, to recognise overfitting.
        """
        recording = self._recording()
        index, self._count = self._count, self._count + 1
        if val_loss is not None:
            self._record_validation(index, loss, val_loss)
        if not recording:
            self._prepare_if_next_records()
            return
        self.steps.append(index)
        self.loss.append(_loss_value(loss))
        self._record_batch(loss, scores, targets)
        if loss is not None and not math.isfinite(self.loss[-1]):
            self._non_finite.setdefault(("loss", "loss"), index)
        self.input_rms.append(self._pending.pop("input_rms", math.nan))

        for name, history in self.layers.items():
            sums = self._pending.get(name, {})
            forwards, backwards = sums.get("forwards", 0), sums.get("backwards", 0)
            for key in ("mean", "std", "saturated", "dead"):
                value = sums.get(key, math.nan) / forwards if forwards and key in sums else math.nan
                getattr(history, key).append(value)
            history.grad_rms.append(sums["grad_rms"] / backwards if backwards else math.nan)
        self._pending = {}
        self._tensor_handles = {}  # the outputs they hook belong to this step's graph, now spent

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
            elif name in self._delivered and _holds_older_gradients(grad, self._arrived[name]):
                self._not_zeroed.setdefault(name, index)
        if len(self.steps) > self.max_points:
            self._thin_out()
        self._prepare_if_next_records()

    def _record_batch(self, loss, scores, targets) -> None:
        """Accuracy, prediction and target patterns, and the loss/output pairing of one batch."""
        scores = scores.data if isinstance(scores, Tensor) else scores
        targets = targets.data if isinstance(targets, Tensor) else targets
        has_samples = scores is not None and targets is not None and np.size(targets) > 0
        self.accuracy.append(F.accuracy(scores, targets) if has_samples else math.nan)  # none for no samples
        if scores is not None and self.num_classes is None:
            self.num_classes = int(np.shape(scores)[-1])
        if len(self.steps) == 1:
            ctx = getattr(loss, "grad_fn", None)
            # After backward the node keeps its op and options (only arrays and inputs are freed).
            self.cross_entropy = (
                ctx is not None
                and ctx.name == "SoftmaxCrossEntropy"
                and getattr(ctx, "reduction", None) == "mean"
            )
            self._loss_node = _find_loss_node(ctx)
        share, single = math.nan, math.nan
        labels = _class_labels(scores, targets)
        if labels is not None and labels.size >= kinds.PATTERN_BATCH:
            several = np.unique(labels).size > 1
            single = 0.0 if several else 1.0
            if several:
                predicted = np.asarray(scores).reshape(labels.size, -1).argmax(axis=1)
                share = float(np.bincount(predicted).max()) / predicted.size
        self.top_prediction_share.append(share)
        self.single_class_batch.append(single)
        if self._mismatch is None and self._loss_node and scores is not None:
            self._mismatch = _mismatch_message(self._loss_node, np.asarray(scores))

    def _record_validation(self, index: int, loss, val_loss) -> None:
        self.val_steps.append(index)
        self.val_loss.append(_loss_value(val_loss))
        if not math.isfinite(self.val_loss[-1]):
            self._non_finite.setdefault(("validation loss", "val_loss"), index)
        recent = [value for value in self.loss[-kinds.UNSTABLE_WINDOW // 2:] if math.isfinite(value)]
        if loss is not None:
            recent.append(_loss_value(loss))
        self._train_at_val.append(float(np.mean(recent)) if recent else math.nan)
        if len(self.val_steps) > self.max_points:
            for series in (self.val_steps, self.val_loss, self._train_at_val):
                series[:] = series[:-1:2] + series[-1:]  # every second point, and the latest

    def _thin_out(self) -> None:
        """Drop every second recorded point and record half as often: the kept points are the
        steps at multiples of the doubled stride, so the history stays evenly spaced."""
        histories = [self.steps, self.loss, self.accuracy, self.input_rms, self.top_prediction_share,
                     self.single_class_batch]
        for history in list(self.layers.values()) + list(self.params.values()):
            histories += [value for value in vars(history).values() if isinstance(value, list)]
        for series in histories:
            del series[1::2]
        self._stride *= 2

    def _prepare_if_next_records(self) -> None:
        # The update ratio of a recorded step compares with the weights just before that step,
        # and the gradients that arrive during it are counted from zero.
        if self._count % self._stride == 0:
            for name, p in self._params:
                np.copyto(self._snapshot[name], p.data)
                self._arrived[name].fill(0.0)
            self._delivered.clear()

    # ---- hooks off ---------------------------------------------------------------------------
    def remove(self) -> None:
        """Take every hook off the model; what was recorded stays readable."""
        pending = [handle for handles in self._tensor_handles.values() for handle in handles]
        for handle in self._handles + pending:
            handle.remove()
        self._handles, self._tensor_handles = [], {}
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
        table, tables = self._table(layer_rows, param_rows, last)
        warnings = list(self._initial_problems)
        warnings += kinds.layer_warnings(self, layer_rows)
        warnings += kinds.parameter_warnings(self, param_rows)
        warnings += kinds.loss_warnings(self)
        warnings += kinds.batch_warnings(self, last)
        return DiagnosticsReport(table, warnings, tables)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython's text display: the report too
        printer.text(str(self.report()))

    def _repr_html_(self) -> str:  # Jupyter: a Monitor shows its report
        return self.report()._repr_html_()

    def _layer_order(self) -> list:
        called = [name for name in self._order if name in self.layers]
        return called + [name for name in self.layers if name not in called]

    def _label(self, name: str) -> str:
        return f"layer {name or '(model)'} ({self.layers[name].kind})"

    def _table(self, layer_rows: dict, param_rows: dict, last: int):
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
        tables = []
        if layer_rows:
            rows = [["layer", "mean", "std", "saturated", "dead", "grad rms"]]
            for name, stats in layer_rows.items():
                rows.append([
                    self._label(name)[len("layer "):], fmt(stats["mean"]), fmt(stats["std"]),
                    pct(stats["saturated"]), pct(stats["dead"]), sci(stats["grad_rms"]),
                ])
            lines += columns(rows)
            tables.append(rows)
        else:
            lines.append("(no activation, Conv2d or BatchNorm module in this model: no layer statistics)")
        rows = [["parameter", "shape", "grad norm", "update/weight"]]
        for name, stats in param_rows.items():
            shape = str(self.params[name].shape)
            rows.append([name, shape, sci(stats["grad_norm"]), sci(stats["update_ratio"])])
        lines += columns(rows)
        tables.append(rows)
        return "\n".join(lines), tuple(tables)

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
        if self.val_loss:
            parts.append(f"validation loss: last {self.val_loss[-1]:.4g}")
        return "; ".join(parts)

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
        # Units are the last axis, or the channels (axis 1) of an image (N, C, H, W): a unit is dead
        # when no sample in the batch (and no position in the image) makes it fire.
        if out.ndim > 2:
            out = np.moveaxis(out, 1, -1)
        units = out.reshape(-1, out.shape[-1]) if out.ndim else out.reshape(1, 1)
        stats["dead"] = float(np.mean(np.all(units == 0, axis=0)))
    return stats


def _holds_older_gradients(grad: np.ndarray, arrived: np.ndarray) -> bool:
    """True when .grad holds more than what this step's backward passes delivered (it was not
    zeroed). Clipping or scaling .grad makes it smaller, so only a bigger .grad counts."""
    grad = np.asarray(grad, dtype=np.float64)
    size, delivered = float(np.linalg.norm(grad)), float(np.linalg.norm(arrived))
    return size > delivered and float(np.linalg.norm(grad - arrived)) > kinds.NOT_ZEROED_TOLERANCE * size


def _find_loss_node(ctx) -> Optional[str]:
    """The name of the cross-entropy or BCE node in the loss's graph (the loss itself, or a loss
    plus a penalty), or None."""
    stack, seen = [ctx], set()
    while stack and len(seen) < _GRAPH_WALK_LIMIT:
        node = stack.pop()
        if type(node) is not Context or id(node) in seen:
            continue
        seen.add(id(node))
        if node.name in _LOSS_NODES:
            return node.name
        stack.extend(node.parents or ())
    return None


def _mismatch_message(loss_node: str, scores: np.ndarray) -> Optional[str]:
    """Probabilities (rows in [0, 1] summing to 1) fed to a loss that expects something else."""
    if scores.ndim != 2 or scores.shape[1] < 2 or not scores.size:
        return None
    rows_are_probabilities = (scores.min() >= 0 and scores.max() <= 1
                              and np.allclose(scores.sum(axis=1), 1.0, atol=1e-3))
    if not rows_are_probabilities:
        return None
    if loss_node == "SoftmaxCrossEntropy":
        return ("the scores given to cross_entropy are probabilities (rows in [0, 1] summing to 1), but "
                "cross_entropy applies softmax itself and expects logits — remove the final "
                "Softmax layer (use F.softmax only to read probabilities)")
    return ("binary cross-entropy on softmax outputs (rows summing to 1): BCE treats each class as its "
            "own yes/no question and its gradient is not softmax's a - y — use F.cross_entropy on the "
            "logits (drop the Softmax) for one class per sample")


def _class_labels(scores, targets) -> Optional[np.ndarray]:
    """Integer class labels of a classification batch (from indices or one-hot rows), else None."""
    if scores is None or targets is None:
        return None
    scores, targets = np.asarray(scores), np.asarray(targets)
    if scores.ndim != 2 or scores.shape[1] < 2:
        return None
    if targets.shape == scores.shape:
        return targets.argmax(axis=1)
    if targets.shape == scores.shape[:1] and targets.dtype.kind in "iu":
        return targets
    return None


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
