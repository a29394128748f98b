"""What draw_graph draws: the walk from a root to boxes, and folding a large graph to a budget.

Module calls collapse into one box, Python's built-in sum and long runs of one op (or of one
block of ops) fold into a box that says how many it stands for, and what is still over the
budget becomes one box. Only reads the graph; viz.py turns the boxes into a picture.
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from .autograd import Context, node_of
from .explain import builtin_sum_chains
from .nn.module import Module
from .tensor import Tensor

_MAX_PERIOD = 8  # the longest block of ops looked for when folding repeats
_MIN_REPEATS = 3  # a block folds when it repeats at least this often in a row ...
_MIN_FOLDED = 6  # ... and covers at least this many nodes


class Box:
    """One box of the drawing: an op (its graph node), a leaf, a constant, or a folded module call."""

    __slots__ = ("key", "kind", "obj", "inputs", "arguments", "module", "hidden", "title")

    def __init__(self, kind: str, obj, inputs=(), arguments=(), module=None, hidden=(), title=""):
        self.key = ""
        self.kind = kind  # "op", "leaf", "constant", "folded" (a module call), "repeat" or "more"
        # The graph item: a Context (for "folded" and "repeat": the output), a leaf, a constant;
        # for "more" (the nodes beyond the budget) None.
        self.obj = obj
        self.inputs = list(inputs)  # graph items feeding this node, in argument order
        self.arguments = arguments  # for "op": its arguments, numbers kept, graph inputs None
        self.module = module
        self.hidden = hidden  # for "folded" and "repeat": the tensors folded away inside
        self.title = title  # for "repeat" and "more": what the node stands for



# ---- collapsing module calls ------------------------------------------------------------
def fold_rule(collapse, params):
    """Which module calls to fold: (a test module -> bool, or None; id(module) -> qualified name)."""
    module_names = {}
    if isinstance(params, Module):
        for name, module in params.named_modules():
            module_names.setdefault(id(module), name)
    if collapse is None or collapse is False:
        return None, module_names
    if collapse is True:
        if not isinstance(params, Module):
            raise ValueError(
                "collapse=True folds the direct children of the module given as params; "
                f"pass params=model (got params of type {type(params).__name__})"
            )
        chosen = {id(child) for child in params.children()}
        return (lambda module: id(module) in chosen), module_names
    if isinstance(collapse, (str, type)):
        collapse = [collapse]
    try:
        items = list(collapse)
    except TypeError:
        raise TypeError(
            "collapse must be None, True, or a list of module names and/or Module classes, "
            f"got {type(collapse).__name__}"
        ) from None
    wanted_names, classes = [], []
    for item in items:
        if isinstance(item, str):
            wanted_names.append(item)
        elif isinstance(item, type) and issubclass(item, Module):
            classes.append(item)
        else:
            raise TypeError(f"collapse items are module names or nn.Module classes, got {item!r}")
    chosen = set()
    if wanted_names:
        if not isinstance(params, Module):
            raise ValueError(
                "collapse by module name needs the model as params (names come from "
                f"params.named_modules()), got params of type {type(params).__name__}"
            )
        modules = dict(params.named_modules())
        unknown = [name for name in wanted_names if name not in modules]
        if unknown:
            valid = [repr(name) for name in modules]
            shown = ", ".join(valid[:30]) + (f", ... ({len(valid)} in all)" if len(valid) > 30 else "")
            raise ValueError(f"unknown module name(s) {', '.join(map(repr, unknown))}; valid names: {shown}")
        chosen = {id(modules[name]) for name in wanted_names}
    classes = tuple(classes)
    return (lambda module: id(module) in chosen or isinstance(module, classes)), module_names


def _folded_call(node: Context, fold: Callable):
    """The outermost chosen module call that produced `node`'s tensor, as (module, input ids), or None."""
    chosen = None
    # module_calls lists the innermost call first, so the last match is the outermost.
    for module, input_ids in node.module_calls or ():
        if fold(module) and id(node) not in input_ids:  # a call returning its input folds nothing
            chosen = (module, input_ids)
    return chosen


def _fold_inputs(output: Context, input_ids: tuple):
    """Walk back from a module call's output node to its inputs; returns (inputs found, hidden leaves)."""
    wanted = set(input_ids)
    found, hidden = {}, []
    seen = {id(output)}
    stack = [output]
    while stack:
        node = stack.pop()
        for parent in node.parents:
            if id(parent) in seen:
                continue
            seen.add(id(parent))
            # The isinstance test: a number's id could equal a freed input's (ids are reused).
            if id(parent) in wanted and isinstance(parent, (Context, Tensor, np.ndarray)):
                found[id(parent)] = parent
            elif type(parent) is Context:
                stack.append(parent)
            elif isinstance(parent, Tensor) and id(parent.data) in wanted:
                # An array passed to the module and wrapped into a constant Tensor inside it.
                found[id(parent.data)] = parent
            elif isinstance(parent, Tensor) and parent.requires_grad:
                hidden.append(parent)
    return [found[i] for i in input_ids if i in found], hidden


