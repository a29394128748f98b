"""tg.compile: trace a training step once, then replay it as straight-line NumPy code.

Tracing runs `fn(*args)` and its backward eagerly, with the real engine and the real ops, on
arrays of a recording ndarray subclass (`_Traced`): every NumPy call an op's forward or backward
makes on them becomes one line of Python. No op's math is written here a second time.
"""
from __future__ import annotations

import builtins
import inspect
import keyword
import operator
import re
import threading
import warnings
from typing import Callable

import numpy as np
import scipy.special

from . import autograd, creation
from .explain import Explanation
from .nn.module import Module
from .tensor import Tensor

__all__ = ["compile", "CompiledStep", "TracingError"]

_LIMITS = ("a Python value taken from tensor values (t.item(), if t > 0:) is checked at every call and "
           "traces again when it changes; arrays fn reads from its closure or globals are read at every "
           "call; what NumPy computes from a plain copy (np.asarray(t)) and arrays reached otherwise are "
           "fixed at trace time; gradient hooks and the broadcast guard run while tracing, not on replay")


class TracingError(RuntimeError):
    """A step could not be turned into a program that is sure to compute what eager mode computes."""


# ---- the recorder: one per trace, reached through a thread-local ------------------------------------
_active = threading.local()


def _recorder():
    return getattr(_active, "recorder", None)


class _Var:
    """A name in the program: an input, a constant or a temporary (one line's result)."""

    __slots__ = ("name", "shape", "dtype", "kind", "root", "scalar", "fresh", "value", "ufunc_result")

    def __init__(self, name, value, kind, root=None):
        self.name, self.kind, self.value = name, kind, None
        self.shape, self.dtype = np.shape(value), getattr(value, "dtype", None)
        self.root = root or self  # views share their base's root: an in-place write reaches all of them
        self.scalar = False  # a NumPy scalar in the program (a full reduction), a 0-d array while tracing
        self.fresh = False  # a new array the program owns (not a view, an input or a constant)
        # Made by a ufunc call: a new array at every call. (A reshape that copied while tracing may be a
        # view of its input on a call with other strides; a ufunc's result never is.)
        self.ufunc_result = False


class _Line:
    """One statement: `pieces` (text and _Vars) rendered with the final names."""

    __slots__ = ("target", "pieces", "reads", "in_place", "inline", "ufunc", "operands", "numbers", "guard")

    def __init__(self, target, pieces, reads, in_place=False):
        self.target, self.pieces, self.reads, self.in_place = target, pieces, reads, in_place
        self.guard = False  # checks that a value the trace turned into Python is the same at this call
        self.inline = False  # a view by attribute (x.T): written where it is used instead
        self.ufunc, self.operands = None, ()  # an elementwise ufunc call: may reuse a dead operand's memory
        self.numbers = {}  # operand index -> the 0-d array that the runnable program passes for a number

    def render(self) -> str:
        text = "".join(p.name if isinstance(p, _Var) else p for p in self.pieces)
        if self.guard:
            return f"{text}  # a Python value the trace took: another one traces again"
        shape = "()" if self.target.scalar else str(self.target.shape)
        return f"{text}  # {shape}"


_OPERATORS = {
    np.add: "+", np.subtract: "-", np.multiply: "*", np.true_divide: "/", np.power: "**", np.matmul: "@",
    np.greater: ">", np.greater_equal: ">=", np.less: "<", np.less_equal: "<=", np.equal: "==",
    np.not_equal: "!=", np.bitwise_and: "&", np.bitwise_or: "|", np.floor_divide: "//", np.remainder: "%",
}
_UNARY = {np.negative: "-", np.invert: "~", np.positive: "+"}
_REDUCE_METHODS = {np.add: "sum", np.maximum: "max", np.minimum: "min"}
_SUM = np.add.reduce  # marks a line that sums (one bound method: np.add.reduce makes a new one per access)


