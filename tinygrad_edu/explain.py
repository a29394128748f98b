"""`tg.explain`: the backward pass of a graph written out as equations with shapes.

Each op's docstring states its rule ("z = x @ y;  dz/dx = grad @ y.T, ..."); this module fills
the op's symbols with the names of the tensors involved, so a learner can hold the result next
to a derivation on paper. It only reads the graph.
"""
from __future__ import annotations

import functools
import html
import inspect
import re

import numpy as np

from .autograd import Context, node_of, toposort
from .nn.module import named_tensors
from .tensor import Tensor, broadcast_axes

_SYMBOL = re.compile(r"\bxs\[i\]|\b(?:grad|cond|xs|[xyztpwb])\b")


def explain(root: Tensor, params=None) -> "Explanation":
    """The backward pass that produced ``root``'s gradients, one equation per step, with shapes.

    Parameters
    ----------
    root : Tensor
        The result (usually the scalar loss) whose graph to explain, before or after
        ``backward()`` (backward frees the saved arrays, not the graph's structure).
    params : Module, dict or list, optional
        Names for tensors: a Module's parameter names, a dict's keys (arrays used as constant
        inputs may be named too, e.g. ``{"X": X}``), or ``params[i]`` for a list. Otherwise a
        tensor's own ``.name`` is used; other leaves are ``c1, c2, ...`` (constants) or
        ``w1, w2, ...`` (requiring grad), intermediate values ``v1, v2, ...``, the root ``L``.

    Returns
    -------
    Explanation
        A str (shown as formatted text in Jupyter): a "Forward" section (each recorded
        operation with its input and output shapes) and a "Backward" section: for every input
        that needs a gradient, ``dL/d<input> = ...`` in terms of the step's upstream gradient
        ``dL/d<output>``, with shapes. A tensor used twice gets ``=`` for its first
        contribution and ``+=`` for the next, as the engine adds them; equal contributions
        from one op are one line with their count (``2 * (...)``). Well-known functions are
        named with their rule beside them (``sigmoid(v1) = ...``) and reductions say their
        axes (``sum(v2, axis=0)``). With nothing recorded (a leaf, a result of no_grad) one
        line says so.

    Examples
    --------
    >>> import tinygrad_edu as tg
    >>> X = tg.Tensor([[1.0, 2.0]], name="X")
    >>> W = tg.Tensor([[0.5], [-0.5]], requires_grad=True, name="W")
    >>> print(tg.explain((X @ W).sigmoid().sum()))
    Forward (3 operations):
      v1 = X @ W                        (1, 2) @ (2, 1) -> (1, 1)
      v2 = sigmoid(v1) = 1 / (1 + exp(-v1))   (1, 1) -> (1, 1)
      L = sum(v2, axis=(0, 1))          (1, 1) -> ()
    Backward (chain rule from L back to the leaves; dL/dL = 1):
      dL/dv2 = dL/dL spread back over axes (0, 1)         -> (1, 1)
      dL/dv1 = dL/dv2 * v2 * (1 - v2)                     -> (1, 1)
      dL/dW = X.T @ dL/dv1                                (2, 1) @ (1, 1) -> (2, 1)
    """
    if not isinstance(root, Tensor):
        raise TypeError(f"explain() needs the Tensor whose graph to explain, got {type(root).__name__}")
    order = [item for item in toposort([root]) if type(item) is Context]  # the ops, inputs first
    chains = builtin_sum_chains(order)
    folded = {key: base for key, (base, _) in chains.items()}
    hidden = {inside for _, ids in chains.values() for inside in ids}
    order = [node for node in order if id(node) not in hidden]
    names = _Names(params, root)
    forward = [_folded_forward(node, folded[id(node)], names) if id(node) in folded
               else _forward_line(node, names) for node in order]
    backward = []
    contributed = set()  # ids of items that already received a gradient contribution
    for node in reversed(order):
        if id(node) in folded:
            # The summed tensor: its rows were recorded, so it needs a gradient.
            steps = [(folded[id(node)], f"dL/d{names.of(node)} copied to every row",
                      f"{node.shape} -> {folded[id(node)].shape}")]
        else:
            steps = [(parent, *_backward_line(node, i, parent, names))
                     for i, parent in enumerate(node.parents) if node.needs_input_grad[i]]
        for parent, rhs, shapes, uses in _merge_repeated(steps):
            operator = "+=" if id(parent) in contributed else "="
            contributed.add(id(parent))
            rhs = rhs if uses == 1 else f"{uses} * {rhs}" if _is_bare(rhs) else f"{uses} * ({rhs})"
            backward.append((f"dL/d{names.of(parent)} {operator} {rhs}", shapes))
    lines = [f"Forward ({len(order)} operation{'s' if len(order) != 1 else ''}):"]
    lines += [_columns(text, shapes, 35) for text, shapes in forward]
    root_name = names.of(node_of(root))
    lines.append(f"Backward (chain rule from {root_name} back to the leaves; "
                 f"dL/d{root_name} = {'1' if root.size == 1 else 'the given gradient'}):")
    lines += [_columns(text, shapes, 53) for text, shapes in backward]
    if not order:  # an empty text would leave the learner guessing why
        lines.append(f"  (nothing to explain: {root_name} is a leaf that requires grad; no operation made it)"
                     if root.requires_grad else
                     f"  (nothing to explain: {root_name} does not require grad, so no operation was "
                     "recorded: none of its inputs required grad, or it was computed under tg.no_grad())")
    return Explanation("\n".join(lines))