# ---- the walk ----------------------------------------------------------------------------
def _walk(root: Tensor, fold: Optional[Callable]):
    """A box for every graph item that leads to root, root first (depth first, an explicit stack).

    Returns the boxes and a dict id(item) -> box. Keyed by id(): Tensors compare
    elementwise, so they cannot go into sets or serve as dict keys.
    """
    nodes, index = [], {}
    stack = [node_of(root)]
    while stack:
        obj = stack.pop()
        if id(obj) in index:
            continue
        node = _make_node(obj, fold)
        node.key = f"n{len(nodes)}"
        nodes.append(node)
        index[id(obj)] = node
        # Reversed, so the first argument is visited (and numbered) first.
        stack.extend(source for source in reversed(node.inputs) if id(source) not in index)
    return nodes, index


def _make_node(item, fold: Optional[Callable]) -> Box:
    if isinstance(item, Tensor):
        return Box("leaf", item)
    if type(item) is not Context:
        return Box("constant", item)
    call = _folded_call(item, fold) if fold is not None else None
    if call is not None:
        inputs, hidden = _fold_inputs(item, call[1])
        return Box("folded", item, inputs, module=call[0], hidden=hidden)
    inputs, arguments = [], []
    for parent in item.parents:
        if isinstance(parent, (Context, Tensor, np.ndarray, list, tuple)):
            inputs.append(parent)
            arguments.append(None)
        else:
            arguments.append(parent)  # a number: shown inside the op's label
    return Box("op", item, inputs, arguments=tuple(arguments))


# ---- folding repeated structure ------------------------------------------------------------
def boxes_to_draw(root: Tensor, fold, collapse, params, max_nodes):
    """The boxes to draw, id(item) -> box, and what was folded (phrases for the title).

    Cheapest loss first: built-in sums (never worth drawing row by row), then, in a graph
    over the budget, runs of repeated ops, then module calls, then the nodes farthest away.
    """
    nodes, index = _walk(root, fold)
    if max_nodes is None:
        return nodes, index, []

    def drawn():  # the boxes left, from whatever box now stands for the root
        return _reachable(index[id(node_of(root))], index)

    folded = _fold_builtin_sums(nodes, index)
    if len(drawn()) > max_nodes:
        folded += _fold_repeats(drawn(), index)
    if len(drawn()) > max_nodes and collapse is None:
        automatic = _automatic_fold_rule(params)
        nodes, index = _walk(root, automatic)
        folded = _fold_builtin_sums(nodes, index) + _fold_repeats(drawn(), index)
        folded.append("module calls collapsed")
    nodes = drawn()
    if len(nodes) > max_nodes:
        nodes, dropped = _cut_to_budget(nodes, index, max_nodes)
        folded.append(f"{dropped} nodes farthest from the root shown as one (max_nodes={max_nodes})")
    return nodes, index, folded


def _automatic_fold_rule(params) -> Callable:
    """For a large graph: fold the calls of the model's direct children, else of modules without
    children of their own (layers such as Linear)."""
    if isinstance(params, Module):
        chosen = {id(child) for child in params.children()}
        if chosen:
            return lambda module: id(module) in chosen
    return lambda module: next(iter(module.children()), None) is None


def _reachable(root_box: Box, index: dict) -> list:
    """The boxes that lead to root_box, root first, numbered n0, n1, ... in walk order."""
    boxes, seen = [], set()
    stack = [root_box]
    while stack:
        box = stack.pop()
        if id(box) in seen:
            continue
        seen.add(id(box))
        box.key = f"n{len(boxes)}"
        boxes.append(box)
        stack.extend(index[id(source)] for source in reversed(box.inputs))
    return boxes


def _replace(members: list, box: Box, index: dict) -> None:
    """Let `box` stand for every graph item of the boxes in `members` (edges then meet it)."""
    for member in members:
        index[id(member.obj)] = box


def _fold_builtin_sums(nodes: list, index: dict) -> list:
    """Replace each chain 0 + t[0] + t[1] + ... (Python's built-in sum over t) by one box."""
    order = sorted((node.obj for node in nodes if node.kind == "op"), key=lambda ctx: ctx.seq)
    chains = {last_id: (base, inside) for last_id, (base, inside) in builtin_sum_chains(order).items()
              if all(index[i].kind == "op" for i in inside)}  # none of it inside a folded module call
    for last_id, (base, inside) in chains.items():
        members = [index[last_id]] + [index[i] for i in inside]
        box = Box("repeat", index[last_id].obj, [base], title=f"sum over {base.shape[0]} rows")
        _replace(members, box, index)
    if not chains:
        return []
    rows = ", ".join(str(base.shape[0]) for base, _ in chains.values())
    return [f"{len(chains)} built-in sum{'s' if len(chains) > 1 else ''} over rows ({rows} rows)"]


