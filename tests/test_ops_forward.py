"""Forward pass of every op in tests/op_table.py, checked against its NumPy reference.

One hypothesis test per row (value, dtype, shape, no mutation of read-only inputs; where
NumPy raises, such as max over an empty axis, the op raises the same kind of error), and
test_table_complete: every primitive in tinygrad_edu.ops and every functional export
has a row.
"""
import inspect
import warnings

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import tinygrad_edu.functional as F
import tinygrad_edu.ops as ops
from op_table import OPS, assert_unchanged, draw_case, make_inputs, snapshot
from tinygrad_edu import Tensor
from tinygrad_edu.autograd import Context, Function

# The table draws random broadcastable shapes, stretching both operands on purpose.
pytestmark = pytest.mark.usefixtures("broadcast_guard_off")

# float32 results are compared to NumPy's float32 results, which may sum in another order
FLOAT32_RTOL, FLOAT32_ATOL = 1e-4, 1e-5
# NumPy's errors for bad arguments (AxisError is both a ValueError and an IndexError)
ARGUMENT_ERRORS = (ValueError, IndexError, TypeError)


def _describe(spec, arrays, kwargs):
    shapes = [np.shape(a) for a in arrays]
    return f"{spec.name} on input shapes {shapes} with {kwargs}"


@pytest.mark.parametrize("spec", OPS, ids=lambda spec: spec.name)
@given(data=st.data())
def test_forward(spec, data):
    dtype = data.draw(st.sampled_from([np.float64, np.float32]), label="dtype")
    arrays, kwargs = draw_case(spec, data, dtype)
    before = snapshot((arrays, kwargs))
    where = _describe(spec, arrays, kwargs)

    inputs = make_inputs(spec, arrays, requires_grad=True)
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # mean of an empty slice, 1/0, ...
            expected = np.asarray(spec.ref(*arrays, **kwargs))
    except ARGUMENT_ERRORS as numpy_error:
        kind = next(k for k in ARGUMENT_ERRORS if isinstance(numpy_error, k))
        with pytest.raises(kind):
            spec.fn(*inputs, **kwargs)
        assert_unchanged(before, (arrays, kwargs), where)
        return
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the same values NumPy warned about
        out = spec.fn(*inputs, **kwargs)

    assert isinstance(out, Tensor), f"{where}: returned {type(out).__name__}, not a Tensor"
    assert isinstance(out.data, np.ndarray), f"{where}: .data is a {type(out.data)}"
    assert out.shape == expected.shape, f"{where}: shape {out.shape} != {expected.shape}"
    assert out.dtype == expected.dtype, f"{where}: dtype {out.dtype} != {expected.dtype}"
    if expected.dtype.kind == "f":
        rtol, atol = spec.rtol, spec.atol
        if expected.dtype == np.float32:
            rtol, atol = max(rtol, FLOAT32_RTOL), max(atol, FLOAT32_ATOL)
        np.testing.assert_allclose(out.data, expected, rtol=rtol, atol=atol, err_msg=where)
    else:
        np.testing.assert_array_equal(out.data, expected, err_msg=where)

    differentiable = any(isinstance(x, Tensor) for x in inputs)
    assert out.requires_grad == (spec.grad and differentiable), (
        f"{where}: requires_grad is {out.requires_grad}"
    )
    if not spec.grad:
        assert out.grad_fn is None, f"{where}: a non-differentiable result has a grad_fn"
    assert_unchanged(before, (arrays, kwargs), where)


# ---------------------------------------------------------------- table completeness

# Exports that return a Python number, not a Tensor: no graph, so no row (tested in test_guards.py).
METRICS = {"accuracy"}



def _primitives():
    """Function subclasses defined in tinygrad_edu.ops (not imported into it)."""
    return {
        cls
        for _, cls in inspect.getmembers(ops, inspect.isclass)
        if issubclass(cls, Function) and cls is not Function and cls.__module__ == ops.__name__
    }


def _functions_in_graph(out):
    """Every ``grad_fn.fn`` reachable from ``out``, walked with an explicit stack."""
    found, seen, stack = set(), set(), [out.grad_fn]
    while stack:
        node = stack.pop()
        # parents are nodes, leaves or constants; nodes are alive while out is: ids are stable
        if not isinstance(node, Context) or id(node) in seen:
            continue
        seen.add(id(node))
        found.add(node.fn)
        stack.extend(node.parents)
    return found


def _run_once(spec):
    """The Function classes one fixed-seed example of ``spec`` records in its graph."""
    found = set()

    @settings(max_examples=1, derandomize=True, database=None, phases=[Phase.generate])
    @given(data=st.data())
    def run(data):
        arrays, kwargs = draw_case(spec, data, np.float64)
        out = spec.fn(*make_inputs(spec, arrays, requires_grad=True), **kwargs)
        found.update(_functions_in_graph(out))

    run()
    return found


def test_table_complete():
    names = [spec.name for spec in OPS]
    assert len(names) == len(set(names)), "two rows share a name"

    reached, broken = set(), []
    for spec in OPS:
        try:
            reached |= _run_once(spec)
        except Exception as error:  # reported by test_forward; listed here as a hint
            broken.append(f"{spec.name} ({type(error).__name__})")
    missing = sorted(cls.__name__ for cls in _primitives() - reached)
    assert not missing, (
        f"Function subclasses in tinygrad_edu.ops that no row of tests/op_table.py "
        f"reaches: {missing}; rows that raised: {broken}"
    )

    # Rows are named "F.<export>", optionally followed by a "[variant]".
    covered = {name.split("[")[0] for name in names}
    missing = [name for name in F.__all__ if f"F.{name}" not in covered and name not in METRICS]
    assert not missing, f"tinygrad_edu.functional exports without a row: {missing}"
