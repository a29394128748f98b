"""tg.compile: the traced program computes what eager mode computes, call after call.

The property tests draw random compositions of rows of tests/op_table.py (each row's output
through tanh, weighted and summed into one loss) and compare the compiled step with eager
`fn().backward()`: loss and every leaf gradient, across calls with the parameters changed in
between, with gradients accumulating, and with the program's `.source` exec'd on its own.
"""
import numpy as np
import pytest
import scipy
import scipy.special
from hypothesis import given, settings
from hypothesis import strategies as st

import seed_learner
import tinygrad_edu as tg
import tinygrad_edu.functional as F
from op_table import OPS
from test_ops_gradient import draw_differentiable_case
from tinygrad_edu import Tensor, nn, optim

pytestmark = pytest.mark.usefixtures("broadcast_guard_off")

# Dropout draws a new mask at every eager call; a traced program keeps the trace's (documented).
ROWS = [spec for spec in OPS if spec.grad and "dropout" not in spec.name]


def assert_same(where, compiled, eager):
    compiled, eager = np.asarray(compiled), np.asarray(eager)
    assert compiled.shape == eager.shape and compiled.dtype == eager.dtype, (
        f"{where}: compiled {compiled.dtype}{compiled.shape}, eager {eager.dtype}{eager.shape}")
    np.testing.assert_allclose(compiled, eager, rtol=1e-12, atol=1e-14, err_msg=where)


def grads_of(tensors):
    return [None if t.grad is None else t.grad.data.copy() for t in tensors]


def assert_grads_same(where, tensors, compiled, eager):
    for i, (c, e) in enumerate(zip(compiled, eager)):
        assert (c is None) == (e is None), f"{where}: input {i} has a gradient on one side only"
        if c is not None:
            assert_same(f"{where}, gradient of input {i} {tensors[i].shape}", c, e)


def assert_step_equals_eager(where, step, model, x, y):
    """One compiled call of a cross-entropy step and the eager step give the same loss and grads."""
    model.zero_grad()
    compiled_loss = step(x, y)
    compiled = grads_of(model.parameters())
    model.zero_grad()
    eager_loss = F.cross_entropy(model(x), y)
    eager_loss.backward()
    assert_same(f"loss, {where}", compiled_loss.data, eager_loss.data)
    assert_grads_same(where, list(model.parameters()), compiled, grads_of(model.parameters()))


def run_source(step, arrays):
    """exec `step.source` with nothing but NumPy, SciPy and its named constants; call it."""
    namespace = {"np": np, "expit": scipy.special.expit, "scipy": scipy, **step.constants}
    exec(step.source, namespace)
    return namespace["step"](*arrays)


@st.composite
def compositions(draw):
    """1-3 op-table rows with float64 inputs; returns (loss function, leaves, perturbation seed)."""
    specs = draw(st.lists(st.sampled_from(ROWS), min_size=1, max_size=3), label="rows")
    parts, leaves = [], []
    for spec in specs:
        arrays, kwargs = draw_differentiable_case(spec, draw(st.data()))  # where NumPy gives finite values
        inputs = []
        for i, array in enumerate(arrays):
            if spec.domain(i).kind == "float":
                leaves.append(Tensor(np.array(array), requires_grad=True))
                inputs.append(leaves[-1])
            else:
                inputs.append(array)
        parts.append((spec, inputs, kwargs))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1), label="seed"))
    weights = [rng.uniform(-1, 1, np.shape(spec.fn(*inputs, **kwargs))) for spec, inputs, kwargs in parts]

    def loss():
        total = 0.0
        for (spec, inputs, kwargs), weight in zip(parts, weights):
            out = spec.fn(*inputs, **kwargs)
            total = total + (out.astype(np.float64).tanh() * weight).sum()
        return total

    return specs, loss, leaves, rng


def perturb(leaves, rng):
    """New parameter values that stay in each row's domain (a relative change keeps the sign)."""
    for leaf in leaves:
        leaf.data = leaf.data * (1 + 0.01 * rng.uniform(-1, 1, leaf.shape))


