"""The Tensor surface of API.md: construction and dtypes, attributes, factories, seeding,
comparisons, and the errors a learner sees for bad input (shapes, dtypes)."""
import warnings

import numpy as np
import pytest
from scipy.special import expit

import tinygrad_edu as tg


# ---- construction and dtypes ----------------------------------------------------------------
def test_numpy_arrays_keep_their_dtype_and_identity():
    array = np.arange(6.0).reshape(2, 3)
    t = tg.Tensor(array)
    assert t.data is array and t.dtype == np.float64
    assert tg.Tensor(np.arange(3)).dtype == np.arange(3).dtype


def test_python_numbers_and_lists_get_the_default_dtype():
    assert tg.Tensor(3).dtype == np.float32
    assert tg.Tensor([[1, 2], [3, 4]]).dtype == np.float32
    tg.set_default_dtype(np.float64)
    assert tg.Tensor([1.5]).dtype == np.float64
    assert tg.get_default_dtype() == np.float64


def test_default_dtype_must_be_floating():
    with pytest.raises(TypeError, match="floating"):
        tg.set_default_dtype(np.int32)


@pytest.mark.parametrize("data", ["abc", [1.0, "x"], None, np.array(["a"]), np.array([1j])])
def test_non_numeric_data_is_refused(data):
    with pytest.raises(TypeError, match="numbers or booleans"):
        tg.Tensor(data)


def test_explicit_dtype_converts():
    assert tg.Tensor([1, 2], dtype=np.float64).dtype == np.float64


@pytest.mark.parametrize("data", [np.arange(3), np.array([True, False])])
def test_only_floating_tensors_may_require_grad(data):
    with pytest.raises(TypeError, match=f"{data.dtype}"):
        tg.Tensor(data, requires_grad=True)


def test_attributes():
    t = tg.Tensor(np.zeros((2, 3, 4)), requires_grad=True, name="w")
    assert (t.shape, t.ndim, t.size, t.name) == ((2, 3, 4), 3, 24, "w")
    assert t.is_leaf and t.grad_fn is None and t.grad is None
    out = t * 2.0
    assert not out.is_leaf and out.grad_fn.name == "Mul" and out.requires_grad


def test_writing_into_data_changes_the_tensor():
    t = tg.Tensor(np.zeros(3))
    t.data[1] = 5.0
    assert t.tolist() == [0.0, 5.0, 0.0]
    t.data = np.ones(2)
    assert t.shape == (2,)


def test_leaving_the_graph():
    t = tg.Tensor(np.array([[1.5, 2.0]]), requires_grad=True)
    assert t.numpy() is t.data
    assert np.asarray(t) is t.data
    assert t.tolist() == [[1.5, 2.0]]
    assert tg.Tensor(np.array([4.0])).item() == 4.0
    with pytest.raises(ValueError, match="one element"):
        t.item()
    assert t.astype(np.float32).dtype == np.float32


def test_repr_shows_values_dtype_and_grad_fn():
    t = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)
    assert "requires_grad=True" in repr(t) and "1." in repr(t)
    assert "grad_fn=<MulBackward>" in repr(t * 2.0)
    assert "float64" in repr(t) and "shape=(2,)" in repr(t)


def test_astype_passes_gradients_back_in_the_input_dtype():
    x = tg.Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    (x.astype(np.float64) * 3.0).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad.data, [3.0, 3.0])


def test_float32_stays_float32_with_python_scalars():
    x = tg.Tensor(np.ones(3, dtype=np.float32), requires_grad=True)
    y = (2.5 * x + 1.0) ** 2 / 3.0 - 0.5
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


# ---- factories and seeding ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: tg.zeros(2, 3), np.zeros((2, 3))),
        (lambda: tg.zeros((2, 3)), np.zeros((2, 3))),
        (lambda: tg.ones(4), np.ones(4)),
        (lambda: tg.full((2, 2), 7.0), np.full((2, 2), 7.0)),
        (lambda: tg.eye(3), np.eye(3)),
        (lambda: tg.zeros_like(tg.ones(2, 2)), np.zeros((2, 2))),
        (lambda: tg.ones_like(np.zeros(3)), np.ones(3)),
    ],
)
def test_factories(make, expected):
    t = make()
    np.testing.assert_array_equal(t.data, expected)
    assert t.dtype.kind == "f"