class _Recorder:
    """Collects the lines of one trace and the variables they define."""

    def __init__(self):
        self.lines, self.used_names = [], {"np", "expit", "scipy"}
        self.by_address = {}  # where a variable's values are in memory: finds plain views of it
        self.vars = {}  # id(traced array) -> (array, _Var); keeps the arrays alive, so ids stay unique
        self.constants = {}  # namespace name -> value, for constants too big to write out
        self.number_arrays = {}  # name -> 0-d array: numbers as the runnable program passes them
        self.number_names = {}  # (dtype, value) -> that name
        self.counter = 0
        self.inputs = []  # the _Vars of arguments and parameters: arrays whose values change between calls
        self.indices = []  # _Vars of integer or boolean copies: index arrays of the step's values

    # -- names and values ---------------------------------------------------------------------------
    def unique(self, base: str) -> str:
        base = "".join(c if c.isalnum() or c == "_" else "_" for c in base) or "v"
        if base[0].isdigit() or keyword.iskeyword(base):
            base = "v" + base
        name, k = base, 1
        while name in self.used_names:
            k += 1
            name = f"{base}{k}"
        self.used_names.add(name)
        return name

    def traced(self, array: np.ndarray, name: str, kind: str, root=None) -> "_Traced":
        value = array.view(_Traced)
        var = _Var(self.unique(name), array, kind, root)
        self.vars[id(value)] = (value, var)
        value._var, var.value = var, value
        if kind == "input":
            self.inputs.append(var)
        self.by_address[_address(value)] = var
        return value

    def var_of(self, x):
        """The _Var a traced array (or a plain view that is exactly one) stands for, else None."""
        if isinstance(x, _Traced):
            if x._var is None:
                raise TracingError("an array reached the program through a NumPy path the tracer does not "
                                   "record (e.g. a conversion like np.asarray(x, dtype=...)); " + _HINT)
            return x._var
        if isinstance(x, np.ndarray):  # np.asarray(traced) gives a plain view of it: the same values
            return self.by_address.get(_address(x))
        return None

    def expr(self, x, reads: list, in_index=False) -> list:
        """Pieces that write `x` in the program: a variable, a literal or a named constant."""
        var = self.var_of(x) if isinstance(x, np.ndarray) else None
        if var is not None:
            reads.append(var)
            return [var]
        if isinstance(x, tuple) or isinstance(x, list):
            parts = [self.expr(item, reads, in_index) for item in x]
            joined = _join(parts)
            if isinstance(x, list):
                return ["["] + joined + ["]"]
            if in_index:
                return joined + ([","] if len(x) == 1 else []) if x else ["()"]
            return ["("] + joined + ([",)"] if len(x) == 1 else [")"])
        if isinstance(x, slice) and in_index:
            bounds = ["" if b is None else repr(b) for b in (x.start, x.stop, x.step)]
            return [":".join(bounds[:2]) + (f":{bounds[2]}" if bounds[2] else "")]
        if isinstance(x, np.ndarray) and x.size and any(np.may_share_memory(x, _plain(var.value))
                                                        for var in self.inputs):
            # A view of an input the tracer did not see being made: as a constant it would freeze the
            # trace's values (sliding windows of an array argument wrapped in a Tensor inside the step).
            raise TracingError("an array viewing an input reached the program through a NumPy path the tracer "
                               "does not record (e.g. the sliding windows of conv2d or max_pool2d on an array "
                               "argument); its values would be frozen at the trace. Pass that argument as a "
                               "Tensor, e.g. step(tg.Tensor(x)); " + _HINT)
        return [self.literal(x)]

    def literal(self, x) -> str:
        if x is None or isinstance(x, (bool, str)) or x is Ellipsis:
            return "..." if x is Ellipsis else repr(x)
        if isinstance(x, int):  # any size: np.isfinite refuses ints beyond float64
            return repr(x)
        if isinstance(x, float):
            return repr(x) if np.isfinite(x) else f"float({str(x)!r})"
        if isinstance(x, np.dtype) or (isinstance(x, type) and issubclass(x, np.generic)):
            return f"np.{np.dtype(x).name}"
        if isinstance(x, np.generic) and x.ndim == 0 and np.isfinite(x) and x.dtype.kind in "biuf":
            return f"np.{x.dtype.name}({x.item()!r})"
        if isinstance(x, np.ndarray):
            return self.array_literal(x)
        if isinstance(x, slice):
            return repr(x)
        name = self.unique(f"const{len(self.constants) + 1}")
        self.constants[name] = x
        return name

    def array_literal(self, x: np.ndarray) -> str:
        """Small regular arrays are written out (np.arange(64)); others become named constants."""
        if x.ndim == 1 and x.dtype.kind in "iu" and np.array_equal(x, np.arange(x.size)):
            return f"np.arange({x.size})"
        if x.ndim == 0 and x.dtype.kind in "biuf" and np.isfinite(x):
            return f"np.array({x.item()!r}, dtype=np.{x.dtype.name})"
        if x.size and x.dtype.kind in "biuf" and np.all(x == x.flat[0]) and x.flat[0] in (0, 1):
            kind = "ones" if x.flat[0] else "zeros"
            return f"np.{kind}({x.shape}, dtype=np.{x.dtype.name})"
        name = self.unique(f"const{len(self.constants) + 1}")
        self.constants[name] = x
        return name

    # -- recording ------------------------------------------------------------------------------------
    def result(self, value, pieces, reads, sources=()):
        """Name a fresh result: a new variable, viewing one of `sources` if it shares their memory."""
        scalar = not isinstance(value, np.ndarray)
        array = np.asarray(value)
        same = next((s for s, plain in sources if not scalar and _address(array) == _address(plain)), None)
        if same is not None:  # a view with the source's exact layout (x.reshape(x.shape)): the same values
            out = array.view(_Traced)
            out._var = same
            self.vars[id(out)] = (out, same)
            return out
        root = next((s.root for s, plain in sources if np.may_share_memory(array, plain)), None)
        out = self.traced(array, "t", "temp", root)
        var = out._var
        var.scalar = scalar
        var.fresh = root is None and not scalar and array.flags.owndata
        self.lines.append(_Line(var, [var, " = "] + pieces, reads))
        return out

    def write(self, target: "_Traced", pieces, reads):
        """An in-place statement on `target` (x *= y, x[i] = y, np.add.at(x, i, y))."""
        var = self.var_of(target)
        self.lines.append(_Line(var, pieces, reads + [var], in_place=True))

    def guard(self, array: "_Traced") -> None:
        """The step turned values of `array` into Python (`bool(x)`, `x.item()`, `float(x)`): whatever
        it did with them (a branch, a number, a check) holds only for these values. The program checks
        them first and returns None on others, so that the call traces again."""
        var = self.var_of(array)
        plain = _plain(array)
        if plain.size == 1 and plain.dtype == bool:  # a check's answer: `if t6: return None`
            test = ["not " if plain.flat[0] else "", var]
        elif plain.size == 1 and plain.dtype.kind in "biuf" and plain.flat[0] != plain.flat[0]:
            test = ["not np.isnan(", var, ")"]
        elif plain.size == 1 and plain.dtype.kind in "biuf":
            test = [var, f" != {self.literal(plain.flat[0].item())}"]
        else:
            equal_nan = f", equal_nan={plain.dtype.kind in 'fc'}"
            test = ["not np.array_equal(", var, ", ", self.array_literal(plain.copy()), equal_nan + ")"]
        line = _Line(var, ["if "] + test + [": return None"], [var], in_place=True)
        line.guard = True
        self.lines.append(line)

    def call_ufunc(self, ufunc, method, inputs, out, kwargs):
        plain = [_plain(x) for x in inputs]
        reads = []
        exprs = [self.expr(x, reads) for x in inputs]
        if method == "__call__" and len(inputs) == 2 and ufunc.signature is None:  # elementwise only
            exprs = self.uniform_as_number(inputs, exprs, out)
        if method == "at":
            _refuse_traced_mask(inputs[1])
            target = inputs[0]
            if self.var_of(target) is None:
                raise TracingError(f"numpy.{ufunc.__name__}.at writes traced values into an array the "
                                   "tracer does not follow (make it with np.zeros_like(x), not np.zeros)")
            ufunc.at(*plain, **kwargs)
            self.write(target, [f"{_ufunc_name(ufunc)}.at("] + _join(exprs) + [")"], reads)
            return None
        if out is not None:
            return self.in_place(ufunc, method, inputs, plain, exprs, reads, out, kwargs)
        value = getattr(ufunc, method)(*plain, **kwargs)
        if isinstance(value, tuple):
            raise TracingError(f"numpy.{ufunc.__name__} returns several arrays; the tracer records one")
        lines_before = len(self.lines)
        out = self.result(value, self.ufunc_pieces(ufunc, method, exprs, kwargs, reads), reads,
                          self.sources(inputs))
        made_line = len(self.lines) > lines_before and self.lines[-1].target is out._var
        if method == "__call__" and made_line:
            out._var.ufunc_result = out._var.fresh
        if method == "__call__" and not kwargs and ufunc.signature is None and made_line:
            line = self.lines[-1]
            line.ufunc = ufunc
            line.operands = [(self.var_of(x) if isinstance(x, np.ndarray) else None, e)
                             for x, e in zip(inputs, exprs)]
            line.numbers = self.numbers_as_arrays(ufunc, inputs, exprs)
        return out

    def numbers_as_arrays(self, ufunc, inputs, exprs) -> dict:
        """operand index -> the name of a 0-d array holding a number operand of + - * / beside a float
        array, for the runnable program: NumPy converts a Python number (or np.float64(0.25)) anew at
        every call, which costs more than the operation on a small array; a 0-d array of the dtype
        NumPy converts the number to gives the same values and dtype."""
        if ufunc not in (np.add, np.subtract, np.multiply, np.true_divide) or len(inputs) != 2:
            return {}
        numbers = {}
        for i, (x, pieces) in enumerate(zip(inputs, exprs)):
            other = self.var_of(inputs[1 - i]) if isinstance(inputs[1 - i], np.ndarray) else None
            if other is None or other.scalar or other.dtype.kind != "f" or self.var_of(x) is not None:
                continue
            if type(x) in (int, float):  # NumPy converts a Python number to the array's dtype
                if not abs(x) <= np.finfo(other.dtype).max:
                    continue  # it would overflow to inf (or is nan): left as NumPy handles it
                number = np.array(x, dtype=other.dtype)
                if type(x) is int and number != x:
                    continue
            elif isinstance(x, np.floating) or (isinstance(x, np.ndarray) and x.ndim == 0
                                                and x.dtype.kind == "f"):
                number = np.array(x)  # a NumPy scalar or 0-d array keeps its own dtype
            elif isinstance(x, np.ndarray) and x.size and pieces == [self.literal(x.flat[0].item())]:
                number = np.array(x.flat[0])  # a uniform constant written as its number (of other's dtype)
            else:
                continue
            if not np.isfinite(number):
                continue
            key = (number.dtype.str, number.item())
            if key not in self.number_names:
                number.flags.writeable = False  # shared by every call
                self.number_names[key] = self.unique(f"number_{number.item()!r}")
                self.number_arrays[self.number_names[key]] = number
            numbers[i] = self.number_names[key]
        return numbers

    def uniform_as_number(self, inputs, exprs, out):
        """A constant operand whose elements are all one value (a gradient d(c * sum x)/dx) is written
        as that number, when the other operand alone gives the result's shape, dtype and memory order
        (NumPy lays a result out like its operands; a later sum adds in that order)."""
        shapes = [np.shape(x) for x in inputs]
        for i, x in enumerate(inputs):
            other = inputs[1 - i]
            if (type(x) is np.ndarray and self.var_of(x) is None and x.size > 1 and x.dtype.kind == "f"
                    and isinstance(other, np.ndarray) and self.var_of(other) is not None
                    and other.dtype == x.dtype and np.all(x == x.flat[0])
                    and np.broadcast_shapes(*shapes) == shapes[1 - i]
                    and (other.flags.c_contiguous or not any(x.strides)
                         or (other.flags.f_contiguous and x.flags.f_contiguous))
                    and (out is None or out[0] is other)):
                exprs = list(exprs)
                exprs[i] = [self.literal(x.flat[0].item())]
        return exprs

    def in_place(self, ufunc, method, inputs, plain, exprs, reads, out, kwargs):
        if len(out) != 1 or self.var_of(out[0]) is None:
            raise TracingError(f"numpy.{ufunc.__name__}(..., out=) writes into an array the tracer does not "
                               "follow; " + _HINT)
        target = out[0]
        var = self.var_of(target)
        getattr(ufunc, method)(*plain, out=(_plain(target),), **kwargs)
        symbol = _OPERATORS.get(ufunc)
        operator_form = method == "__call__" and symbol and len(inputs) == 2 and not kwargs
        if operator_form and self.var_of(inputs[0]) is var:
            self.write(target, [var, f" {symbol}= "] + _grouped(exprs[1]), reads)
        elif var.scalar:  # a NumPy scalar cannot be written into: give the name the new value
            pieces = self.ufunc_pieces(ufunc, method, exprs, {}, reads)
            self.lines.append(_Line(var, [var, " = "] + pieces, reads + [var], in_place=True))
        else:
            pieces = self.ufunc_pieces(ufunc, method, exprs, kwargs, reads)
            pieces = pieces[:-1] + [", out=", var, ")"] if pieces[-1] == ")" else None
            if pieces is None:
                raise TracingError(f"numpy.{ufunc.__name__} with out= cannot be written as one line")
            self.write(target, pieces, reads)
        return target

    def ufunc_pieces(self, ufunc, method, exprs, kwargs, reads) -> list:
        if method == "__call__" and not kwargs:
            if ufunc in _OPERATORS and len(exprs) == 2:
                left, right = (_grouped(e) for e in exprs)
                return left + [f" {_OPERATORS[ufunc]} "] + right
            if ufunc in _UNARY and len(exprs) == 1:
                return [_UNARY[ufunc]] + exprs[0]
        options = [[f"{k}="] + self.expr(v, reads) for k, v in kwargs.items()]
        if method == "reduce" and ufunc in _REDUCE_METHODS and len(exprs) == 1:
            return exprs[0] + [f".{_REDUCE_METHODS[ufunc]}("] + _join(options) + [")"]
        name = _ufunc_name(ufunc) + ("" if method == "__call__" else f".{method}")
        return [f"{name}("] + _join(exprs + options) + [")"]

    def call_function(self, func, args, kwargs):
        reads = []
        if func in (np.sum, np.max, np.min, np.mean):  # np.sum(x), not np.sum(x, axis=None, keepdims=False)
            kwargs = {k: v for k, v in kwargs.items() if (k, v) not in (("axis", None), ("keepdims", False))}
        exprs = [self.expr(a, reads) for a in args]
        exprs += [[f"{k}="] + self.expr(v, reads) for k, v in kwargs.items()]
        value = func(*_plain(list(args)), **{k: _plain(v) for k, v in kwargs.items()})
        several = isinstance(value, (tuple, list)) and any(isinstance(v, np.ndarray) for v in value)
        if reads and (func in _SHAPED_BY_VALUES or several):
            raise TracingError(f"numpy.{func.__name__} on the step's values gives "
                               + ("arrays whose shape depends on those values (how many are nonzero, "
                                  "distinct...), " if func in _SHAPED_BY_VALUES else "several arrays, ")
                               + "which a program of fixed shapes cannot follow; write it with one "
                               "array of a fixed shape (a mask: tg.where(x > 0, x, 0.0); an index: x[:, :2])")
        python_value = type(value) in (bool, int, float) and reads and func not in _OF_SHAPES_ONLY
        if not isinstance(value, (np.ndarray, np.generic)) and not python_value:
            return value  # shapes, flags: plain Python values that no call's values change
        if getattr(np, func.__name__, None) is func:
            name = f"np.{func.__name__}"
        else:  # np.lib.stride_tricks.sliding_window_view and friends: named in the program's namespace
            name = self.unique(func.__name__)
            self.constants[name] = func
        if python_value:  # computed from the step's values (np.allclose(x, y)): a guard, as bool(x) is
            self.guard(self.result(np.asarray(value)[()], [f"{name}("] + _join(exprs) + [")"], reads))
            return value
        out = self.result(value, [f"{name}("] + _join(exprs) + [")"], reads, self.sources(_flatten(args)))
        if func is np.sum and len(args) == 1 and isinstance(out, np.ndarray):
            self.note_sum(args[0], kwargs, out)
        return out

    def call_method(self, x, name, args=(), kwargs=None, attribute=False):
        kwargs = kwargs or {}
        plain = _plain(x)
        value = getattr(plain, name) if attribute else getattr(plain, name)(*_plain(list(args)),
                                                                            **_plain(kwargs))
        reads = []
        pieces = self.expr(x, reads)
        if attribute:
            out = self.result(value, pieces + [f".{name}"], reads, self.sources([x]))
            if self.lines and self.lines[-1].target is out._var:
                self.lines[-1].inline = True
            return out
        else:
            options = [[f"{k}="] + self.expr(v, reads) for k, v in kwargs.items()]
            pieces = pieces + [f".{name}("] + _join([self.expr(a, reads) for a in args] + options) + [")"]
        out = self.result(value, pieces, reads, self.sources([x]))
        if name == "sum" and len(args) <= 1:  # x.sum(axis) only: dtype, out... keep the method
            self.note_sum(x, dict(zip(("axis",), args), **kwargs), out)
        return out

    def note_sum(self, x, options, out):
        """Mark a float sum as the ufunc reduction it is, so the runnable program can call
        np.add.reduce directly (ndarray.sum and np.sum are Python wrappers around it)."""
        var = self.var_of(x)
        if (var is None or not set(options) <= {"axis", "keepdims"} or var.dtype is None
                or var.dtype.kind != "f" or not self.lines or self.lines[-1].target is not out._var):
            return
        reads = []
        operands = [[var]] + [[f"{k}="] + self.expr(options[k], reads)
                              for k in ("axis", "keepdims") if k in options]
        if "axis" not in options:
            operands.insert(1, ["axis=None"])  # np.add.reduce alone would sum over axis 0 only
        line = self.lines[-1]
        line.ufunc, line.operands = _SUM, [(None, pieces) for pieces in operands]

    def sources(self, items):
        return [(self.var_of(x), _plain(x)) for x in items
                if isinstance(x, np.ndarray) and self.var_of(x) is not None]