class Explanation(str):
    """The text `explain` returns: a str (print it, compare it, write it to a file) that a Jupyter
    notebook shows as formatted text, not as a quoted string full of \\n."""

    def __repr__(self) -> str:  # the Python prompt shows the text itself, as print() would
        return str(self)

    def _repr_pretty_(self, printer, cycle) -> None:  # IPython's text display
        printer.text(str(self))

    def _repr_html_(self) -> str:  # Jupyter: the equations, monospaced so their columns line up
        return f"<pre>{html.escape(str(self))}</pre>"


def _merge_repeated(steps: list) -> list:
    """(parent, rhs, shapes, uses): one line for a tensor that is several inputs of one op with the
    same rule (w * w gives dL/dw = 2 * (dL/dv * w), not the same line twice)."""
    merged = []
    for parent, rhs, shapes in steps:
        same = [i for i, (p, r, _, _) in enumerate(merged) if p is parent and r == rhs]
        if same:
            p, r, sh, uses = merged[same[0]]
            merged[same[0]] = (p, r, sh, uses + 1)
        else:
            merged.append((parent, rhs, shapes, 1))
    return merged


def _is_bare(expression: str) -> bool:
    """True when the expression needs no brackets as a factor: a name, or a call / bracketed term."""
    return bool(re.fullmatch(r"[\w.\[\]/]+|[^+\-]*\(.*\)", expression)) and not _top_level_sum(expression) \
        and " * " not in expression


def _columns(text: str, shapes: str, width: int) -> str:
    return f"  {text:<{width - 2}} {shapes}".rstrip() if len(text) < width - 2 else f"  {text}   {shapes}"


class _Names:
    """Readable names for the items of one graph (nodes, leaves, arrays), keyed by id()."""

    def __init__(self, params, root: Tensor):
        # A Tensor is named through the item that stands for it in the graph (its node, or itself).
        self.by_id = {id(node_of(x) if isinstance(x, Tensor) else x): name
                      for name, x in named_tensors(params)}
        self.by_id.setdefault(id(node_of(root)), root.name or "L")
        self.counts = {"v": 0, "c": 0, "w": 0}

    def of(self, obj) -> str:
        if not isinstance(obj, (Context, Tensor, np.ndarray)):
            return _number(obj)
        if id(obj) not in self.by_id:
            if isinstance(obj, Tensor) and id(obj.data) in self.by_id:  # an array wrapped on the way in
                self.by_id[id(obj)] = self.by_id[id(obj.data)]
            elif type(obj) is Context and obj.label:  # a non-leaf's .name, kept by its node
                self.by_id[id(obj)] = obj.label
            elif isinstance(obj, Tensor) and obj.name:
                self.by_id[id(obj)] = obj.name
            else:
                kind = "v" if type(obj) is Context else "w" if getattr(obj, "requires_grad", False) else "c"
                self.counts[kind] += 1
                self.by_id[id(obj)] = f"{kind}{self.counts[kind]}"
        return _one_line(self.by_id[id(obj)])