@settings(max_examples=40)
@given(compositions())
def test_compiled_op_compositions_equal_eager_across_calls(case):
    specs, loss_fn, leaves, rng = case
    step = tg.compile(loss_fn)
    where = " + ".join(spec.name for spec in specs)
    for call in range(3):
        for leaf in leaves:
            leaf.grad = None
        compiled_loss = step()
        compiled = grads_of(leaves)
        for leaf in leaves:
            leaf.grad = None
        eager_loss = loss_fn()
        eager_loss.backward()
        assert compiled_loss.grad_fn is None and not compiled_loss.requires_grad
        assert_same(f"{where}: loss, call {call}", compiled_loss.data, eager_loss.data)
        assert_grads_same(f"{where}, call {call}", leaves, compiled, grads_of(leaves))
        perturb(leaves, rng)


@settings(max_examples=20)
@given(compositions())
def test_compiled_gradients_accumulate_like_backward(case):
    specs, loss_fn, leaves, rng = case
    initial = [leaf.data for leaf in leaves]
    seed = int(rng.integers(2**32))
    step = tg.compile(loss_fn)
    step()
    perturb(leaves, np.random.default_rng(seed))
    step()  # no zero_grad in between: the gradients add up, as after two backward() calls
    compiled = grads_of(leaves)
    for leaf, data in zip(leaves, initial):
        leaf.data, leaf.grad = data, None
    loss_fn().backward()
    perturb(leaves, np.random.default_rng(seed))
    loss_fn().backward()
    assert_grads_same(" + ".join(spec.name for spec in specs), leaves, compiled, grads_of(leaves))


@settings(max_examples=25)
@given(compositions())
def test_source_execd_alone_reproduces_the_gradients(case):
    specs, loss_fn, leaves, rng = case
    step = tg.compile(loss_fn)
    step()
    compiled = grads_of(leaves)
    loss, grads = run_source(step, [t.data for t in step.parameters])
    for leaf in leaves:
        leaf.grad = None
    eager = loss_fn()
    eager.backward()
    assert_same("loss from .source", np.asarray(loss), eager.data)
    returned = iter(grads)
    for tensor in step.parameters:
        if tensor.grad is not None:
            assert_same("gradient from .source", np.asarray(next(returned)), tensor.grad.data)
    assert_grads_same("compiled step", leaves, compiled, grads_of(leaves))


# ---- networks ------------------------------------------------------------------------------------
def mlp_and_data(batch, seed=0):
    tg.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 8), nn.Sigmoid(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))
    rng = np.random.default_rng(seed)
    x = Tensor(rng.standard_normal((batch, 6)).astype(np.float32))
    y = Tensor(rng.integers(0, 3, batch))
    return model, x, y


def test_sequential_cross_entropy_sgd_loop_equals_eager():
    eager_model, x, y = mlp_and_data(16)
    compiled_model, _, _ = mlp_and_data(16)
    eager_opt = optim.SGD(eager_model.parameters(), lr=0.5, momentum=0.9)
    compiled_opt = optim.SGD(compiled_model.parameters(), lr=0.5, momentum=0.9)
    step = tg.compile(lambda x, y: F.cross_entropy(compiled_model(x), y))
    for number in range(5):
        eager_opt.zero_grad()
        eager_loss = F.cross_entropy(eager_model(x), y)
        eager_loss.backward()
        eager_opt.step()
        compiled_opt.zero_grad()
        compiled_loss = step(x, y)  # reads the weights the optimizer just updated in place
        compiled_opt.step()
        assert compiled_loss.item() == eager_loss.item(), f"step {number}"
        for (name, p), q in zip(compiled_model.named_parameters(), eager_model.parameters()):
            np.testing.assert_array_equal(p.data, q.data, err_msg=f"{name} after step {number}")
    assert "dcompiled_model_0_weight = " in step.source and "# (16, 8)" in step.source