_PROGRAMS_PER_SIGNATURE = 8  # enough for a few values a branch takes turns on; more are traced anew
_SIGNATURES = 32  # kinds of arguments kept (shapes, dtypes, Python values); more replace the oldest

# NumPy functions whose Python answer depends on arrays' shapes, dtypes or memory, never on their values.
_OF_SHAPES_ONLY = {np.shape, np.ndim, np.size, np.iscomplexobj, np.isrealobj, np.may_share_memory,
                   np.shares_memory}

# NumPy functions whose result's shape depends on the values of their input.
_SHAPED_BY_VALUES = {np.nonzero, np.flatnonzero, np.argwhere, np.unique, np.extract, np.compress,
                     np.trim_zeros, np.intersect1d, np.setdiff1d, np.setxor1d, np.union1d}

_HINT = "the step cannot be compiled as written (see docs/compile.md, 'Limits')"


def _address(x: np.ndarray) -> tuple:
    return x.__array_interface__["data"][0], x.shape, x.strides, x.dtype.str


def _describe(value) -> str:
    """A named constant in one line: what it is and, when every element is the same, that value."""
    if callable(value):
        return f"the function {value.__module__}.{value.__qualname__}"
    if not isinstance(value, np.ndarray):
        return repr(value)[:60]
    same = value.size and np.all(value == value.flat[0])
    every = f", every element {value.flat[0].item()!r}" if same else ""
    return f"{value.dtype} array {value.shape}{every}"


def _grouped(pieces: list) -> list:
    """A negative literal as an operand gets parentheses: (-2.0) ** x is not -(2.0 ** x)."""
    first = pieces[0]
    return ["("] + pieces + [")"] if isinstance(first, str) and first.startswith("-") else pieces


def _join(parts: list) -> list:
    joined = []
    for i, part in enumerate(parts):
        joined += ([", "] if i else []) + part
    return joined


def _flatten(items):
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flatten(item)
        else:
            yield item


def _plain(x):
    """The same values without the recording class (what the real NumPy call gets)."""
    if isinstance(x, _Traced):
        return x.view(np.ndarray)
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(item) for item in x)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    return x


def _ufunc_name(ufunc) -> str:
    if ufunc is scipy.special.expit:
        return "expit"
    if getattr(np, ufunc.__name__, None) is ufunc:
        return f"np.{ufunc.__name__}"
    if getattr(scipy.special, ufunc.__name__, None) is ufunc:
        return f"scipy.special.{ufunc.__name__}"
    raise TracingError(f"the ufunc {ufunc.__name__} is neither NumPy's nor scipy.special's; " + _HINT)


