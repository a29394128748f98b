"""NumPy functions on Tensors: each supported one gives NumPy's values and stays in the graph
(gradients checked numerically); unsupported ones raise a TypeError naming themselves."""
import numpy as np
import pytest
import scipy.special

import seed_learner as learner
import tinygrad_edu as tg
from tinygrad_edu import interop
from tinygrad_edu.gradcheck import numeric_grad

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
    ("np.absolute", lambda a: np.abs(a - 1.2), [A]),
    ("np.positive", lambda a: np.positive(a), [A]),
    ("np.tanh", lambda a: np.tanh(a), [A]),
    ("np.sin", lambda a: np.sin(a), [A]),
    ("np.cos", lambda a: np.cos(a), [A]),
    ("np.negative", lambda a: -np.negative(a), [A]),
    ("np.maximum", lambda a, v: np.maximum(a, v), [A, V]),
    ("np.minimum", lambda a, v: np.minimum(a, v), [A, V]),
    ("scipy.special.expit", lambda a: scipy.special.expit(a), [A]),
    ("np.sum", lambda a: np.sum(a, axis=0, keepdims=True), [A]),
    ("np.mean", lambda a: np.mean(a, axis=1), [A]),
    ("np.max", lambda a: np.max(a, axis=0), [A]),
    ("np.min", lambda a: np.min(a), [A]),
    ("np.amax", lambda a: np.amax(a, axis=-1), [A]),
    ("np.amin", lambda a: np.amin(a, axis=(0, 1)), [A]),
    ("np.var", lambda a: np.var(a, axis=1, ddof=1), [A]),
    ("np.std", lambda a: np.std(a, axis=-1, ddof=1, keepdims=True), [A]),
    ("np.prod", lambda a: np.prod(a, axis=0), [A]),
    ("np.cumsum", lambda a: np.cumsum(a, axis=-1), [A]),
    ("np.cumsum flat", lambda a: np.cumsum(a), [A]),
    ("np.ravel", lambda a: np.ravel(a), [A]),
    ("np.reshape", lambda a: np.reshape(a, (2, 6)), [A]),
    ("np.transpose", lambda a: np.transpose(a), [A]),
    ("np.transpose negative axes", lambda a: np.transpose(np.reshape(a, (3, 2, 2)), (0, -1, 1)), [A]),
    ("np.squeeze", lambda a: np.squeeze(np.reshape(a, (1, 3, 4)), axis=0), [A]),
    ("np.expand_dims", lambda a: np.expand_dims(a, 1), [A]),
    ("np.broadcast_to", lambda v: np.broadcast_to(v, (3, 4)), [V]),
    ("np.concatenate", lambda a, b: np.concatenate([a, b.T], axis=0), [A, B]),
    ("np.stack", lambda a: np.stack([a, a * 2.0], axis=1), [A]),
    ("np.hstack", lambda a: np.hstack([a, a[:, :1], a * 2.0]), [A]),
    ("np.hstack vectors", lambda v: np.hstack([v, v[0], v * 2.0]), [V]),
    ("np.vstack", lambda a, b: np.vstack([a, b.T]), [A, B]),
    ("np.vstack vectors", lambda v: np.vstack([v, v * 3.0, v[:1].sum() + v * 0.0]), [V]),
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


# Supported functions that return no Tensor (shape queries, index-valued results): checked below.
NOT_DIFFERENTIABLE = {"np.shape", "np.ndim", "np.size", "np.argmax", "np.argmin"}


def test_every_function_interop_implements_has_a_row():
    """The table above is checked against interop itself: a function added there without a
    row here (or a row whose function was dropped) fails."""
    same_name = {f"np.{name}" for name in SAME_NAME_UFUNCS}  # checked by their own test below
    implemented = {
        ("np." if getattr(np, func.__name__, None) is func else "scipy.special.") + func.__name__
        for func in list(interop._UFUNCS) + list(interop._FUNCTIONS)
    } - same_name
    rows = {name.split(" ")[0] for name, _, _ in CALLS} - same_name
    missing = sorted(implemented - rows - NOT_DIFFERENTIABLE)
    assert not missing, f"functions interop implements without a row in CALLS: {missing}"
    unknown = sorted(rows - implemented - {"ndarray"})
    assert not unknown, f"rows in CALLS for functions interop does not implement: {unknown}"


# One-input ufuncs named like a Tensor method call it (interop.tensor_method): a new elementwise
# op's method makes its ufunc work, checked here without a row of its own.
SAME_NAME_UFUNCS = sorted(
    name for name in dir(np) if isinstance(getattr(np, name), np.ufunc) and interop.tensor_method(getattr(np, name))
)