def test_new_batch_size_traces_again_and_both_programs_stay_right():
    model, x, y = mlp_and_data(16)
    step = tg.compile(lambda x, y: F.cross_entropy(model(x), y))
    for batch in (16, 5, 16, 5):
        _, x, y = mlp_and_data(batch, seed=batch)
        assert_step_equals_eager(f"batch {batch}", step, model, x, y)
        assert f"# ({batch}, 8)" in step.source
    assert "2 traced signature" in repr(step)


def test_learner_000_network_compiled_equals_their_backpropagate():
    rng = np.random.default_rng(0)
    x = rng.random((20, 8))
    y = np.eye(4)[rng.integers(0, 4, 20)]
    arrays = [rng.uniform(-0.12, 0.12, s) for s in ((8, 5), (5,), (5, 4), (4,))]
    p = [Tensor(a.copy(), requires_grad=True) for a in arrays]
    step = tg.compile(lambda x, y: seed_learner.cost(p, x, y))
    for call in range(3):
        for t in p:
            t.grad = None
        loss = step(x, y)
        expected = seed_learner.backpropagate([t.data for t in p], x, y)
        np.testing.assert_allclose(loss.item(), seed_learner.cost([t.data for t in p], x, y), rtol=1e-12)
        for name, t, g in zip(("W1", "b1", "W2", "b2"), p, expected):
            np.testing.assert_allclose(t.grad.data, g, rtol=1e-10, atol=1e-14, err_msg=name)
        grads = seed_learner.backpropagate([t.data for t in p], x, y)
        for t, g in zip(p, grads):
            t.data = t.data - 0.12 * g
    loss, grads = run_source(step, [x, y] + [t.data for t in step.parameters])
    for g, expected in zip(grads, seed_learner.backpropagate([t.data for t in p], x, y)):
        np.testing.assert_allclose(g, expected, rtol=1e-10, atol=1e-14)


# ---- limits: clear refusals ------------------------------------------------------------------------
def test_the_loss_comes_back_without_a_graph_and_grads_accumulate_onto_existing_ones():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    step = tg.compile(lambda: (w * w).sum())
    w.grad = Tensor(np.array([10.0, 10.0]))
    loss = step()
    assert loss.is_leaf and not loss.requires_grad and loss.item() == 5.0
    np.testing.assert_array_equal(w.grad.data, [12.0, 14.0])
    step()
    np.testing.assert_array_equal(w.grad.data, [14.0, 18.0])


def test_a_hook_that_replaces_a_gradient_is_refused_but_a_watching_hook_runs_while_tracing():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    seen = []
    handle = w.register_hook(lambda g: seen.append(g.shape))
    step = tg.compile(lambda: (w * 3).sum())
    step()
    step()
    assert seen == [(2,)]  # once, while tracing
    handle.remove()
    w.register_hook(lambda g: g * 2)
    with pytest.raises(tg.TracingError, match="returned a new gradient"):
        tg.compile(lambda: (w * 3).sum())()


def test_bad_steps_are_refused_with_the_reason():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    with pytest.raises(tg.TracingError, match="one-element loss"):
        tg.compile(lambda: w * 2)()
    with pytest.raises(tg.TracingError, match="does not require grad"):
        tg.compile(lambda: Tensor(np.array(1.0)) * 2)()
    with pytest.raises(TypeError, match="needs a function"):
        tg.compile(3)
    with pytest.raises(RuntimeError, match="call the compiled step once"):
        tg.compile(lambda: w.sum()).source


def test_arrays_by_keyword_or_in_a_list_are_refused_so_no_call_reuses_old_values():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    step = tg.compile(lambda x=None, xs=(): (w * x).sum())
    with pytest.raises(TypeError, match="positional"):
        step(x=np.array([1.0, 1.0]))
    with pytest.raises(TypeError, match="positional"):
        step(None, [np.array([1.0, 1.0])])


def test_a_parameter_given_an_array_of_another_shape_traces_again():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    step = tg.compile(lambda: (w * w).sum())
    step()
    w.data, w.grad = np.array([1.0, 2.0, 3.0]), None
    assert step().item() == 14.0
    np.testing.assert_array_equal(w.grad.data, [2.0, 4.0, 6.0])