def test_factories_take_dtype_and_requires_grad():
    for make in (tg.zeros, tg.ones, tg.rand, tg.randn):
        t = make(2, 2, dtype=np.float64, requires_grad=True)
        assert t.dtype == np.float64 and t.requires_grad
    assert tg.full(3, 1.0, requires_grad=True).requires_grad
    assert tg.eye(2, dtype=np.float64).dtype == np.float64


def test_arange_gives_integers_for_integers_like_pytorch():
    assert tg.arange(5).tolist() == [0, 1, 2, 3, 4]
    assert tg.arange(5).dtype == np.int64
    assert tg.arange(0.0, 1.0, 0.25).dtype == np.float32
    assert tg.arange(1, 4, dtype=np.float64, requires_grad=True).requires_grad
    assert tg.arange(3, requires_grad=True).dtype == np.float32


def test_manual_seed_makes_random_factories_reproducible():
    tg.manual_seed(42)
    first = (tg.rand(3).tolist(), tg.randn(2, 2).tolist())
    tg.manual_seed(42)
    assert (tg.rand(3).tolist(), tg.randn(2, 2).tolist()) == first
    assert 0.0 <= tg.rand(1000).data.min() and tg.rand(1000).data.max() < 1.0


# ---- comparisons and non-differentiable results --------------------------------------------------
def test_comparisons_are_boolean_and_outside_the_graph():
    x = tg.Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    for result, expected in [
        (x < 2, [True, False, False]), (x <= 2, [True, True, False]), (x > 2, [False, False, True]),
        (x >= 2, [False, True, True]), (x == 2, [False, True, False]), (x != 2, [True, False, True]),
    ]:
        assert result.dtype == bool and not result.requires_grad
        assert result.tolist() == expected


def test_argmax_and_argmin():
    x = tg.Tensor(np.array([[1.0, 5.0, 2.0], [7.0, 0.0, 3.0]]), requires_grad=True)
    assert x.argmax(axis=1).tolist() == [1, 0]
    assert x.argmin().item() == 4
    assert not x.argmax().requires_grad


# ---- errors a learner can act on ----------------------------------------------------------------
def test_matmul_mismatch_names_shapes_and_suggests_the_transpose():
    a, w = tg.Tensor(np.ones((200, 400))), tg.Tensor(np.ones((25, 400)))
    with pytest.raises(ValueError) as error:
        a @ w
    message = str(error.value)
    assert "(200, 400)" in message and "(25, 400)" in message
    assert "400" in message and "25" in message and "x @ y.T" in message


def test_matmul_mismatch_suggests_transposing_the_left_operand():
    with pytest.raises(ValueError, match=r"x\.T @ y"):
        tg.Tensor(np.ones((3, 5))) @ tg.Tensor(np.ones((3, 2)))


def test_matmul_batch_and_scalar_errors():
    with pytest.raises(ValueError, match="batch dimensions"):
        tg.Tensor(np.ones((2, 3, 4))) @ tg.Tensor(np.ones((5, 4, 2)))
    with pytest.raises(ValueError, match="at least 1 dimension"):
        tg.Tensor(np.ones(3)) @ tg.Tensor(2.0)


def test_broadcast_mismatch_names_the_operation_and_both_shapes():
    with pytest.raises(ValueError, match=r"Add of shapes \(2, 3\) and \(4,\)"):
        tg.Tensor(np.ones((2, 3))) + tg.Tensor(np.ones(4))


def test_bad_axis_and_shape_arguments_raise_clearly():
    x = tg.Tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="axis 2 is out of range"):
        x.sum(axis=2)
    with pytest.raises(ValueError, match="axis 0 is out of range for a tensor with 0 dimensions"):
        tg.Tensor(np.float64(1.0)).mean(axis=0)  # as in NumPy (np.sum takes axis 0 or -1 there)
    with pytest.raises(ValueError, match="axis 1 is out of range for a tensor with 0 dimensions"):
        tg.Tensor(np.float64(1.0)).sum(axis=1)
    with pytest.raises(ValueError, match="repeats"):
        x.max(axis=(1, -1))
    with pytest.raises(ValueError, match="squeeze"):
        x.squeeze(0)
    with pytest.raises(ValueError, match="Reshape"):
        x.reshape(4, 2)


def test_einsum_errors_name_the_subscripts():
    with pytest.raises(ValueError, match="'ij,jk->ik' names 2 operands but got 1"):
        tg.einsum("ij,jk->ik", tg.Tensor(np.ones((2, 2))))
    with pytest.raises(ValueError, match="3 indices for an operand of shape"):
        tg.einsum("ijk->i", tg.Tensor(np.ones((2, 2))))


