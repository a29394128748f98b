"""tg.compile as an outsider attacks it: every call computes what eager mode computes, or raises.

Each test calls a compiled step several times with DIFFERENT values (the first call traces; a program
that froze something shows it on a later call) and compares the loss and every gradient with eager
`fn(*args).backward()` from the same starting state.
"""
import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import Tensor, nn


def compiled_and_eager(step, fn, args, leaves):
    """(compiled loss, compiled grads), (eager loss, eager grads) of one call, both from no .grad."""
    results = []
    for run in (step, lambda *a: _backward(fn(*a))):
        for leaf in leaves:
            leaf.grad = None
        loss = run(*args)
        results.append((loss.item(), [None if t.grad is None else t.grad.data.copy() for t in leaves]))
    return results


def _backward(loss):
    loss.backward()
    return loss


def assert_calls_match_eager(fn, calls, leaves):
    """`calls`: a list of argument tuples; compiled and eager agree on every call."""
    step = tg.compile(fn)
    for k, args in enumerate(calls):
        (compiled_loss, compiled), (eager_loss, eager) = compiled_and_eager(step, fn, args, leaves)
        np.testing.assert_allclose(compiled_loss, eager_loss, rtol=1e-12, err_msg=f"loss, call {k}")
        for i, (c, e) in enumerate(zip(compiled, eager)):
            assert (c is None) == (e is None), f"call {k}: leaf {i} has a gradient on one side only"
            if c is not None:
                np.testing.assert_allclose(c, e, rtol=1e-12, err_msg=f"call {k}, gradient of leaf {i}")
    return step


# ---- Python values taken from the step's values: checked at every call -------------------------------
def test_a_branch_on_item_follows_each_call():
    # The program repeated the branch the trace took: the second call gave -6.0, eager 2.0.
    w = Tensor(np.array([1.0, -2.0]), requires_grad=True)

    def loss(x):
        if (x * w).sum().item() > 0:
            return (x * w).sum() * 3
        return (x * w).sum() * -1

    step = assert_calls_match_eager(loss, [(np.array([1.0, 0.0]),), (np.array([0.0, 1.0]),),
                                           (np.array([2.0, 0.0]),)], [w])
    assert "return None" in step.source  # the check, written out where the trace took the value


@pytest.mark.parametrize("convert", [float, lambda t: t.item(), lambda t: int(t * 100)],
                         ids=["float", "item", "int"])
def test_a_number_taken_from_a_value_follows_each_call(convert):
    # float(x.sum()) became a constant of the program: later calls scaled by the first call's sum.
    w = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    rng = np.random.default_rng(0)
    assert_calls_match_eager(lambda x: (w * convert(x.sum())).sum(),
                             [(Tensor(rng.normal(size=3)),) for _ in range(3)], [w])


def test_prod_and_pow_gradients_follow_zeros_that_appear_after_the_trace():
    # Prod's and Pow's backward choose their formula by whether an input holds a zero, on plain copies
    # the tracer could not see: the program kept the zero-free formula and gave NaN and -inf.
    w = Tensor(np.array([2.0, 3.0, 4.0]), requires_grad=True)
    e = Tensor(np.array([2.0, 1.0, 3.0]), requires_grad=True)
    ones, with_zero = np.ones(3), np.array([0.0, 1.0, 1.0])
    assert_calls_match_eager(lambda x: (w * x).prod(), [(ones,), (with_zero,), (ones,)], [w])
    with np.errstate(divide="ignore", invalid="ignore"):
        assert_calls_match_eager(lambda x: ((w * x) ** e).sum(), [(ones,), (with_zero,)], [w, e])


def test_a_class_index_out_of_range_on_a_later_call_is_refused_not_wrapped():
    # cross_entropy's range check ran only while tracing: a -1 on a later call picked the last class.
    W = Tensor(np.linspace(-1, 1, 12).reshape(3, 4), requires_grad=True)
    step = tg.compile(lambda x, y: F.cross_entropy(x @ W, y))
    x = np.ones((2, 3))
    step(x, np.array([0, 3]))
    # Eager mode's error, not a tracing error about the mask its message picks the bad values with.
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 4\), got -1"):
        step(x, np.array([0, -1]))
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 4\), got -1"):
        F.cross_entropy(Tensor(x) @ W, np.array([0, -1]))
    with pytest.raises(IndexError, match=r"indices must lie in \[0, 4\) .*got 9"):
        table = tg.compile(lambda w, i: F.embedding(i, w).sum())
        table(Tensor(np.ones((4, 2)), requires_grad=True), np.array([0, 3]))
        table(Tensor(np.ones((4, 2)), requires_grad=True), np.array([0, 9]))


