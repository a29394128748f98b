"""The engine: how a forward call records a graph node, and how backward walks the graph.

Read it top to bottom: grad mode, the node (`Context`), `Function.apply` (forward + recording),
`unbroadcast` (the one place gradients are reduced to an input's shape), `toposort`, and
`backward` / `grad`. It does no array math of its own; every operation lives in ops.py.
"""
from __future__ import annotations

import contextlib
import heapq
import itertools

import numpy as np

from .tensor import Tensor

# ---- grad mode: the only global state of the engine ------------------------------------
_grad_enabled = True


def is_grad_enabled() -> bool:
    """True when new operations are recorded into the graph."""
    return _grad_enabled


class _GradMode(contextlib.ContextDecorator):
    """Switch recording on or off inside a `with` block or a decorated function."""

    enabled = True

    def __new__(cls, func=None):
        mode = super().__new__(cls)
        mode._previous = []  # a stack, so one decorated function can call itself
        # Allow the bare decorator form `@no_grad` as well as `@no_grad()`.
        return mode(func) if callable(func) else mode

    def __enter__(self):
        global _grad_enabled
        self._previous.append(_grad_enabled)
        _grad_enabled = self.enabled

    def __exit__(self, *exc_info):
        global _grad_enabled
        _grad_enabled = self._previous.pop()  # restored even when the block raised (None: not swallowed)


class no_grad(_GradMode):
    """Context manager and decorator: operations inside are not recorded (evaluation, updates)."""

    enabled = False


class enable_grad(_GradMode):
    """Context manager and decorator: record operations again, even inside `no_grad`."""

    enabled = True


# Optional checks that guards.py installs while they are on: f(cls, arrays, output) after the
# forward of an op that broadcasts, f(cls, arrays, output, ctx) after every forward, and
# f(ctx, input_grads) after each backward step. None costs nothing.
_broadcast_check = _forward_check = _backward_check = None


# ---- the graph node ----------------------------------------------------------------------
class Context:
    """One node of the graph: which Function ran, on what, what it saved, and what it made.

    `parents` lists the op's inputs as the graph sees them: the node that made an input (a
    Context), a leaf Tensor, or a constant as given. Nodes point to nodes, not to the Tensors
    they made, so an intermediate Tensor nobody keeps (nor saved) is freed during the forward
    pass, as in PyTorch: memory then holds what backward needs, not every activation.
    `shape` and `dtype` describe the output (its gradient must have them), `seq` is the node's
    creation number (backward runs nodes from the newest), `out_id` the output array's id().
    Ops may also set their own attributes on it in forward (an axis, a shape) for backward.
    After a backward without retain_graph, `saved` is None: the arrays are freed, but the
    structure (op, parents, shape, dtype, label) stays, so drawings and explanations still work.
    """

    __slots__ = ("fn", "parents", "needs_input_grad", "saved", "shape", "dtype", "seq", "out_id", "__dict__")
    # Class defaults instead of an __init__ (one Python call fewer per operation); the slots
    # keep most nodes without an instance dict (fewer objects for the garbage collector).
    _hooks = None  # gradient hooks registered on the tensor this node made (Tensor.register_hook)
    label = None  # that tensor's name, if it was given one
    requires_grad = True  # a node is recorded only for an output that requires grad, as a leaf would say

    def save_for_backward(self, *arrays) -> None:
        self.saved = arrays

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def freed(self) -> bool:
        """True once a backward without retain_graph has used (and released) this node."""
        return self.saved is None

    def __repr__(self) -> str:
        return f"<{self.fn.__name__}Backward>"  # PyTorch's spelling: the node that runs Mul's backward


_created = itertools.count()  # numbers the nodes: each one's `seq`


def node_of(tensor: Tensor):
    """What stands for `tensor` in the graph: the node that made it, or the leaf itself."""
    return tensor._ctx or tensor


