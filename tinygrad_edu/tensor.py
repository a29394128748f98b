"""The Tensor: an ndarray plus what autograd needs (grad, requires_grad, the node that made it).

Operators and methods only call operations from `ops` (or composites from `functional`);
no gradient math lives here. NumPy functions applied to a Tensor come back here through
`__array_ufunc__` / `__array_function__` (see `interop`).
"""
from __future__ import annotations

import copy
import functools
import inspect
import sys
import warnings
import weakref
from typing import Any, Callable, Optional

import numpy as np

_default_dtype = np.dtype(np.float32)


def get_default_dtype() -> np.dtype:
    """The dtype given to Tensors made from Python numbers and lists (float32 unless changed)."""
    return _default_dtype


def set_default_dtype(dtype) -> None:
    """Set the dtype for Tensors made from Python numbers and lists; must be a floating dtype."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise TypeError(f"the default dtype must be a floating dtype, got {dtype}")
    _default_dtype = dtype


def _as_array(data, dtype=None) -> np.ndarray:
    """Turn user data into an ndarray: arrays keep their dtype, Python numbers/lists get the default."""
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, (np.ndarray, np.generic)):
        # np.asarray drops ndarray subclasses (np.matrix would change what * means); tg.compile's
        # recording arrays are kept, so that a Tensor made inside a traced step is traced too.
        array = data if getattr(data, "keeps_its_class_in_tensors", False) else np.asarray(data)
    else:
        array = np.asarray(data)
        if dtype is None and array.dtype.kind in "iuf":
            dtype = _default_dtype  # Python numbers and lists: float32 unless told otherwise
    if array.dtype.kind not in "biuf":
        raise TypeError(f"a Tensor holds numbers or booleans, not {array.dtype} data like {data!r:.40}")
    return array if dtype is None else array.astype(dtype, copy=False)


def _check_can_require_grad(dtype: np.dtype) -> None:
    if dtype.kind != "f":
        raise TypeError(
            f"only floating-point tensors can require gradients, but this one is {dtype}; "
            "make it with dtype=np.float32 (or float64), or call .astype(np.float32) first"
        )


def accepts_dim(fn):
    """Let `fn` take PyTorch's spelling of its axis arguments: ``dim=`` for ``axis=`` (and
    ``start_dim=``/``end_dim=`` for ``start_axis=``/``end_axis=``, ``keepdim=`` for
    ``keepdims=``). Giving both spellings is a TypeError."""
    signature = inspect.signature(fn)
    aliases = {name.replace("axis", "dim"): name for name in signature.parameters if "axis" in name}
    if "keepdims" in signature.parameters:
        aliases["keepdim"] = "keepdims"

    @functools.wraps(fn)
    def with_dim(*args, **kwargs):
        if kwargs:
            for alias, name in aliases.items():
                if alias in kwargs:
                    if name in kwargs:
                        raise TypeError(f"{fn.__name__}() got both {name}= and {alias}= (one argument, two "
                                        "spellings: give one)")
                    kwargs[name] = kwargs.pop(alias)
        return fn(*args, **kwargs)

    # help() and the API docs show the aliases as keyword-only parameters
    shown = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    shown += [inspect.Parameter(alias, inspect.Parameter.KEYWORD_ONLY, default=None) for alias in aliases]
    shown += [p for p in signature.parameters.values() if p.kind is p.VAR_KEYWORD]
    with_dim.__signature__ = signature.replace(parameters=shown)
    return with_dim


class Tensor:
    """An n-dimensional array that records the operations made with it, so it can backpropagate.

    Parameters
    ----------
    data : array_like
        A NumPy array (kept as is, dtype included), a Python number or a nested list
        (converted to ``tg.get_default_dtype()``, float32 unless changed).
    requires_grad : bool
        Record operations on this tensor so ``backward`` can fill its ``.grad``.
    dtype : dtype, optional
        Convert the data to this dtype.
    name : str, optional
        A label used by drawings and explanations of the graph.

    Attributes
    ----------
    data : ndarray
        The values: the array itself, not a copy. Writing into it changes the tensor
        without recording anything in the graph.
    grad : Tensor or None
        The gradient that ``backward`` accumulated into this leaf, or None before the first
        one; gradients add up across calls until ``zero_grad``. Only leaves keep one, and
        non-leaves that asked with ``retain_grad()``.
    requires_grad : bool
        Whether operations on this tensor are recorded, so ``backward`` reaches it.
    name : str or None
        A label for ``tg.explain`` and ``viz.draw_graph`` (None: no label).
    _version : int
        How many in-place writes the framework made into the memory of ``data`` (in-place
        arithmetic under ``no_grad``, ``t[i] = v``, optimizer steps, ``load_state_dict``),
        through this tensor or any other that shares it (views, ``detach()``); PyTorch's name.
        Writes straight into ``t.data`` are not counted.

    Examples
    --------
    >>> import tinygrad_edu as tg
    >>> x = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad
    Tensor([2., 4., 6.], shape=(3,), dtype=float32)
    """

    __slots__ = ("data", "_grad", "_requires_grad", "_ctx", "_name", "_hooks", "__weakref__")
    # Lets NumPy hand `ndarray + Tensor` and friends to our __array_ufunc__ instead of its own.
    __array_priority__ = 1000
    # Counts changes of any tensor's requires_grad: a compiled step (tg.compile) checks its parameters'
    # flags again only when it moved.
    requires_grad_changes = 0

    def __init__(self, data: Any, requires_grad: bool = False, dtype=None, name: Optional[str] = None):
        self.data = _as_array(data, dtype)
        if requires_grad:
            _check_can_require_grad(self.data.dtype)
        self._requires_grad = bool(requires_grad)
        self._grad: Optional[Tensor] = None
        self._ctx = None
        self._name = name
        self._hooks = None

    @classmethod
    def _make(cls, data: np.ndarray, requires_grad: bool = False, ctx=None) -> "Tensor":
        """Wrap an ndarray made by the engine: no conversion, no checks (a hot path)."""
        out = object.__new__(cls)
        out.data = data
        out._requires_grad = requires_grad
        out._grad = None
        out._ctx = ctx
        out._name = None
        out._hooks = None
        return out

    @property
    def grad(self) -> Optional["Tensor"]:
        """The gradient backward accumulated (see the class docstring); None before the first.

        A non-leaf keeps none unless it called ``retain_grad()``: reading it warns, as in PyTorch.
        """
        if self._grad is None and self._ctx is not None and not self.retains_grad:
            warnings.warn(f"the .grad of a non-leaf tensor (made by {self._ctx.name}) stays None: backward "
                          "fills only leaves' .grad; call .retain_grad() on it before backward to keep it",
                          UserWarning, stacklevel=2)
        return self._grad

    @grad.setter
    def grad(self, value: Optional["Tensor"]) -> None:
        # As PyTorch, refused at once: backward would broadcast a gradient of another shape into it.
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(f".grad takes a Tensor or None, not {type(value).__name__}; write "
                            "t.grad = tg.Tensor(array)")
        if value is not None and value.shape != self.data.shape:
            raise ValueError(f"a gradient of shape {value.shape} for a tensor of shape {self.data.shape}: "
                             "a gradient has its tensor's shape")
        if value is self:  # zero_grad(set_to_none=False) would then zero the tensor itself
            raise RuntimeError("a tensor cannot be its own gradient (PyTorch refuses it too)")
        self._grad = value

    @property
    def name(self) -> Optional[str]:
        """An optional label, shown by repr, viz.draw_graph and explain (None by default)."""
        return self._name

    @name.setter
    def name(self, value: Optional[str]) -> None:
        self._name = value
        if self._ctx is not None:
            self._ctx.label = value  # the graph keeps nodes, not tensors: the drawing finds it there

    # ---- array attributes -------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        """The shape of the data, a tuple (``()`` for a 0-d tensor)."""
        return self.data.shape

    @property
    def ndim(self) -> int:
        """The number of axes (0 for a 0-d tensor)."""
        return self.data.ndim

    @property
    def size(self) -> int:
        """The number of elements (the product of the shape)."""
        return self.data.size

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of the data (float32 for Python numbers and lists unless changed)."""
        return self.data.dtype

    @property
    def grad_fn(self):
        """The graph node (a `Context`) that made this tensor; None for leaves."""
        return self._ctx

    @property
    def is_leaf(self) -> bool:
        """True when no recorded operation made this tensor (``grad_fn is None``)."""
        return self._ctx is None

    def __len__(self) -> int:
        """The length of axis 0; a 0-d tensor has none (TypeError)."""
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return len(self.data)

    def __iter__(self):
        """The rows (axis 0), each taken with a recorded ``t[i]``."""
        # Lets Python's built-in sum() and unpacking work, one recorded index per row.
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="Tensor(")
        extras = [f"shape={self.data.shape}", f"dtype={self.data.dtype}"]
        if self._ctx is not None:
            extras.append(f"grad_fn={self._ctx!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        if self.name:
            extras.append(f"name={self.name!r}")
        return f"Tensor({body}, {', '.join(extras)})"

    def __bool__(self) -> bool:
        """The truth value of a one-element tensor; any other size raises ValueError."""
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor of shape {self.shape} is ambiguous; use .any() or .all()"
            )
        return bool(self.data)

    def __format__(self, spec: str) -> str:
        """``f"{loss:.4f}"``: a 0-d tensor formats as its value, as PyTorch's; others as ``str``."""
        if self.ndim == 0:
            return format(self.item(), spec)
        if spec:
            raise TypeError(f"format spec {spec!r} needs a 0-d tensor (a number), got shape {self.shape}; "
                            "format t.item() or t.tolist()")
        return str(self)

    def __float__(self) -> float:
        """``float(t)`` for a one-element tensor (outside the graph)."""
        return float(self.item())

    def __int__(self) -> int:
        """``int(t)`` for a one-element tensor (outside the graph)."""
        return int(self.item())

    def __index__(self) -> int:
        """A one-element integer tensor as a Python int, so it can index a list or a range."""
        if self.data.dtype.kind not in "iu":
            raise TypeError(f"only integer tensors can be used as an index, not {self.dtype}")
        return int(self.item())

    # Tensors compare elementwise, so hashing falls back to identity (like PyTorch).
    __hash__ = object.__hash__

    # ---- leaving the graph -----------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as an ndarray (the same array, not a copy)."""
        return self.data

    def item(self):
        """The value of a one-element tensor as a Python number."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, this one has shape {self.shape}")
        return self.data.item()

    def tolist(self):
        """The values as (nested) Python lists."""
        return self.data.tolist()

    def __array__(self, dtype=None, copy=None):
        """``np.asarray(t)``: the data itself (a copy or a cast if asked), outside the graph.

        A NumPy function given Tensors inside a list (``np.mean([x, x + 2])``) does not come
        to ``__array_function__`` (the list is not a Tensor): NumPy converts each one here and
        computes on plain arrays. For a tensor that requires grad that drops the graph, so it
        warns (GraphDroppedWarning). Asking for the array yourself (``np.asarray(t)``) is quiet.
        """
        if self.requires_grad:
            _warn_if_the_graph_is_dropped()
        if dtype is None or dtype == self.data.dtype:
            return self.data.copy() if copy else self.data
        return self.data.astype(dtype)

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (no gradient flows through it). It shares the
        version counter too: an in-place write through it is seen by every graph that saved
        this tensor's values (as in PyTorch)."""
        return Tensor._make(self.data)

    def __deepcopy__(self, memo: dict) -> "Tensor":
        """``copy.deepcopy`` of a leaf: new arrays for data and grad, the same flags and name, no
        hooks (as PyTorch). A non-leaf is refused, as in PyTorch: its copy would carry a copy of the
        graph, whose backward fills copies of the parameters, never the originals."""
        if self._ctx is not None:
            raise RuntimeError(f"copy.deepcopy of a tensor made by {self._ctx.name}: only leaves can be "
                               "deep-copied (PyTorch's rule); copy the values with copy.deepcopy(t.detach())")
        copied = memo[id(self)] = type(self)._make(copy.deepcopy(self.data, memo), self.requires_grad)
        copied._name = self._name
        copied.grad = copy.deepcopy(self.grad, memo)
        if hasattr(self, "__dict__"):  # a subclass's own attributes
            copied.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return copied

    def __getstate__(self):
        """What pickle and ``copy.copy`` keep: the data, grad, flag and name, as a leaf without
        hooks (as PyTorch). The graph stays behind: a copy of it would reach copies of the leaves."""
        slots = {"data": self.data, "_grad": self._grad, "_requires_grad": self._requires_grad,
                 "_ctx": None, "_name": self._name, "_hooks": None}
        return getattr(self, "__dict__", None), slots

    def astype(self, dtype) -> "Tensor":
        """Cast to `dtype`; float-to-float casts pass gradients through (cast back)."""
        return ops.Cast.apply(self, dtype=np.dtype(dtype))

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        """Switch gradient recording for this leaf on or off, in place; returns self."""
        self.requires_grad = requires_grad
        return self

    @property
    def requires_grad(self) -> bool:
        """Whether operations on this tensor are recorded, so ``backward`` reaches it."""
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, requires_grad: bool) -> None:
        if self._ctx is not None and not requires_grad:
            raise RuntimeError(f"requires_grad = False on a tensor made by {self._ctx.name}: only a leaf's "
                               "flag can change (PyTorch's rule); t.detach() gives the values without the "
                               "graph")
        if requires_grad:
            _check_can_require_grad(self.data.dtype)
        self._requires_grad = bool(requires_grad)
        Tensor.requires_grad_changes += 1

    # ---- autograd --------------------------------------------------------------------
    @property
    def _version(self) -> int:
        """The in-place writes counted so far into this tensor's memory (shared with its views)."""
        writes = autograd.writes_into(self.data)
        return 0 if writes is None else writes.version

    def _bump_version(self) -> None:
        """Count an in-place write into ``data``; whatever writes in place calls it (optimizers too).

        The count belongs to the memory, so it is shared by every tensor viewing it: a node that
        saved any of them, made before this write, raises in backward instead of silently using
        the new values.
        """
        owner = self.data if self.data.base is None else memory_of(self.data)  # a view: find its owner
        writes = _writes.get(id(owner))
        if writes is None:  # the first write into this memory
            writes = _writes[id(owner)] = _Writes(owner)
        writes.newest = autograd.note_write()
        writes.version += 1

    def backward(self, gradient=None, retain_graph: Optional[bool] = None, create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad`` that requires grad.

        Parameters
        ----------
        gradient : array_like, optional
            dL/d(self), the shape of self. May be omitted only for a one-element tensor.
        retain_graph : bool, optional
            Keep the saved arrays so backward can run through this graph again
            (default: False, or True with create_graph, as in PyTorch).
        create_graph : bool
            Record the backward pass too, so gradients of gradients can be taken.
        """
        autograd.backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)

    def register_hook(self, fn: Callable[["Tensor"], Optional["Tensor"]]):
        """Call ``fn(grad)`` when this tensor's gradient is computed; a returned Tensor replaces it."""
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        owner = self._ctx or self  # a non-leaf's gradient arrives at the node that made it
        if owner._hooks is None:
            owner._hooks = []
        owner._hooks.append(fn)
        return _HookHandle(owner._hooks, fn)

    def retain_grad(self) -> None:
        """Keep ``.grad`` on this non-leaf after backward (accumulating, as a leaf's); leaves already do."""
        if not self.requires_grad:
            raise RuntimeError("retain_grad() on a tensor that does not require grad: no gradient reaches it")
        if self._ctx is None or self.retains_grad:
            return
        if self._ctx._hooks is None:
            self._ctx._hooks = []
        self._ctx._hooks.append(_RetainGrad(self))  # into the same list: hook handles stay valid

    @property
    def retains_grad(self) -> bool:
        """True for a non-leaf after ``retain_grad()``."""
        hooks = self._ctx._hooks if self._ctx is not None else None
        return any(isinstance(hook, _RetainGrad) and hook.tensor() is self for hook in hooks or ())

    # ---- arithmetic (each calls one op; `ops` does the math) ---------------------------
    def __add__(self, other):
        """``t + other``, elementwise with NumPy broadcasting; recorded."""
        return ops.Add.apply(self, other)

    def __radd__(self, other):
        """``other + t`` when the left operand is not a Tensor."""
        return ops.Add.apply(other, self)

    def __sub__(self, other):
        """``t - other``, elementwise with NumPy broadcasting; recorded."""
        return ops.Sub.apply(self, other)

    def __rsub__(self, other):
        """``other - t`` when the left operand is not a Tensor."""
        return ops.Sub.apply(other, self)

    def __mul__(self, other):
        """``t * other``, elementwise (the Hadamard product; ``@`` is the matrix product); recorded."""
        return ops.Mul.apply(self, other)

    def __rmul__(self, other):
        """``other * t`` when the left operand is not a Tensor."""
        return ops.Mul.apply(other, self)

    def __truediv__(self, other):
        """``t / other``, elementwise with NumPy broadcasting; recorded."""
        return ops.Div.apply(self, other)

    def __rtruediv__(self, other):
        """``other / t`` when the left operand is not a Tensor."""
        return ops.Div.apply(other, self)

    def __pow__(self, other):
        """``t ** other``, elementwise; recorded (a Tensor exponent's gradient needs t > 0)."""
        return ops.Pow.apply(self, other)

    def __rpow__(self, other):
        """``other ** t`` when the left operand is not a Tensor, e.g. ``2 ** t``."""
        return ops.Pow.apply(other, self)

    def __matmul__(self, other):
        """``t @ other``, the matrix product like ``np.matmul``; a mismatch names the axes that disagree."""
        return ops.MatMul.apply(self, other)

    def __rmatmul__(self, other):
        """``other @ t`` when the left operand is not a Tensor."""
        return ops.MatMul.apply(other, self)

    def __neg__(self):
        """``-t``, recorded."""
        return ops.Neg.apply(self)

    def __pos__(self):
        """``+t``: the tensor itself (nothing is recorded)."""
        return self

    # In-place arithmetic writes into `data` under no_grad (PyTorch's update idiom) and when
    # nothing requires grad; when the graph records it, it means `t = t + other` (see _in_place).
    def __iadd__(self, other):
        """``t += other``: in place, or ``t = t + other`` when recorded (see ``_in_place``)."""
        return self._in_place(np.add, ops.Add.apply, "+=", other)

    def __isub__(self, other):
        """``t -= other``: in place, or ``t = t - other`` when recorded (see ``_in_place``)."""
        return self._in_place(np.subtract, ops.Sub.apply, "-=", other)

    def __imul__(self, other):
        """``t *= other``: in place, or ``t = t * other`` when recorded (see ``_in_place``)."""
        return self._in_place(np.multiply, ops.Mul.apply, "*=", other)

    def __itruediv__(self, other):
        """``t /= other``: in place, or ``t = t / other`` when recorded (see ``_in_place``)."""
        return self._in_place(np.true_divide, ops.Div.apply, "/=", other)

    def _records_write_of(self, other) -> bool:
        """Whether writing `other` into this tensor in place must be recorded: grad mode, and either
        side requires grad (t += x and t[i] = x share the rule)."""
        return autograd.is_grad_enabled() and (
            self.requires_grad or (isinstance(other, Tensor) and other.requires_grad))

    def _in_place(self, ufunc, op, symbol: str, other):
        """Write `ufunc(data, other)` into `data` (dtype and shape kept; the version counts it) under
        no_grad, or when neither side requires grad (nothing to record). Otherwise record
        `op(self, other)` as a new tensor, except on a leaf that requires grad: replacing it would
        silently make the parameter a non-leaf."""
        if self._records_write_of(other):
            if self.requires_grad and self._ctx is None:
                raise RuntimeError(
                    f"`{symbol}` on a leaf that requires grad, in grad mode, would record a new tensor and "
                    "leave the parameter behind; update parameters without recording:\n"
                    "    with tg.no_grad():\n        w -= lr * w.grad"
                )
            result = op(self, other)
            if self.retains_grad:  # as in PyTorch, .grad follows the tensor to its new value
                result.retain_grad()
            return result
        value = other.data if isinstance(other, Tensor) else other
        try:
            ufunc(self.data, value, out=self.data, casting="same_kind")
        except (ValueError, TypeError) as error:
            kind = TypeError if isinstance(error, TypeError) else ValueError  # not NumPy's subclasses
            raise kind(f"in-place {symbol} on a tensor of shape {self.shape} and dtype {self.dtype} "
                       f"with shape {np.shape(value)}: {error}") from None
        self._bump_version()
        return self

    # Comparisons give boolean tensors, outside the graph.
    def __lt__(self, other):
        """``t < other``, elementwise: a boolean Tensor outside the graph."""
        return compare(np.less, self, other)

    def __le__(self, other):
        """``t <= other``, elementwise: a boolean Tensor outside the graph."""
        return compare(np.less_equal, self, other)

    def __gt__(self, other):
        """``t > other``, elementwise: a boolean Tensor outside the graph."""
        return compare(np.greater, self, other)

    def __ge__(self, other):
        """``t >= other``, elementwise: a boolean Tensor outside the graph."""
        return compare(np.greater_equal, self, other)

    def __eq__(self, other):
        """``t == other``, elementwise: a boolean Tensor outside the graph (use ``.all()`` for one answer)."""
        return compare(np.equal, self, other)

    def __ne__(self, other):
        """``t != other``, elementwise: a boolean Tensor outside the graph."""
        return compare(np.not_equal, self, other)

    # ---- elementwise -----------------------------------------------------------------
    def exp(self):
        """e ** x, elementwise."""
        return ops.Exp.apply(self)

    def log(self):
        """Natural logarithm, elementwise."""
        return ops.Log.apply(self)

    def sqrt(self):
        """Square root, elementwise (as x ** 0.5)."""
        return ops.Pow.apply(self, 0.5)

    def __abs__(self):
        """``abs(t)``, the same as ``t.abs()``."""
        return self.abs()

    def abs(self):
        """|x|, elementwise; the gradient at 0 is 0."""
        return ops.Abs.apply(self)

    def sigmoid(self):
        """1 / (1 + exp(-x)), elementwise, without overflow for large |x|."""
        return ops.Sigmoid.apply(self)

    def tanh(self):
        """Hyperbolic tangent, elementwise."""
        return ops.Tanh.apply(self)

    def sin(self):
        """Sine (radians), elementwise."""
        return ops.Sin.apply(self)

    def cos(self):
        """Cosine (radians), elementwise."""
        return ops.Cos.apply(self)

    def relu(self):
        """max(x, 0), elementwise; the gradient at 0 is 0."""
        return ops.Relu.apply(self)

    def clip(self, lo=None, hi=None):
        """Limit values to [lo, hi]; the gradient passes where lo <= x <= hi."""
        return ops.Clip.apply(self, lo=lo, hi=hi)

    # ---- reductions ------------------------------------------------------------------
    @accepts_dim
    def sum(self, axis=None, keepdims: bool = False):
        """Sum over `axis` (None: all elements), like ``np.sum``."""
        return ops.Sum.apply(self, axis=_axis_tuple(axis, self.ndim, zero_d_axis_0=True), keepdims=keepdims)

    @accepts_dim
    def mean(self, axis=None, keepdims: bool = False):
        """Mean over `axis` (None: all elements), like ``np.mean``."""
        return functional.mean(self, axis=axis, keepdims=keepdims)

    @accepts_dim
    def var(self, axis=None, keepdims: bool = False, ddof: int = 0):
        """Variance like ``np.var`` (``ddof=0``: divide by N; ``ddof=1`` for the unbiased estimate)."""
        return functional.var(self, axis=axis, keepdims=keepdims, ddof=ddof)

    @accepts_dim
    def std(self, axis=None, keepdims: bool = False, ddof: int = 0):
        """Standard deviation like ``np.std``: the square root of ``var`` (gradient 0 where it is 0)."""
        return functional.std(self, axis=axis, keepdims=keepdims, ddof=ddof)

    @accepts_dim
    def prod(self, axis=None, keepdims: bool = False):
        """Product over `axis` (None: all elements), like ``np.prod``; exact gradients with zeros."""
        return ops.Prod.apply(self, axis=_axis_tuple(axis, self.ndim, zero_d_axis_0=True), keepdims=keepdims)

    @accepts_dim
    def cumsum(self, axis=None):
        """Running sums along `axis` (None: over the flattened values), like ``np.cumsum``."""
        if axis is not None:
            (axis,) = _axis_tuple(axis, max(self.ndim, 1))  # NumPy treats a 0-d array as 1-d here
        return ops.Cumsum.apply(self, axis=axis)

    @accepts_dim
    def max(self, axis=None, keepdims: bool = False):
        """Largest values; tied maxima share the gradient equally."""
        return ops.Max.apply(self, axis=_axis_tuple(axis, self.ndim, zero_d_axis_0=True), keepdims=keepdims)

    @accepts_dim
    def min(self, axis=None, keepdims: bool = False):
        """Smallest values; tied minima share the gradient equally."""
        return ops.Min.apply(self, axis=_axis_tuple(axis, self.ndim, zero_d_axis_0=True), keepdims=keepdims)

    @accepts_dim
    def argmax(self, axis=None, keepdims: bool = False):
        """Index of the largest value (flat index when axis is None); outside the graph."""
        return Tensor._make(_as_array(np.argmax(self.data, axis=axis, keepdims=keepdims)))

    @accepts_dim
    def argmin(self, axis=None, keepdims: bool = False):
        """Index of the smallest value (flat index when axis is None); outside the graph."""
        return Tensor._make(_as_array(np.argmin(self.data, axis=axis, keepdims=keepdims)))

    @accepts_dim
    def logsumexp(self, axis=None, keepdims: bool = False):
        """log(sum(exp(x), axis)), computed without overflow."""
        return functional.logsumexp(self, axis=axis, keepdims=keepdims)

    @accepts_dim
    def any(self, axis=None, keepdims: bool = False):
        """True where any value along `axis` is nonzero; outside the graph."""
        return Tensor._make(_as_array(np.any(self.data, axis=axis, keepdims=keepdims)))

    @accepts_dim
    def all(self, axis=None, keepdims: bool = False):
        """True where every value along `axis` is nonzero; outside the graph."""
        return Tensor._make(_as_array(np.all(self.data, axis=axis, keepdims=keepdims)))

    # ---- shape -----------------------------------------------------------------------
    def reshape(self, *shape):
        """The same values in a new shape; `reshape(2, 3)` or `reshape((2, 3))`, one -1 allowed."""
        shape = _shape_args(shape)
        return ops.Reshape.apply(self, shape=shape)

    def transpose(self, *axes):
        """Permute axes like ``np.transpose`` (no arguments: reverse them).

        Two axes on a tensor that is not 2-D swap those two axes, as PyTorch's
        ``transpose(dim0, dim1)`` does (NumPy would raise there). On a 2-D tensor two axes are a
        whole permutation, so ``transpose(0, 1)`` moves nothing, as in NumPy; it warns, because
        PyTorch code means a swap by it.
        """
        two_numbers = len(axes) == 2 and all(isinstance(a, (int, np.integer)) for a in axes)
        axes = _shape_args(axes) if axes else tuple(reversed(range(self.ndim)))
        if two_numbers and self.ndim == 2 and axes in ((0, 1), (-2, -1), (0, -1), (-2, 1)):
            warnings.warn("transpose(0, 1) of a 2-D tensor is NumPy's identity permutation: nothing moves. "
                          "PyTorch's transpose(0, 1) swaps the two axes; for that write .T or transpose(1, 0)",
                          stacklevel=2)
        if len(axes) == 2 and self.ndim != 2:
            first, second = (_axis_tuple(a, self.ndim)[0] for a in axes)  # checked: 5 % 3 is no axis
            swapped = list(range(self.ndim))
            swapped[first], swapped[second] = second, first
            axes = tuple(swapped)
        return ops.Transpose.apply(self, axes=axes)

    @property
    def T(self):
        """The transpose (all axes reversed, as ``transpose()``); recorded."""
        return self.transpose()

    @property
    def mT(self):
        """Swap the last two axes (a batch of transposed matrices)."""
        return self.transpose(-1, -2) if self.ndim != 2 else self.transpose()

    def swapaxes(self, axis1: int, axis2: int):
        """Swap two axes, like ``np.swapaxes``; recorded."""
        axes = list(range(self.ndim))
        for axis in (axis1, axis2):
            if not -self.ndim <= axis < self.ndim:
                raise ValueError(f"swapaxes: axis {axis} is out of range for a tensor of shape {self.shape}")
        axes[axis1], axes[axis2] = axes[axis2], axes[axis1]
        return ops.Transpose.apply(self, axes=tuple(axes))

    @accepts_dim
    def squeeze(self, axis=None):
        """Drop axes of length 1 (all of them, or those named by `axis`)."""
        return functional.squeeze(self, axis)

    @accepts_dim
    def unsqueeze(self, axis: int):
        """Insert an axis of length 1 at `axis`."""
        return functional.unsqueeze(self, axis)

    @accepts_dim
    def flatten(self, start_axis: int = 0, end_axis: int = -1):
        """Merge the axes from `start_axis` to `end_axis` (inclusive) into one."""
        return functional.flatten(self, start_axis, end_axis)

    def ravel(self):
        """The values as one axis, like ``np.ravel`` (a reshape to ``(-1,)``)."""
        return self.reshape(-1)

    def broadcast_to(self, *shape):
        """Repeat along axes of length 1 (and new leading axes) to `shape`, like ``np.broadcast_to``."""
        shape = _shape_args(shape)
        if shape == self.shape:
            return self
        return ops.BroadcastTo.apply(self, shape=shape)

    def __getitem__(self, index):
        """Basic and integer-array indexing like NumPy; repeated indices add up in the gradient."""
        return ops.GetItem.apply(self, index=_plain_index(index))

    def __setitem__(self, index, value):
        """``t[index] = value``, as NumPy assigns (the value is broadcast and cast to t's dtype).

        When nothing requires grad, or under ``no_grad``, the values are written into ``data``
        (the version counts the write; PyTorch's ``with torch.no_grad(): w[0] = 0``). In grad
        mode, when t or the value requires grad, the write is recorded (PyTorch's CopySlices):
        t gets a new array and a node whose gradient skips the overwritten places and sends
        theirs to the value. The old array is left as it was, for the graph that may use it, so
        views and ``detach()`` results taken before keep the old values. Hooks registered
        before stay with the old values, ``retain_grad()`` follows t (both as in PyTorch). A
        leaf that requires grad refuses it, as in PyTorch.
        """
        if not self._records_write_of(value):
            self.data[_plain_index(index)] = value.data if isinstance(value, Tensor) else value
            self._bump_version()
            return
        if self.requires_grad and self._ctx is None:
            raise RuntimeError(
                f"t[...] = value on a leaf that requires grad (shape {self.shape}), in grad mode: the write "
                "would make the parameter a computed tensor; write without recording:\n"
                "    with tg.no_grad():\n        w[0] = 0.0"
            )
        if self.dtype.kind != "f":
            raise TypeError(f"t[...] = value with a value that requires grad, into a {self.dtype} tensor: "
                            "no gradient flows through integers; make t a float tensor (t.astype(np.float32))")
        written = ops.SetItem.apply(self, value, index=_plain_index(index))  # raises before any change
        retained = self.retains_grad
        if retained:  # .grad follows the tensor to its new values; the old node's hook goes
            self._ctx._hooks[:] = [h for h in self._ctx._hooks if not isinstance(h, _RetainGrad)]
        self.data, self._ctx, self._requires_grad = written.data, written._ctx, True
        self._ctx.label = self._name
        if retained:
            self.retain_grad()

    # ---- NumPy interoperability ------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        """NumPy ufuncs on Tensors (``np.exp(t)``, ``ndarray + t``) give recorded Tensors, or a TypeError."""
        return _interop().array_ufunc(ufunc, method, inputs, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        """NumPy functions on Tensors (``np.sum``, ``np.dot``, ...) give recorded Tensors, or a TypeError."""
        return _interop().array_function(func, args, kwargs)

    # ---- PyTorch's spellings ---------------------------------------------------------
    # The operations above under the names PyTorch code uses, so a port runs as written. Last
    # in the class: `float` and `double` would shadow the builtins for the class body below them.
    def permute(self, *dims):
        """Reorder all the axes, as PyTorch's ``permute`` (NumPy: ``transpose(*axes)``)."""
        dims = _shape_args(dims)
        if len(dims) != self.ndim:
            raise ValueError(f"permute of a tensor of shape {self.shape} takes {self.ndim} axes, got {dims}")
        return self.transpose(dims)

    def t(self):
        """The transpose of a matrix (a tensor of 0, 1 or 2 axes), as PyTorch's ``t()``."""
        if self.ndim > 2:
            raise ValueError(f"t() takes a tensor of at most 2 axes, got shape {self.shape}; for two axes of "
                             "a bigger one use transpose(dim0, dim1)")
        return self.transpose()

    def expand(self, *sizes):
        """``broadcast_to`` as PyTorch spells it: a size of -1 keeps that axis's length."""
        sizes = _shape_args(sizes)
        new_axes = len(sizes) - self.ndim
        return self.broadcast_to(tuple(self.shape[i - new_axes] if size == -1 and i >= new_axes else size
                                       for i, size in enumerate(sizes)))

    def expand_as(self, other):
        """``broadcast_to(other.shape)``."""
        return self.broadcast_to(other.shape)

    def reshape_as(self, other):
        """``reshape(other.shape)``."""
        return self.reshape(other.shape)

    def clamp(self, min=None, max=None):  # noqa: A002 (PyTorch's argument names)
        """``clip(min, max)`` as PyTorch spells it."""
        return self.clip(min, max)

    def neg(self):
        """``-t``."""
        return -self

    def pow(self, exponent):
        """``t ** exponent``."""
        return self ** exponent

    def square(self):
        """``t ** 2``."""
        return self ** 2

    @accepts_dim
    def softmax(self, axis: int):
        """``F.softmax(t, axis)`` as a method, as PyTorch's ``t.softmax(dim)``."""
        return functional.softmax(self, axis)

    @accepts_dim
    def log_softmax(self, axis: int):
        """``F.log_softmax(t, axis)`` as a method, as PyTorch's ``t.log_softmax(dim)``."""
        return functional.log_softmax(self, axis)

    def numel(self) -> int:
        """The number of elements (``.size``), as PyTorch's ``numel()``."""
        return self.size

    def to(self, *args, dtype=None, device=None, copy: bool = False):
        """``astype`` as PyTorch spells it: ``t.to(np.float64)``, ``t.to("float64")``, ``t.to(other)``
        (other's dtype), ``t.to("cpu")``. Without a change (and without ``copy=True``) it returns t
        itself, as PyTorch does. Only the CPU exists here: everything is NumPy."""
        dtype = conversion_dtype(args, dtype, device)
        if dtype is not None and np.dtype(dtype) != self.dtype:
            return self.astype(dtype)
        return self.astype(self.dtype) if copy else self

    def float(self):
        """``astype(np.float32)``, as PyTorch's ``float()``."""
        return self.astype(np.float32)

    def double(self):
        """``astype(np.float64)``, as PyTorch's ``double()``."""
        return self.astype(np.float64)

    def half(self):
        """``astype(np.float16)``, as PyTorch's ``half()``."""
        return self.astype(np.float16)

    def long(self):
        """``astype(np.int64)``, as PyTorch's ``long()``: class indices; outside the graph."""
        return self.astype(np.int64)

    def int(self):
        """``astype(np.int32)``, as PyTorch's ``int()``; outside the graph."""
        return self.astype(np.int32)

    def bool(self):
        """``astype(np.bool_)``, as PyTorch's ``bool()``: a mask; outside the graph."""
        return self.astype(np.bool_)


def conversion_dtype(args: tuple, dtype=None, device=None):
    """The dtype that ``.to(*args, dtype=, device=)`` asks for (None: keep it), as PyTorch reads the
    arguments: a dtype, a Tensor (its dtype) or a device, which can only be the CPU."""
    for arg in args:
        if isinstance(arg, str) and arg.split(":")[0] in ("cpu", "cuda", "mps", "meta", "xpu"):
            device = arg
        elif isinstance(arg, Tensor):
            dtype = arg.dtype
        else:
            dtype = arg
    if device is not None and str(device).split(":")[0] != "cpu":
        raise ValueError(f"tinygrad_edu runs on the CPU with NumPy: device {device!r} is not available "
                         "(use 'cpu', or leave .to(device) out)")
    return None if dtype is None else np.dtype(dtype)


# ---- functions of several tensors (tg.maximum, tg.where, ...) ---------------------------
def maximum(x, y) -> Tensor:
    """Elementwise larger of x and y; where they tie, each gets half the gradient."""
    return ops.Maximum.apply(x, y)


def minimum(x, y) -> Tensor:
    """Elementwise smaller of x and y; where they tie, each gets half the gradient."""
    return ops.Minimum.apply(x, y)


def where(cond, x, y) -> Tensor:
    """x where cond is true, else y (cond is a boolean array or Tensor, never differentiated)."""
    return ops.Where.apply(cond, x, y)


@accepts_dim
def concatenate(tensors, axis: int = 0) -> Tensor:
    """Join tensors along an existing axis, like ``np.concatenate``."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("concatenate needs at least one tensor")
    return ops.Concatenate.apply(*tensors, axis=axis)


@accepts_dim
def stack(tensors, axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis, like ``np.stack``."""
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack needs tensors of one shape, got {sorted(shapes)}")
    return concatenate([t.unsqueeze(axis) for t in tensors], axis=axis)


def einsum(subscripts: str, *operands) -> Tensor:
    """Einstein summation, like ``np.einsum`` (explicit, implicit and '...' forms), differentiable.

    Examples
    --------
    >>> import numpy as np, tinygrad_edu as tg
    >>> a = tg.Tensor(np.ones((2, 3)))
    >>> b = tg.Tensor(np.ones((3, 4)))
    >>> tg.einsum("ij,jk->ik", a, b).shape
    (2, 4)
    """
    return ops.Einsum.apply(*operands, subscripts=subscripts)


class _RetainGrad:
    """The hook retain_grad() puts on a non-leaf's node: accumulate the gradient into its `.grad`.

    It holds the tensor weakly: the node must not keep alive a tensor nobody else keeps."""

    def __init__(self, tensor: Tensor):
        self.tensor = weakref.ref(tensor)

    def __call__(self, grad: Tensor) -> None:
        tensor = self.tensor()
        if tensor is None:
            return
        if not grad.requires_grad:
            grad = Tensor._make(np.array(grad.data))  # an array of its own: zero_grad writes into it
        tensor.grad = grad if tensor.grad is None else tensor.grad + grad


def _warn_if_the_graph_is_dropped() -> None:
    """Warn when NumPy's or SciPy's own code (not their testing helpers), or Tensor() given a list,
    is turning a Tensor that requires grad into an array."""
    frame, level = sys._getframe(2), 3  # the caller of Tensor.__array__, and its stacklevel
    if frame.f_code is _as_array.__code__:  # Tensor([a, b]) of tensors: NumPy stacked them here
        where = "Tensor() was given Tensors inside a list (or tuple), and stacked their values"
        frame, level = frame.f_back.f_back, level + 2  # past _as_array and Tensor.__init__
    else:
        function = None
        while frame is not None and _in_numpy_or_scipy(frame):
            function = f"{frame.f_globals['__name__'].split('.')[0]}.{frame.f_code.co_name}"
            frame, level = frame.f_back, level + 1
        if function is None:
            return  # np.asarray(t) asked for by the caller: the array is what they want
        where = f"{function} turned Tensors into plain arrays (NumPy does to Tensors inside a list or tuple)"
    warnings.warn(
        f"{where}: the result has no graph, and no gradient reaches these tensors. Combine them with "
        "Tensor operations first (e.g. tg.stack([...]), tg.stack([...]).mean(axis=0)), or pass t.detach() "
        "to use the values on purpose", GraphDroppedWarning, stacklevel=level)


def _in_numpy_or_scipy(frame) -> bool:
    module = frame.f_globals.get("__name__", "")
    testing = ("numpy.testing", "scipy._lib._testutils")
    return module.startswith(("numpy.", "scipy.")) and not module.startswith(testing)


class GraphDroppedWarning(UserWarning):
    """A Tensor that requires grad was used where the graph cannot follow (e.g. np.mean([x, y]))."""


class _HookHandle:
    """Returned by `register_hook`; `.remove()` takes the hook off again."""

    def __init__(self, hooks: list, fn):
        self._hooks, self._fn = hooks, fn

    def remove(self) -> None:
        if self._fn in self._hooks:
            self._hooks.remove(self._fn)


def as_tensor(x) -> Tensor:
    """`x` itself if it is a Tensor, else a new (constant) Tensor of it."""
    return x if isinstance(x, Tensor) else Tensor(x)


def clear_grad(t: Tensor, set_to_none: bool = True) -> None:
    """What zero_grad does to one tensor: drop its gradient, or zero it in place (as PyTorch)."""
    if set_to_none:
        t._grad = None
    elif t._grad is not None:
        if t._grad.data.flags.writeable and not t._grad.requires_grad:
            # Safe: backward gives every leaf a gradient array of its own. A recorded gradient
            # (create_graph) may be part of a graph, so it is replaced instead.
            t._grad.data[...] = 0
        else:
            t._grad = Tensor._make(np.zeros_like(t.data))


def compare(ufunc, x, y) -> Tensor:
    """x < y and friends: a boolean Tensor outside the graph, checked by the broadcast guard."""
    x = x.data if isinstance(x, Tensor) else x
    y = y.data if isinstance(y, Tensor) else y
    symbol = _COMPARISON_SYMBOLS[ufunc]
    try:
        result = _as_array(ufunc(x, y))  # keeps tg.compile's traced arrays: a mask made of values is traced
    except ValueError as error:
        raise ValueError(f"comparison {symbol} of shapes {np.shape(x)} and {np.shape(y)}: {error}") from None
    guards.check_broadcast(symbol, result.shape, np.shape(x), np.shape(y))
    return Tensor._make(result)


_COMPARISON_SYMBOLS = {
    np.less: "<", np.less_equal: "<=", np.greater: ">", np.greater_equal: ">=", np.equal: "==",
    np.not_equal: "!=",
}


@functools.cache
def _interop():
    """The interop module, imported on NumPy's first call: it builds on Tensor, so importing it
    when this module loads would pull it into the core's import circle."""
    from . import interop

    return interop


def _shape_args(args: tuple) -> tuple:
    """Accept both f(2, 3) and f((2, 3))."""
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


def broadcast_axes(shape: tuple, out_shape: tuple) -> tuple:
    """(added, stretched): the leading axes broadcasting put in front of `shape` to reach
    `out_shape`, and the axes where it stretched a side of 1. The engine's unbroadcast sums both
    (the one place gradients are reduced); explain names them."""
    extra = len(out_shape) - len(shape)
    stretched = tuple(extra + i for i, n in enumerate(shape) if n == 1 and out_shape[extra + i] != 1)
    return tuple(range(extra)), stretched


def _axis_tuple(axis, ndim: int, zero_d_axis_0: bool = False):
    """Normalise axis=None|int|tuple to None or a tuple of non-negative ints, checking range.

    NumPy's ufunc reductions (sum, prod, max, min) and squeeze also accept the int axis 0 or -1
    on a 0-d array (doing nothing); `zero_d_axis_0=True` follows that (mean, var, std raise there).
    """
    if axis is None:
        return None
    if zero_d_axis_0 and ndim == 0 and isinstance(axis, (int, np.integer)) and axis in (0, -1):
        return ()
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    for a in axes:
        if not -ndim <= a < ndim:
            # AxisError is both a ValueError and an IndexError, as NumPy raises it
            raise np.exceptions.AxisError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
    normalised = tuple(int(a) % ndim for a in axes)
    if len(set(normalised)) != len(normalised):
        raise ValueError(f"axis {axis} repeats an axis")
    return normalised


# PyTorch counts in-place writes per block of memory: a tensor, its views and its detach() share
# one version counter. Here the block is the array that owns the memory (`memory_of`), so every
# Tensor that sees those values sees the write, however it was made (a view under no_grad too).
class _Writes:
    """The in-place writes into one block of memory: how many (the version), and the newest one's
    `seq` number (a node made before it that saved this memory refuses its backward)."""

    __slots__ = ("version", "newest")

    def __init__(self, owner: np.ndarray):
        self.version, self.newest = 0, -1
        weakref.finalize(owner, _writes.pop, id(owner), None)  # once freed, its id may be reused


_writes = {}  # id(memory owner) -> _Writes; an entry leaves when its owner is freed


def memory_of(array) -> np.ndarray:
    """The array that owns `array`'s memory, found through NumPy's `.base` links (views of
    views, and NumPy's own helpers' links, lead to it); `array` itself when it owns its data."""
    owner = array
    while (array := getattr(array, "base", None)) is not None:
        owner = array if isinstance(array, np.ndarray) else owner  # not a bytes buffer under it
    return owner


def writes_into(array) -> Optional[_Writes]:
    """The _Writes of the memory `array` uses, or None if nothing was written into it."""
    return _writes.get(id(memory_of(array)))


def _plain_index(index):
    """Replace Tensors inside an index by their arrays (indices are never differentiated)."""
    if isinstance(index, tuple):
        return tuple(_own_index_array(i) for i in index)
    if isinstance(index, list):
        # A list index is integer-array indexing in NumPy; make that explicit. An empty
        # list selects nothing (NumPy reads it as an empty integer array, not a float one).
        array = np.asarray([i.data if isinstance(i, Tensor) else i for i in index])
        return array.astype(np.intp) if array.size == 0 and array.dtype.kind == "f" else array
    return _own_index_array(index)


def _own_index_array(index):
    """A copy of an index array (of a Tensor or an ndarray); anything else as given.

    Backward scatters the gradient through the index, so a later change to the caller's array
    must not move it (a NumPy array has no version counter to catch that). The array's own
    copy() keeps its class: tg.compile's traced arrays record it, so an index computed from
    values (``t[t < 0]``) is recomputed on every call of a compiled step.
    """
    if isinstance(index, (Tensor, np.ndarray)):
        return (index.data if isinstance(index, Tensor) else index).copy()
    return index


# Imported last: the rest of the core builds on Tensor, and Tensor's methods call it. guards
# (comparisons are checked for broadcasting) imports nothing of the core, so it is no cycle.
from . import autograd, functional, guards, ops  # noqa: E402