def test_a_failed_check_after_a_running_statistics_update_does_not_update_them_twice():
    # A guard that fails after BatchNorm wrote its running statistics: the call traces again, and the
    # statistics must move once, as in eager mode.
    model = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    w = Tensor(np.array([1.0, -1.0, 0.5]), requires_grad=True)

    def loss(x):
        out = model(x) * w
        return out.sum() * (1.0 if out.sum().item() > 0 else -1.0)

    twin = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    twin.load_state_dict(model.state_dict())
    step = tg.compile(loss)
    rng = np.random.default_rng(1)
    for _ in range(4):
        x = rng.normal(size=(4, 2))
        step(x)
        (twin(x) * w).sum()  # the same forward, eagerly: one update of the running statistics
        np.testing.assert_allclose(model[1].running_mean.data, twin[1].running_mean.data, rtol=1e-12)
        np.testing.assert_allclose(model[1].running_var.data, twin[1].running_var.data, rtol=1e-12)


# ---- arguments and parameters that change roles between calls --------------------------------------------
def test_the_same_tensor_passed_twice_gets_both_gradients_once():
    # It crashed with IndexError (pop from empty list) while tracing.
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    rng = np.random.default_rng(2)
    first, second = (Tensor(rng.normal(size=2), requires_grad=True) for _ in range(2))
    fn = lambda a, b: (a * b * w).sum()  # noqa: E731
    assert_calls_match_eager(fn, [(first, first), (second, second)], [w, first, second])
    # Traced with one Tensor twice, then given two: the program read one input for both.
    assert_calls_match_eager(fn, [(first, first), (first, second)], [w, first, second])


def test_an_argument_that_was_the_closed_over_parameter_when_traced_is_not_assumed_to_stay_it():
    # Traced as step(w) with fn also using w, the program read w's values from the argument for both
    # uses: step(v) computed v * v instead of v * w.
    w = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    v = Tensor(np.array([-1.0, 0.5, 2.0]), requires_grad=True)
    assert_calls_match_eager(lambda a: (a * w).sum(), [(w,), (v,), (w,)], [w, v])


def test_a_parameter_frozen_or_unfrozen_between_calls():
    # The program traced with w2 requiring grad kept writing w2.grad after requires_grad_(False).
    w1 = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    w2 = Tensor(np.array([3.0, -1.0]), requires_grad=True)
    fn = lambda x: (x * w1 * w2).sum()  # noqa: E731
    step = tg.compile(fn)
    for k, frozen in enumerate([False, True, False, True]):
        w2.requires_grad_(not frozen)
        x = np.array([1.0 + k, 2.0])
        (_, compiled), (_, eager) = compiled_and_eager(step, fn, (x,), [w1, w2])
        assert (compiled[1] is None) == frozen == (eager[1] is None), f"call {k}"
        np.testing.assert_allclose(compiled[0], eager[0], rtol=1e-12)


# ---- reading the program ---------------------------------------------------------------------------------
def test_source_shows_as_code_in_jupyter():
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    step = tg.compile(lambda x: (x * w).sum())
    step(np.array([1.0, 1.0]))
    source = step.source
    assert isinstance(source, str) and source.startswith("def step(")
    assert repr(source) == str(source)  # not a quoted string full of \n
    assert source._repr_html_().startswith("<pre>") and "def step(" in source._repr_html_()


def test_a_step_that_writes_into_its_array_argument_writes_once_on_the_first_call_too():
    # The trace wrote into the caller's array and then the program wrote again: the first call's loss
    # was 12.0 (eager 6.0) and the array ended at 2.0.
    w = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)

    def loss(a):
        a += 1.0
        return (Tensor(a) * w).sum()

    step = tg.compile(loss)
    for k in range(3):
        compiled_array, eager_array = np.full(3, float(k)), np.full(3, float(k))
        assert step(compiled_array).item() == loss(eager_array).item()
        np.testing.assert_array_equal(compiled_array, eager_array)


def test_a_compiled_step_called_inside_a_traced_step_is_refused():
    # The inner trace switched the outer one's recorder off: the outer trace failed with an
    # UnboundLocalError from its generated program.
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    inner = tg.compile(lambda x: (x * w).sum())
    outer = tg.compile(lambda x: inner(x) * (x * w).sum())
    with pytest.raises(tg.TracingError, match="step.fn"):
        outer(np.array([1.0, 3.0]))
    assert type(w.data) is np.ndarray and w.grad is None  # the failed trace left w as it was
    outer_fixed = tg.compile(lambda x: inner.fn(x) * (x * w).sum())
    assert outer_fixed(np.array([1.0, 3.0])).item() == 49.0


