"""Named regressions for the wrong or crashing ops that outside test suites found (issue 14),
and a fuzz test of the reductions against NumPy. The op table (op_table.py, strategies.py)
draws these cases too; each test here names one of them, so a failure says what broke."""
import tracemalloc
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import Tensor, nn


def leaf(values):
    return Tensor(np.asarray(values, dtype=np.float64), requires_grad=True)


# ---- negative axes ------------------------------------------------------------------------


def test_transpose_with_a_negative_axis_sends_the_gradient_back_unpermuted():
    x = leaf([[1.0, 2.0], [3.0, 4.0]])
    x.transpose((0, -1)).backward(np.array([[1.0, 2.0], [3.0, 4.0]]))
    assert x.grad.tolist() == [[1.0, 2.0], [3.0, 4.0]]  # (0, -1) is the identity


@pytest.mark.parametrize("permute", [
    lambda t: t.transpose((0, -1, 1)),
    lambda t: t.transpose(-3, -1, -2),
    lambda t: np.transpose(t, (0, -1, 1)),
])
def test_negative_permutations_of_a_non_square_tensor(permute):
    x = leaf(np.arange(24.0).reshape(2, 3, 4))
    out = permute(x)
    assert out.shape == (2, 4, 3)
    assert tg.gradcheck(permute, [x])


def test_a_permutation_that_repeats_an_axis_is_refused():
    with pytest.raises(ValueError, match="not a permutation"):
        leaf(np.ones((2, 3))).transpose((1, -1))


@pytest.mark.parametrize("call", [
    lambda t: t.transpose(0, 5),  # PyTorch's two-axis swap on a 3-d tensor
    lambda t: t.flatten(start_axis=4),
    lambda t: t.flatten(0, -5),
])
def test_an_axis_out_of_range_is_refused_not_wrapped_around(call):
    with pytest.raises(ValueError, match="out of range"):
        call(leaf(np.ones((2, 3, 4))))


# ---- einsum with size-1 (broadcast) operands ----------------------------------------------


@pytest.mark.parametrize("subscripts, shapes", [
    ("i,i", [(3,), (1,)]),
    ("i,i", [(1,), (3,)]),
    ("ij,jk->ik", [(1, 2), (1, 2)]),
    ("ij,ij->i", [(2, 1), (1, 3)]),
])
def test_einsum_broadcasting_a_size_1_operand_gives_each_input_its_own_gradient(subscripts, shapes):
    rng = np.random.default_rng(0)
    operands = [leaf(rng.uniform(-1, 1, shape)) for shape in shapes]
    expected = np.einsum(subscripts, *[x.data for x in operands])
    np.testing.assert_allclose(tg.einsum(subscripts, *operands).data, expected)
    assert tg.gradcheck(lambda *xs: tg.einsum(subscripts, *xs), operands)


# ---- pow at its special points ------------------------------------------------------------


def test_x_to_the_power_0_has_slope_0_also_at_0():
    x = leaf([0.0, 2.0])
    (x**0).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0]  # PyTorch: 0 (not 0 * 0**-1 = nan)


def test_0_to_the_power_y_has_slope_0_in_y():
    y = leaf([0.5, 2.0])
    (0.0**y).sum().backward()
    assert y.grad.tolist() == [0.0, 0.0]  # PyTorch: 0 (not 0 * log(0) = nan)


# ---- var with too few values ----------------------------------------------------------------


@pytest.mark.parametrize("values, ddof", [([1.0, 2.0], 2), ([1.0, 2.0], 3), ([1.0, 1.0], 5), ([3.0], 1)])
def test_var_with_ddof_at_least_n_is_inf_or_nan_with_a_warning_as_numpy(values, ddof):
    with pytest.warns(RuntimeWarning, match="degrees of freedom"):
        result = Tensor(np.array(values)).var(ddof=ddof).item()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.var(np.array(values), ddof=ddof)
    np.testing.assert_equal(result, expected)  # inf or nan, never a negative number


# ---- indexing, joining and comparing: NumPy's answers, clear errors -----------------------


def test_an_empty_list_index_selects_nothing_as_numpy():
    x = leaf([1.0, 2.0, 3.0])
    out = x[[]]
    assert out.shape == (0,)
    out.sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


def test_concatenating_0d_tensors_is_a_clear_value_error():
    with pytest.raises(ValueError, match="zero-dimensional arrays cannot be concatenated"):
        tg.concatenate([Tensor(1.0), Tensor(2.0)])