def test_same_name_ufuncs_include_the_elementwise_methods():
    assert {"exp", "log", "sqrt", "tanh", "sin", "cos"} <= set(SAME_NAME_UFUNCS)


@pytest.mark.parametrize("name", SAME_NAME_UFUNCS)
def test_a_ufunc_named_like_a_tensor_method_records_that_method(name):
    ufunc = getattr(np, name)
    call = lambda a: ufunc(a + 1.5)  # noqa: E731  (inside every domain: log, sqrt need a > 0)
    tensors = [tg.Tensor(A, requires_grad=True)]
    out = call(*tensors)
    assert isinstance(out, tg.Tensor) and out.requires_grad, f"np.{name} left the graph"
    np.testing.assert_allclose(out.data, call(A), rtol=1e-12)
    assert tg.gradcheck(call, tensors)


def test_value_only_functions_run_on_the_data():
    t = tg.Tensor(np.array([1.0, -2.0, 0.0]), requires_grad=True)
    assert np.allclose(t, [1.0, -2.0, 0.0])
    assert np.count_nonzero(t) == 2
    assert np.sign(t).tolist() == [1.0, -1.0, 0.0] and not np.sign(t).requires_grad
    assert np.isnan(t).tolist() == [False, False, False]
    assert np.argmax(t).item() == 0 and np.shape(t) == (3,)
    assert np.where(t.data > 0)[0].tolist() == [0]


def learner_case(m=30):
    """Data and parameters shaped like the first learner's (400-25-10 becomes 20-5-4 for speed)."""
    x = RNG.random((m, 20))
    y = np.eye(4)[RNG.integers(0, 4, m)]
    arrays = [RNG.uniform(-0.12, 0.12, s) for s in [(20, 5), (1, 5), (5, 4), (1, 4)]]
    return arrays, x, y


def test_the_first_learners_cost_runs_unchanged_on_tensors():
    """feedForward and cost from seeds/000 (examples/seed_learner.py), verbatim."""
    arrays, x, y = learner_case()
    params = [tg.Tensor(a, requires_grad=True) for a in arrays]
    value = learner.cost(params, x, y)
    assert isinstance(value, tg.Tensor) and value.requires_grad
    np.testing.assert_allclose(value.item(), learner.cost(arrays, x, y), rtol=1e-12)
    assert tg.gradcheck(lambda *p: learner.cost(list(p), x, y), params)


def test_the_first_learners_backpropagate_runs_on_tensors_and_matches_numeric_gradients():
    arrays, x, y = learner_case()
    params = [tg.Tensor(a, requires_grad=True) for a in arrays]
    on_tensors = learner.backpropagate(params, x, y)
    on_arrays = learner.backpropagate(arrays, x, y)
    for t, a in zip(on_tensors, on_arrays):
        assert isinstance(t, tg.Tensor) and t.requires_grad  # recorded: differentiable again
        np.testing.assert_allclose(t.data, a, rtol=1e-12)
    for i, (array, theirs) in enumerate(zip(arrays, on_arrays)):
        def cost_of(values, i=i):
            changed = list(arrays)
            changed[i] = values
            return learner.cost(changed, x, y)
        (numeric,) = numeric_grad(cost_of, [array])
        np.testing.assert_allclose(theirs.reshape(array.shape), numeric, rtol=1e-6, atol=1e-10)
    # Their (m,)-summed bias gradients have shape (5,) for a (1, 5) bias; autograd's keep (1, 5).
    gradients = tg.grad(learner.cost(params, x, y), params)
    for g, theirs in zip(gradients, on_arrays):
        np.testing.assert_allclose(g.data, theirs.reshape(g.shape), rtol=1e-10)


def test_the_first_learners_training_loop_runs_on_tensors():
    arrays, x, y = learner_case()
    _, costs_numpy = learner.train(list(arrays), x, y, 3)
    _, costs_tensor = learner.train([tg.Tensor(a, requires_grad=True) for a in arrays], x, y, 3)
    np.testing.assert_allclose([c.item() for c in costs_tensor], costs_numpy, rtol=1e-12)
    assert costs_numpy[2] < costs_numpy[0]


@pytest.mark.parametrize(
    "call, named",
    [
        (lambda t: np.cumprod(t), "numpy.cumprod"),
        (lambda t: np.arcsin(t), "numpy.arcsin"),
        (lambda t: np.add.reduce(t), "numpy.add reduce"),
    ],
)
def test_unsupported_numpy_functions_raise_naming_themselves(call, named):
    with pytest.raises(TypeError, match=named):
        call(tg.Tensor(np.ones(3), requires_grad=True))
