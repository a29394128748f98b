"""The engine: how a forward call records a graph node, and how backward walks the graph.

Read it top to bottom: the node (`Context`), `Function.apply` (forward + recording), in-place
writes (versions), `unbroadcast` (the one place gradients are reduced to an input's shape),
`toposort`, and `backward` / `grad`. It does no array math of its own; every operation lives in
ops.py. Grad mode and the optional checks are per-thread switches, kept in modes.py.
"""
from __future__ import annotations

import heapq
import itertools
import threading

import numpy as np

from .modes import current as current_modes, enable_grad, is_grad_enabled, no_grad  # noqa: F401 (public too)
from .tensor import Tensor, _RetainGrad, broadcast_axes, writes_into


# ---- the graph node ----------------------------------------------------------------------
class Context:
    """One node of the graph: which Function ran, on what, what it saved, and what it made.

    `parents` lists the op's inputs as the graph sees them: the node that made an input (a
    Context), a leaf Tensor, or a constant as given. Nodes point to nodes, not to the Tensors
    they made, so an intermediate Tensor nobody keeps (nor saved) is freed during the forward
    pass, as in PyTorch: memory then holds what backward needs, not every activation. `saved`
    is () until forward saves something. `shape` and `dtype` describe the output (its gradient
    must have them), `seq` is the node's creation number (backward runs nodes from the newest),
    `out_id` the output array's id(); `apply` sets these four when it records the node.
    The output tensor's own state lives here, because the graph keeps nodes, not tensors: its
    `label` (name) and gradient `_hooks`. `snapshots` let backward tell whether a NumPy constant
    it saved was changed since (`_note_snapshots`). `module_calls` lists the nn.Module calls
    that returned the output, innermost first, as (module, ids of its inputs), for drawings
    that fold a layer into a box; `origin` is where the op was called, noted in anomaly mode
    (guards.py) for its messages. An op's forward may also set its own parameters on it (an
    axis, a shape) for its backward; nothing else adds attributes. After a backward
    without retain_graph, `saved` is None: the arrays are freed, but the structure (op,
    parents, shape, dtype, label) stays, so drawings and explanations still work.
    """

    __slots__ = ("fn", "parents", "needs_input_grad", "saved", "shape", "dtype", "seq", "out_id",
                 "label", "_hooks", "snapshots", "module_calls", "origin", "__dict__")
    requires_grad = True  # a node stands for an output that requires grad, as a leaf would say

    def __init__(self, fn, parents: list, needs_input_grad: list):
        self.fn, self.parents, self.needs_input_grad, self.saved = fn, parents, needs_input_grad, ()
        self.shape = self.dtype = self.seq = self.out_id = None  # the output's, once recorded
        self.label = self._hooks = self.snapshots = self.module_calls = self.origin = None

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
    """Base class of every operation. A subclass defines two static methods (ops.py):

    `forward(ctx, *arrays, **params)` computes the output ndarray from the inputs' ndarrays and
    saves what backward needs with `ctx.save_for_backward(...)`; `backward(ctx, grad)` returns
    one gradient per input (None for an input that takes none), given grad = dL/d(output).
    """

    broadcasts = False  # True for elementwise ops that broadcast as NumPy does (the broadcast guard watches)

    @classmethod
    def apply(cls, *inputs, **params):
        """Run forward on the inputs' arrays and, in grad mode, record the node on the output.

        Inputs may be Tensors or constants (numbers, arrays). With no Tensor among them the
        result is the plain ndarray: that is what lets a backward written once run both on
        arrays (an ordinary backward) and on Tensors (a recorded one, for create_graph).
        """
        arrays, parents, needs, tensors, constant_arrays = [], [], [], 0, 0
        for x in inputs:  # one pass sorts each input into what forward, the node and checks need
            if isinstance(x, Tensor):
                arrays.append(x.data)
                parents.append(x._ctx or x)
                needs.append(x._requires_grad)  # the slot behind .requires_grad
                tensors += 1
            else:
                arrays.append(x)
                parents.append(x)
                needs.append(False)
                constant_arrays += type(x) is np.ndarray  # keeps no version: the node takes a snapshot
        ctx = Context(cls, parents, tuple(needs))
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
        if not tensors:
            return data
        thread = current_modes()  # this thread's switches (modes.py)
        if cls.broadcasts and tensors + constant_arrays > 1 and thread.broadcast_check is not None:
            thread.broadcast_check(cls, arrays, data)  # the broadcast guard (guards.py)
        if thread.forward_check is not None:
            thread.forward_check(cls, arrays, data, ctx)  # anomaly mode (guards.py)
        if thread.grad_enabled and True in needs and data.dtype.kind == "f":
            ctx.shape, ctx.dtype, ctx.seq, ctx.out_id = data.shape, data.dtype, next(_created), id(data)
            if constant_arrays and ctx.saved:
                _note_snapshots(ctx)
            return Tensor._make(data, True, ctx)
        if data.dtype.kind not in "biuf":  # complex or object: no Tensor holds it, no gradient reaches it
            raise TypeError(f"{cls.__name__} gave {data.dtype} values: a Tensor holds real numbers only")
        return Tensor._make(data)