def test_anomaly_mode_checks_every_call_of_a_step_traced_under_it():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    step = tg.compile(lambda x: (w * x).log().sum())
    with tg.detect_anomaly():
        step(np.array([1.0, 1.0]))  # traced under anomaly mode: finite, nothing to report
        with pytest.raises(tg.AnomalyError), np.errstate(invalid="ignore"):
            tg.compile(lambda x: (w * x).log().sum())(np.array([-1.0, 1.0]))  # tracing checks
        # The check's answer is a Python value the trace took: the program checks it at every call and
        # traces again on a NaN, which reports it as eager mode does.
        with pytest.raises(tg.AnomalyError), np.errstate(invalid="ignore"):
            step(np.array([-1.0, 1.0]))


def test_a_uniform_constant_is_written_as_a_number_only_in_elementwise_operations():
    w = Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    step = tg.compile(lambda: ((np.full((1, 2), 0.5) @ w) * np.full((1, 3), 2.0)).sum())
    assert step().item() == 15.0  # the product keeps its (1, 2) operand; `* 2.0` may be a number
    np.testing.assert_array_equal(w.grad.data, np.ones((2, 3)))
    assert "0.5 @" not in step.source


@pytest.mark.parametrize("make_labels", [lambda y: Tensor(y.astype(np.float32)), lambda y: y.astype(np.float64)],
                         ids=["float Tensor labels", "float ndarray labels"])
def test_labels_converted_inside_the_loss_follow_each_call(make_labels):
    model, x, _ = mlp_and_data(8)
    step = tg.compile(lambda x, y: F.cross_entropy(model(x), y))
    for seed in range(3):
        y = make_labels(np.random.default_rng(seed).integers(0, 3, 8))  # new labels, same shape
        assert_step_equals_eager(f"labels {seed}", step, model, x, y)


def test_a_target_of_another_dtype_follows_each_call():
    w = Tensor(np.array([1.0, 2.0], dtype=np.float32), requires_grad=True)
    step = tg.compile(lambda t: F.mse_loss(w * 2, t))
    for target in (np.array([0.0, 1.0]), np.array([5.0, -1.0])):  # float64 targets for a float32 loss
        w.grad = None
        loss = step(target)
        eager = F.mse_loss(w * 2, target)
        assert_same(f"loss, target {target}", loss.data, eager.data)


def test_a_numpy_function_outside_the_top_level_namespace_is_named_in_the_program():
    x = Tensor(np.arange(5.0), requires_grad=True)
    w = np.array([1.0, -1.0])

    def loss():  # np.lib.stride_tricks.sliding_window_view dispatches like np.where
        windows = np.lib.stride_tricks.sliding_window_view(x.data, 2)
        return (x * np.concatenate([windows @ w, [0.0]])).sum()

    step = tg.compile(loss)
    step()
    assert "sliding_window_view(x, 2)" in step.source
    x.data, x.grad = np.array([3.0, 1.0, 4.0, 1.0, 5.0]), None
    compiled = step().item()
    assert compiled == loss().item() == 3 * 2 + 1 * -3 + 4 * 3 + 1 * -4
    run_source(step, [t.data for t in step.parameters])