# ---- the recording array --------------------------------------------------------------------------
class _Traced(np.ndarray):
    """An ndarray with its value, whose NumPy calls append lines to the active trace."""

    # A Tensor made of it keeps it (tensor._as_array), so ops on that Tensor record their NumPy calls
    # too: the sliding windows of conv2d, x.mT in matmul's backward.
    keeps_its_class_in_tensors = True

    def __array_finalize__(self, obj):
        self._var = None  # a view NumPy made by itself: not in the program (using it raises)

    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        if any(isinstance(x, Tensor) for x in inputs):
            return NotImplemented  # a Tensor operand: the Tensor's own operation records it
        recorder = _recorder()
        if recorder is None:  # after tracing (an array someone kept): plain NumPy
            outs = {} if out is None else {"out": tuple(_plain(o) for o in out)}
            return getattr(ufunc, method)(*_plain(list(inputs)), **outs, **kwargs)
        return recorder.call_ufunc(ufunc, method, inputs, out, kwargs)

    def __array_function__(self, func, types, args, kwargs):
        if any(issubclass(t, Tensor) for t in types):
            return NotImplemented
        recorder = _recorder()
        if recorder is None:
            return func(*_plain(list(args)), **_plain(kwargs))
        return recorder.call_function(func, args, kwargs)

    def _method(self, name, *args, **kwargs):
        recorder = _recorder()
        if recorder is None:
            return getattr(self.view(np.ndarray), name)(*_plain(list(args)), **_plain(kwargs))
        return recorder.call_method(self, name, args, kwargs)

    # What the ops call directly on arrays (views and copies NumPy would make without asking us).
    def view(self, *args, **kwargs):
        if args[:1] == (np.ndarray,) or kwargs.get("type") is np.ndarray:  # the plain array (ours)
            return np.ndarray.view(self, *args, **kwargs)
        return self._method("view", *args, **kwargs)

    def reshape(self, *args, **kwargs):
        return self._method("reshape", *args, **kwargs)

    def transpose(self, *args):
        return self._method("transpose", *args)

    def swapaxes(self, *args):
        return self._method("swapaxes", *args)

    def astype(self, *args, **kwargs):
        return self._method("astype", *args, **kwargs)

    def copy(self, *args, **kwargs):
        out = self._method("copy", *args, **kwargs)
        recorder = _recorder()
        if recorder is not None and out.dtype.kind in "biu":  # Tensor indexing copies its index arrays
            recorder.indices.append(out._var)
        return out

    def ravel(self, *args):
        return self._method("ravel", *args)

    def nonzero(self):  # through np.nonzero, which tracing refuses: its shape depends on the values
        return np.nonzero(self)

    def flatten(self, *args):
        return self._method("flatten", *args)

    def squeeze(self, *args, **kwargs):
        return self._method("squeeze", *args, **kwargs)

    def sum(self, *args, **kwargs):
        return self._method("sum", *args, **kwargs)

    def max(self, *args, **kwargs):
        return self._method("max", *args, **kwargs)

    def min(self, *args, **kwargs):
        return self._method("min", *args, **kwargs)

    def mean(self, *args, **kwargs):
        return self._method("mean", *args, **kwargs)

    @property
    def T(self):
        recorder = _recorder()
        if recorder is None:
            return self.view(np.ndarray).T
        return recorder.call_method(self, "T", attribute=True)

    @property
    def mT(self):
        recorder = _recorder()
        if recorder is None:
            return self.view(np.ndarray).mT
        return recorder.call_method(self, "mT", attribute=True)

    def __getitem__(self, index):
        recorder = _recorder()
        if recorder is None:
            return self.view(np.ndarray)[_plain(index)]
        _refuse_traced_mask(index)
        value = self.view(np.ndarray)[_plain(index)]
        reads = []
        pieces = recorder.expr(self, reads) + ["["] + recorder.expr(index, reads, in_index=True) + ["]"]
        return recorder.result(value, pieces, reads, recorder.sources([self]))

    def __setitem__(self, index, value):
        recorder = _recorder()
        if recorder is not None:
            _refuse_traced_mask(index)
        self.view(np.ndarray)[_plain(index)] = _plain(value)
        if recorder is not None:
            reads = []
            pieces = (recorder.expr(self, reads) + ["["] + recorder.expr(index, reads, in_index=True)
                      + ["] = "] + recorder.expr(value, reads))
            recorder.write(self, pieces, reads)

    def __reduce__(self):
        return self.view(np.ndarray).__reduce__()

    # Python values made from the step's values: the program checks at every call that they are the same.
    def __bool__(self):
        return self._python_value(bool)

    def __float__(self):
        return self._python_value(float)

    def __int__(self):
        return self._python_value(int)

    def __index__(self):
        return self._python_value(operator.index)

    def __complex__(self):
        return self._python_value(complex)

    def item(self, *args):
        return self._python_value(lambda plain: plain.item(*args))

    def tolist(self):
        return self._python_value(np.ndarray.tolist)

    def _python_value(self, convert):
        value = convert(self.view(np.ndarray))  # NumPy's own errors (a bool of many elements) come first
        recorder = _recorder()
        if recorder is not None:
            recorder.guard(self)
        return value


def _refuse_traced_mask(index) -> None:
    """A boolean mask made of the step's values (``x[x < 0]``) selects a number of elements that can
    change from call to call, and every shape after it with them: a fixed program cannot follow."""
    parts = index if isinstance(index, tuple) else (index,)
    if any(isinstance(part, _Traced) and part.dtype == bool for part in parts):
        raise TracingError("an index is a boolean mask computed from the step's values (e.g. x[x < 0]): how "
                           "many elements it selects, and so the shapes after it, can change from call to "
                           "call; write it with a fixed shape instead, e.g. tg.where(x < 0, x, 0.0)")


# ---- tracing -----------------------------------------------------------------------------------------
class _Program:
    """One traced signature: the generated function, and where its inputs and gradients go."""

    def __init__(self, function, source, runnable, constants, arg_slots, leaves, grad_slots, copy_grad):
        self.function, self.source, self.constants = function, source, constants
        self.runnable = runnable  # the code that runs: .source with dels, sums as np.add.reduce, `out=`
        self.arg_slots = arg_slots  # which positional arguments are arrays the program reads
        self.leaves = leaves  # Tensors the program reads .data of at each call (parameters, ...)
        self.grad_slots = grad_slots  # ("arg", i) or ("leaf", j), one per returned gradient
        # The Tensor each gradient goes to, None for an argument's (read from each call's arguments).
        self.grad_tensors = [leaves[index] if kind == "leaf" else None for kind, index in grad_slots]
        self.grads_to_arguments = any(kind == "arg" for kind, _ in grad_slots)
        self.copy_grad = copy_grad  # per gradient: not an array of its own (a view, a constant, shared)
        # The leaves' arrays and whether they require grad, when traced: a change means another program.
        self.leaf_kinds = [(t.data.shape, t.data.dtype) for t in leaves]
        self.leaf_flags = [t.requires_grad for t in leaves]
        self.flags_seen = Tensor.requires_grad_changes  # when leaf_flags were last found to hold
        self.same_arguments, self.parameter_arguments = [], []  # see _Trace
        self.more_to_check = False  # arguments that were one object, or arrays fn closes over
        self.closed = []  # (name in the program, _ClosedName, (shape, dtype) when traced)
        self.written_inputs = []  # inputs (by position) the program writes into before a guard may fail
        self.array_arguments = False  # every argument the program reads is an ndarray (not a Tensor)

    def read_closed_arrays(self) -> list | None:
        """The arrays fn closes over, as they are now, put where the program reads them; None if one
        has another shape or dtype than when traced."""
        arrays = [handle.get() for _, handle, _ in self.closed]
        if any(a is None or (a.shape, a.dtype) != kind for a, (_, _, kind) in zip(arrays, self.closed)):
            return None
        namespace = self.function.__globals__
        for (name, _, _), array in zip(self.closed, arrays):
            namespace[name] = array
        return arrays

    def same_objects_as_traced(self, args) -> bool:
        """Whether the arguments that were one Tensor, or the Tensor fn closes over, still are."""
        return (all(args[i] is args[j] for i, j in self.same_arguments)
                and all(args[i] is tensor for i, tensor in self.parameter_arguments))


def _signature(args, kwargs) -> tuple:
    """What decides whether a traced program fits a call: arrays' shapes and dtypes, other values."""
    parts = []
    for i, value in enumerate(args):  # Tensors and arrays first: the usual arguments, checked every call
        if type(value) is Tensor:
            parts.append((value.data.shape, value.data.dtype, value.requires_grad))
        elif type(value) is np.ndarray:
            parts.append(("ndarray", value.shape, value.dtype))
        else:
            parts.append(_describe_argument(i, value))
    for name in sorted(kwargs) if kwargs else ():
        parts.append((name, _describe_argument(name, kwargs[name])))
    return tuple(parts)


def _passes_a_module(key: tuple) -> bool:
    """Whether a signature has a Module among its arguments (positional, or by keyword)."""
    parts = [part for part in key if type(part) is tuple]
    parts += [part[1] for part in parts if len(part) == 2 and type(part[1]) is tuple]  # (keyword, what)
    return any(part[:1] == ("Module",) for part in parts)


def _describe_argument(where, value):
    arrays = (Tensor, np.ndarray)
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (list, tuple)) else ()
    if (isinstance(value, arrays) and isinstance(where, str)) or any(isinstance(v, arrays) for v in items):
        raise TypeError(f"tg.compile: argument {where!r} passes arrays by keyword or inside a container; "
                        "pass each Tensor or array as a positional argument, so that every call's values "
                        "are used")
    if isinstance(value, Tensor):
        return "Tensor", value.shape, value.dtype, value.requires_grad
    if isinstance(value, np.ndarray):
        return "ndarray", value.shape, value.dtype
    if isinstance(value, Module):  # its layers compute other things in train and eval mode (Dropout)
        return "Module", id(value), tuple([module.training for _, module in value.named_modules()])
    try:
        hash(value)
        return "value", type(value), value
    except TypeError:
        return "object", id(value)  # fixed at trace time, as any other Python value


def _known_names(fn: Callable, modules: list | None = None) -> tuple:
    """id(Tensor or Module) -> a readable name, and the Tensors, from what `fn` closes over (its cells,
    the globals it uses, its `self`); the Modules found are added to `modules` when given."""
    names, tensors = {}, []
    scopes = []
    code = getattr(fn, "__code__", None)
    if getattr(fn, "__self__", None) is not None:
        scopes.append(("self", fn.__self__))
        code = getattr(fn.__func__, "__code__", None)
    elif isinstance(fn, Module):
        scopes.append(("model", fn))
    if code is not None:
        for name, cell in zip(code.co_freevars, getattr(fn, "__closure__", None) or ()):
            try:
                scopes.append((name, cell.cell_contents))
            except ValueError:  # an empty cell
                pass
        globals_ = getattr(fn, "__globals__", {})
        scopes += [(name, globals_[name]) for name in code.co_names if name in globals_]
    for prefix, value in scopes:
        _name_objects(prefix, value, names, tensors, 0, modules)
    return names, tensors


