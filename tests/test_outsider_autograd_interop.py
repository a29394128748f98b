"""NumPy interoperability as an outsider's ported suite would use it: NumPy functions and ufuncs on
Tensors record the graph (values and gradients against NumPy and formulas), ndarray operands on
either side, np.asarray sharing, and out=/unsupported options refused, never silently dropped.
"""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Tensor

VALUES = np.array([[1.0, 2.0], [3.0, 4.0]])


def value_and_grad(fn):
    x = Tensor(VALUES.copy(), requires_grad=True)
    y = fn(x)
    assert isinstance(y, Tensor) and y.requires_grad
    (y if y.size == 1 else y.sum()).backward()
    return y.data, x.grad.data


@pytest.mark.parametrize("fn, reference, expected_grad", [
    (lambda x: np.exp(x), np.exp(VALUES), np.exp(VALUES)),
    (lambda x: np.sum(x, axis=0), VALUES.sum(axis=0), np.ones((2, 2))),
    (lambda x: np.sum(x, axis=(0, 1), keepdims=True), VALUES.sum(keepdims=True), np.ones((2, 2))),
    (lambda x: np.mean(x, axis=1, keepdims=True), VALUES.mean(axis=1, keepdims=True), np.full((2, 2), 0.5)),
    (lambda x: np.mean(x, axis=-1), VALUES.mean(axis=-1), np.full((2, 2), 0.5)),
    (lambda x: np.dot(x, np.array([1.0, 2.0])), VALUES @ [1.0, 2.0], np.array([[1.0, 2.0], [1.0, 2.0]])),
    (lambda x: np.dot(np.array([1.0, 2.0]), x), [1.0, 2.0] @ VALUES, np.array([[1.0, 1.0], [2.0, 2.0]])),
    (lambda x: np.matmul(2 * np.eye(2), x), 2 * VALUES, np.full((2, 2), 2.0)),
    (lambda x: (2 * np.eye(2)) @ x, 2 * VALUES, np.full((2, 2), 2.0)),
    (lambda x: np.array([1.0, 2.0]) - x, [1.0, 2.0] - VALUES, -np.ones((2, 2))),
    (lambda x: np.array([1.0, 2.0]) / x, [1.0, 2.0] / VALUES, -np.array([1.0, 2.0]) / VALUES ** 2),
    (lambda x: np.where(VALUES > 2, x, 0.0), np.where(VALUES > 2, VALUES, 0.0), (VALUES > 2) * 1.0),
    (lambda x: np.where(x > 2, 0.0, x), np.where(VALUES > 2, 0.0, VALUES), (VALUES <= 2) * 1.0),
    (lambda x: np.concatenate([x, 2 * x], axis=0), np.concatenate([VALUES, 2 * VALUES]),
     np.full((2, 2), 3.0)),
    (lambda x: np.concatenate([x, np.ones((1, 2))]), np.concatenate([VALUES, np.ones((1, 2))]),
     np.ones((2, 2))),
    (lambda x: np.concatenate([x, x], axis=None), np.concatenate([VALUES, VALUES], axis=None),
     np.full((2, 2), 2.0)),
    (lambda x: np.stack([x, 2 * x], axis=-1), np.stack([VALUES, 2 * VALUES], axis=-1), np.full((2, 2), 3.0)),
    (lambda x: np.max(x, axis=1), VALUES.max(axis=1), np.array([[0.0, 1.0], [0.0, 1.0]])),
    (lambda x: np.var(x, axis=0), VALUES.var(axis=0), 2 * (VALUES - VALUES.mean(axis=0)) / 2),
    (lambda x: np.square(x), VALUES ** 2, 2 * VALUES),
    (lambda x: sum(x), VALUES.sum(axis=0), np.ones((2, 2))),  # Python's built-in sum over rows
    (lambda x: np.einsum("ij,ij->", x, x, optimize=True), (VALUES ** 2).sum(), 2 * VALUES),
])
def test_numpy_functions_on_tensors_record_the_graph(fn, reference, expected_grad):
    value, grad = value_and_grad(fn)
    np.testing.assert_allclose(value, reference)
    np.testing.assert_allclose(grad, expected_grad)


@pytest.mark.parametrize("call", [
    lambda x: np.exp(x, out=np.zeros((2, 2))),
    lambda x: np.add(x, 1.0, out=np.zeros((2, 2))),
    lambda x: np.concatenate([x, x], out=np.zeros((4, 2))),
    lambda x: np.concatenate([x, x], dtype=np.float32),
    lambda x: np.stack([x, x], out=np.zeros((2, 2, 2))),
    lambda x: np.einsum("ij->", x, out=np.zeros(())),
])
def test_out_and_unsupported_options_raise_instead_of_being_dropped(call):
    x = Tensor(VALUES.copy(), requires_grad=True)
    with pytest.raises(TypeError, match="not supported on Tensors"):
        call(x)


def test_unsupported_numpy_function_raises_naming_it():
    with pytest.raises(TypeError, match="numpy.tensordot"):
        np.tensordot(Tensor(VALUES, requires_grad=True), VALUES)


def test_asarray_shares_the_data_and_array_copies_it():
    x = Tensor(VALUES.copy(), requires_grad=True)
    assert np.asarray(x) is x.data
    copied = np.array(x)
    assert not np.shares_memory(copied, x.data)
    assert np.asarray(x, dtype=np.float32).dtype == np.float32


def test_tensor_of_an_ndarray_keeps_it_and_its_dtype():
    array = np.ones(3, dtype=np.float64)
    t = Tensor(array)
    array[0] = 5.0  # documented: the tensor holds the array itself
    assert t.data is array and t.dtype == np.float64 and t.data[0] == 5.0


def test_comparisons_with_ndarrays_on_either_side_are_boolean_and_not_differentiable():
    x = Tensor(VALUES.copy(), requires_grad=True)
    for result in (np.array([2.0, 2.0]) < x, x >= np.array([2.0, 2.0]), np.greater(x, 2.0)):
        assert result.dtype == np.bool_ and not result.requires_grad
    np.testing.assert_array_equal((np.array([2.0, 2.0]) < x).data, VALUES > 2)


def test_numpy_testing_and_allclose_accept_tensors():
    x = Tensor(VALUES.copy(), requires_grad=True)
    np.testing.assert_allclose(x, VALUES)
    assert np.allclose(x, VALUES)