# ---- the runnable program writes results into dead temporaries ---------------------------------------
def test_learner_000_program_reuses_dead_temporaries_and_stays_bit_identical_to_eager():
    rng = np.random.default_rng(1)
    x, y = rng.random((2000, 20)), np.eye(10)[rng.integers(0, 10, 2000)]  # (2000, 25) hidden: 400 KB
    p = [Tensor(rng.uniform(-0.12, 0.12, s), requires_grad=True) for s in ((20, 25), (25,), (25, 10), (10,))]
    step = tg.compile(lambda x, y: seed_learner.cost(p, x, y))
    for call in range(3):
        for t in p:
            t.grad = None
        eager_loss = seed_learner.cost(p, x, y)
        eager_loss.backward()
        eager = grads_of(p)
        for t in p:
            t.grad = None
        loss = step(x, y)
        assert loss.item() == eager_loss.item(), f"call {call}"
        for i, (t, e) in enumerate(zip(p, eager)):
            np.testing.assert_array_equal(t.grad.data, e, err_msg=f"parameter {i}, call {call}")
        for t in p:
            t.data = t.data - 0.1 * t.grad.data
    runnable = step._last.runnable
    # bias adds write into a dead operand; Sigmoid's forward (exp, + 1, reciprocal) and backward (the
    # slope in its own fresh `1 - s`: `*= s`, `*= d`) work in place themselves, as the program shows
    in_place_writes = runnable.count(", out=") + runnable.count(" *= ") + runnable.count(" += ")
    assert "np.exp(" in runnable and in_place_writes >= 8, runnable
    # what learners read keeps the plain form: its only `out=` are Sigmoid's own steps in place
    assert step.source.count("out=") == 2 * step.source.count("np.reciprocal(") == 4, step.source
    # sums run as the reduction itself, without ndarray.sum's and np.sum's Python wrappers
    assert "np.add.reduce(" in runnable and ".sum(" not in runnable and "np.sum(" not in runnable
    assert "out=x)" not in runnable and "out=y)" not in runnable  # inputs are never written into
    assert not any(f"out={name})" in runnable for name in step.source.split("(")[1].split(")")[0].split(", "))


def test_small_arrays_keep_plain_new_results():
    rng = np.random.default_rng(3)
    w = Tensor(rng.random((4, 3)), requires_grad=True)
    step = tg.compile(lambda x: (x @ w).sigmoid().sum())
    step(rng.random((5, 4)))
    runnable = step._last.runnable  # its only `out=` are Sigmoid's own exp and 1 / out in place
    assert runnable.count("out=") == 2 * runnable.count("np.reciprocal(") == 2, runnable


def test_a_temporary_with_a_live_view_or_a_broadcast_shape_is_not_written_into():
    rng = np.random.default_rng(2)
    w = Tensor(rng.random((64, 128)), requires_grad=True, name="w")
    c = Tensor(rng.random((1, 64, 128)), requires_grad=True, name="c")

    def fn(x, z):
        a = x * w  # a temporary ...
        view = a.T  # ... with a view read after a's last direct use
        b = a * 2
        spread = (c * 3) + z  # (1, 64, 128) + (2, 64, 128): the first temporary cannot hold the sum
        return b.sum() + (view * view).sum() + spread.sum()

    x, z = rng.random((64, 128)), rng.random((2, 64, 128))
    step = tg.compile(fn)
    step(x, z)
    compiled = grads_of([w, c])
    w.grad = c.grad = None
    fn(x, z).backward()
    for name, got, expected in zip("wc", compiled, grads_of([w, c])):
        np.testing.assert_array_equal(got, expected, err_msg=name)
    lines = step._last.runnable.splitlines()
    base = next(line for line in lines if ".transpose(" in line).split(" = ")[1].split(".")[0]
    assert not any(f"out={base})" in line for line in lines), "wrote into x * w while a.T was live"
    spread_sum = next(line for line in lines if " + z" in line or "z, out" in line)
    assert "out=" not in spread_sum


def test_a_ravel_that_copied_while_tracing_is_not_written_into_when_a_call_makes_it_a_view():
    rng = np.random.default_rng(4)
    w = Tensor(rng.random(8192), requires_grad=True)
    step = tg.compile(lambda x: ((x.ravel() + 1.0) * w).sum())  # x.ravel() + 1.0 could go into x.ravel()
    step(rng.random((128, 64)).T)  # not contiguous: ravel copies while tracing
    x = rng.random((64, 128))  # contiguous, same signature: the same ravel is a view of x
    before = x.copy()
    w.grad = None
    step(x)
    np.testing.assert_array_equal(x, before, err_msg="the step wrote into its argument")
    np.testing.assert_array_equal(w.grad.data, before.reshape(-1) + 1.0)