class _ClosedName:
    """A name fn's code reads from a closure cell or a global (not an argument). An ndarray there is
    read again at every call, so that a new batch bound to that name, or written into that array, is
    used; a Tensor there is checked to be the same at every call."""

    def __init__(self, name, cell=None, globals_=None):
        self.name, self.cell, self.globals_ = name, cell, globals_

    def value(self):
        try:
            return self.cell.cell_contents if self.cell is not None else self.globals_.get(self.name)
        except ValueError:  # an empty cell
            return None

    def get(self):
        """The array the name holds now (None if it holds none)."""
        value = self.value()
        return value if isinstance(value, np.ndarray) else None

    def set(self, value):
        if self.cell is not None:
            self.cell.cell_contents = value
        else:
            self.globals_[self.name] = value


def _closed_names(fn: Callable) -> list:
    """The closure cells and globals fn's own code reads."""
    fn = getattr(fn, "__func__", fn)
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    found = [_ClosedName(name, cell=cell) for name, cell in zip(code.co_freevars, fn.__closure__ or ())]
    globals_ = fn.__globals__
    return found + [_ClosedName(name, globals_=globals_) for name in code.co_names if name in globals_]


def _closed_arrays(fn: Callable) -> list:
    """The ndarrays fn's own code reads from its closure cells and the globals it names."""
    return [handle for handle in _closed_names(fn) if type(handle.get()) is np.ndarray]


def _name_objects(prefix, value, names, tensors, depth, modules=None):
    if isinstance(value, Tensor):
        if id(value) not in names:
            tensors.append(value)
        names.setdefault(id(value), value.name or prefix)
    elif isinstance(value, Module):
        for path, module in value.named_modules():
            names.setdefault(id(module), f"{prefix}_{path}" if path else prefix)
            if modules is not None and not any(module is m for m in modules):
                modules.append(module)
        for path, param in value.named_parameters():
            _name_objects(f"{prefix}_{path}", param, names, tensors, depth)
        for path, buffer in value.named_buffers():  # state read at every call (running statistics)
            _name_objects(f"{prefix}_{path}", buffer, names, tensors, depth)
    elif isinstance(value, (list, tuple)) and depth < 2 and len(value) < 1000:
        for i, item in enumerate(value):
            _name_objects(f"{prefix}{i}", item, names, tensors, depth + 1, modules)
    elif isinstance(value, dict) and depth < 2 and len(value) < 1000:
        for key, item in value.items():
            _name_objects(f"{prefix}_{key}", item, names, tensors, depth + 1, modules)
    elif depth == 0 and hasattr(value, "__dict__") and not isinstance(value, type) and not callable(value):
        for key, item in vars(value).items():  # an object holding the parameters (self.params, self.w)
            if isinstance(item, (Tensor, Module, list, tuple, dict)):
                _name_objects(key, item, names, tensors, depth + 1, modules)