# ---- in-place writes: versions and snapshots ----------------------------------------------
_last_write = -1  # a `seq` number taken at the newest in-place write: older nodes check their inputs
_COPY_UP_TO = 4096  # elements: smaller NumPy constants are copied whole for the check, bigger ones sampled


def note_write() -> int:
    """Called by Tensor._bump_version: every node made before now checks its saved inputs.
    Returns the write's `seq` number, which the written memory keeps (Tensor._bump_version)."""
    global _last_write
    _last_write = next(_created)
    return _last_write


def _note_snapshots(ctx: Context) -> None:
    """Snapshots of the NumPy constants ctx saved, which keep no version: copies (of a big array,
    about 1024 evenly spread elements), compared in backward."""
    ctx.snapshots = []
    for index, x in enumerate(ctx.parents):
        if type(x) is np.ndarray and any(s is x for s in ctx.saved):
            where = slice(None, None, 1 if x.size <= _COPY_UP_TO else x.size // 1024)  # all, or ~1024 of them
            ctx.snapshots.append((index, x, where, x.flat[where]))  # .flat[...] copies, whatever the layout


def _check_saved(ctx: Context) -> None:
    """Raise if an array ctx saved was written in place after its forward (PyTorch's check)."""
    for array in ctx.saved:
        writes = writes_into(array) if isinstance(array, np.ndarray) else None
        if writes is not None and writes.newest > ctx.seq:  # written since ctx was made
            raise RuntimeError(f"{ctx.fn.__name__}'s {_saved_name(ctx, array)} (shape {array.shape}) was "
                               "modified by an inplace operation after it was saved for backward (it is at "
                               f"version {writes.version} now){_ADVICE}")
    for i, x, where, values in ctx.snapshots or ():
        if not np.array_equal(x.flat[where], values, equal_nan=x.dtype.kind in "fc"):
            raise RuntimeError(f"{ctx.fn.__name__}'s input {i} (a NumPy array of shape {x.shape}) was "
                               f"modified by an inplace operation after it was saved for backward{_ADVICE}")


def _saved_name(ctx: Context, array) -> str:
    """'output', 'input i', or 'saved array' (one the op derived, e.g. a transpose of an input)."""
    if ctx.out_id == id(array):
        return "output"
    for i, item in enumerate(ctx.parents):  # a node stands for its output, a leaf for its array
        held = item.out_id if type(item) is Context else id(item.data if isinstance(item, Tensor) else item)
        if held == id(array):
            return f"input {i}"
    return "saved array"


_ADVICE = "; run backward before the in-place change (e.g. an optimizer step), or run a new forward"


# ---- gradients back to input shapes ------------------------------------------------------
def unbroadcast(grad, shape: tuple):
    """Sum `grad` over the axes that broadcasting added or stretched, so it has `shape` again.

    Works on ndarrays and on Tensors alike (it only uses .sum and .reshape).
    """
    if grad.ndim < len(shape):
        return grad  # cannot be reduced; the caller reports the mismatch
    if grad.ndim == len(shape) + 1 and grad.shape[1:] == shape:  # one leading axis added (a bias): one sum
        return grad.sum(axis=0)
    added, stretched = broadcast_axes(shape, grad.shape)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    if added:  # summing the added leading axes away leaves `shape` (a bias: one sum, no reshape)
        grad = grad.sum(axis=added if len(added) > 1 else 0)
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
        elif id(item) not in visited:
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
    _backpropagate([root], [_seed(root, gradient, create_graph)], retain_graph, create_graph)


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
    if len(grad_outputs) < len(outputs):  # zip would silently leave the last outputs out
        raise RuntimeError(f"grad(): {len(outputs)} outputs and {len(grad_outputs)} grad_outputs (one each)")
    for i, x in enumerate(inputs):
        if not (type(x) is Context or x.requires_grad):
            raise RuntimeError(f"grad(): input {i} does not require grad")
    items = [x if type(x) is Context else node_of(x) for x in inputs]
    seeds = [_seed(out, g, create_graph) for out, g in zip(outputs, grad_outputs)]
    found = _backpropagate(outputs, seeds, retain_graph, create_graph, wanted=items)
    grads = [found[id(item)] for item in items]
    if not allow_unused and any(g is None for g in grads):
        unused = [g is None for g in grads].index(True)
        raise RuntimeError(f"grad(): input {unused} was not used to compute the outputs (allow_unused=True)")
    return tuple(g if g is None or create_graph else Tensor._make(np.asarray(g)) for g in grads)


def _seed(root: Tensor, gradient, create_graph: bool):
    """dL/d(root) to start from: ones for a one-element root, else the given gradient."""
    if gradient is None:
        if root.size != 1:
            raise RuntimeError(f"backward() without a gradient needs a one-element output, not shape "
                               f"{root.shape}; reduce it first (e.g. .sum() or .mean()) or pass gradient=")
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


def _backpropagate(roots, seeds, retain_graph, create_graph, wanted=None):
    """The backward walk. Grads are ndarrays, or Tensors recorded in the graph with create_graph.

    Nodes run newest first (a priority queue on `seq`): every node that uses a tensor was
    created after it, so a node runs only once all the gradient for its output has arrived,
    without sorting the whole graph first. Leaves come after every node, their gradients complete.
    With `wanted` (tg.grad), returns their gradients instead of filling leaves' .grad.
    `retain_graph` None means: keep the saved arrays only for create_graph (PyTorch's default).
    """
    retain_graph = create_graph if retain_graph is None else retain_graph
    grads, ready, leaves, held_by_leaves = {}, [], [], set()
    backward_check = current_modes().backward_check  # anomaly mode's, if on in this thread
    arriving = zip(map(node_of, roots), seeds)  # (item, gradient) pairs not yet added to grads
    found = wanted_below = None
    if wanted is not None:
        found = {id(item): None for item in wanted}
        wanted_below = set()  # ids of items with a wanted item at or below: only these nodes run (and free)
        for item in toposort(roots):  # inputs come before the nodes made from them
            if id(item) in found or any(id(p) in wanted_below for p in getattr(item, "parents", None) or ()):
                wanted_below.add(id(item))
    while True:
        for item, g in arriving:
            key = id(item)
            if key in grads:
                grads[key] = grads[key] + g  # `+`, never `+=`: a gradient array may be shared
            elif wanted_below is None or key in wanted_below:  # first seen, and needed (tg.grad prunes)
                grads[key] = g  # queued: a node by -seq (newest first); a leaf waits for all nodes
                if type(item) is Context:
                    heapq.heappush(ready, (-item.seq, item))
                else:
                    leaves.append(item)
        if not (ready or leaves):
            break
        item, arriving = heapq.heappop(ready)[1] if ready else leaves.pop(), ()
        g = grads.pop(id(item))
        if item._hooks or found is not None:
            g = _gradient_complete(item, g, create_graph, found)
        if type(item) is not Context:  # a leaf
            if found is None and item._requires_grad:  # it may have left the graph since (PyTorch skips it)
                _accumulate(item, g, create_graph, held_by_leaves)
        elif wanted_below is None or any(id(p) in wanted_below for p in item.parents or ()):
            arriving = _propagate(item, g, create_graph, backward_check)
            if not retain_graph:
                item.saved = None  # release the saved arrays; the structure stays for viz/explain
    return found


def _gradient_complete(item, g, create_graph: bool, found):
    """The complete gradient of `item` (a leaf or a node): run its hooks, a result replaces g;
    and note it if tg.grad wants it."""
    # retain_grad's hook runs last, so .grad holds what the other hooks made of g (PyTorch 2's order).
    for hook in sorted(item._hooks or (), key=lambda hook: isinstance(hook, _RetainGrad)):
        with enable_grad() if create_graph else no_grad():  # as PyTorch: a hook may update a parameter
            result = hook(g if create_graph else Tensor._make(np.asarray(g)))
        if result is not None:
            result = result if isinstance(result, Tensor) else Tensor(result, dtype=item.dtype)
            if result.shape != item.shape:
                raise ValueError(f"a hook returned shape {result.shape} for a gradient of shape {item.shape}")
            if result.dtype != item.dtype:
                raise TypeError(f"a hook returned dtype {result.dtype} for a gradient of dtype {item.dtype}; "
                                f"return grad.astype(np.{item.dtype})")
            g = result if create_graph else np.array(result.data)  # the hook's caller may keep it
    if found is not None and id(item) in found:
        found[id(item)] = g
    return g


def _propagate(ctx: Context, g, create_graph: bool, backward_check) -> list:
    """Run one node's backward; returns (parent, gradient in that parent's shape) pairs."""
    if ctx.saved is None:
        raise RuntimeError(f"backward through the graph a second time, but {ctx.fn.__name__}'s saved arrays "
                           "were freed by the first backward: specify retain_graph=True in the first one")
    if _last_write > ctx.seq or ctx.snapshots:  # something was written since ctx was made, or may have been
        _check_saved(ctx)
    input_grads = _backward_recorded(ctx, g) if create_graph else ctx.fn.backward(ctx, g)
    input_grads = input_grads if type(input_grads) is tuple else (input_grads,)
    if len(input_grads) != len(ctx.parents):
        raise RuntimeError(f"{ctx.fn.__name__}.backward returned {len(input_grads)} gradients for "
                           f"{len(ctx.parents)} inputs")
    if backward_check is not None:  # anomaly mode (guards.py)
        backward_check(ctx, input_grads)
    pairs = []
    for i, (parent, parent_grad, needed) in enumerate(zip(ctx.parents, input_grads, ctx.needs_input_grad)):
        if parent_grad is None or not needed:
            continue
        shape = parent.shape  # a node's output shape, or a leaf's
        if parent_grad.shape != shape:
            parent_grad = unbroadcast(parent_grad, shape)
            if parent_grad.shape != shape:
                raise RuntimeError(f"{ctx.fn.__name__}.backward returned a gradient of shape "
                                   f"{parent_grad.shape} for input {i} of shape {shape}")
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
        with enable_grad():  # this thread only, and only for create_graph: never a process-wide switch
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


leaf_grads_lock = threading.Lock()  # backwards in several threads add to a shared leaf's .grad one at a time


def _accumulate(leaf: Tensor, g, create_graph: bool, held_by_leaves: set) -> None:
    """Add g into leaf.grad, as an array the leaf has to itself.

    A fresh array from an op's backward is kept without a copy (for a big weight that copy
    was a sixth of a training step). A view, maybe read-only (a broadcast), or an array
    another leaf already holds (Add hands one gradient to both inputs; `held_by_leaves` has
    the ids of this pass's) is copied. Later gradients are added with `+`, never written into
    the array. The read-add-write of .grad holds a lock: another thread's backward into the
    same leaf (Hogwild training) must not overwrite this one's sum, as PyTorch guarantees.
    g has the leaf's shape (_propagate checked it), so it goes into ._grad, past the checking setter.
    """
    with leaf_grads_lock:
        if create_graph:
            leaf._grad = g if leaf._grad is None else leaf._grad + g
        elif leaf._grad is None:
            fresh = g.flags.owndata and g.flags.writeable and id(g) not in held_by_leaves
            leaf._grad = Tensor._make(g if fresh else np.array(g))
            held_by_leaves.add(id(g))
        else:
            leaf._grad = Tensor._make(np.asarray(leaf._grad.data + g))