@pytest.mark.parametrize("compare, symbol", [
    (lambda a, b: a < b, "<"), (lambda a, b: a >= b, ">="), (lambda a, b: a == b, "=="),
    (lambda a, b: a != b, "!="),
])
def test_a_comparison_error_names_the_operator(compare, symbol):
    with pytest.raises(ValueError, match=f"comparison {symbol} of shapes \\(3,\\) and \\(2,\\)"):
        compare(Tensor(np.ones(3)), np.ones(2))


# ---- float16 ------------------------------------------------------------------------------


def test_float16_mean_accumulates_in_float32_as_numpy():
    x = Tensor(np.full(1000, 100, np.float16))
    assert x.mean().item() == 100.0 and x.mean().dtype == np.float16  # the float16 sum is inf
    assert x.var().item() == 0.0 and x.var().dtype == np.float16


# ---- reductions against NumPy, over empty axes, 0-d tensors and bad axes -------------------

REDUCTIONS = ["sum", "mean", "max", "min", "var", "std", "prod", "argmax", "argmin"]


@st.composite
def any_axis(draw, ndim):
    """None, an int or a tuple of ints, in range or not, repeated or not (NumPy decides)."""
    one = st.integers(-ndim - 1, ndim)
    return draw(st.one_of(st.none(), one, st.lists(one, max_size=ndim + 1).map(tuple)))


@pytest.mark.parametrize("name", REDUCTIONS)
@given(data=st.data())
def test_reductions_follow_numpy_over_empty_axes_0d_tensors_and_bad_axes(name, data):
    shape = data.draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3), label="shape")
    x = data.draw(hnp.arrays(np.float64, shape, elements=st.floats(-3, 3)), label="x")
    kwargs = {"axis": data.draw(any_axis(len(shape)), label="axis"), "keepdims": data.draw(st.booleans())}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mean of an empty slice and friends
        try:
            expected = np.asarray(getattr(np, name)(x, **kwargs))
        except (ValueError, IndexError, TypeError) as numpy_error:
            kind = next(k for k in (ValueError, IndexError, TypeError) if isinstance(numpy_error, k))
            with pytest.raises(kind):
                getattr(Tensor(x), name)(**kwargs)
            return
        out = getattr(Tensor(x, requires_grad=True), name)(**kwargs)
    where = f"{name}{kwargs} of shape {shape}"
    assert out.shape == expected.shape and out.dtype == expected.dtype, f"{where}: {out.shape} {out.dtype}"
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12, err_msg=where)


# ---- one-hot ------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [
    lambda labels, classes: F.one_hot(labels, classes).data,
    lambda labels, classes: tg.data.one_hot(labels, classes),
])
def test_one_hot_allocates_about_its_result_not_an_identity_of_num_classes_squared(make):
    labels, classes = np.arange(8) * 500, 5000  # an identity would be 100 MB, the rows 160 kB
    tracemalloc.start()
    try:
        rows = make(labels, classes)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * rows.nbytes, f"peak {peak} bytes for a result of {rows.nbytes}"
    np.testing.assert_array_equal(rows, np.eye(classes, dtype=np.float32)[labels])


# ---- losses and checks that must not pass nan silently ------------------------------------


def test_binary_cross_entropy_refuses_nan_probabilities():
    with pytest.raises(ValueError, match="NaN"):
        F.binary_cross_entropy(Tensor(np.array([0.5, np.nan])), np.array([1.0, 0.0]))


