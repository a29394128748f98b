"""Pictures of the graph: `draw_graph` gives the boxes graph_folding.py chooses their labels,
colours and edges as a Graphviz drawing; `render` writes one to a file with the `dot` program.
It only reads the graph (parents, op names, shapes, `module_calls`): no `.grad` is touched and
nothing is freed.
"""
from __future__ import annotations

import colorsys
import html
import math
import numbers
import os
import pathlib
from typing import Iterable, Optional, Union

import graphviz
import numpy as np

from ._files import atomic_write
from ._tables import shape_text
from .autograd import Context, node_of
from .autograd import grad as _grad
from .explain import index_text
from .graph_folding import Box, boxes_to_draw, fold_rule
from .nn.module import named_tensors
from .tensor import Tensor

__all__ = ["draw_graph", "render", "GraphvizNotFoundError"]

# Fill colours. Parameters stand out from constants; op nodes stay quiet.
_OP_FILL = "#f2f2f2"
_PARAMETER_FILL = "#c6dbef"
_CONSTANT_FILL = "#ffffff"
_FOLDED_FILL = "#e5dbf0"
_NO_GRAD_FILL = "#d9d9d9"
_NOT_FINITE_FILL = "#d95fd1"
# Gradient colours run from green (as large as the largest) to red at this ratio and below.
_VANISHING_RATIO = 1e-6
_NOT_KEPT_FILL = "#f7f7f7"
_MAX_LISTED_PARAMETERS = 6
MAX_NODES = 150  # the node budget: Graphviz lays out a few hundred nodes in about a second
_NOT_KEPT = "not kept"  # the norm of an intermediate whose gradient backward did not keep
# A leaf without .grad after backward: backward gave it one, so something (zero_grad) cleared it.
_CLEARED = "cleared"
_NO_ELEMENTS = "no elements"  # the norm of an empty tensor's gradient: neither healthy nor vanishing

_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}


_NO_DOT = (
    "rendering needs the Graphviz 'dot' program, which was not found on PATH. Install it "
    "with `apt-get install -y graphviz` (Debian/Ubuntu), `brew install graphviz` (macOS), "
    "`conda install graphviz`, or an installer from https://graphviz.org/download/ "
    "(Windows: tick 'add to PATH'). The Python package `graphviz` alone is not enough. "
    "Without it, `graph.source` still gives the DOT text (paste it into any Graphviz viewer)."
)


class GraphvizNotFoundError(RuntimeError):
    """The Graphviz `dot` program is not installed, so a drawing cannot be rendered to a file."""


class _Drawing(graphviz.Digraph):
    """The Digraph draw_graph returns: in Jupyter a picture, or, without `dot`, what to install and
    the DOT text (not a traceback above an object's address)."""

    def _repr_mimebundle_(self, include=None, exclude=None, **kwargs):
        try:
            return super()._repr_mimebundle_(include, exclude, **kwargs)
        except graphviz.ExecutableNotFound:
            text = f"{_NO_DOT}\n\n{self.source}"
            return {"text/plain": text, "text/html": f"<pre>{html.escape(text)}</pre>"}