# ---- Python protocols ---------------------------------------------------------------------------
def test_builtin_sum_len_iteration_and_truth():
    x = tg.Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    total = sum(sum(x))
    assert total.item() == 10.0
    total.backward()
    np.testing.assert_allclose(x.grad.data, np.ones((2, 2)))
    assert len(x) == 2 and [row.tolist() for row in x] == [[1.0, 2.0], [3.0, 4.0]]
    assert bool(tg.Tensor(1.0)) is True
    with pytest.raises(ValueError, match="ambiguous"):
        bool(x)


def test_numpy_arrays_on_the_left_give_tensors():
    x = tg.Tensor(np.array([[1.0, 2.0], [3.0, 4.0]]), requires_grad=True)
    products = [np.ones((1, 2)) @ x, np.array(2.0) * x, np.ones(2) - x, np.ones(2) / (x + 1.0)]
    for result in products:
        assert isinstance(result, tg.Tensor) and result.requires_grad
    (np.ones((1, 2)) @ x).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.ones((2, 2)))


def test_unsupported_numpy_function_names_itself():
    with pytest.raises(TypeError, match="numpy.cumprod"):
        np.cumprod(tg.Tensor(np.ones(3)))


def test_numpy_out_argument_is_refused_rather_than_dropping_the_graph():
    with pytest.raises(TypeError, match="out"):
        np.exp(tg.Tensor(np.ones(3)), out=np.empty(3))


@pytest.mark.parametrize(
    "call, refused",
    [
        (lambda t: np.sum(t, initial=10.0), "initial"),
        (lambda t: np.mean(t, where=np.array([True, True, False])), "where"),
        (lambda t: np.dot(t, t, out=np.empty(())), "out"),
    ],
)
def test_numpy_options_the_tensor_cannot_honour_are_refused(call, refused):
    with pytest.raises(TypeError, match=refused):
        call(tg.Tensor(np.array([1.0, 2.0, 3.0])))


def test_np_transpose_keeps_numpys_meaning():
    t = tg.Tensor(np.zeros((2, 3, 4)))
    assert np.transpose(t).shape == (4, 3, 2)
    assert t.transpose(0, 2).shape == (4, 3, 2)  # two axes: PyTorch's swap
    with pytest.raises(ValueError):
        np.transpose(t, (0, 2))


def test_a_misspelt_attribute_is_an_error_not_a_silent_no_op():
    t = tg.Tensor(np.ones(2))
    with pytest.raises(AttributeError, match="requires_grads"):
        t.requires_grads = True  # the learner meant requires_grad


def test_small_extensions_beyond_the_api():
    x = tg.Tensor(np.arange(24.0).reshape(2, 3, 4), requires_grad=True)
    assert x.swapaxes(0, 2).shape == (4, 3, 2) and x.mT.shape == (2, 4, 3)
    x.swapaxes(0, 2).sum().backward()
    np.testing.assert_allclose(x.grad.data, np.ones((2, 3, 4)))
    assert (x > 22).any().item() and not (x > 22).all().item()
    assert (x >= 0).all(axis=0).shape == (3, 4)
    assert float(tg.Tensor(2.5)) == 2.5 and int(tg.Tensor(np.array(3))) == 3
    assert [10, 20, 30][tg.Tensor(np.array(1))] == 20
    with pytest.raises(TypeError, match="integer"):
        [1, 2][tg.Tensor(1.0)]
    leaf = tg.Tensor(np.ones(2)).requires_grad_()
    assert leaf.requires_grad and not leaf.requires_grad_(False).requires_grad
    with pytest.raises(TypeError):
        tg.Tensor(np.arange(2)).requires_grad_()


