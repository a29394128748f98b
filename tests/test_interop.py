"""NumPy functions on Tensors: each supported one gives NumPy's values and stays in the graph
(gradients checked numerically); unsupported ones raise a TypeError naming themselves."""
import numpy as np
import pytest
import scipy.special

import tinygrad_edu as tg

RNG = np.random.default_rng(7)
A = RNG.uniform(0.5, 2.0, (3, 4))
B = RNG.uniform(0.5, 2.0, (4, 2))
V = RNG.uniform(0.5, 2.0, 4)

# (name, function of arrays-or-Tensors, its float64 inputs)
CALLS = [
    ("np.add", lambda a, b: np.add(a, b), [A, V]),
    ("np.subtract", lambda a, b: np.subtract(a, b), [A, V]),
    ("np.multiply", lambda a, b: np.multiply(a, b), [A, V]),
    ("np.divide", lambda a, b: np.divide(a, b), [A, V]),
    ("np.power", lambda a: np.power(a, 3), [A]),
    ("np.matmul", lambda a, b: np.matmul(a, b), [A, B]),
    ("np.dot", lambda a, b: np.dot(a, b), [A, B]),
    ("np.dot 1-D", lambda v: np.dot(v, v), [V]),
    ("np.outer", lambda v: np.outer(v, v), [V]),
    ("np.exp", lambda a: np.exp(a), [A]),
    ("np.log", lambda a: np.log(a), [A]),
    ("np.sqrt", lambda a: np.sqrt(a), [A]),
    ("np.square", lambda a: np.square(a), [A]),
    ("np.abs", lambda a: np.abs(a - 1.2), [A]),
    ("np.tanh", lambda a: np.tanh(a), [A]),
    ("np.negative", lambda a: -np.negative(a), [A]),
    ("np.maximum", lambda a, v: np.maximum(a, v), [A, V]),
    ("np.minimum", lambda a, v: np.minimum(a, v), [A, V]),
    ("scipy expit", lambda a: scipy.special.expit(a), [A]),
    ("np.sum", lambda a: np.sum(a, axis=0, keepdims=True), [A]),
    ("np.mean", lambda a: np.mean(a, axis=1), [A]),
    ("np.max", lambda a: np.max(a, axis=0), [A]),
    ("np.min", lambda a: np.min(a), [A]),
    ("np.var", lambda a: np.var(a, axis=1, ddof=1), [A]),
    ("np.reshape", lambda a: np.reshape(a, (2, 6)), [A]),
    ("np.transpose", lambda a: np.transpose(a), [A]),
    ("np.squeeze", lambda a: np.squeeze(np.reshape(a, (1, 3, 4)), axis=0), [A]),
    ("np.expand_dims", lambda a: np.expand_dims(a, 1), [A]),
    ("np.broadcast_to", lambda v: np.broadcast_to(v, (3, 4)), [V]),
    ("np.concatenate", lambda a, b: np.concatenate([a, b.T], axis=0), [A, B]),
    ("np.stack", lambda a: np.stack([a, a * 2.0], axis=1), [A]),
    ("np.where", lambda a, v: np.where(A > 1.0, a, v), [A, V]),
    ("np.einsum", lambda a, b: np.einsum("ij,jk->ik", a, b), [A, B]),
    ("np.clip", lambda a: np.clip(a, 0.8, 1.5), [A]),
    ("ndarray @ Tensor", lambda b: A @ b, [B]),
]


@pytest.mark.parametrize("name, call, arrays", CALLS, ids=[c[0] for c in CALLS])
def test_numpy_call_on_tensors_matches_numpy_and_is_differentiable(name, call, arrays):
    tensors = [tg.Tensor(a, requires_grad=True) for a in arrays]
    out = call(*tensors)
    assert isinstance(out, tg.Tensor) and out.requires_grad, f"{name} left the graph"
    np.testing.assert_allclose(out.data, call(*arrays), rtol=1e-12)
    assert tg.gradcheck(call, tensors)


def test_value_only_functions_run_on_the_data():
    t = tg.Tensor(np.array([1.0, -2.0, 0.0]), requires_grad=True)
    assert np.allclose(t, [1.0, -2.0, 0.0])
    assert np.count_nonzero(t) == 2
    assert np.sign(t).tolist() == [1.0, -1.0, 0.0] and not np.sign(t).requires_grad
    assert np.isnan(t).tolist() == [False, False, False]
    assert np.argmax(t).item() == 0 and np.shape(t) == (3,)
    assert np.where(t.data > 0)[0].tolist() == [0]


def test_the_first_learners_functions_run_unchanged_on_tensors():
    """feedForward and cost from seeds/000, verbatim but for the Python 2 print."""
    from scipy.special import expit

    lmda = 1

    def g(z):
        return expit(z)

    def feedForward(p, x):
        a1 = x
        z2 = np.dot(a1, p[0]) + p[1]
        a2 = g(z2)
        z3 = np.dot(a2, p[2]) + p[3]
        a3 = g(z3)
        return [a1, a2, a3], [z2, z3]

    def cost(p, x, y):
        [a, z] = feedForward(p, x)
        h = a[-1]
        lmda_sum = (lmda * 0.5 / x.shape[0]) * (sum(sum(np.square(p[0]))) + sum(sum(np.square(p[2]))))
        return sum(sum(np.square(y - h))) * 0.5 / x.shape[0] + lmda_sum

    x = RNG.random((6, 5))
    y = np.eye(3)[RNG.integers(0, 3, 6)]
    arrays = [RNG.uniform(-0.12, 0.12, s) for s in [(5, 4), (1, 4), (4, 3), (1, 3)]]
    params = [tg.Tensor(a, requires_grad=True) for a in arrays]
    value = cost(params, x, y)
    assert isinstance(value, tg.Tensor)
    np.testing.assert_allclose(value.item(), cost(arrays, x, y), rtol=1e-12)
    assert tg.gradcheck(lambda *p: cost(list(p), x, y), params)


@pytest.mark.parametrize(
    "call, named",
    [
        (lambda t: np.cumsum(t), "numpy.cumsum"),
        (lambda t: np.sin(t), "numpy.sin"),
        (lambda t: np.add.reduce(t), "numpy.add reduce"),
    ],
)
def test_unsupported_numpy_functions_raise_naming_themselves(call, named):
    with pytest.raises(TypeError, match=named):
        call(tg.Tensor(np.ones(3), requires_grad=True))