def _one_line(name) -> str:
    """A name as it can stand in one line of equations: control characters (a newline) escaped."""
    text = str(name)
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _number(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float, np.number)) else repr(value)


# ---- Python's built-in sum() ----------------------------------------------------------------------
def builtin_sum_chains(order: list) -> dict:
    """Find Python's ``sum(t)`` in the graph: it adds t's rows one at a time, 0 + t[0] + t[1] + ...,
    which is thousands of nodes for a 5000-row t. `order` lists the ops, inputs first. Returns
    {id(last add): (t, ids of the adds and row picks inside the chain)} for each complete chain,
    so drawings and explanations can show it as one sum over axis 0."""
    partial = {}  # id(partial sum) -> [t, row indices added so far, ids of nodes inside the chain]
    complete = {}
    for node in order:
        if node.fn.__name__ != "Add" or len(node.parents) != 2 or not _is_row(node.parents[1]):
            continue
        left, row = node.parents
        base, index = row.parents[0], row.index
        if isinstance(left, (int, float)) and left == 0:
            chain = [base, {index}, [id(row)]]
        elif type(left) is Context and id(left) in partial and partial[id(left)][0] is base \
                and index not in partial[id(left)][1]:
            # The partial sum is extended by one more row: its records move on (no copies, so
            # a 5000-row sum costs 5000 steps, not 5000**2).
            chain = partial.pop(id(left))
            chain[1].add(index)
            chain[2] += [id(left), id(row)]
        else:
            continue
        partial[id(node)] = chain
        rows = base.shape[0] if base.shape else 0
        if len(chain[1]) == rows and rows > 1:
            complete[id(node)] = (base, chain[2])
    return complete


def _is_row(item) -> bool:
    """item is the node of t[i] for an integer i (what iterating over a Tensor gives)."""
    if type(item) is not Context or item.fn.__name__ != "GetItem":
        return False
    return isinstance(item.index, (int, np.integer))


def _folded_forward(out: Context, base, names: _Names) -> tuple:
    return (f"{names.of(out)} = sum(rows of {names.of(base)})",
            f"{base.shape} -> {out.shape}   (Python's built-in sum: {base.shape[0]} additions)")


# ---- reading an op's rule from its docstring ---------------------------------------------------
@functools.lru_cache(maxsize=None)
def _rule(fn) -> tuple:
    """(forward expression, {input symbol: partial}, input symbols) from the op's docstring."""
    first_line = (fn.__doc__ or "").strip().splitlines()[0]
    forward, _, partials = first_line.partition(";")
    rules = {}
    for part in re.split(r",\s+(?=dz/d)", partials.strip()):
        symbol, _, expression = part.partition(" = ")
        rules[symbol.removeprefix("dz/d")] = expression.strip()
    signature = inspect.signature(fn.forward).parameters.values()
    symbols = tuple(p.name for p in signature if p.name != "ctx"
                    and p.kind in (p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL) and p.default is p.empty)
    return forward.strip().removeprefix("z = "), rules, symbols


def _symbol_of(fn, index: int) -> str:
    symbols = _rule(fn)[2]
    if symbols and symbols[-1] == "xs":  # variadic ops (concatenate, einsum)
        return "xs[i]"
    return symbols[index]


def _fill(expression: str, node: Context, names: _Names, current=None) -> str:
    """The expression with the op's symbols replaced by names (grad -> dL/d<output>); for variadic
    ops, xs[i] is the input at position `current`."""
    symbols = _rule(node.fn)[2]
    table = {"z": names.of(node), "grad": f"dL/d{names.of(node)}"}
    if symbols and symbols[-1] == "xs":
        table["xs"] = f"[{', '.join(names.of(p) for p in node.parents)}]"
        table["xs[i]"] = names.of(node.parents[current]) if current is not None else "xs[i]"
    else:
        for symbol, parent in zip(symbols, node.parents):
            table[symbol] = _input_name(node, symbol, parent, names)
    expression = expression.replace("grad.T", "(grad).T")  # (dL/dv).T, not dL/d(v.T)
    if "index" in getattr(node, "__dict__", {}):  # indexing: the index the learner wrote, m[-1, 1:]
        shown = index_text(node.index)
        expression = re.sub(r"\[?\bindex\b\]?", f"[{shown}]", expression)
    return _SYMBOL.sub(lambda match: table.get(match.group(0), match.group(0)), expression)


