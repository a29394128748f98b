"""Second derivatives through every kind of op, as HIPS autograd's and PyTorch's gradgradcheck do:
the recorded backward (create_graph=True) differentiated again must match central differences of
the first gradient. Inputs avoid kinks (relu, abs, max) by more than the finite-difference step.
"""
import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import Tensor
from tinygrad_edu.gradcheck import numeric_grad

RNG = np.random.default_rng(0)
A = RNG.standard_normal((3, 4))
B = RNG.standard_normal((4, 2))
V = RNG.standard_normal(4)
IMAGE = RNG.standard_normal((1, 1, 4, 4))

CASES = {
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
    "log": lambda x: (x * x + 1).log(),
    "sqrt": lambda x: (x * x + 1).sqrt(),
    "sin cos": lambda x: x.sin() * x.cos(),
    "x ** x": lambda x: (x * x + 1) ** x,
    "2 ** x": lambda x: 2.0 ** x,
    "x / (x*x + 1)": lambda x: x / (x * x + 1),
    "x @ B": lambda x: (x @ B) ** 2,
    "A @ x.T": lambda x: (A @ x.T) ** 2,
    "x @ v": lambda x: (x @ V) ** 2,
    "v @ x.T": lambda x: (V @ x.T) ** 2,
    "vector @ vector": lambda x: (x[0] @ x[1]) ** 2,
    "batched matmul": lambda x: (x.reshape(3, 2, 2) @ x.reshape(3, 2, 2)) ** 2,
    "linear (input)": lambda x: F.linear(x, Tensor(B.T), Tensor(np.ones(2))) ** 2,
    "linear (weight)": lambda x: F.linear(Tensor(A), x[:2]) ** 2,
    "softmax": lambda x: F.softmax(x, axis=-1) ** 2,
    "log_softmax": lambda x: F.log_softmax(x, axis=-1) ** 2,
    "cross_entropy": lambda x: F.cross_entropy(x, np.array([0, 1, 3])),
    "bce_with_logits": lambda x: F.binary_cross_entropy_with_logits(x, (A > 0) * 1.0),
    "mse_loss": lambda x: F.mse_loss(x * x, Tensor(A)),
    "var": lambda x: x.var(axis=0) ** 2,
    "std": lambda x: x.std(axis=1),
    "prod": lambda x: x.prod(axis=1),
    "cumsum": lambda x: x.cumsum(axis=1) ** 2,
    "max": lambda x: (x * x).max(axis=1) ** 2,
    "getitem (repeated index)": lambda x: x[[0, 0, 2], 1:] ** 2,
    "where": lambda x: tg.where(A > 0, x * x, x ** 3),
    "relu": lambda x: x.relu() ** 3,
    "layer_norm": lambda x: F.layer_norm(x, (4,)) ** 2,
    "conv2d (weight)": lambda x: F.conv2d(Tensor(IMAGE), x[:2, :2].reshape(1, 1, 2, 2)) ** 2,
    "max_pool2d": lambda x: F.max_pool2d((x * x).reshape(1, 1, 3, 4), 2, stride=1) ** 2,
}


def first_gradient(fn, values):
    x = Tensor(values, requires_grad=True)
    (g,) = tg.grad(fn(x).sum(), x, create_graph=True)
    return x, g


@pytest.mark.parametrize("name", list(CASES))
def test_second_derivative_matches_central_differences(name):
    fn = CASES[name]
    rng = np.random.default_rng(list(CASES).index(name))  # the same point whichever tests run
    values = rng.uniform(-1.5, 1.5, (3, 4))
    weights = rng.uniform(0.5, 1.5, (3, 4))
    x, g = first_gradient(fn, values)
    (second,) = tg.grad((g * weights).sum(), x, allow_unused=True)
    second = np.zeros_like(values) if second is None else second.data
    def weighted_first_gradient(v):
        return float((first_gradient(fn, v)[1].data * weights).sum())

    numeric = numeric_grad(weighted_first_gradient, [values], eps=1e-5)[0]
    np.testing.assert_allclose(second, numeric, rtol=1e-3, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("layer", ["F.linear", "x @ W.T + b"])
def test_gradient_penalty_on_the_input_differentiates_into_the_weights(layer):
    # WGAN-GP's term, d/dparams of (|d out/d x| - 1)^2: a mixed partial through both layers' products.
    rng = np.random.default_rng(0)
    inputs = rng.standard_normal((4, 3))

    def affine(x, w, b=None):
        if layer == "F.linear":
            return F.linear(x, w, b)
        return x @ w.T if b is None else x @ w.T + b

    def penalty(w1, b1, w2):
        x = Tensor(inputs, requires_grad=True)
        (dx,) = tg.grad(affine(affine(x, w1, b1).tanh(), w2).sum(), x, create_graph=True)
        return (((dx ** 2).sum(axis=1).sqrt() - 1) ** 2).mean()

    params = [Tensor(rng.standard_normal(shape), requires_grad=True) for shape in ((5, 3), (5,), (1, 5))]
    assert tg.gradcheck(penalty, params)