def test_a_temporary_is_written_into_once_the_views_read_from_it_are_done():
    rng = np.random.default_rng(5)
    w = Tensor(rng.uniform(-1, 1, 64), requires_grad=True, name="w")
    m = rng.random((1000, 5))

    def fn(x):
        a = x * w  # (1000, 64): 512 KB, a new array
        return (a.T @ m).sum() + (a * 3).sum()  # a.T is read before a's last use, a * 3

    x = rng.random((1000, 64))
    step = tg.compile(fn)
    step(x)
    compiled = w.grad.data.copy()
    w.grad = None
    fn(x).backward()
    np.testing.assert_array_equal(compiled, w.grad.data)
    assert "transpose1 = mul1.transpose(" in step.source and "mul2 = mul1 * 3" in step.source, step.source
    times_3 = next(line for line in step._last.runnable.splitlines() if line.startswith("    mul2 = "))
    assert times_3.endswith(", out=mul1)"), step._last.runnable


# ---- a repeated line runs once; numbers run as 0-d arrays ---------------------------------------------
def test_a_repeated_computation_runs_once_and_the_gradients_stay_eager():
    rng = np.random.default_rng(6)
    w = Tensor(rng.random((3, 1)), requires_grad=True, name="w")
    step = tg.compile(lambda x, y: F.mse_loss(x @ w, y))  # backward computes the forward's x @ w - y again
    x, y = rng.random((5, 3)), rng.random((5, 1))
    loss = step(x, y)
    compiled = w.grad.data.copy()
    w.grad = None
    eager = F.mse_loss(Tensor(x) @ w, y)
    eager.backward()
    assert loss.item() == eager.item()
    np.testing.assert_array_equal(compiled, w.grad.data)
    assert step.source.count(" - y") == 1, step.source


class _ShiftInPlace(tg.autograd.Function):
    """z = (2x + 1)(2x + 2), its forward computing `a + 1` twice with `a += 1` between."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        a = x * 2
        before = a + 1
        a += 1
        after = a + 1
        return before * after

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * (8 * x + 6)


def test_a_repeated_line_is_kept_when_its_operand_was_written_in_place_between():
    x = Tensor(np.array([0.5, 1.5]), requires_grad=True)
    step = tg.compile(lambda: _ShiftInPlace.apply(x).sum())
    for _ in range(2):  # the trace, then the program alone
        assert step().item() == 2 * 3 + 4 * 5, step.source  # (2x + 1)(2x + 2) at 0.5 and 1.5
    assert step.source.count(" + 1 ") == 2, step.source


class _ShiftFirst(tg.autograd.Function):
    """z = (2x + 2)**2, its forward computing `a + 1` twice after `a += 1`."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        a = x * 2
        a += 1
        return (a + 1) * (a + 1)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved
        return grad * (8 * x + 8)


def test_a_repeated_line_goes_when_its_operand_was_written_in_place_before_both():
    x = Tensor(np.array([0.5, 1.5]), requires_grad=True)
    step = tg.compile(lambda: _ShiftFirst.apply(x).sum())
    for _ in range(2):  # the trace, then the program alone
        assert step().item() == 3.0**2 + 5.0**2, step.source
    assert step.source.count(" + 1  #") == 1, step.source

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numbers_run_as_0d_arrays_of_the_dtype_numpy_converts_them_to(dtype):
    rng = np.random.default_rng(7)
    w = Tensor(rng.uniform(-2, 2, 64).astype(dtype), requires_grad=True, name="w")

    def fn(x):  # 0.1 is not a float32: NumPy rounds it to the array's dtype, as the 0-d array holds it
        return (((x * w) * 0.1 + 3) * (2 - w.sigmoid()) / 7).sum()

    x = rng.random((5, 64)).astype(dtype)
    step = tg.compile(fn)
    for _ in range(2):  # the trace's call, then the program alone
        w.grad = None
        loss = step(x)
        compiled = w.grad.data
        w.grad = None
        eager = fn(Tensor(x))
        eager.backward()
        assert loss.dtype == eager.dtype == compiled.dtype == dtype
        assert loss.item() == eager.item()
        np.testing.assert_array_equal(compiled, w.grad.data)
    runnable = step._last.runnable
    assert "number_" in runnable and " 0.1 " not in runnable and "2 - " not in runnable, runnable
    assert " 0.1 " in step.source  # what learners read keeps the number