def test_gradcheck_fails_when_the_numeric_gradient_is_nan():
    # sqrt of the data outside the graph: the analytic gradient at 0 is 0, the numeric one nan
    def fn(t):
        return t * Tensor(np.sqrt(t.data))

    x = leaf([0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        assert tg.gradcheck(fn, [x], raise_exception=False) is False
        with pytest.raises(tg.GradcheckError, match="numeric one is nan"):
            tg.gradcheck(fn, [x])


def test_log_softmax_of_large_float32_logits_keeps_its_digits():
    x = Tensor(np.array([4096.0, 4096.0], dtype=np.float32))
    np.testing.assert_allclose(F.log_softmax(x).data, np.log([0.5, 0.5]), rtol=1e-6)


# ---- the new surface: sin, cos, std, prod, cumsum, ravel ----------------------------------


def test_prod_gradient_with_one_zero_and_with_two_zeros():
    x = leaf([2.0, 0.0, 3.0])
    x.prod().backward()
    assert x.grad.tolist() == [0.0, 6.0, 0.0]  # at the zero: the product of the others
    x = leaf([[2.0, 0.0, 0.0], [2.0, 3.0, 4.0]])
    x.prod(axis=1).backward(np.array([1.0, 1.0]))
    assert x.grad.tolist() == [[0.0, 0.0, 0.0], [12.0, 8.0, 6.0]]
    assert tg.gradcheck(lambda t: t.prod(axis=-1), [leaf([[2.0, 0.0, 0.0], [0.0, 3.0, 4.0]])])


def test_std_is_the_square_root_of_var_and_has_slope_0_where_it_is_0():
    x = leaf([[1.0, 2.0, 4.0], [3.0, 3.0, 3.0]])
    np.testing.assert_allclose(x.std(axis=1, ddof=1).data, np.std(x.data, axis=1, ddof=1))
    x.std(axis=1).sum().backward()
    assert np.all(np.isfinite(x.grad.data)) and x.grad.data[1].tolist() == [0.0, 0.0, 0.0]  # PyTorch


@pytest.mark.parametrize("method, ref", [
    (lambda t: t.sin(), np.sin), (lambda t: t.cos(), np.cos), (lambda t: t.ravel(), np.ravel),
    (lambda t: t.cumsum(), np.cumsum), (lambda t: t.cumsum(axis=-2), lambda a: np.cumsum(a, axis=-2)),
    (lambda t: t.prod(axis=0), lambda a: np.prod(a, axis=0)), (lambda t: t.std(), np.std),
])
def test_new_methods_match_numpy_and_their_gradients_check(method, ref):
    x = leaf(np.random.default_rng(1).uniform(-2, 2, (3, 4)))
    np.testing.assert_allclose(method(x).data, ref(x.data), rtol=1e-12)
    assert tg.gradcheck(method, [x])


# ---- dim= as PyTorch spells axis= ----------------------------------------------------------


def test_dim_is_accepted_wherever_axis_is():
    x = leaf(np.arange(6.0).reshape(2, 3))
    assert x.sum(dim=0).tolist() == x.sum(axis=0).tolist()
    assert x.mean(dim=-1, keepdims=True).shape == (2, 1)
    assert x.max(dim=1).tolist() == [2.0, 5.0] and x.argmax(dim=1).tolist() == [2, 2]
    assert x.cumsum(dim=1).shape == (2, 3) and x.prod(dim=0).shape == (3,) and x.std(dim=0).shape == (3,)
    assert x.unsqueeze(dim=0).shape == (1, 2, 3) and x.unsqueeze(0).squeeze(dim=0).shape == (2, 3)
    assert x.flatten(start_dim=0).shape == (6,)
    np.testing.assert_allclose(F.softmax(x, dim=0).data, F.softmax(x, axis=0).data)
    np.testing.assert_allclose(F.log_softmax(x, dim=0).data, F.log_softmax(x, axis=0).data)
    assert tg.concatenate([x, x], dim=1).shape == (2, 6) and tg.stack([x, x], dim=-1).shape == (2, 3, 2)
    np.testing.assert_allclose(nn.Softmax(dim=0)(x).data, F.softmax(x, axis=0).data)
    np.testing.assert_allclose(nn.LogSoftmax(dim=0)(x).data, F.log_softmax(x, axis=0).data)
    assert nn.Flatten(start_dim=0)(x).shape == (6,)


def test_keepdim_is_accepted_wherever_keepdims_is():
    # PyTorch code says x.sum(dim=1, keepdim=True); NumPy code says keepdims.
    x = leaf(np.arange(6.0).reshape(2, 3))
    for method in ("sum", "mean", "max", "min", "var", "std", "prod", "logsumexp", "argmax", "argmin"):
        assert getattr(x, method)(dim=1, keepdim=True).shape == (2, 1), method
        np.testing.assert_array_equal(getattr(x, method)(dim=1, keepdim=True).data,
                                      getattr(x, method)(axis=1, keepdims=True).data)
    with pytest.raises(TypeError, match="both keepdims= and keepdim="):
        x.sum(axis=1, keepdims=True, keepdim=True)


def test_transpose_0_1_of_a_matrix_warns_that_pytorch_code_means_a_swap():
    w = leaf(np.arange(6.0).reshape(2, 3))
    with pytest.warns(UserWarning, match=r"identity permutation.*\.T or transpose\(1, 0\)"):
        assert w.transpose(0, 1).shape == (2, 3)  # NumPy's meaning, as API.md lists it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert w.transpose(1, 0).shape == (3, 2) and w.transpose((0, 1)).shape == (2, 3)
        assert leaf(np.ones((2, 3, 4))).transpose(0, 1).shape == (3, 2, 4)  # PyTorch's swap where NumPy raises


@pytest.mark.parametrize("call", [
    lambda x: x.sum(axis=0, dim=0),
    lambda x: x.sum(0, dim=0),
    lambda x: F.softmax(x, axis=0, dim=1),
    lambda x: nn.Softmax(axis=1, dim=1),
])
def test_giving_both_axis_and_dim_is_a_type_error(call):
    with pytest.raises(TypeError):
        call(leaf(np.ones((2, 3))))
