"""An outsider's parity campaign: max-pool ties, extremum ties and softmax with infinities.

The literals are what PyTorch 2.13.0 (CPU) computes for the same inputs (the suite never imports
torch). Gradients are those of ``(out * upstream).sum()`` with an upstream of 1, 2, 3, ... in the
output's shape, so each window or row shows which cell its gradient went to.

PyTorch's max-pool gives each window's whole gradient to one cell, the one `return_indices=True`
names: scanning the window's cells inside the image in row-major order, the first maximum, or the
last NaN if the window holds any. Padding never wins, not even a tie with a maximum of -inf. The
rule holds for float32 and float64, contiguous and channels-last inputs, overlapping windows,
padding, dilation and ceil_mode (checked on 3000 random windows full of ties, inf and NaN).
"""
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import Tensor, nn

nan, inf = np.nan, np.inf


def upstream(shape: tuple, dtype=np.float64) -> np.ndarray:
    """1, 2, 3, ... in the output's shape."""
    return np.arange(1, int(np.prod(shape)) + 1, dtype=dtype).reshape(shape)


def pool_grad(image, *args, dtype=np.float64, **kwargs):
    """F.max_pool2d of one (H, W) image, and the gradient of (out * upstream).sum() as (H, W)."""
    x = Tensor(np.array(image, dtype=dtype)[None, None], requires_grad=True)
    out = F.max_pool2d(x, *args, **kwargs)
    out.backward(Tensor(upstream(out.shape, dtype)))
    assert x.grad.dtype == dtype
    return out.numpy()[0, 0], x.grad.numpy()[0, 0]