def index_text(index) -> str:
    """An index as it was written: -1, 1:3, ..., or an array by its dtype and shape."""
    if isinstance(index, tuple):
        return ", ".join(index_text(part) for part in index)
    if isinstance(index, slice):
        text = ":".join("" if end is None else str(end) for end in (index.start, index.stop))
        return text if index.step is None else f"{text}:{index.step}"
    if index is Ellipsis:
        return "..."
    if isinstance(index, (int, np.integer)) or index is None:
        return str(index)
    array = np.asarray(getattr(index, "data", index))
    return f"<{array.dtype} array {array.shape}>"


def _input_name(node: Context, symbol: str, parent, names: _Names) -> str:
    """The name an input goes by in the op's rule: cross-entropy's class indices stand for one-hot rows."""
    name = names.of(parent)
    if symbol == "t" and node.fn.__name__ == "SoftmaxCrossEntropy" and isinstance(parent, np.ndarray) \
            and parent.dtype.kind in "iu":
        return f"onehot({name})"
    return name


def _top_level_sum(expression: str) -> bool:
    """True when a + or - outside all parentheses joins terms (a product must then bracket it)."""
    depth = 0
    for i, char in enumerate(expression):
        depth += (char == "(") - (char == ")")
        if depth == 0 and char in "+-" and expression[i - 1:i + 2] in (" + ", " - "):
            return True
    return False


def _shape(item) -> tuple:
    """The shape of a graph input: a node's output, a leaf, or a constant (a list has one too)."""
    return item.shape if isinstance(item, (Context, Tensor)) else np.shape(item)


def _is_matrix_transpose(node: Context) -> bool:
    return node.fn.__name__ == "Transpose" and tuple(node.axes) == (1, 0)


def _reduction_note(node: Context) -> str:
    """Fused losses reduce inside the op; say how, since the rule in the docstring is per sample."""
    reduction = getattr(node, "reduction", None)
    return "" if reduction in (None, "none") else f"  [reduction='{reduction}']"


def _forward_line(node: Context, names: _Names) -> tuple:
    if _is_matrix_transpose(node):  # what nn.Linear does to its weight: read it as W.T
        weight = node.parents[0]
        return f"{names.of(node)} = {names.of(weight)}.T", f"{weight.shape} -> {node.shape}"
    expression = _with_axis(_fill(_rule(node.fn)[0], node, names), node)
    if _named_function(node.fn):  # sigmoid(v1) = 1 / (1 + exp(-v1)): the name, then the rule
        arguments = ", ".join(names.of(p) for p in node.parents)
        expression = f"{_named_function(node.fn)}({arguments}) = {expression}"
    expression += _reduction_note(node)
    shapes = [_shape(p) for p in node.parents]
    if node.fn.__name__ == "MatMul":
        return f"{names.of(node)} = {expression}", f"{shapes[0]} @ {shapes[1]} -> {node.shape}"
    graph_inputs = (Context, Tensor, np.ndarray)  # numbers are written into the expression, not shaped
    shown = ", ".join(str(s) for p, s in zip(node.parents, shapes) if isinstance(p, graph_inputs))
    return f"{names.of(node)} = {expression}", f"{shown} -> {node.shape}"


def _backward_line(node: Context, index: int, parent, names: _Names) -> tuple:
    """(the gradient that flows from `node` to its input `parent`, the shapes involved)."""
    symbol = _symbol_of(node.fn, index)
    partial = _rule(node.fn)[1].get(symbol, "")
    upstream = f"dL/d{names.of(node)}"
    if _is_matrix_transpose(node):
        return f"({upstream}).T", f"{node.shape} -> {parent.shape}"
    if re.search(r"\bgrad\b", partial):  # already a vector-Jacobian product: grad @ y.T, ...
        rhs = _fill(partial, node, names, index)
    elif partial == "1":
        rhs = upstream
    elif partial:
        filled = _fill(partial, node, names, index)
        bare = re.fullmatch(r"[\w.\[\]]+|[^+\-]*\(.*\)", filled) and not _top_level_sum(filled)
        rhs = f"{upstream} * {filled}" if bare else f"{upstream} * ({filled})"
    else:
        rhs = f"(the gradient rule of {node.fn.__name__})"
    rhs = _with_axis(rhs, node) + _reduction_note(node)
    shape = parent.shape
    product = _product_shapes(partial, node, index) if "@" in partial else None
    if product:
        shapes = f"{product} -> {shape}"
    elif "einsum(" in partial:  # a product over named axes (conv): the shapes of its operands
        shapes = f"{_einsum_operand_shapes(partial, node, symbol)} -> {shape}"
    elif (node.fn.broadcasts or partial == "grad") and shape != node.shape:
        shapes = f"{node.shape} summed over {_summed_axes(shape, node.shape)} -> {shape}"
    else:
        shapes = f"-> {shape}"
    return rhs, shapes


