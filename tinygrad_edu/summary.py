"""`tg.summary(model, *example_inputs)`: a model's layers as a table, one row per module call
(name, type, output shape, parameters) and the total, from one forward pass on example inputs.

It runs the model once in eval mode under no_grad (nothing recorded, no running statistics
changed) and restores every module as it was. PyTorch users know it as torchinfo's `summary`.
"""
from __future__ import annotations

import numpy as np

from ._tables import html_table, shape_text, text_table
from .autograd import no_grad
from .nn.module import Module
from .tensor import Tensor

__all__ = ["summary", "ModelSummary"]


class ModelSummary:
    """What `summary` found: ``rows`` of (name, type, output shape, parameters, depth), in call order,
    and ``total_params`` (each parameter counted once, however often it is used)."""

    def __init__(self, model_name: str, rows: list, total_params: int, trainable_params: int):
        self.model_name = model_name
        self.rows = rows
        self.total_params = total_params
        self.trainable_params = trainable_params

    def _table(self) -> tuple:
        header = ("layer", "type", "output shape", "params")
        rows = [("  " * depth + name, kind, shape, f"{count:,}")
                for name, kind, shape, count, depth in self.rows]
        return header, rows

    def _footer(self) -> list:
        frozen = self.total_params - self.trainable_params
        return [f"total parameters: {self.total_params:,}"
                + (f" ({self.trainable_params:,} trainable, {frozen:,} not)" if frozen else "")]

    def __str__(self) -> str:
        return "\n".join([f"summary of {self.model_name}", *text_table(*self._table()), *self._footer()])

    def __repr__(self) -> str:
        return str(self)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython / Jupyter text display
        printer.text(str(self))

    def _repr_html_(self) -> str:  # Jupyter: a table
        return html_table(f"summary of {self.model_name}", *self._table(), self._footer())


def summary(model: Module, *example_inputs, **example_kwargs) -> ModelSummary:
    """One row per module call of ``model(*example_inputs)``: name, type, output shape, parameters.

    The type column adds a module's ``extra_repr()`` (``Linear(in_features=4, ...)``), so layers
    that define it (kernel size, stride, ...) show their settings. A module called twice has two
    rows; its parameters count once in the total. Nested modules are indented under their parent.

    Parameters
    ----------
    model : nn.Module
    *example_inputs
        What to call the model with (Tensors or arrays of the right shape; a small batch will do).

    Returns
    -------
    ModelSummary
        Prints as a table; shows as an HTML table in Jupyter.

    Examples
    --------
    >>> import numpy as np
    >>> import tinygrad_edu as tg
    >>> from tinygrad_edu import nn
    >>> model = nn.Sequential(nn.Linear(400, 25), nn.Sigmoid(), nn.Linear(25, 10))
    >>> print(tg.summary(model, np.zeros((5, 400), dtype=np.float32)))
    summary of Sequential
    layer    type                                                 output shape  params
    (model)  Sequential                                           (5, 10)       10,285
      0      Linear(in_features=400, out_features=25, bias=True)  (5, 25)       10,025
      1      Sigmoid                                              (5, 25)       0
      2      Linear(in_features=25, out_features=10, bias=True)   (5, 10)       260
    total parameters: 10,285
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary needs an nn.Module, got {type(model).__name__}")
    names = {}
    for name, module in model.named_modules():
        names.setdefault(id(module), name or "(model)")
    rows, depth = [], [0]
    modes = [(module, module.training) for _, module in model.named_modules(remove_duplicate=False)]
    wrapped = []

    def watch(module):
        forward = module.forward

        def recording_forward(*inputs, **kwargs):
            row = [names.get(id(module), "?"), _type_text(module), "", _count(module), depth[0]]
            rows.append(row)  # at the call's start, so a parent comes before its children
            depth[0] += 1
            try:
                out = forward(*inputs, **kwargs)
            finally:
                depth[0] -= 1
            row[2] = _output_shapes_text(out)
            return out

        # An instance attribute shadows the class's forward for this one call; removed afterwards.
        object.__setattr__(module, "forward", recording_forward)
        wrapped.append(module)

    try:
        for _, module in model.named_modules():
            watch(module)
        model.eval()
        with no_grad():
            model(*example_inputs, **example_kwargs)
    finally:
        for module in wrapped:
            object.__delattr__(module, "forward")
        for module, training in modes:
            object.__setattr__(module, "training", training)
    unique = {id(p): p for p in model.parameters()}.values()
    total = sum(int(p.size) for p in unique)
    trainable = sum(int(p.size) for p in unique if p.requires_grad)
    return ModelSummary(type(model).__name__, [tuple(row) for row in rows], total, trainable)


def _type_text(module: Module) -> str:
    extra = module.extra_repr()
    return f"{type(module).__name__}({extra})" if extra else type(module).__name__


def _count(module: Module) -> int:
    return sum(int(p.size) for p in {id(p): p for p in module.parameters()}.values())


def _output_shapes_text(out) -> str:
    if isinstance(out, (Tensor, np.ndarray)):
        return shape_text(out.shape)
    if isinstance(out, (tuple, list)):
        return "[" + ", ".join(_output_shapes_text(item) for item in out) + "]"
    return type(out).__name__