class _Trace:
    """Runs fn once eagerly on recording arrays and turns what it recorded into a _Program."""

    def __init__(self, fn, args, kwargs, more_leaves=()):
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.recorder = _Recorder()
        self.names, self.known = _known_names(fn)
        self.known += [t for t in more_leaves if not any(t is k for k in self.known)]
        self.leaves, self.leaf_vars, self.swapped = [], [], []
        # Which arguments were the same Tensor, or a Tensor fn also reaches by itself, while tracing: the
        # program reads one input for both, so it fits only calls that pass the same again.
        self.same_arguments, self.parameter_arguments = [], []  # (i, j): args[i] is args[j]; (i, tensor)
        self.closed = []  # (_ClosedName, the array it held, its program variable)

    def follow_leaf(self, tensor: Tensor, name: str):
        """Give a leaf recording data (its current values) and remember it as a program input."""
        original = tensor.data
        var = self.recorder.var_of(original) if isinstance(original, np.ndarray) else None
        if var is not None:  # made inside fn from a traced array: already a value of the program
            traced = var.value
        else:
            # A copy: what the trace writes in place (running statistics) must not reach the real array,
            # since the program runs once more right after the trace and makes that write itself.
            traced = self.recorder.traced(np.array(original), name, "input")
            self.leaves.append(tensor)
            self.leaf_vars.append(traced._var)
        self.swapped.append((tensor, original))
        tensor.data = traced

    def run(self, final: bool):
        """Trace; returns the _Program, or (first attempt only) the leaves fn used that were not followed."""
        recorder = self.recorder
        signature = inspect.signature(self.fn) if callable(self.fn) else None
        arg_names = _argument_names(signature, len(self.args))
        call_args, arg_slots = [], []
        _active.recorder = recorder
        try:
            for i, (name, value) in enumerate(zip(arg_names, self.args)):
                earlier = next((j for j, other in enumerate(self.args[:i]) if other is value), None)
                if isinstance(value, Tensor) and earlier is not None:  # step(x, x): one input, read once
                    self.same_arguments.append((i, earlier))
                    call_args.append(value)
                elif isinstance(value, Tensor):
                    if any(value is tensor for tensor in self.known):  # fn also uses it as a parameter
                        self.parameter_arguments.append((i, value))
                    self.follow_leaf(value, name)
                    self.leaves.pop()  # an argument is read from each call, not kept
                    self.leaf_vars.pop()
                    arg_slots.append((i, recorder.var_of(value.data)))
                    call_args.append(value)
                elif isinstance(value, np.ndarray):
                    # A copy, as for a leaf: the program runs right after the trace and makes the step's
                    # own writes into the argument (x += 1) then; the trace must not make them first.
                    traced = recorder.traced(np.array(value), name, "input")
                    arg_slots.append((i, traced._var))
                    call_args.append(traced)
                else:
                    call_args.append(value)
            for handle in _closed_arrays(self.fn):
                original = handle.get()
                traced = recorder.traced(np.array(original), handle.name, "input")  # a copy, as for arguments
                self.closed.append((handle, original, traced._var))
                handle.set(traced)
            for tensor in self.known:
                if tensor._ctx is None and not any(t is tensor for t, _ in self.swapped):
                    self.follow_leaf(tensor, self.names.get(id(tensor)) or tensor.name or "leaf")
            drawn_before = _random_state()
            loss = self.fn(*call_args, **self.kwargs)
            if _random_state() != drawn_before:
                raise TracingError("the step drew random numbers (dropout in training mode, tg.rand, "
                                   "np.random.rand...) while tracing; the program would replay the same "
                                   "numbers on every call. Call model.eval() before compiling, draw them "
                                   "outside the step and pass them in, or run this step eagerly")
            if not isinstance(loss, Tensor) or loss.size != 1:
                raise TracingError("the compiled function must return a one-element loss Tensor, got "
                                   f"{type(loss).__name__}{getattr(loss, 'shape', '')}")
            if not loss.requires_grad:
                raise TracingError("the loss does not require grad: no parameter reaches it")
            missed = self.unfollowed_leaves(loss, final)
            if missed and not final:
                return missed
            loss_var = recorder.var_of(loss.data)
            if loss_var is None:
                raise TracingError("the loss was computed outside the tracer; " + _HINT)
            self.rename(loss_var, "loss")
            backward_starts = len(recorder.lines)
            grads = self.backward(loss)
            self.check_indices_were_followed()
        finally:
            _active.recorder = None
            for handle, original, _ in self.closed:
                handle.set(original)
            for tensor, original in reversed(self.swapped):
                tensor.data = original
        return self.build(loss_var, grads, arg_slots, backward_starts)

    def check_indices_were_followed(self) -> None:
        """An index of the step's values that no line reads was used on an array the tracer does not
        follow (a constant: ``tg.eye(10)[labels]``): the program would keep the trace's result."""
        read = {id(var) for line in self.recorder.lines for var in line.reads}
        if any(id(var) not in read for var in self.recorder.indices):
            raise TracingError("an index computed from the step's inputs (e.g. labels) picks values out of an "
                               "array the tracer does not follow, a constant made in the step or closed over "
                               "(e.g. tg.eye(10)[labels]); pass that array in as an argument, or build the "
                               "result outside the step (F.one_hot)")

    def unfollowed_leaves(self, loss: Tensor, final: bool) -> list:
        """Leaves in loss's graph whose arrays were not followed (constants, unless they live on), and
        a check that every op's output is a program variable."""
        missed, seen, stack = [], set(), [loss._ctx]
        while stack:
            item = stack.pop()
            if id(item) in seen:
                continue
            seen.add(id(item))
            if isinstance(item, autograd.Context):
                if item.out_id not in self.recorder.vars and final:
                    raise TracingError(f"{item.fn.__name__}.forward computed its result outside the tracer "
                                       "(e.g. with np.asarray or np.zeros); " + _HINT)
                stack += list(item.parents)
            elif isinstance(item, Tensor) and self.recorder.var_of(item.data) is None:
                missed.append(item)
        return missed

    def backward(self, loss: Tensor) -> list:
        """The engine's own backward, with a hook on every node and leaf that notes its gradient's name."""
        recorder, captured, restore = self.recorder, {}, []

        def capture(key):
            def hook(grad):
                # A gradient made from constants alone (d sum / dx is ones) is a constant of the program.
                var = recorder.var_of(grad.data)
                captured[key] = var or _Var(recorder.literal(grad.data), grad.data, "const")
            return hook

        def only_watching(user_hook, label):
            def hook(grad):
                if user_hook(grad) is not None:
                    raise TracingError(f"a hook on {label} returned a new gradient; hooks run only while "
                                       "tracing, so the program could not repeat that: " + _HINT)
            return hook

        items = [item for item in autograd.toposort([loss]) if item is not loss._ctx]
        for item in items:
            previous = item._hooks
            label = item.fn.__name__ if isinstance(item, autograd.Context) else "a leaf"
            watched = [only_watching(h, label) for h in previous or ()]
            item._hooks = watched + [capture(id(item))]
            restore.append((item, previous))
        arguments = [a for i, a in enumerate(self.args)
                     if isinstance(a, Tensor) and not any(i == j for j, _ in self.same_arguments)]
        followed = [tensor for tensor in arguments + self.leaves if tensor.requires_grad]
        # A gradient that an index of the step's values places (d sum(x[i]) / dx) must be traced from the
        # loss; from a constant seed it would be folded into a constant of the program.
        seed = np.ones_like(loss.data) if recorder.indices else autograd._seed(loss, None, False)
        try:
            # The followed leaves' gradients are wanted (as tg.grad): their .grad stays untouched while
            # tracing, so a call in another thread meanwhile adds its gradient there and keeps it.
            autograd._backpropagate([loss], [seed], None, False, wanted=followed)
        finally:
            for item, previous in restore:
                item._hooks = previous
        self.name_nodes(items, captured)
        return [(tensor, captured.get(id(tensor))) for tensor in followed]

    def name_nodes(self, items, captured):
        """Temporaries get names: a node's output after its module or op, a gradient `d` + that name."""
        modules = self.names
        counts = {}
        for item in items:
            if isinstance(item, autograd.Context):
                var = self.recorder.vars.get(item.out_id, (None, None))[1]
                if var is None or var.kind != "temp" or not var.name.startswith("t"):
                    continue
                calls = item.module_calls
                module_name = modules.get(id(calls[0][0])) if calls else None
                base = module_name or item.fn.__name__.lower()
                counts[base] = counts.get(base, 0) + 1
                self.rename(var, base if module_name else f"{base}{counts[base]}")
        for item in reversed(items):  # nearest the loss first: a gradient passed on unchanged keeps that name
            var = captured.get(id(item))
            if var is None or var.kind != "temp":
                continue
            if isinstance(item, autograd.Context):
                own = self.recorder.vars.get(item.out_id, (None, None))[1]
                self.rename(var, "d" + (own.name if own is not None else item.fn.__name__.lower()))
            elif isinstance(item.data, _Traced) and item.data._var is not None:
                self.rename(var, "d" + item.data._var.name)

    def rename(self, var, name):
        if _unnamed(var):
            self.recorder.used_names.discard(var.name)
            var.name = self.recorder.unique(name)

    def build(self, loss_var, grads, arg_slots, backward_starts):
        recorder = self.recorder
        backward_starts -= _inline_views(recorder, backward_starts)
        same_as, dropped = _drop_repeated_lines(recorder, backward_starts)
        backward_starts -= dropped
        loss_var = same_as.get(id(loss_var), loss_var)
        grads = [(tensor, same_as.get(id(var), var)) for tensor, var in grads]
        _number_temporaries(recorder)
        outputs = [loss_var] + [var for _, var in grads if var is not None]
        lines = _live_lines(recorder.lines, outputs)
        used = {id(var) for line in lines for var in line.reads} | {id(var) for var in outputs}
        kept = [(t, var) for t, var in zip(self.leaves, self.leaf_vars) if id(var) in used]
        self.leaves = [t for t, _ in kept]  # parameters this program does not read are not its inputs
        closed = [(handle, var) for handle, _, var in self.closed if id(var) in used]
        params = [var.name for _, var in arg_slots] + [var.name for _, var in kept]
        body, run_body = [], []
        closed_ids = {id(var) for _, var in closed}
        for line in lines:  # `x += y` on a name of the namespace would make x a local: write x[...] += y
            if (line.in_place and id(line.target) in closed_ids and line.pieces[0] is line.target
                    and line.pieces[1].endswith("= ") and line.pieces[1] != " = "):
                line.pieces = [line.target, "[...]"] + line.pieces[1:]
        # An array fn closes over is a name of the program's namespace, never deleted.
        last_reads = _last_reads([line for line in recorder.lines if line in lines],
                                 outputs + [var for _, var in closed])
        reusing = _runnable_forms([line for line in recorder.lines if line in lines], last_reads, outputs)
        for i, line in enumerate(recorder.lines):
            if i == backward_starts:
                body.append("    # backward")
            if line in lines:
                body.append("    " + line.render())
                run_body.append("    " + reusing[line] if line in reusing else body[-1])
                if last_reads.get(line):
                    run_body.append("    del " + ", ".join(sorted(var.name for var in last_reads[line])))
        grad_names, grad_slots, copy_grad, given = [], [], [], {id(loss_var)}  # each output its own array
        for tensor, var in grads:
            if var is None:
                continue
            slot = next((("arg", i) for i, a in enumerate(self.args) if a is tensor), None)
            grad_slots.append(slot or ("leaf", next(j for j, t in enumerate(self.leaves) if t is tensor)))
            copy_grad.append(not var.fresh or id(var) in given)
            given.add(id(var))
            grad_names.append(var.name)
        result = ", ".join(grad_names) + ("," if len(grad_names) == 1 else "")
        head, tail = f"def step({', '.join(params)}):", f"    return {loss_var.name}, ({result})"
        text = "\n".join(body + [result])
        constants = {name: value for name, value in recorder.constants.items()
                     if re.search(rf"\b{name}\b", text)}
        notes = [f"    # {name}: {_describe(value)}" for name, value in constants.items()]
        notes += [f"    # {var.name}: the array fn reads as {handle.name}, read again at every call"
                  for handle, var in closed]
        source = "\n".join([head, *notes, "    # forward", *body, tail]) + "\n"
        # The function that runs is the same program, with each variable deleted after its last use,
        # so memory is given back as eager mode gives it back (big temporaries are reused, not new).
        runnable = "\n".join([head, *run_body, tail]) + "\n"
        namespace = {"np": np, "expit": scipy.special.expit, "scipy": scipy, **constants,
                     **recorder.number_arrays}
        exec(builtins.compile(runnable, "<tg.compile>", "exec"), namespace)  # noqa: S102 (code we generated)
        program = _Program(namespace["step"], source, runnable, constants, [i for i, _ in arg_slots],
                           list(self.leaves), grad_slots, copy_grad)
        program.same_arguments, program.parameter_arguments = self.same_arguments, self.parameter_arguments
        # Whether an argument is a Tensor is part of the signature: these slots hold arrays at every call.
        program.array_arguments = not any(isinstance(self.args[i], Tensor) for i, _ in arg_slots)
        program.closed = [(var.name, handle, (var.shape, var.dtype)) for handle, var in closed]
        program.more_to_check = bool(self.same_arguments or self.parameter_arguments or program.closed)
        if any(line.guard for line in lines):
            # A guard may fail after the program wrote into an input (BatchNorm's running statistics):
            # the call keeps a copy of those inputs to put back before it traces again.
            written = {id(line.target.root) for line in lines if line.in_place and not line.guard}
            inputs = [var for _, var in arg_slots] + [var for _, var in kept] + [var for _, var in closed]
            program.written_inputs = [k for k, var in enumerate(inputs) if id(var) in written]
        return program


def _random_state():
    """Where the package's random generator and NumPy's global one (np.random.rand, a hand-made dropout
    mask) stand: each moves when something draws from it."""
    generator = creation.generator()
    _, key, position, *_ = np.random.get_state()
    return id(generator), str(generator.bit_generator.state), key.tobytes(), position


def _argument_names(signature, count):
    names = []
    if signature is not None:
        for p in signature.parameters.values():
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                names.append(p.name)
            elif p.kind == p.VAR_POSITIONAL:
                names += [f"{p.name}{i}" for i in range(count - len(names))]
    return (names + [f"arg{i}" for i in range(len(names), count)])[:count]