# ---- arrays the step closes over --------------------------------------------------------------------------
batch_x = np.ones((2, 3))  # a global the step below reads: a learner's loop binds each batch to it


def _loss_of_the_global_batch(w):
    return ((Tensor(batch_x) @ w) ** 2).sum()


def test_an_array_the_step_closes_over_is_read_at_every_call():
    # It was a constant of the program: every call trained on the first batch (a global rebound to the
    # next batch, or a closed-over array written in place, was never seen).
    global batch_x
    w = Tensor(np.array([1.0, -1.0, 0.5]), requires_grad=True)
    global_step = tg.compile(_loss_of_the_global_batch)
    rng = np.random.default_rng(4)
    for rows in (2, 2, 5, 2):  # new batches under the same name; one of another shape traces again
        batch_x = rng.normal(size=(rows, 3))
        (compiled, compiled_grad), (eager, eager_grad) = compiled_and_eager(
            global_step, _loss_of_the_global_batch, (w,), [w])
        np.testing.assert_allclose(compiled, eager, rtol=1e-12)
        np.testing.assert_allclose(compiled_grad[0], eager_grad[0], rtol=1e-12)
    assert "batch_x" in global_step.source and "read again at every call" in global_step.source

    buffer = np.ones(3)
    fn = lambda: (Tensor(buffer) * w).sum()  # noqa: E731
    step = tg.compile(fn)
    for k in range(3):
        buffer[:] = k  # the same array, new values
        (compiled, _), (eager, _) = compiled_and_eager(step, fn, (), [w])
        assert compiled == eager == k * 0.5


def test_a_uniform_gradient_meeting_a_transposed_array_keeps_eager_memory_order_and_bits():
    # The constant 3s array (the gradient of (a * 3).sum()) was written as the number 3 beside the
    # transposed gradient of a.T @ m: NumPy laid the sum out in the transposed order, and dw, summed
    # over it, differed from eager mode in the last bits.
    rng = np.random.default_rng(5)
    w = Tensor(rng.uniform(-1, 1, 64), requires_grad=True)

    def fn(x, m):
        a = x * w
        return (a.T @ m).sum() + (a * 3).sum()

    step = tg.compile(fn)
    for _ in range(2):
        x, m = rng.random((1000, 64)), rng.random((1000, 5))
        (_, compiled), (_, eager) = compiled_and_eager(step, fn, (x, m), [w])
        np.testing.assert_array_equal(compiled[0], eager[0])


def test_a_python_answer_of_a_numpy_function_on_the_step_values_follows_each_call():
    # np.allclose returns a Python bool, which the tracer took as a fixed value: the program kept the
    # trace's branch.
    w = Tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)

    def loss(x):
        scale = 2.0 if np.allclose(x.data, 0.0) else 1.0
        return ((x + 1.0) * w).sum() * scale

    assert_calls_match_eager(loss, [(Tensor(np.zeros(3)),), (Tensor(np.ones(3)),), (Tensor(np.zeros(3)),)],
                             [w])


def test_numbers_drawn_from_numpys_global_generator_are_refused_not_frozen():
    # A hand-made dropout mask from np.random.rand was drawn once, while tracing, and replayed.
    w = Tensor(np.array([1.0, -2.0, 0.5, 3.0]), requires_grad=True)
    step = tg.compile(lambda x: (x * w * (np.random.rand(4) > 0.5)).sum())
    with pytest.raises(tg.TracingError, match="np.random.rand.*pass them in"):
        step(np.ones(4))
    assert type(w.data) is np.ndarray and w.grad is None


# ---- parameters replaced by other Tensors -------------------------------------------------------------
def test_a_parameter_replaced_by_a_new_tensor_between_calls_is_used():
    # The program kept reading the Tensors it was traced with: after `layer.weight = nn.Parameter(...)`
    # (or a global Tensor bound anew) the compiled loss and gradients were those of the old weights.
    global replaced_w
    model = nn.Sequential(nn.Linear(3, 2))
    x = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    fn = lambda x: (model(x) ** 2).sum()  # noqa: E731
    step = tg.compile(fn)
    for k in range(3):
        if k:
            model[0].weight = nn.Parameter(np.full((2, 3), 0.1 * k))
        params = list(model.parameters())
        (compiled, compiled_grads), (eager, eager_grads) = compiled_and_eager(step, fn, (x,), params)
        np.testing.assert_allclose(compiled, eager, rtol=1e-12, err_msg=f"call {k}")
        for c, e in zip(compiled_grads, eager_grads):
            np.testing.assert_allclose(c, e, rtol=1e-12, err_msg=f"call {k}")

    replaced_w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    step = tg.compile(_loss_of_the_global_weight)
    for k in range(3):
        replaced_w = Tensor(np.array([1.0, 2.0]) * (k + 1), requires_grad=True)
        (compiled, compiled_grads), (eager, eager_grads) = compiled_and_eager(
            step, _loss_of_the_global_weight, (), [replaced_w])
        assert compiled == eager and compiled_grads[0] is not None, f"call {k}"