def draw_graph(
    root: Tensor,
    params=None,
    show_shapes: bool = True,
    show_grads: bool = False,
    collapse: Union[None, bool, Iterable] = None,
    max_nodes: Optional[int] = MAX_NODES,
) -> graphviz.Digraph:
    r"""Draw the graph that produced `root`: one node per operation and per input, edges along the data flow.

    Op nodes (ellipses) show the op's name (``MatMul``) and output shape; Python numbers it
    was given appear in its label (``Mul(·, 2)``: the tensor times 2). Leaves (boxes) show
    a name, shape and dtype; blue boxes require grad (parameters), white dashed boxes are
    constants (data, targets). The root has a double border. Node ids are ``n0, n1, ...``
    in walk order (the root is ``n0``), so the DOT source is the same on every run.
    In Jupyter the returned ``graphviz.Digraph`` displays itself inline; elsewhere use
    `render`, or read ``.source`` (DOT text) without Graphviz installed.

    Graphs of any size draw in moments, because repeated structure is folded into one node
    (purple, ``box3d``) that says how many it stands for: Python's built-in ``sum`` over the
    rows of a tensor (``sum over 5000 rows``), and, in a graph of more than `max_nodes` nodes,
    a run of one op or of one block of ops (``Mul x 3000``, ``Linear -> Tanh x 300``). If the
    graph is still too large, module calls are collapsed (as ``collapse=True`` would), and
    what remains beyond `max_nodes` (nearest the root kept) becomes one ``... more`` node.
    The drawing's title says what was folded. Drawing also works after ``backward()``:
    backward frees only the saved arrays, never the graph's structure.

    Parameters
    ----------
    root : Tensor
        The output whose graph to draw (usually the loss).
    params : nn.Module, dict or list of Tensor, optional
        Where leaf names come from: a module's ``named_parameters()`` (``"0.weight"``), a
        dict name -> Tensor, or a list/tuple (``"params[0]"``, ... unless a tensor has a
        ``.name``). Other leaves use ``Tensor.name``, else "tensor" (requires grad) or "constant".
    show_shapes : bool
        Add shapes (and leaves' dtypes) to the labels.
    show_grads : bool
        Add ``|grad| = ...`` (the L2 norm of d(root)/d(tensor)) to every node that requires
        grad, and colour it by that norm relative to the largest one, on a log scale: green
        is as large as the largest, red is a million times smaller or less (vanishing). A
        legend node explains the colours. Needs a one-element `root`. Before ``backward()``
        it uses ``tg.grad`` with ``retain_graph=True``, so ``.grad`` stays untouched, but
        tensor hooks do run. After a ``backward()`` (without retain_graph) the gradients of
        intermediate values are gone: the drawing shows the ``.grad`` that backward left on
        leaves (and on tensors in `params` that called ``retain_grad()``), and marks the
        other nodes "not kept"; a graph that a backward from another tensor partly freed is
        refused (its ``.grad`` are that tensor's gradients).
    collapse : True or iterable of str / Module classes, optional
        Fold module calls into one node each (labelled e.g. ``0: Linear``, listing the
        parameters it hides). True folds every direct child of the `params` module; names
        are those of ``params.named_modules()`` (``"0"``, ``"block.2"``, ``""`` for the
        whole model); classes (``nn.Linear``) fold every call of such a module.
    max_nodes : int or None
        The node budget (default `MAX_NODES`, 150): beyond it, runs fold, modules collapse
        and the rest is summarised, so Graphviz always gets a graph it lays out quickly.
        None draws every node and folds nothing (not even built-in sums): slow for big graphs.

    Returns
    -------
    graphviz.Digraph

    Raises
    ------
    TypeError
        `root` is not a Tensor, or `params` / `collapse` has an unsupported type.
    ValueError
        ``show_grads=True`` with a root of more than one element, or after a backward from
        another tensor freed part of the root's graph; unknown module names in
        `collapse`, or names / True without a module as `params`.
    Examples
    --------
    >>> import numpy as np
    >>> import tinygrad_edu as tg
    >>> w = tg.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    >>> loss = (w * 2.0).sum()
    >>> source = draw_graph(loss, params={"w": w}).source
    >>> for line in source.splitlines():
    ...     if "->" in line or "label=" in line:
    ...         print(line.split(" fillcolor")[0].strip())   # "\n" is DOT's line break
    n0 [label="Sum\n()"
    n1 [label="Mul(·, 2)\n(3,)"
    n2 [label="w\n(3,) float32"
    n1 -> n0
    n2 -> n1
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"draw_graph needs the Tensor whose graph to draw, got {type(root).__name__}")
    if max_nodes is not None and (isinstance(max_nodes, bool) or not isinstance(max_nodes, int)
                                  or max_nodes < 2):
        raise ValueError(f"max_nodes must be an int >= 2 or None, got {max_nodes!r}")
    names = _parameter_names(params)
    fold, module_names = fold_rule(collapse, params)
    nodes, index, folded = boxes_to_draw(root, fold, collapse, params, max_nodes)

    norms = largest = None
    if show_grads:
        norms, largest = _gradient_norms(root, nodes, params)

    graph = _Drawing(
        name="graph",
        graph_attr={"rankdir": "TB"},
        node_attr={"fontname": "Helvetica", "fontsize": "10"},
        edge_attr={"arrowsize": "0.7"},
    )
    for node in nodes:
        lines, style = _describe(node, names, module_names, show_shapes)
        if norms is not None and id(node.obj) in norms:
            norm = norms[id(node.obj)]
            if norm is _NOT_KEPT:
                lines.append("|grad| not kept")
                style["fillcolor"] = _NOT_KEPT_FILL
            elif norm is _CLEARED:
                lines.append("|grad| cleared since backward?")
                style["fillcolor"] = _NOT_KEPT_FILL
            elif norm is _NO_ELEMENTS:
                lines.append("|grad| of no elements")
                style["fillcolor"] = _NO_GRAD_FILL
            else:
                lines.append("|grad| = none" if norm is None else f"|grad| = {norm:.1e}")
                style["fillcolor"] = _grad_colour(norm, largest)
        if node is nodes[0]:
            style["peripheries"] = "2"
            style["penwidth"] = "1.5"
        label = "\\n".join(line.replace("\\", "\\\\") for line in lines)
        graph.node(node.key, label=graphviz.nohtml(label), **style)
    for node in nodes:
        for source in node.inputs:
            graph.edge(index[id(source)].key, node.key)
    if norms is not None:
        not_kept = any(norm is _NOT_KEPT for norm in norms.values())
        cleared = any(norm is _CLEARED for norm in norms.values())
        graph.node("legend", label=_legend(largest, not_kept, cleared), shape="plaintext")
    if folded:
        graph.attr(label=graphviz.nohtml("folded: " + "; ".join(folded)), labelloc="t", fontsize="11")
    return graph


def render(
    graph: graphviz.Digraph, path: Union[str, os.PathLike], format: Optional[str] = None
) -> pathlib.Path:
    """Write a drawing to `path` as SVG, PNG or PDF (from the suffix, or `format`); returns the path.

    The file is written whole or not at all: the picture goes to a temporary file in the same
    folder, which then replaces `path`, so a failure leaves an existing file untouched.
    Needs the Graphviz `dot` program. In Jupyter no file is needed: a Digraph shows itself.

    Parameters
    ----------
    graph : graphviz.Digraph
        A drawing, e.g. from `draw_graph`.
    path : str or path-like
        Where to write; its folder must exist.
    format : {"svg", "png", "pdf"}, optional
        Overrides the suffix of `path`.

    Raises
    ------
    ValueError
        The format is not svg, png or pdf.
    GraphvizNotFoundError
        The `dot` program is missing (the message says how to install it).

    Examples
    --------
    >>> import pathlib, tempfile
    >>> import tinygrad_edu as tg
    >>> x = tg.Tensor([1.0, 2.0], requires_grad=True, name="x")
    >>> graph = draw_graph((x * x).sum())
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = render(graph, pathlib.Path(folder) / "square.svg")
    ...     print(path.name, "<svg" in path.read_text())
    square.svg True
    """
    if not hasattr(graph, "pipe"):
        raise TypeError(f"render needs a graphviz.Digraph (e.g. from draw_graph), got {type(graph).__name__}")
    path = pathlib.Path(path)
    if format is None:
        format = _FORMATS.get(path.suffix.lower())
        if format is None:
            raise ValueError(
                f"cannot tell the format from the file name {path.name!r}: use a .svg, .png or .pdf "
                "suffix, or pass format='svg' / 'png' / 'pdf'"
            )
    elif not isinstance(format, str) or format.lower() not in _FORMATS.values():
        raise ValueError(f"format must be 'svg', 'png' or 'pdf', got {format!r}")
    try:
        picture = graph.pipe(format=format.lower())
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFoundError(_NO_DOT) from None
    with atomic_write(path) as file:
        file.write(picture)
    return path


# ---- naming ------------------------------------------------------------------------------
def _parameter_names(params) -> dict:
    """id(graph item) -> (position, name) for the tensors `params` names; position keeps their order."""
    names = {}
    for position, (name, tensor) in enumerate(named_tensors(params)):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"params entry {name!r} is a {type(tensor).__name__}, not a Tensor")
        names.setdefault(id(node_of(tensor)), (position, name))  # the item that stands for it
    return names


def _given_name(item, names: dict) -> Optional[str]:
    """The name a user gave the tensor this item stands for (params, else .name), or None."""
    if id(item) in names:
        return names[id(item)][1]
    # Tensor.name on a non-leaf is kept by its node as `label`: the tensor itself may be gone.
    return (item.label if type(item) is Context else item.name) or None


# ---- labels and styles -------------------------------------------------------------------
def _describe(node: Box, names: dict, module_names: dict, show_shapes: bool):
    """The label lines and the Graphviz attributes of one node."""
    obj = node.obj
    if node.kind == "constant":
        lines = ["constant"]
        if show_shapes:
            dtype = f" {obj.dtype}" if isinstance(obj, np.ndarray) else ""  # lists have none
            lines.append(shape_text(np.shape(obj)) + dtype)
        return lines, {"shape": "box", "style": "dashed,filled", "fillcolor": _CONSTANT_FILL}

    if node.kind == "leaf":
        default = "tensor" if obj.requires_grad else "constant"
        lines = [_given_name(obj, names) or default]
        if show_shapes:
            lines.append(f"{shape_text(obj.shape)} {obj.dtype}")
        if obj.requires_grad:
            return lines, {"shape": "box", "style": "filled", "fillcolor": _PARAMETER_FILL}
        return lines, {"shape": "box", "style": "dashed,filled", "fillcolor": _CONSTANT_FILL}

    if node.kind == "folded":
        module = node.module
        qualified = module_names.get(id(module))
        title = type(module).__name__
        lines = [f"{qualified}: {title}" if qualified else title]
        if show_shapes:
            lines.append(shape_text(obj.shape))
        lines.extend(_hidden_parameters(node.hidden, names, show_shapes))
        return lines, {"shape": "box3d", "style": "filled", "fillcolor": _FOLDED_FILL}

    if node.kind == "more":
        style = {"shape": "note", "style": "filled", "fillcolor": _FOLDED_FILL}
        return [node.title, "(beyond max_nodes)"], style

    if node.kind == "repeat":
        lines = [node.title]
        if show_shapes:
            lines.append(shape_text(obj.shape))
        lines.extend(_hidden_parameters(node.hidden, names, show_shapes, constants=True))
        return lines, {"shape": "box3d", "style": "filled", "fillcolor": _FOLDED_FILL}

    title = obj.name
    if "index" in getattr(obj, "__dict__", {}):  # indexing: GetItem[:, 1:], as the learner wrote it
        title = f"{title}[{index_text(obj.index)}]"
    if any(argument is not None for argument in node.arguments):
        shown = ", ".join("·" if argument is None else _number_text(argument) for argument in node.arguments)
        title = f"{title}({shown})"
    name = _given_name(obj, names)
    lines = [f"{name} = {title}" if name else title]
    if show_shapes:
        lines.append(shape_text(obj.shape))
    return lines, {"shape": "ellipse", "style": "filled", "fillcolor": _OP_FILL}


def _hidden_parameters(hidden: list, names: dict, show_shapes: bool, constants: bool = False) -> list:
    """Lines naming the parameters a folded call hides, in the order params listed them (and,
    for a folded run, how many constants it hides)."""
    if constants:
        arrays = [item for item in hidden if not getattr(item, "requires_grad", False)]
        hidden = [item for item in hidden if getattr(item, "requires_grad", False)]
        lines = _hidden_parameters(hidden, names, show_shapes)
        if arrays:
            lines.append(f"+{len(arrays)} constant{'s' if len(arrays) > 1 else ''}")
        return lines
    named = sorted(
        ((names[id(t)] if id(t) in names else (math.inf, t.name), t)
         for t in hidden if _given_name(t, names)),
        key=lambda pair: pair[0][0],  # never compare the Tensors themselves (elementwise)
    )
    lines = [name + (f" {shape_text(t.shape)}" if show_shapes else "") for (_, name), t in named]
    unnamed = len(hidden) - len(named)
    if len(lines) > _MAX_LISTED_PARAMETERS:
        unnamed += len(lines) - (_MAX_LISTED_PARAMETERS - 1)
        lines = lines[: _MAX_LISTED_PARAMETERS - 1]
    if unnamed:
        lines.append(f"+{unnamed} more tensor{'s' if unnamed > 1 else ''}")
    return lines


def _number_text(value) -> str:
    if isinstance(value, bool) or not isinstance(value, numbers.Number):
        return repr(value)[:12]
    return f"{value:.4g}"


# ---- gradient norms and their colours -----------------------------------------------------
def _gradient_norms(root: Tensor, nodes: list, params):
    """id(item) -> L2 norm of d(root)/d(the tensor it stands for) (None: no gradient; _NOT_KEPT:
    backward did not keep it; _CLEARED: emptied since; _NO_ELEMENTS: an empty tensor) for every
    drawn item that requires grad, and the largest finite norm (None when there is none)."""
    if root.size != 1:
        raise ValueError(
            f"show_grads=True needs a root with one element (a loss), but it has shape {root.shape}; "
            "reduce it first, e.g. draw_graph(out.sum(), show_grads=True)"
        )
    items = [node.obj for node in nodes if node.kind not in ("constant", "more") and node.obj.requires_grad]
    if not items:
        return {}, None
    if any(type(item) is Context and item.freed for item in items):
        top = node_of(root)
        if type(top) is Context and not top.freed:
            # A backward from another tensor freed part of this graph: the .grad it left are that
            # tensor's gradients, and this root's can no longer be computed.
            raise ValueError(
                "show_grads=True cannot show the gradients of this root: a backward() from another "
                "tensor freed part of its graph, so the .grad there belong to that tensor, not to this "
                "root. Draw before that backward (or give it retain_graph=True), or draw without "
                "show_grads")
        gradients = _kept_gradients(items, params)
    else:
        # tg.grad takes nodes too: the gradient with respect to the tensor a node made.
        try:
            gradients = _grad(root, items, retain_graph=True, allow_unused=True)
        except RuntimeError as error:  # the user called draw_graph: say that it ran a backward pass
            raise RuntimeError(f"show_grads=True runs a backward pass from this root to find the "
                               f"gradients, and it failed: {error}. Drawn without show_grads, the "
                               "graph still shows") from error
    norms, finite = {}, []
    for item, gradient in zip(items, gradients):
        if gradient is None or gradient is _NOT_KEPT or gradient is _CLEARED:
            norms[id(item)] = gradient
            continue
        # float64: squaring float32 gradients of 1e20 would overflow to inf.
        values = np.asarray(getattr(gradient, "data", gradient), dtype=np.float64)
        if values.size == 0:  # a norm of 0 would be drawn red, as if the gradient had died
            norms[id(item)] = _NO_ELEMENTS
            continue
        norm = float(np.linalg.norm(values.ravel()))
        norms[id(item)] = norm
        if math.isfinite(norm):
            finite.append(norm)
    return norms, (max(finite) if finite else None)


def _kept_gradients(items: list, params) -> list:
    """After backward: each item's .grad where backward kept one (leaves; tensors in params that
    asked with retain_grad()), else _NOT_KEPT for intermediates, _CLEARED for leaves (backward
    filled their .grad, so zero_grad() or the like emptied it since)."""
    tensors = {id(node_of(tensor)): tensor for _, tensor in named_tensors(params)
               if isinstance(tensor, Tensor)}
    gradients = []
    for item in items:
        tensor = item if isinstance(item, Tensor) else tensors.get(id(item))
        if tensor is not None and tensor.grad is not None:
            gradients.append(tensor.grad)
        else:
            gradients.append(_CLEARED if isinstance(item, Tensor) else _NOT_KEPT)
    return gradients


def _grad_colour(norm: Optional[float], largest: Optional[float]) -> str:
    """Green for the largest norm, through yellow and orange, to red at 1e-6 of it and below."""
    if norm is None:
        return _NO_GRAD_FILL
    if not math.isfinite(norm):
        return _NOT_FINITE_FILL
    if not largest or norm <= 0.0:
        return _ratio_colour(0.0)
    return _ratio_colour(norm / largest)


def _ratio_colour(ratio: float) -> str:
    # Decades below the largest norm, 0 (largest) to 1 (a million times smaller or less).
    depth = 1.0 if ratio <= _VANISHING_RATIO else math.log10(ratio) / math.log10(_VANISHING_RATIO)
    depth = min(max(depth, 0.0), 1.0)
    red, green, blue = colorsys.hsv_to_rgb((1.0 - depth) / 3.0, 0.55, 0.98)  # hue 1/3 is green
    return "#{:02x}{:02x}{:02x}".format(round(red * 255), round(green * 255), round(blue * 255))


def _legend(largest: Optional[float], after_backward: bool = False, cleared: bool = False) -> str:
    """An HTML-like Graphviz label: a small table explaining the gradient colours."""
    rows = [
        (_ratio_colour(1.0), "as large as the largest"),
        (_ratio_colour(1e-2), "1e-2 of the largest"),
        (_ratio_colour(1e-4), "1e-4 of the largest"),
        (_ratio_colour(_VANISHING_RATIO), "1e-6 or less: vanishing"),
        (_NOT_FINITE_FILL, "nan or inf: exploding"),
        (_NO_GRAD_FILL, "no gradient reaches it"),
    ]
    if after_backward:
        # The drawing reaches a tensor only through params: its graph node does not keep it.
        rows.append((_NOT_KEPT_FILL,
                     "not kept by backward (to see it: retain_grad(), and the tensor in params)"))
    if cleared:
        rows.append((_NOT_KEPT_FILL, "cleared since backward (zero_grad?): draw before clearing"))
    top = "none" if largest is None else f"{largest:.1e}"
    cells = "".join(
        f'<tr><td bgcolor="{colour}">  </td><td align="left">{text}</td></tr>' for colour, text in rows
    )
    return (
        '<<table border="0" cellborder="1" cellspacing="0" cellpadding="3">'
        f'<tr><td colspan="2"><b>|grad| colours</b> (largest |grad| = {top})</td></tr>{cells}</table>>'
    )