def _signature(box: Box) -> Optional[tuple]:
    """What a box does, for spotting repeats: (op name, module class or folded title; output shape)."""
    if box.kind == "op":
        return box.obj.name, box.obj.shape
    if box.kind == "folded":
        return type(box.module).__name__, box.obj.shape
    if box.kind == "repeat":
        return box.title, box.obj.shape
    return None


def _fold_repeats(boxes: list, index: dict) -> list:
    """Fold runs of one op or one block of ops along a chain (each feeding only the next) into
    one box: ``Mul x 3000``, ``Linear -> Tanh x 300``."""
    consumers = {}
    for box in boxes:
        for source in box.inputs:
            consumers[id(index[id(source)])] = consumers.get(id(index[id(source)]), 0) + 1
    predecessor, successor, position = {}, {}, {}
    for box in boxes[1:]:  # the root stays a node of its own
        if _signature(box) is None:
            continue
        for i, source in enumerate(box.inputs):  # the chain runs through the first input only one box uses
            before = index[id(source)]
            if _signature(before) is not None and consumers[id(before)] == 1:
                predecessor[id(box)], successor[id(before)], position[id(box)] = before, box, i
                break
    folded = []
    for box in boxes[1:]:
        if _signature(box) is None or id(box) in predecessor:
            continue
        path = [box]
        while id(path[-1]) in successor:
            path.append(successor[id(path[-1])])
        folded += _fold_path(path, position, consumers, index)
    return folded


def _fold_path(path: list, position: dict, consumers: dict, index: dict) -> list:
    """Fold the repeated blocks of one chain of boxes (inputs first); returns what was folded."""
    signatures = [_signature(box) for box in path]
    folded, start = [], 0
    while start < len(path):
        period, repeats = 1, 1
        for length in range(1, _MAX_PERIOD + 1):
            block = signatures[start:start + length]
            count = 1
            while signatures[start + count * length:start + (count + 1) * length] == block:
                count += 1
            if count >= _MIN_REPEATS and length * count >= _MIN_FOLDED and length * count > period * repeats:
                period, repeats = length, count
        if repeats == 1:
            start += 1
            continue
        members = path[start:start + period * repeats]
        # What the run transforms comes in through the chain's input of its first box; at the start of
        # the path (no chain input), where the next block's copy of this op takes the chain, if the
        # first box has that input (the first conv of a net may take one input fewer: a constant).
        first = members[0]
        at = position.get(id(first), position[id(members[period])])
        entry = first.inputs[at] if at < len(first.inputs) else None
        folded.append(_fold_run(members, entry, signatures[start:start + period], repeats, consumers, index))
        start += period * repeats
    return folded


def _fold_run(members: list, entry, block: list, repeats: int, consumers: dict, index: dict) -> str:
    """One box for `members` (a block repeated `repeats` times, fed `entry`); returns the phrase
    for the title."""
    inside = {id(member) for member in members}
    uses = {}  # id(box) -> how many inputs of the run's boxes it feeds
    for member in members:
        for source in member.inputs:
            uses[id(index[id(source)])] = uses.get(id(index[id(source)]), 0) + 1
    inputs, hidden, seen = [], [], set()
    for member in members:
        for source in member.inputs:
            origin = index[id(source)]
            if id(origin) in inside or id(origin) in seen:
                continue
            seen.add(id(origin))
            # Tensors and constants only this run uses are listed inside the box, not drawn.
            if origin.kind in ("leaf", "constant") and source is not entry \
                    and consumers[id(origin)] == uses[id(origin)]:
                hidden.append(origin.obj)
            else:
                inputs.append(source)
    title = f"{' -> '.join(name for name, _ in block)} x {repeats}"
    box = Box("repeat", members[-1].obj, inputs, hidden=hidden, title=title)
    _replace(members, box, index)
    for item in hidden:
        index[id(item)] = box
    return f"{title} as one node"


def _cut_to_budget(boxes: list, index: dict, max_nodes: int):
    """Keep the max_nodes - 1 boxes nearest the root (breadth first); one box stands for the rest."""
    kept, seen = [], {id(boxes[0])}
    queue = [boxes[0]]
    while queue and len(kept) < max_nodes - 1:
        box = queue.pop(0)
        kept.append(box)
        for source in box.inputs:
            origin = index[id(source)]
            if id(origin) not in seen:
                seen.add(id(origin))
                queue.append(origin)
    dropped = len(boxes) - len(kept)
    kept_ids = {id(box) for box in kept}
    more = Box("more", None, title=f"... {dropped} more nodes")
    for number, box in enumerate(kept + [more]):
        box.key = f"n{number}"
    for item_id, box in index.items():
        if id(box) not in kept_ids:
            index[item_id] = more
    for box in kept:  # one edge from the summary into each kept box that it feeds
        outside = [source for source in box.inputs if index[id(source)] is more]
        if outside:
            box.inputs = [source for source in box.inputs if index[id(source)] is not more] + outside[:1]
    return kept + [more], dropped