# ---- max-pool: one cell per window, PyTorch's -------------------------------------------------
ZEROS_3x3, ZEROS_5x5 = np.zeros((3, 3)), np.zeros((5, 5))
# (what, image, args, kwargs, PyTorch's gradient)
POOL_CASES = [
    ("all four equal: the first", [[1.0, 1.0], [1.0, 1.0]], (2,), {}, [[1, 0], [0, 0]]),
    ("two tied maxima: the first in row-major order", [[0.0, 2.0], [2.0, 0.0]], (2,), {}, [[0, 1], [0, 0]]),
    ("tied +inf", [[inf, inf], [1.0, inf]], (2,), {}, [[1, 0], [0, 0]]),
    ("all -inf", [[-inf, -inf], [-inf, -inf]], (2,), {}, [[1, 0], [0, 0]]),
    ("two NaNs: the last", [[nan, 1.0], [nan, 3.0]], (2,), {}, [[0, 0], [1, 0]]),
    ("NaNs beside inf: the last NaN", [[nan, inf], [-inf, nan]], (2,), {}, [[0, 0], [0, 1]]),
    ("overlapping windows of zeros (after a ReLU)", ZEROS_3x3, (2, 1), {}, [[1, 2, 0], [3, 4, 0], [0, 0, 0]]),
    ("padding never wins a tie with zeros", ZEROS_3x3, (3, 2, 1), {}, [[1, 2, 0], [3, 4, 0], [0, 0, 0]]),
    ("padding never wins a tie with -inf", [[-inf, -inf], [-inf, -inf]], (2, 2, 1), {}, [[1, 2], [3, 4]]),
    ("dilation", ZEROS_5x5, (2, 1, 0, 2), {},
     [[1, 2, 3, 0, 0], [4, 5, 6, 0, 0], [7, 8, 9, 0, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]),
    ("ceil_mode's last window", np.zeros((3, 5)), (2, 2), dict(ceil_mode=True),
     [[1, 0, 2, 0, 3], [0, 0, 0, 0, 0], [4, 0, 5, 0, 6]]),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("what, image, args, kwargs, expected", POOL_CASES, ids=[c[0] for c in POOL_CASES])
def test_max_pool2d_gives_each_window_gradient_to_the_cell_pytorch_picks(what, image, args, kwargs,
                                                                          expected, dtype):
    _, grad = pool_grad(image, *args, dtype=dtype, **kwargs)
    np.testing.assert_array_equal(grad, np.array(expected, dtype=dtype))


def test_nn_max_pool2d_and_an_unbatched_image_follow_the_same_rule():
    x = Tensor(np.zeros((2, 3, 3)), requires_grad=True)  # (C, H, W)
    out = nn.MaxPool2d(2, stride=1)(x)
    out.backward(Tensor(upstream(out.shape)))
    expected = [[[1, 2, 0], [3, 4, 0], [0, 0, 0]], [[5, 6, 0], [7, 8, 0], [0, 0, 0]]]  # PyTorch 2.13
    np.testing.assert_array_equal(x.grad.numpy(), expected)


def test_max_pool2d_keeps_the_first_maximum_under_create_graph():
    x = Tensor(np.array([[[[1.0, 3.0], [3.0, 2.0]]]]), requires_grad=True)
    (dx,) = tg.grad((F.max_pool2d(x * x, 2) * 2).sum(), [x], create_graph=True)
    np.testing.assert_array_equal(dx.numpy(), [[[[0.0, 12.0], [0.0, 0.0]]]])  # d/dx 2 x^2 at the first 3
    (ddx,) = tg.grad(dx.sum(), [x])
    np.testing.assert_array_equal(ddx.numpy(), [[[[0.0, 4.0], [0.0, 0.0]]]])


def test_a_window_of_padding_only_gives_minus_inf_and_no_gradient():
    # kernel 2, dilation 3, padding 1 on a 2x2 image: the one window reads rows and columns -1 and 2.
    # PyTorch 2.13 names index 6 there (outside the image) and its backward corrupts memory.
    out, grad = pool_grad(np.arange(4.0).reshape(2, 2), 2, 1, 1, 3)
    assert out.tolist() == [[-inf]]
    np.testing.assert_array_equal(grad, np.zeros((2, 2)))


def pytorch_pool_gradient(x: np.ndarray, upstream_grad: np.ndarray, kernel: int, stride: int, padding: int,
                          dilation: int) -> np.ndarray:
    """PyTorch's rule written plainly: each window's gradient to its first maximum (or last NaN)
    among its cells inside the image, scanned in row-major order."""
    grad = np.zeros_like(x)
    for n, c, row, col in np.ndindex(upstream_grad.shape):
        cells = [(h, w)
                 for h in range(row * stride - padding, row * stride - padding + dilation * (kernel - 1) + 1,
                                dilation)
                 for w in range(col * stride - padding, col * stride - padding + dilation * (kernel - 1) + 1,
                                dilation)
                 if 0 <= h < x.shape[2] and 0 <= w < x.shape[3]]
        values = [x[n, c, h, w] for h, w in cells]
        nans = [i for i, v in enumerate(values) if np.isnan(v)]
        winner = nans[-1] if nans else values.index(max(values))
        grad[(n, c) + cells[winner]] += upstream_grad[n, c, row, col]
    return grad


def pytorch_pool_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                      ceil_mode: bool) -> int:
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:  # the last window must start inside
        out -= 1
    return out


@settings(deadline=None)
@given(data=st.data(), kernel=st.integers(1, 3), stride=st.integers(1, 3), dilation=st.integers(1, 2),
       ceil_mode=st.booleans(), dtype=st.sampled_from([np.float32, np.float64]))
def test_max_pool2d_matches_pytorchs_rule_on_inputs_full_of_ties(data, kernel, stride, dilation, ceil_mode,
                                                                 dtype):
    padding = data.draw(st.integers(0, kernel // 2), label="padding")
    span = dilation * (kernel - 1) + 1
    height, width = (data.draw(st.integers(span, span + 4), label=side) for side in ("height", "width"))
    values = st.sampled_from([-1.0, 0.0, 0.0, 1.0, inf, -inf, nan])
    x = np.array(data.draw(st.lists(values, min_size=2 * height * width, max_size=2 * height * width),
                           label="x"), dtype=dtype).reshape(1, 2, height, width)
    leaf = Tensor(x, requires_grad=True)
    out = F.max_pool2d(leaf, kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    sizes = [pytorch_pool_size(n, kernel, stride, padding, dilation, ceil_mode) for n in (height, width)]
    assert out.shape == (1, 2, *sizes)
    upstream_grad = np.array(data.draw(st.lists(st.integers(1, 9), min_size=out.size, max_size=out.size),
                                       label="upstream"), dtype=dtype).reshape(out.shape)
    out.backward(Tensor(upstream_grad))
    expected = pytorch_pool_gradient(x, upstream_grad, kernel, stride, padding, dilation)
    np.testing.assert_array_equal(leaf.grad.numpy(), expected)


# ---- reductions and elementwise extremes keep sharing ties, as PyTorch's amax and maximum -------
def test_max_and_min_share_ties_equally_as_pytorchs_amax_and_amin():
    x = Tensor(np.array([[3.0, 1.0, 3.0, 3.0], [2.0, 2.0, -1.0, 0.0]]), requires_grad=True)
    out = x.max(axis=1)
    out.backward(Tensor(upstream(out.shape)))
    third = 1 / 3
    np.testing.assert_allclose(x.grad.numpy(), [[third, 0, third, third], [1.0, 1.0, 0, 0]], rtol=1e-15)
    y = Tensor(np.array([[-3.0, 1.0, -3.0, 0.0], [2.0, 2.0, 5.0, 5.0]]), requires_grad=True)
    out = y.min(axis=1)
    out.backward(Tensor(upstream(out.shape)))
    np.testing.assert_array_equal(y.grad.numpy(), [[0.5, 0, 0.5, 0], [1.0, 1.0, 0, 0]])
    z = Tensor(np.array([[3.0, 1.0], [3.0, 0.0]]), requires_grad=True)
    z.max().backward()  # over every element: PyTorch's max() and amax() both share
    np.testing.assert_array_equal(z.grad.numpy(), [[0.5, 0], [0.5, 0]])


def test_maximum_and_minimum_split_a_tie_in_halves_as_pytorch():
    a = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    b = Tensor(np.array([1.0, 2.0, 0.0]), requires_grad=True)
    tg.maximum(a, b).backward(Tensor(upstream((3,))))
    assert a.grad.tolist() == [0.5, 1.0, 3.0] and b.grad.tolist() == [0.5, 1.0, 0.0]
    a.grad = b.grad = None
    tg.minimum(a, b).backward(Tensor(upstream((3,))))
    assert a.grad.tolist() == [0.5, 1.0, 0.0] and b.grad.tolist() == [0.5, 1.0, 3.0]


# ---- softmax and friends with infinite inputs -------------------------------------------------
FUNCTIONS = {
    "softmax": lambda x: F.softmax(x, axis=-1),
    "log_softmax": lambda x: F.log_softmax(x, axis=-1),
    "logsumexp": lambda x: F.logsumexp(x, axis=-1),
    "cross_entropy, class 0": lambda x: F.cross_entropy(x, [0], reduction="none"),
    "cross_entropy, last class": lambda x: F.cross_entropy(x, [x.shape[1] - 1], reduction="none"),
    # soft target: nothing on class 0, the rest shared
    "cross_entropy, soft": lambda x: F.cross_entropy(
        x, np.array([[0.0] + [1 / (x.shape[1] - 1)] * (x.shape[1] - 1)]), reduction="none"),
}
NAN_2, NAN_3 = [[nan, nan]], [[nan, nan, nan]]
# (function, one row of logits, PyTorch's value, PyTorch's gradient)
INFINITE_ROWS = [
    # +inf: softmax, log_softmax and cross_entropy are nan for the whole row (inf - inf)
    ("softmax", [inf, 0.0], NAN_2, NAN_2),
    ("log_softmax", [inf, 0.0], NAN_2, NAN_2),
    ("cross_entropy, class 0", [inf, 0.0], [nan], NAN_2),
    ("cross_entropy, last class", [inf, 0.0], [nan], NAN_2),
    ("cross_entropy, soft", [inf, 0.0], [nan], NAN_2),
    ("softmax", [inf, inf, 0.0], NAN_3, NAN_3),
    ("log_softmax", [inf, inf, 0.0], NAN_3, NAN_3),
    ("cross_entropy, last class", [inf, inf, 0.0], [nan], NAN_3),
    ("cross_entropy, soft", [inf, inf, 0.0], [nan], NAN_3),
    ("softmax", [inf, 1.0, -inf], NAN_3, NAN_3),
    ("log_softmax", [inf, 1.0, -inf], NAN_3, NAN_3),
    ("cross_entropy, class 0", [inf, 1.0, -inf], [nan], NAN_3),
    ("cross_entropy, last class", [inf, 1.0, -inf], [nan], NAN_3),
]
# Rows where the two already agreed; they guard the shift by the row's maximum, and logsumexp's own.
AGREEING_ROWS = [
    # logsumexp of a row holding +inf is inf: its shift takes an infinite maximum as 0
    ("logsumexp", [inf, 0.0], [inf], [[nan, 0.0]]),
    ("logsumexp", [inf, inf, 0.0], [inf], [[nan, nan, 0.0]]),
    ("logsumexp", [inf, 1.0, -inf], [inf], [[nan, 0.0, 0.0]]),
    ("softmax", [inf, nan], NAN_2, NAN_2),
    ("softmax", [inf], [[nan]], [[nan]]),
    ("log_softmax", [inf], [[nan]], [[nan]]),
    # -inf alone is a masked class; a row of -inf only is nan (0 / 0), its logsumexp -inf
    ("softmax", [-inf, 0.0], [[0.0, 1.0]], [[0.0, 0.0]]),
    ("log_softmax", [-inf, 0.0], [[-inf, 0.0]], [[1.0, -1.0]]),
    ("logsumexp", [-inf, 0.0], [0.0], [[0.0, 1.0]]),
    ("cross_entropy, class 0", [-inf, 0.0], [inf], [[-1.0, 1.0]]),
    ("cross_entropy, last class", [-inf, 0.0], [0.0], [[0.0, 0.0]]),
    ("softmax", [-inf, -inf], NAN_2, NAN_2),
    ("log_softmax", [-inf, -inf], NAN_2, NAN_2),
    ("logsumexp", [-inf, -inf], [-inf], NAN_2),
    ("cross_entropy, class 0", [-inf, -inf], [nan], NAN_2),
    ("cross_entropy, soft", [-inf, -inf], [nan], NAN_2),
    # NaN beside infinities: nan everywhere
    ("logsumexp", [inf, nan], [nan], NAN_2),
    ("cross_entropy, last class", [inf, nan], [nan], NAN_2),
    ("log_softmax", [nan, -inf, 1.0], NAN_3, NAN_3),
    ("cross_entropy, soft", [nan, -inf, 1.0], [nan], NAN_3),
]


@pytest.mark.parametrize("name, row, value, grad", INFINITE_ROWS + AGREEING_ROWS,
                         ids=[f"{c[0]} of {c[1]}" for c in INFINITE_ROWS + AGREEING_ROWS])
def test_softmax_family_with_infinite_logits_matches_pytorch(name, row, value, grad):
    x = Tensor(np.array([row]), requires_grad=True)
    with warnings.catch_warnings(), np.errstate(all="ignore"):  # inf and nan are the point here
        warnings.simplefilter("ignore", RuntimeWarning)
        out = FUNCTIONS[name](x)
        out.backward(Tensor(upstream(out.shape)))
    np.testing.assert_allclose(out.numpy(), value, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), grad, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_of_a_row_holding_inf_is_nan_throughout_in_either_float(dtype):
    x = Tensor(np.array([[inf, 0.0], [1.0, 1.0]], dtype=dtype))
    with np.errstate(invalid="ignore"):
        out = F.softmax(x, axis=1).numpy()
    assert out.dtype == dtype
    np.testing.assert_array_equal(out, np.array([[nan, nan], [0.5, 0.5]], dtype=dtype))


def test_a_soft_target_of_zero_at_a_masked_logit_adds_nothing_where_pytorch_gives_nan():
    # A kept difference: PyTorch 2.13 computes 0 * log_softmax = 0 * -inf = nan at the masked class
    # (its gradient [0, 0] agrees); here a zero weight adds nothing, as the class-index target [1] gives.
    logits = Tensor(np.array([[-inf, 0.0]]), requires_grad=True)
    loss = F.cross_entropy(logits, np.array([[0.0, 1.0]]), reduction="none")
    assert loss.tolist() == [0.0] == F.cross_entropy(logits, [1], reduction="none").tolist()
    loss.backward()
    assert logits.grad.tolist() == [[0.0, 0.0]]