def _inline_views(recorder, backward_starts) -> int:
    """Write attribute views where they are used (`X.T @ d`), unless something writes into them.
    Returns how many of the dropped lines came before `backward_starts`."""
    written = {id(line.target) for line in recorder.lines if line.in_place}
    inline, kept, before = {}, [], 0
    for i, line in enumerate(recorder.lines):
        line.pieces = [q for p in line.pieces for q in (inline[id(p)][0] if id(p) in inline else [p])]
        line.reads = [r for v in line.reads for r in (inline[id(v)][1] if id(v) in inline else [v])]
        line.operands = [(var, [q for p in pieces for q in (inline[id(p)][0] if id(p) in inline else [p])])
                         for var, pieces in line.operands]
        if line.inline and id(line.target) not in written:
            inline[id(line.target)] = (line.pieces[2:], line.reads)
            before += i < backward_starts
        else:
            kept.append(line)
    recorder.lines = kept
    return before


def _drop_repeated_lines(recorder, backward_starts) -> tuple:
    """A line that computes what an earlier line computed (the same call on the same variables,
    none of them written in place in between, neither result ever) goes; its variable becomes the
    earlier one. MSE's backward, for one, computes the forward's `x - t` again. Returns
    id(dropped variable) -> the variable kept, and how many dropped lines came before
    `backward_starts`."""
    writes = {}  # id(array) -> the indices of the lines that write into it in place
    for i, line in enumerate(recorder.lines):
        if line.in_place and not line.guard:  # a guard only reads
            writes.setdefault(id(line.target.root), []).append(i)
    first, same_as, kept, before = {}, {}, [], 0

    def renamed(piece):
        return same_as.get(id(piece), piece) if isinstance(piece, _Var) else piece

    for i, line in enumerate(recorder.lines):
        if same_as:
            line.pieces = [renamed(p) for p in line.pieces]
            line.reads = [renamed(var) for var in line.reads]
            line.operands = [(renamed(var), [renamed(p) for p in pieces]) for var, pieces in line.operands]
            line.target = renamed(line.target) if line.guard else line.target  # what the guard reads
        target = line.target
        if not line.in_place and id(target.root) not in writes:
            computes = tuple(("var", id(p)) if isinstance(p, _Var) else p for p in line.pieces[2:])
            earlier_index, earlier = first.get(computes, (None, None))
            if earlier is not None and not any(earlier_index < w < i for var in line.reads
                                               for w in writes.get(id(var.root), ())):
                same_as[id(target)] = earlier
                before += i < backward_starts
                continue
            first[computes] = (i, target)
        kept.append(line)
    for _, var in recorder.vars.values():  # a view of a dropped variable views the kept one
        if id(var.root) in same_as:
            var.root = same_as[id(var.root)].root
    recorder.lines = kept
    return same_as, before


def _number_temporaries(recorder):
    """Unnamed temporaries become t1, t2, ... in program order."""
    for _, var in recorder.vars.values():  # free every trace-time number first: t5 may be a later line's
        if var.kind == "temp" and _unnamed(var):
            recorder.used_names.discard(var.name)
    k = 0
    for line in recorder.lines:
        var = line.target
        if not line.in_place and var.kind == "temp" and _unnamed(var):
            k += 1
            var.name = recorder.unique(f"t{k}")


def _unnamed(var) -> bool:
    return var.name == "t" or (var.name.startswith("t") and var.name[1:].isdigit())


def _last_reads(lines, outputs) -> dict:
    """line -> the variables read for the last time there (not the outputs)."""
    done, last = {id(var) for var in outputs}, {}
    for line in reversed(lines):
        for var in line.reads + [line.target]:
            if id(var) not in done and var.kind != "const":
                done.add(id(var))
                last.setdefault(line, []).append(var)
    return last


_REUSE_BYTES = 32 * 1024  # from this size on, writing into a dead operand beats a new array


def _runnable_forms(lines, last_reads, outputs) -> dict:
    """line -> the form that runs, where it differs from `.source`: a sum calls the reduction itself
    (`db2 = np.add.reduce(dadd2, axis=0)`), and an elementwise result may go into a dead operand
    (`dadd2 = np.multiply(t2, t3, out=t2)`). Both compute the same values as the plain form.

    An elementwise result may go into the memory of an operand when nothing can see that memory
    any more: the operand is a new array a ufunc made (not an input, a constant, a view, or a copy
    that another call's strides could turn into a view), not an output, this line is its last use,
    no view of it is read here or later (a view used before, as `s.T @ d`, is harmless), and it has
    the result's shape and dtype (not broadcast up). NumPy then computes the same values without
    allocating, as the hand-written floor's `d *= s` does.
    `.source` keeps the plain form, which reads as the math. Small arrays keep the plain form too:
    NumPy hands them out from a cache of freed blocks, which costs less than passing `out=` (see
    docs/compile.md, Speed).
    """
    views_read_until = _views_read_until(lines, outputs)
    rewritten = {}
    for index, line in enumerate(lines):
        target = line.target
        if line.ufunc is _SUM and not line.in_place:  # a sum: the reduction without its wrapper
            pieces = [target, " = np.add.reduce("] + _join([pieces for _, pieces in line.operands]) + [")"]
            rewritten[line] = _render(pieces)
            continue
        if line.ufunc is None or line.in_place or target.scalar:
            continue
        operands = [[line.numbers[i]] if i in line.numbers else pieces
                    for i, (_, pieces) in enumerate(line.operands)]
        dying = {id(var) for var in last_reads.get(line, ())}
        for var, _ in line.operands:
            if (var is not None and var.kind == "temp" and var.ufunc_result and not var.scalar
                    and id(var) in dying and views_read_until.get(id(var), -1) < index
                    and var.shape == target.shape and var.dtype == target.dtype
                    and np.prod(var.shape) * var.dtype.itemsize >= _REUSE_BYTES):
                arguments = _join(operands + [["out=", var]])
                rewritten[line] = _render([target, f" = {_ufunc_name(line.ufunc)}("] + arguments + [")"])
                break
        else:
            if line.numbers:  # + - * / with a number: the operator, given the number's 0-d array
                left, right = (_grouped(pieces) for pieces in operands)
                rewritten[line] = _render([target, " = "] + left + [f" {_OPERATORS[line.ufunc]} "] + right)
    return rewritten


def _render(pieces) -> str:
    return "".join(p.name if isinstance(p, _Var) else p for p in pieces)


def _views_read_until(lines, outputs) -> dict:
    """id(array) -> the index of the last line that makes or reads a view of it (x.T in a product,
    a reshape); past that line, writing into the array cannot change what a view shows."""
    until = {}
    for index, line in enumerate(lines):
        # An inline view (x.T) is an operand's variable here; its line reads the base array instead.
        for var in line.reads + [line.target] + [var for var, _ in line.operands if var is not None]:
            if var.root is not var:
                until[id(var.root)] = index
    for var in outputs:  # a gradient that is a view keeps its base's memory after the program
        if var.root is not var:
            until[id(var.root)] = len(lines)
    return until


def _live_lines(lines, outputs) -> set:
    """The lines the outputs depend on, walking back (an in-place write counts for every view of its
    array)."""
    live_vars, live_roots, keep = set(), {}, set()

    def add(var):
        if id(var) not in live_vars:
            live_vars.add(id(var))
            live_roots[id(var.root)] = live_roots.get(id(var.root), 0) + 1

    for var in outputs:
        add(var)
    for line in reversed(lines):
        target = line.target
        needed = live_roots.get(id(target.root), 0) > 0 if line.in_place else id(target) in live_vars
        # A write into an input is an effect of the step itself (BatchNorm's running statistics), and a
        # guard decides whether the program fits the call at all.
        needed = needed or (line.in_place and target.root.kind == "input") or line.guard
        if not needed:
            continue
        keep.add(line)
        if not line.in_place:
            live_vars.discard(id(target))
            live_roots[id(target.root)] -= 1
        for var in line.reads:
            add(var)
    return keep