@functools.lru_cache(maxsize=None)
def _named_function(fn) -> str:
    """The well-known name of an op whose rule is a formula that does not say it (Sigmoid's
    "1 / (1 + exp(-x))" is ``sigmoid``), else "". Operators (x + y, x[index]) and rules that
    already name their function (exp(x), x.reshape(shape)) need none."""
    # SoftmaxCrossEntropy -> softmax_cross_entropy
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", fn.__name__).lower()
    expression, _, symbols = _rule(fn)
    words = set(re.findall(r"[A-Za-z_]\w*", expression)) - set(symbols) - {"T", "xs"}
    return name if words and name not in words else ""


def _with_axis(text: str, node: Context) -> str:
    """The rule with the axes this node reduced over: sum(v1, axis=0), spread back over axis 0."""
    axes = _reduced_axes(node)
    if axes is None:
        return text
    axis = axes[0] if len(axes) == 1 else axes
    text = re.sub(r"\baxis\b(?!\s*=)", f"axis={axis}", text)
    return text.replace("the summed axes", f"axis {axis}" if len(axes) == 1 else f"axes {axes}")


def _reduced_axes(node: Context):
    """The axes a reduction ran over, as a tuple, or None when the op does not reduce."""
    if "axis" in getattr(node, "__dict__", {}) and node.axis is not None:
        return tuple(np.atleast_1d(node.axis).tolist())
    kept = getattr(node, "kept_shape", None)
    if kept is None or not node.parents:
        return None
    shape = _shape(node.parents[0])
    dropped = len(node.shape) < len(shape)  # keepdims=False: every reduced axis went away
    return tuple(i for i, (n, k) in enumerate(zip(shape, kept)) if k == 1 and (n != 1 or dropped))


def _einsum_operand_shapes(partial: str, node: Context, current: str) -> str:
    """'(4, 2, 4, 4), windows of (4, 1, 6, 6)': the upstream gradient's shape, then each input the
    rule names (other than the one whose gradient this is)."""
    shapes = [str(node.shape)]
    for symbol, parent in zip(_rule(node.fn)[2], node.parents):
        if symbol != current and re.search(rf"windows\({symbol}\)", partial):
            shapes.append(f"windows of {_shape(parent)}")
        elif symbol != current and re.search(rf"\b{symbol}\b", partial):
            shapes.append(str(_shape(parent)))
    return ", ".join(shapes)


def _product_shapes(expression: str, node: Context, current: int):
    """A matrix-product rule with shapes for names: 'grad @ y.T' -> '(5, 2) @ (2, 3)'.
    None unless every operand is a matrix (vectors and batches are reshaped by the op)."""
    symbols = _rule(node.fn)[2]
    shapes = {"grad": node.shape, "z": node.shape}
    shapes.update((s, _shape(p)) for s, p in zip(symbols, node.parents))
    used = [shapes.get(name) for name in re.findall(r"\b(?:grad|[xyzwb])\b", expression)]
    if any(shape is None or len(shape) != 2 for shape in used):
        return None

    def shape_of(match):
        shape = shapes.get(match.group(1))
        return match.group(0) if shape is None else str(shape[::-1] if match.group(2) else shape)

    return re.sub(r"(\b(?:grad|[xyzwb])\b)(\.T)?", shape_of, expression.split("(")[0].strip())


def _summed_axes(shape: tuple, out_shape: tuple) -> str:
    """Which axes of the output the engine sums to bring a gradient back to `shape` (unbroadcast)."""
    added, stretched = broadcast_axes(shape, out_shape)
    axes = added + stretched
    return f"axis {axes[0]}" if len(axes) == 1 else f"axes {tuple(axes)}"