class Function:
    """Base class of every operation: a static `forward` on ndarrays and `backward` for its inputs."""

    broadcasts = False  # True for elementwise ops that broadcast NumPy-style (the broadcast guard watches them)

    @staticmethod
    def forward(ctx: Context, *inputs, **params):
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad):
        raise NotImplementedError

    @classmethod
    def apply(cls, *inputs, **params):
        """Run forward on the inputs' arrays and, in grad mode, record the node on the output.

        Inputs may be Tensors or constants (numbers, arrays). With no Tensor among them the
        result is the plain ndarray: that is what lets a backward written once run both on
        arrays (an ordinary backward) and on Tensors (a recorded one, for create_graph).
        """
        ctx = Context()
        ctx.saved = ()  # until forward saves something
        arrays, parents, needs, saw_tensor = [], [], [], False
        for x in inputs:  # a plain loop: faster than comprehensions for one or two inputs
            if isinstance(x, Tensor):
                arrays.append(x.data)
                parents.append(x._ctx or x)
                needs.append(x.requires_grad)
                saw_tensor = True
            else:
                arrays.append(x)
                parents.append(x)
                needs.append(False)
        try:
            data = cls.forward(ctx, *arrays, **params)
        except ValueError as error:
            shapes = " and ".join(str(np.shape(a)) for a in arrays)
            raise ValueError(f"{cls.__name__} of shapes {shapes}: {error}") from None
        if type(data) is not np.ndarray and not isinstance(data, np.ndarray):
            # NumPy gives scalars for 0-d results; keep ndarrays (tg.compile's recording subclass
            # too), and keep a saved output recognisable as the output (create_graph swaps it).
            scalar, data = data, np.asarray(data)
            ctx.saved = tuple(data if s is scalar else s for s in ctx.saved)
        if not saw_tensor:
            return data
        if cls.broadcasts and _broadcast_check is not None:
            _broadcast_check(cls, arrays, data)  # the broadcast guard (guards.py)
        if _forward_check is not None:
            _forward_check(cls, arrays, data, ctx)  # anomaly mode (guards.py)
        if _grad_enabled and True in needs and data.dtype.kind == "f":
            ctx.fn, ctx.parents, ctx.needs_input_grad = cls, parents, needs
            ctx.shape, ctx.dtype, ctx.seq, ctx.out_id = data.shape, data.dtype, next(_created), id(data)
            return Tensor._make(data, True, ctx)
        return Tensor._make(data)