# ---- the public object ---------------------------------------------------------------------------------
class CompiledStep:
    """A training step traced once per signature and replayed as straight-line NumPy (see `compile`)."""

    def __init__(self, fn: Callable):
        self.fn = fn
        self._programs = {}
        self._last = None
        self._modules = None  # the Modules fn closes over: their train/eval mode is part of a signature
        self._tensors = None  # the Tensors fn closes over (directly or in its Modules) when last looked
        self._named = []  # (_ClosedName, Tensor): Tensors fn's code reads from its closure or globals
        self._structure = None  # Module.structure_changes when last looked
        self._modes = ()  # the train/eval mode of each of self._modules then
        self._warned = set()  # what it warned about once: "values" or "signatures" that keep changing

    def __call__(self, *args, **kwargs) -> Tensor:
        """Run the step (tracing on a new signature); set or add each leaf's .grad; return the loss."""
        if getattr(_active, "recorder", None) is not None:
            raise TracingError("a compiled step was called inside a step that is being traced (tg.compile "
                               "of a function that calls a compiled step): it sets .grad outside the graph, "
                               "which the outer program cannot repeat. Call its function, step.fn, instead")
        if self._structure != Module.structure_changes or (
                self._named and any(handle.value() is not tensor for handle, tensor in self._named)):
            self._find_tensors()  # first call, or a module's parameter or a name's Tensor was replaced
        # Dropout and BatchNorm compute other things in train and eval mode: a program per mode.
        key = _signature(args, kwargs) + (self._modes,)
        programs = self._programs.get(key, ())
        for program in programs:
            leaves = program.leaves
            leaf_arrays = [t.data for t in leaves]  # read once: the values this call uses
            # A program fits when the leaves have the arrays and requires_grad they had when traced.
            if [(a.shape, a.dtype) for a in leaf_arrays] != program.leaf_kinds:
                continue
            if program.flags_seen != Tensor.requires_grad_changes:  # some tensor's flag changed since
                if [t._requires_grad for t in leaves] != program.leaf_flags:
                    continue
                program.flags_seen = Tensor.requires_grad_changes
            if program.more_to_check and (not program.same_objects_as_traced(args)
                                          or program.read_closed_arrays() is None):
                continue
            result = self._run(program, args, leaf_arrays)
            if result is not None:
                return result
        for i, arg in enumerate(args):
            if isinstance(arg, Tensor) and not arg.is_leaf:
                raise TracingError(f"argument {i} is the result of recorded operations (it has a graph); "
                                   "pass leaf Tensors or arrays, e.g. x.detach()")
        with autograd.enable_grad():  # the step is forward and backward by definition, also under no_grad
            program = _Trace(self.fn, args, kwargs).run(final=False)
            if not isinstance(program, _Program):  # fn used leaves it did not show before: follow them
                program = _Trace(self.fn, args, kwargs, more_leaves=program).run(final=True)
        # Programs of one signature differ in their parameters or in the Python values the trace took
        # from the step's values (guards). Of both, the oldest go first, so that they cannot pile up.
        name = _fn_name(self.fn)
        if not programs and len(self._programs) >= _SIGNATURES:
            del self._programs[next(iter(self._programs))]
            self._warn_once("signatures", f"tg.compile traced {name} for more than {_SIGNATURES} kinds of "
                            "arguments: a Python number (or another non-array argument) takes a new value at "
                            "each call, and each value is traced as a new program. The results are right, but "
                            "slower than eager mode: pass such a number as an array (np.array(lr)), so that "
                            "one program serves every value")
        self._programs[key] = list(programs[-(_PROGRAMS_PER_SIGNATURE - 1):]) + [program]
        if len(programs) == _PROGRAMS_PER_SIGNATURE:
            self._warn_once("values", f"tg.compile traced {name} more than {_PROGRAMS_PER_SIGNATURE} times for "
                            "arguments of one shape: a Python value it takes from tensor values (t.item(), "
                            "float(t), f'{loss:.3f}', a branch on a value) keeps changing, so calls trace "
                            "again. The results are right, but slower than eager mode: take that value outside "
                            "the step (from the loss it returns)")
        program.read_closed_arrays()
        result = self._run(program, args, [t.data for t in program.leaves])
        if result is None:
            raise TracingError("the step's values changed between tracing it and running its program (a "
                               "Python value taken from them differs): is the step deterministic? " + _HINT)
        return result

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(message, RuntimeWarning, stacklevel=3)  # the caller of the compiled step

    def _find_tensors(self) -> None:
        """Find the Modules and Tensors fn uses; programs traced with other ones are dropped."""
        modules = []
        _, tensors = _known_names(self.fn, modules)
        if self._tensors is not None and (len(tensors) != len(self._tensors)
                                          or any(a is not b for a, b in zip(tensors, self._tensors))):
            self._programs.clear()  # they read the replaced Tensors: trace again
        else:  # a Module passed as an argument may be the one that changed: its programs trace again
            self._programs = {key: programs for key, programs in self._programs.items()
                              if not _passes_a_module(key)}
        self._modules, self._tensors, self._structure = modules, tensors, Module.structure_changes
        self._modes = tuple([module.training for module in modules])  # train()/eval() moves the count too
        self._named = [(handle, handle.value()) for handle in _closed_names(self.fn)
                       if isinstance(handle.value(), Tensor)]

    def _run(self, program, args, leaf_arrays) -> Tensor | None:
        """Run one program; set or add each leaf's .grad; the loss, or None if a guard failed."""
        self._last = program
        if program.array_arguments:
            arrays = [args[i] for i in program.arg_slots]
        else:
            arrays = [args[i].data if isinstance(args[i], Tensor) else args[i] for i in program.arg_slots]
        kept = ()
        if program.written_inputs:  # only a program with guards: they may fail after it wrote there
            namespace = program.function.__globals__
            inputs = arrays + leaf_arrays + [namespace[name] for name, _, _ in program.closed]
            kept = [(inputs[k], inputs[k].copy()) for k in program.written_inputs]
        result = program.function(*arrays, *leaf_arrays)
        if result is None:  # a guard failed: put back what the program wrote, so the new trace starts clean
            for array, copy in kept:
                np.copyto(array, copy)
            return None
        loss, grads = result
        tensors = program.grad_tensors
        if program.grads_to_arguments:
            tensors = [args[index] if kind == "arg" else tensor
                       for (kind, index), tensor in zip(program.grad_slots, tensors)]
        with autograd.leaf_grads_lock:  # as the engine: calls in other threads add one at a time
            for tensor, grad, copy in zip(tensors, grads, program.copy_grad):
                if tensor._grad is None:  # as the engine: first gradient set, later ones added
                    tensor._grad = Tensor._make(np.array(grad) if copy else grad)
                else:
                    tensor._grad = Tensor._make(np.asarray(tensor._grad.data + grad))
        return Tensor._make(np.asarray(loss))

    @property
    def source(self) -> str:
        """The program of the latest call: readable Python, forward then backward, shapes in comments."""
        if self._last is None:
            raise RuntimeError("nothing traced yet: call the compiled step once, then read .source")
        return Explanation(self._last.source)  # a str that Jupyter shows as code, not as one quoted line

    @property
    def parameters(self) -> list:
        """The Tensors whose current .data the latest program reads, after the arguments, in order."""
        if self._last is None:
            raise RuntimeError("nothing traced yet: call the compiled step once")
        return list(self._last.leaves)

    @property
    def constants(self) -> dict:
        """Arrays the latest program names but does not write out (exec .source with them)."""
        if self._last is None:
            raise RuntimeError("nothing traced yet: call the compiled step once")
        namespace = self._last.function.__globals__  # the arrays fn closes over, as the latest call read them
        return dict(self._last.constants, **{name: namespace[name] for name, _, _ in self._last.closed})

    def __repr__(self) -> str:
        name = _fn_name(self.fn)
        return (f"<tg.compile of {name}: {len(self._programs)} traced signature(s). Limits: {_LIMITS}. "
                "Read .source for the program>")


def _fn_name(fn) -> str:
    """fn's name for messages (a callable object has its class's)."""
    return getattr(fn, "__qualname__", type(fn).__name__)


def compile(fn: Callable) -> CompiledStep:  # noqa: A001 (the API's name, as torch.compile)
    """Trace a training step once and run it afterwards as straight-line NumPy code.

    Parameters
    ----------
    fn : callable
        ``fn(*args)`` builds a one-element loss Tensor from Tensors: parameters it closes over
        (or receives) and inputs it receives.

    Returns
    -------
    CompiledStep
        Calling it with arguments of the same shapes and dtypes runs the same forward and
        backward as ``fn(*args).backward()``, without a graph: every leaf's ``.grad`` is set or
        added to exactly as backward would, and the loss comes back as a Tensor without a graph.
        The parameters' current values are read at each call (an optimizer may update them in
        between). New shapes or dtypes trace again. ``.source`` is the program as Python.

    Limits: a Python value taken from tensor values (``float(t)``, ``if t.item() > 0:``) is
    checked at every call, and a call where it differs traces again. Arrays fn reads from its
    closure or globals are read at every call; anything computed outside NumPy calls on the
    step's arrays (from ``np.asarray(t)``) is fixed at trace time. A step that draws random
    numbers (dropout in training mode) is refused with a TracingError rather than frozen. Module
    buffers are read (and BatchNorm's running statistics updated) at every call. Gradient hooks
    and the broadcast guard run while tracing, not on replay.

    Examples
    --------
    >>> import numpy as np, tinygrad_edu as tg
    >>> w = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True, name="w")
    >>> step = tg.compile(lambda x: ((x * w).sum() - 1) ** 2)
    >>> step(np.array([3.0, 4.0])).item()
    100.0
    >>> w.grad
    Tensor([60., 80.], shape=(2,), dtype=float64)
    """
    if not callable(fn):
        raise TypeError(f"tg.compile needs a function that returns a loss, got {type(fn).__name__}")
    return CompiledStep(fn)