replaced_w = None


def _loss_of_the_global_weight():
    return (replaced_w ** 2).sum()


# ---- threads ------------------------------------------------------------------------------------------
def test_a_call_in_another_thread_while_one_traces_keeps_its_gradient():
    # Tracing set each parameter's .grad to None and put the old one back at its end: a call that
    # another thread ran in between added its gradient, and the tracing thread's put-back lost it.
    import threading

    w = Tensor(np.array([1.0, 1.0]), requires_grad=True)
    tracing, replayed = threading.Event(), threading.Event()

    def loss(x):
        if x.shape[0] == 3 and not replayed.is_set():  # the second signature's trace waits in the middle
            tracing.set()
            replayed.wait(10)
        return (x[:2] * w).sum()

    step = tg.compile(loss)
    step(np.ones(2))  # the first signature: traced here
    w.grad = None
    tracer = threading.Thread(target=step, args=(np.ones(3),))
    tracer.start()
    assert tracing.wait(10)
    step(np.full(2, 2.0))  # a replay while the other thread traces
    replayed.set()
    tracer.join(10)
    np.testing.assert_array_equal(w.grad.data, [3.0, 3.0])  # 2 from the replay, 1 from the traced call


@pytest.mark.parametrize("by_keyword", [False, True], ids=["positional", "keyword"])
def test_a_module_passed_as_an_argument_is_followed_like_one_closed_over(by_keyword):
    # Passed in, a module's train/eval mode and its replaced parameters were not seen: the program
    # traced in eval mode replayed without dropout in training mode, and kept the old weight.
    def loss(x, model):
        return (model(x) ** 2).mean()

    def call(step, x, model):
        return step(x, model=model) if by_keyword else step(x, model)

    x = np.array([[1.0, 2.0, -1.0], [0.5, 0.0, 3.0]])
    model = nn.Sequential(nn.Linear(3, 2))
    step = tg.compile(loss)
    call(step, x, model)
    model[0].weight = nn.Parameter(np.zeros((2, 3)))
    assert call(step, x, model).item() == loss(x, model).item()

    with_dropout = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))
    with_dropout.eval()
    step = tg.compile(loss)
    call(step, x, with_dropout)
    with_dropout.train()
    with pytest.raises(tg.TracingError, match="random numbers"):
        call(step, x, with_dropout)


# ---- results whose shape depends on the values --------------------------------------------------------
@pytest.mark.parametrize("pick", [
    lambda values: np.nonzero(values > 0)[0], lambda values: (values > 0).nonzero()[0],
    lambda values: np.where(values > 0), lambda values: np.flatnonzero(values > 0),
    lambda values: np.arange(len(np.unique(values)))], ids=["nonzero", "method", "where", "flat", "unique"])
def test_an_index_whose_length_depends_on_the_values_is_refused_not_frozen(pick):
    # np.nonzero's tuple came back as plain arrays: the program kept the first call's places; flatnonzero
    # failed on a later call with a broadcasting error; len(np.unique(x)) was frozen.
    w = Tensor(np.array([1.0, -2.0, 0.5, 3.0]), requires_grad=True)
    step = tg.compile(lambda x: (x * w)[pick(x.data)].sum())
    with pytest.raises(tg.TracingError, match="fixed shape"):
        step(Tensor(np.array([1.0, -1.0, 1.0, 1.0])))


def test_max_pool_follows_a_nan_that_appears_after_the_trace():
    # Whether a window holds a NaN decides which element takes its gradient (the NaN, as in PyTorch);
    # that check is a guard, so a NaN on a later call is followed.
    fn = lambda x: F.max_pool2d(x, 2).sum()  # noqa: E731
    step = tg.compile(fn)
    values = np.arange(16.0).reshape(1, 1, 4, 4)
    with_nan = values.copy()
    with_nan[0, 0, 0, 0] = np.nan
    for array in (values, with_nan, values):
        x = Tensor(array, requires_grad=True)
        (compiled, compiled_grad), (eager, eager_grad) = compiled_and_eager(step, fn, (x,), [x])
        np.testing.assert_array_equal(compiled, eager)
        np.testing.assert_array_equal(compiled_grad[0], eager_grad[0])