# ---- gradients back to input shapes ------------------------------------------------------
def unbroadcast(grad, shape: tuple):
    """Sum `grad` over the axes that broadcasting added or stretched, so it has `shape` again.

    Works on ndarrays and on Tensors alike (it only uses .sum and .reshape).
    """
    extra = grad.ndim - len(shape)
    if extra < 0:
        return grad  # cannot be reduced; the caller reports the mismatch
    stretched = tuple(extra + i for i, n in enumerate(shape) if n == 1 and grad.shape[extra + i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    if extra:  # summing the added leading axes away leaves `shape` (a bias: one sum, no reshape)
        grad = grad.sum(axis=tuple(range(extra)) if extra > 1 else 0)
    return grad


# ---- graph walk --------------------------------------------------------------------------
def toposort(roots) -> list:
    """Every node and leaf (that requires grad) leading to `roots`, each after all of its inputs.

    `roots` are Tensors (their nodes stand for them) or nodes. Iterative (an explicit stack),
    so a chain of 100 000 ops does not hit Python's recursion limit. Visited items are keyed by
    id(): Tensors compare elementwise, so no sets of them.
    """
    order, visited = [], set()
    stack = [(node_of(root) if isinstance(root, Tensor) else root, False) for root in roots]
    while stack:
        item, inputs_done = stack.pop()
        if inputs_done:
            order.append(item)
            continue
        if id(item) in visited:
            continue
        visited.add(id(item))
        stack.append((item, True))
        for parent in (item.parents or ()) if type(item) is Context else ():
            if id(parent) not in visited and getattr(parent, "requires_grad", False):  # not constants
                stack.append((parent, False))
    return order


def backward(root: Tensor, gradient=None, retain_graph=None, create_graph: bool = False):
    """Accumulate d(root)/d(leaf) into the ``.grad`` of every leaf that requires grad."""
    if not root.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad: no input of the computation "
                           "had requires_grad=True, or it was computed under no_grad()")
    keep = create_graph if retain_graph is None else retain_graph
    _run([root], [_seed(root, gradient, create_graph)], keep, create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of `outputs` with respect to `inputs`, as a tuple; ``.grad`` is left untouched.

    Parameters
    ----------
    outputs : Tensor or sequence of Tensor
        What to differentiate (summed, each weighted by its `grad_outputs`).
    inputs : Tensor or sequence of Tensor
        Tensors that require grad, leaves or not (a graph node, ``t.grad_fn``, stands for
        the tensor it made).
    grad_outputs : array_like or sequence, optional
        dL/d(output) for each output; may be omitted for one-element outputs.
    retain_graph : bool, optional
        Keep the graph for another backward (default: the value of `create_graph`).
    create_graph : bool
        Record this backward too, so the returned gradients can be differentiated again.
    allow_unused : bool
        Return None for an input the outputs do not depend on, instead of raising.

    Examples
    --------
    >>> import tinygrad_edu as tg
    >>> x = tg.Tensor([3.0], requires_grad=True)
    >>> (dx,) = tg.grad((x ** 3).sum(), x, create_graph=True)   # 3 x^2
    >>> tg.grad(dx.sum(), x)[0].item()                          # 6 x
    18.0
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, (Tensor, Context)) else list(inputs)
    if grad_outputs is None or isinstance(grad_outputs, (Tensor, np.ndarray)):  # one for each output
        grad_outputs = [grad_outputs] * (len(outputs) if grad_outputs is None else 1)
    for i, x in enumerate(inputs):
        if not (type(x) is Context or x.requires_grad):
            raise RuntimeError(f"grad(): input {i} does not require grad")
    items = [x if type(x) is Context else node_of(x) for x in inputs]
    seeds = [_seed(out, g, create_graph) for out, g in zip(outputs, grad_outputs)]
    keep = create_graph if retain_graph is None else retain_graph
    found = _run(outputs, seeds, keep, create_graph, wanted=items)
    results = []
    for i, item in enumerate(items):
        g = found[id(item)]
        if g is None and not allow_unused:
            raise RuntimeError(f"grad(): input {i} was not used to compute the outputs (allow_unused=True gives None)")
        results.append(g if g is None or create_graph else Tensor._make(np.asarray(g)))
    return tuple(results)


def _seed(root: Tensor, gradient, create_graph: bool):
    """dL/d(root) to start from: ones for a one-element root, else the given gradient."""
    if gradient is None:
        if root.size != 1:
            raise RuntimeError(f"backward() without a gradient needs a one-element output, but this one has shape "
                               f"{root.shape}; reduce it first (e.g. .sum() or .mean()) or pass gradient= of that shape")
        seed = np.ones(root.shape, dtype=root.dtype) if root.ndim else np.array(1, dtype=root.dtype)
    elif create_graph and isinstance(gradient, Tensor):
        # Keep its graph (gradients may be taken with respect to it), in the root's dtype.
        seed = gradient if gradient.dtype == root.dtype else gradient.astype(root.dtype)
    else:
        # A copy, so later writes to the caller's array cannot reach any .grad.
        seed = np.array(gradient.data if isinstance(gradient, Tensor) else gradient, dtype=root.dtype)
    if seed.shape != root.shape:
        raise ValueError(f"gradient has shape {seed.shape} but the output has shape {root.shape}")
    return Tensor._make(seed) if create_graph and not isinstance(seed, Tensor) else seed


def _run(roots, seeds, retain_graph, create_graph, wanted=None):
    """The backward walk. Grads are ndarrays, or Tensors recorded in the graph with create_graph.

    Nodes run newest first (a priority queue on `seq`): every node that uses a tensor was
    created after it, so a node runs only once all the gradient for its output has arrived,
    without sorting the whole graph first. Leaves come after every node, their gradients complete.
    With `wanted` (tg.grad), returns their gradients instead of filling leaves' .grad.
    """
    global _grad_enabled
    grads, ready, given = {}, [], set()
    arriving = zip(map(node_of, roots), seeds)  # (item, gradient) pairs not yet added to grads
    found = leads = None
    if wanted is not None:
        found = {id(item): None for item in wanted}
        leads = set()  # run (and free) only the nodes with a wanted item at or below them
        for item in toposort(roots):  # inputs come before the nodes made from them
            if id(item) in found or any(id(p) in leads for p in getattr(item, "parents", None) or ()):
                leads.add(id(item))
    previous, _grad_enabled = _grad_enabled, create_graph
    try:
        while True:
            for item, g in arriving:
                key = id(item)
                if key in grads:
                    grads[key] = grads[key] + g  # `+`, never `+=`: a gradient array may be shared
                else:  # first seen: queue a node by -seq (newest first), a leaf after all nodes
                    grads[key] = g
                    heapq.heappush(ready, (-item.seq, item) if type(item) is Context else (1, key, item))
            if not ready:
                break
            item, arriving = heapq.heappop(ready)[-1], ()
            g = grads.pop(id(item))
            if item._hooks or found is not None:
                g = _arrived(item, g, create_graph, found)
            if type(item) is not Context:  # a leaf
                if found is None:
                    _accumulate(item, g, create_graph, given)
            elif leads is None or any(id(p) in leads for p in item.parents or ()):
                arriving = _propagate(item, g, create_graph)
                if not retain_graph:
                    item.saved = None  # release the saved arrays; the structure stays for viz/explain
    finally:
        _grad_enabled = previous
    return found


def _arrived(item, g, create_graph: bool, found):
    """The complete gradient of `item` (a leaf or a node): run its hooks, a result replaces g;
    and note it if tg.grad wants it."""
    for hook in list(item._hooks or ()):
        result = hook(g if create_graph else Tensor._make(np.asarray(g)))
        if result is not None:
            result = result if isinstance(result, Tensor) else Tensor(result, dtype=item.dtype)
            if result.shape != item.shape:
                raise ValueError(f"a hook returned shape {result.shape} for a gradient of shape {item.shape}")
            g = result if create_graph else np.array(result.data)  # the hook's caller may keep it
    if found is not None and id(item) in found:
        found[id(item)] = g
    return g


def _propagate(ctx: Context, g, create_graph: bool) -> list:
    """Run one node's backward; returns (parent, gradient in that parent's shape) pairs."""
    if ctx.saved is None:
        raise RuntimeError(f"backward through {ctx.fn.__name__} a second time, but its saved arrays were "
                           "freed by the first backward; pass retain_graph=True to the first backward")
    input_grads = _backward_recorded(ctx, g) if create_graph else ctx.fn.backward(ctx, g)
    input_grads = input_grads if type(input_grads) is tuple else (input_grads,)
    if len(input_grads) != len(ctx.parents):
        raise RuntimeError(f"{ctx.fn.__name__}.backward returned {len(input_grads)} gradients for "
                           f"{len(ctx.parents)} inputs")
    if _backward_check is not None:
        _backward_check(ctx, input_grads)
    pairs = []
    for parent, parent_grad, needed in zip(ctx.parents, input_grads, ctx.needs_input_grad):
        if parent_grad is None or not needed:
            continue
        shape = parent.shape  # a node's output shape, or a leaf's
        if parent_grad.shape != shape:
            parent_grad = unbroadcast(parent_grad, shape)
            if parent_grad.shape != shape:
                index = next(i for i, p in enumerate(ctx.parents) if p is parent)
                raise RuntimeError(f"{ctx.fn.__name__}.backward returned a gradient of shape "
                                   f"{parent_grad.shape} for input {index} of shape {shape}")
        if parent_grad.dtype != parent.dtype:
            parent_grad = parent_grad.astype(parent.dtype)
        pairs.append((parent, parent_grad))
    return pairs


def _backward_recorded(ctx: Context, grad: Tensor):
    """Run ctx's backward on Tensors, so the backward pass itself is recorded.

    Saved arrays that are an input's or the output's data are swapped for Tensors standing
    for them (a leaf itself; a node's output rebuilt on that node), which connects the
    gradient to the graph; other saved arrays (masks) stay constants.
    """
    arrays = ctx.saved
    tensors = []
    for i, array in enumerate(arrays):
        # Ops save inputs in order, so try the same position first (x * x.detach() shares data).
        candidates = [ctx, *ctx.parents[i:i + 1], *ctx.parents]
        match = next((t for t in (_tensor_of(item, array) for item in candidates) if t is not None), None)
        tensors.append(array if match is None else match)
    ctx.saved = tuple(tensors)
    try:
        return ctx.fn.backward(ctx, grad)
    finally:
        ctx.saved = arrays


def _tensor_of(item, array):
    """A Tensor in the graph whose data is `array`: leaf `item` itself, or node `item`'s output.

    Comparing a node's `out_id` is exact here: the saved array and that output were both
    alive while the consumer's forward ran, so equal ids mean the same array.
    """
    if type(item) is Context:
        return Tensor._make(array, True, item) if item.out_id == id(array) else None
    return item if isinstance(item, Tensor) and item.data is array else None


def _accumulate(leaf: Tensor, g, create_graph: bool, given: set) -> None:
    """Add g into leaf.grad, as an array the leaf has to itself.

    A fresh array from an op's backward is kept without a copy (for a big weight that copy
    was a sixth of a training step). A view, maybe read-only (a broadcast), or an array
    another leaf already holds (Add hands one gradient to both inputs; `given` remembers
    this pass's) is copied. Later gradients are added with `+`, never written into the array.
    """
    if create_graph:
        leaf.grad = g if leaf.grad is None else leaf.grad + g
    elif leaf.grad is None:
        fresh = g.flags.owndata and g.flags.writeable and id(g) not in given
        leaf.grad = Tensor._make(g if fresh else np.array(g))
        given.add(id(g))
    else:
        leaf.grad = Tensor._make(np.asarray(leaf.grad.data + g))