def test_a_python_int_beyond_float64_range_is_written_as_it_is():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    step = tg.compile(lambda: (w * 3 + 10**30).sum())  # NumPy turns 10**30 into a float64 in the sum
    assert step().item() == (w * 3 + 10**30).sum().item()
    assert str(10**30) in step.source
    np.testing.assert_array_equal(w.grad.data, [3.0, 3.0])


# ---- indices: read at every call, never frozen at trace time ----------------------------------------
def _picked_loss(scores, target):
    return -scores.log_softmax(axis=1)[tg.arange(3), target].mean()


def test_an_index_passed_as_an_argument_is_read_at_every_call():
    # It was copied into the program as a constant when traced: the second call silently reused the
    # first call's target (the loss of the pattern every hand-written cross-entropy uses).
    step = tg.compile(_picked_loss)
    scores = tg.Tensor(np.arange(12.0).reshape(3, 4) / 10, requires_grad=True)
    for target in ([0, 1, 2], [3, 3, 3], [1, 0, 2]):
        target = tg.Tensor(np.array(target))
        scores.grad = None
        compiled = step(scores, target).item()
        compiled_grad = scores.grad.data.copy()
        scores.grad = None
        eager = _picked_loss(scores, target)
        eager.backward()
        np.testing.assert_allclose(compiled, eager.item(), rtol=1e-12)
        np.testing.assert_allclose(compiled_grad, scores.grad.data, rtol=1e-12)


def test_an_index_computed_from_values_is_recomputed_at_every_call():
    def loss(x):
        return x[tg.arange(2), x.argmax(axis=1)].sum()  # each row's largest value

    step = tg.compile(loss)
    for values in ([[1.0, 5.0, 2.0], [7.0, 0.0, 1.0]], [[9.0, 5.0, 2.0], [0.0, 0.0, 3.0]]):
        x = tg.Tensor(np.array(values), requires_grad=True)
        assert step(x).item() == np.max(values, axis=1).sum()
        np.testing.assert_array_equal(x.grad.data, np.array(values) == np.max(values, axis=1, keepdims=True))


def test_a_boolean_mask_computed_from_values_is_refused_not_frozen():
    # How many elements x[x < 0] selects changes with the values, and every shape after it: it was
    # frozen at trace time (the second call summed the first call's places).
    step = tg.compile(lambda x: (x * 2.0)[x < 0].sum())
    with pytest.raises(tg.TracingError, match=r"boolean mask computed from the step's values.*tg.where"):
        step(tg.Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True))
    fixed = tg.compile(lambda x: tg.where(x < 0, x * 2.0, 0.0).sum())
    for values, expected in (([1.0, -2.0, 3.0], -4.0), ([-1.0, 2.0, -3.0], -8.0)):
        assert fixed(tg.Tensor(np.array(values), requires_grad=True)).item() == expected


def test_item_assignment_in_a_compiled_step_matches_eager():
    def loss(x, v):
        y = x * 2.0
        y[0] = v * 3.0
        y[1:] = y[1:] * v
        return (y * y).sum()

    step = tg.compile(loss)
    for values in ([1.0, -2.0, 3.0], [0.5, 4.0, -1.0]):
        x, v = tg.Tensor(np.array(values), requires_grad=True), tg.Tensor(np.array(0.5), requires_grad=True)
        compiled = step(x, v).item()
        grads = x.grad.data.copy(), v.grad.data.copy()
        x.grad = v.grad = None
        eager = loss(x, v)
        eager.backward()
        np.testing.assert_allclose(compiled, eager.item(), rtol=1e-12)
        np.testing.assert_allclose(grads[0], x.grad.data, rtol=1e-12)
        np.testing.assert_allclose(grads[1], v.grad.data, rtol=1e-12)