def test_an_exception_while_tracing_leaves_parameters_and_closed_over_arrays_as_they_were():
    global batch_x
    w = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    w.grad = Tensor(np.array([0.5, 0.5, 0.5]))
    batch_x = np.ones((2, 3))
    batch, data = batch_x, w.data
    calls = []

    def loss(w):
        out = _loss_of_the_global_batch(w) + (w * batch_x.sum()).sum()
        calls.append(1)
        if len(calls) == 1:
            raise KeyError("the step failed")
        return out

    step = tg.compile(loss)
    with pytest.raises(KeyError):
        step(w)
    assert batch_x is batch and w.data is data and type(w.data) is np.ndarray
    np.testing.assert_array_equal(w.grad.data, [0.5, 0.5, 0.5])
    step(w)  # the next call traces and runs
    (compiled, compiled_grad), (eager, eager_grad) = compiled_and_eager(step, loss, (w,), [w])
    np.testing.assert_array_equal(compiled_grad[0], eager_grad[0])


def test_a_value_that_changes_at_every_call_is_right_and_warned_about_once():
    # A number taken from the values at every call (a learner's f"{loss:.3f}" inside the step) makes
    # every call trace again: right, but slower than eager mode; the step says so once.
    w = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    printed = []

    def loss(x):
        out = (x * w).sum()
        printed.append(f"{out:.3f}")
        return out

    step = tg.compile(loss)
    with pytest.warns(RuntimeWarning, match="trace again") as warned:
        for k in range(12):
            assert step(np.array([1.0, float(k)])).item() == 1.0 + 2.0 * k
    assert len(warned) == 1
    assert printed[-1] == f"{1.0 + 2.0 * 11:.3f}"  # the value of this call, as eager mode prints it


@pytest.mark.parametrize("switch", ["train()", "attribute"])
def test_a_module_switched_to_training_mode_between_calls_is_seen(switch):
    # The modes are read again only when a Module's parameters, sub-modules, buffers or training flag
    # were assigned: model.train() and `layer.training = True` both count.
    model = nn.Sequential(nn.Linear(3, 2), nn.Dropout(0.5))
    model.eval()
    x = np.array([[1.0, 2.0, -1.0]])
    step = tg.compile(lambda x: (model(x) ** 2).sum())
    step(x)
    step(x)
    if switch == "train()":
        model.train()
    else:
        model[1].training = True
    with pytest.raises(tg.TracingError, match="random numbers"):
        step(x)


def test_cross_entropy_follows_ignored_labels_that_appear_after_the_trace():
    # The call takes another path when a label is ignored; with 120 classes the traced path would read
    # -100 as class 20 and give a wrong loss silently, if that choice were frozen at trace time.
    rng = np.random.default_rng(0)
    logits = tg.Tensor(rng.standard_normal((5, 120)), requires_grad=True)
    step = tg.compile(lambda x, t: F.cross_entropy(x, t))
    for labels in ([0, 1, 2, 3, 1], [0, -100, 2, -100, 1], [5, 6, 7, 8, 9]):
        target = tg.Tensor(np.array(labels))
        compiled = step(logits, target).item()
        compiled_grad = logits.grad.data.copy()
        logits.grad = None
        eager = F.cross_entropy(logits, target)
        eager.backward()
        np.testing.assert_allclose(compiled, eager.item(), rtol=1e-12)
        np.testing.assert_allclose(compiled_grad, logits.grad.data, rtol=1e-12)
        logits.grad = None


def test_a_python_number_argument_with_a_new_value_at_each_call_warns_once_and_keeps_few_programs():
    # Each value is a new signature: 300 calls kept 300 programs (memory grew without bound), silently.
    w = Tensor(np.ones(3), requires_grad=True)
    step = tg.compile(lambda x, scale: ((x * w) * scale).sum())
    with pytest.warns(RuntimeWarning, match=r"(?s)more than 32 kinds of arguments.*np.array\(lr\)") as caught:
        for i in range(100):
            np.testing.assert_allclose(step(np.ones(3), 1.0 / (1 + i)).item(), 3.0 / (1 + i))
    assert len(step._programs) == 32
    assert [w.filename for w in caught if "kinds of arguments" in str(w.message)] == [__file__]
    as_array = tg.compile(lambda x, scale: ((x * w) * scale).sum())
    for i in range(100):  # the advice: one program serves every value
        np.testing.assert_allclose(as_array(np.ones(3), np.array(1.0 / (1 + i))).item(), 3.0 / (1 + i))
    assert len(as_array._programs) == 1