# ---- PyTorch's spellings: a port runs as written ------------------------------------------
@pytest.mark.parametrize("pytorch, numpy_form", [
    (lambda t: t.permute(2, 0, 1), lambda t: t.transpose(2, 0, 1)),
    (lambda t: t.permute(-1, 0, 1), lambda t: t.transpose(2, 0, 1)),
    (lambda t: t.expand(4, 2, 3, 5), lambda t: t.broadcast_to(4, 2, 3, 5)),
    (lambda t: t[:, :1].expand(-1, 3, -1), lambda t: t[:, :1].broadcast_to(2, 3, 5)),
    (lambda t: t.expand_as(tg.zeros(3, 2, 3, 5)), lambda t: t.broadcast_to(3, 2, 3, 5)),
    (lambda t: t.reshape_as(tg.zeros(6, 5)), lambda t: t.reshape(6, 5)),
    (lambda t: t.clamp(min=-0.5, max=0.5), lambda t: t.clip(-0.5, 0.5)),
    (lambda t: t.clamp(max=0.2), lambda t: t.clip(None, 0.2)),
    (lambda t: t.neg(), lambda t: -t),
    (lambda t: t.pow(3), lambda t: t ** 3),
    (lambda t: t.square(), lambda t: t * t),
    (lambda t: t.softmax(dim=-1), lambda t: tg.functional.softmax(t, axis=-1)),
    (lambda t: t.log_softmax(1), lambda t: tg.functional.log_softmax(t, axis=1)),
    (lambda t: t[0].t(), lambda t: t[0].T),
    (lambda t: t.float(), lambda t: t.astype(np.float32)),
    (lambda t: t.double(), lambda t: t.astype(np.float64)),
])
def test_pytorch_spellings_give_the_numpy_forms_values_and_gradients(pytorch, numpy_form):
    data = np.random.default_rng(3).uniform(-1, 1, (2, 3, 5))
    results, grads = [], []
    for form in (pytorch, numpy_form):
        t = tg.Tensor(data, requires_grad=True)
        out = form(t)
        (out * np.arange(out.size).reshape(out.shape)).sum().backward()
        results.append(out)
        grads.append(t.grad.data)
    assert results[0].shape == results[1].shape and results[0].dtype == results[1].dtype
    np.testing.assert_allclose(results[0].data, results[1].data, rtol=1e-6)
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)


def test_pytorch_spellings_refuse_what_pytorch_refuses_with_the_shapes():
    t = tg.Tensor(np.zeros((2, 3, 4)))
    assert t.numel() == 24 and tg.Tensor(np.zeros((0, 3))).numel() == 0
    with pytest.raises(ValueError, match=r"permute of a tensor of shape \(2, 3, 4\) takes 3 axes"):
        t.permute(1, 0)
    with pytest.raises(ValueError, match=r"at most 2 axes, got shape \(2, 3, 4\)"):
        t.t()
    with pytest.raises(ValueError):
        t.permute(0, 0, 1)  # not a permutation


def test_sigmoid_keeps_the_float_dtype_and_saturates_without_warnings():
    # Computed with NumPy's exp: exp(-x) overflows to inf below about -709 (float64) or -89
    # (float32), where 1 / inf = 0 is the right limit, and no warning reaches the user.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for dtype in (np.float16, np.float32, np.float64):
            values = np.array([-1e4, -800.0, -100.0, -20.0, 0.0, 20.0, 1e4], dtype=dtype)
            x = tg.Tensor(values, requires_grad=True)
            out = x.sigmoid()
            assert out.dtype == dtype
            expected = expit(x.data.astype(np.float64))
            np.testing.assert_allclose(out.data, expected.astype(dtype), rtol=2 * np.finfo(dtype).eps,
                                       atol=np.finfo(dtype).tiny)  # 0 where the true value is subnormal
            out.backward(np.ones(7, dtype=dtype))
            assert np.all(np.isfinite(x.grad.data))
        assert tg.Tensor(np.float64(-3.0)).sigmoid().item() == 1 / (1 + np.exp(3.0))


def test_to_and_the_dtype_shorthands_follow_pytorch():
    # PyTorch 2.13: to() without a change returns the tensor itself; long() truncates toward zero.
    x = tg.Tensor([1.5, -2.5], requires_grad=True)
    assert x.to("cpu") is x and x.to(x) is x and x.to(np.float32) is x
    assert x.to(dtype=np.float32, copy=True) is not x
    wide = x.to("float64")
    assert wide.dtype == np.float64 and wide.requires_grad
    wide.sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [1.0, 1.0]
    assert x.to(tg.Tensor(np.zeros(1))).dtype == np.float64  # another tensor's dtype
    assert x.long().tolist() == [1, -2] and x.long().dtype == np.int64 and not x.long().requires_grad
    assert x.int().dtype == np.int32 and x.half().dtype == np.float16
    assert x.bool().tolist() == [True, True]
    with pytest.raises(ValueError, match="device 'cuda' is not available"):
        x.to("cuda")
