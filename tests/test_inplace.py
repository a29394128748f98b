"""In-place writes: the version counter, NumPy constants, in-place arithmetic, retain_grad,
and operations that would silently drop the graph."""
import weakref

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn, optim


# ---- the version counter -------------------------------------------------------------------
def test_an_optimizer_step_between_two_backwards_is_refused_naming_the_op_and_versions():
    layer = nn.Linear(3, 2, dtype=np.float64)
    # The input requires grad (as a hidden layer's does), so its gradient reads the weight; with a
    # constant input, neither PyTorch nor we save the weight, and the second backward runs.
    loss = layer(tg.Tensor(np.ones((4, 3)), requires_grad=True)).sum()
    loss.backward(retain_graph=True)
    optimizer = optim.SGD(layer.parameters(), lr=0.1)
    optimizer.step()
    assert layer.weight._version == 2  # the init's write and the step's, as PyTorch 2.13 counts them
    with pytest.raises(RuntimeError,
                       match=r"modified by an inplace operation after it was saved.*at version 2 now"):
        loss.backward()


def test_in_place_arithmetic_under_no_grad_on_a_saved_tensor_is_refused():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    with tg.no_grad():
        w *= 3
    with pytest.raises(RuntimeError, match=r"Mul's input 0 \(shape \(2,\)\) was modified by an inplace operation"):
        loss.backward()


def test_a_changed_intermediate_and_a_changed_output_are_refused():
    x = tg.Tensor([0.5, 1.0], requires_grad=True)
    hidden = x * 2
    loss = (hidden * hidden).sum()
    with tg.no_grad():
        hidden += 1  # saved by the second Mul (its node counts for it)
    with pytest.raises(RuntimeError, match=r"Mul's input 0 .* \(it is at version 1 now\)"):
        loss.backward()
    y = x.tanh()  # Tanh saves its output
    with tg.no_grad():
        y -= 1
    with pytest.raises(RuntimeError, match=r"Tanh's output .* modified by an inplace operation"):
        y.sum().backward()


def test_a_write_into_a_tensor_nobody_saved_is_fine():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    b = tg.Tensor([1.0, 1.0], requires_grad=True)
    loss = (w * 2 + b).sum()  # Add saves nothing, so changing b cannot change a gradient
    with tg.no_grad():
        b += 1
    loss.backward()
    np.testing.assert_allclose(w.grad.data, [2.0, 2.0])
    np.testing.assert_allclose(b.grad.data, [1.0, 1.0])


def test_the_usual_training_loop_never_trips_the_check():
    model = nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.Tanh(), nn.Linear(4, 1, dtype=np.float64))
    optimizer = optim.Adam(model.parameters(), lr=0.01)
    x, y = tg.Tensor(np.random.default_rng(0).normal(size=(8, 3))), tg.Tensor(np.ones((8, 1)))
    for step in range(3):
        optimizer.zero_grad()
        F.mse_loss(model(x), y).backward()
        optimizer.step()
    assert model[0].weight._version == 4  # the init's write and three steps (PyTorch 2.13: 4 too)


VIEWS = {
    "x @ w.T": lambda x, w: x @ w.T,
    "w.transpose() squared": lambda x, w: w.transpose() * w.transpose(),
    "w[0] squared": lambda x, w: w[0] * w[0],
    "w.reshape(3, 2) @ w": lambda x, w: w.reshape(3, 2) @ w,
    "F.linear without bias": lambda x, w: F.linear(x, w),
    "a view of a view": lambda x, w: x @ w.T[:, :].reshape(3, 2),
}


@pytest.mark.parametrize("name", list(VIEWS))
def test_a_write_into_a_tensor_whose_view_was_saved_is_refused(name):
    # A view (w.T, w[0], a reshape) shares its base's version, as in PyTorch: an optimizer step on
    # w changes the array the view's consumer saved, so a second backward must not use it silently.
    # x requires grad: its gradient is what reads w (for w's own, x @ w.T saves only x, as PyTorch).
    w = tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    loss = VIEWS[name](tg.Tensor(np.ones((4, 3)), requires_grad=True), w).sum()
    loss.backward(retain_graph=True)
    with tg.no_grad():
        w -= 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation after it was saved"):
        loss.backward()


def test_a_write_through_a_view_is_a_write_into_its_base():
    w = tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    h = w * 1.0
    loss = (h * h).sum()
    view = h.T
    with tg.no_grad():
        view += 1  # changes h, which Mul saved
    with pytest.raises(RuntimeError, match="modified by an inplace operation after it was saved"):
        loss.backward()


@pytest.mark.parametrize("name", list(VIEWS))
def test_views_of_parameters_trained_for_several_steps_never_trip_the_check(name):
    w = tg.Tensor(np.arange(6.0).reshape(2, 3) / 10, requires_grad=True)
    x = tg.Tensor(np.ones((4, 3)))
    opt = optim.SGD([w], lr=0.01)
    expected = w.data.copy()
    for _ in range(3):
        opt.zero_grad()
        VIEWS[name](x, w).sum().backward()
        grad = w.grad.data.copy()
        opt.step()
        expected -= 0.01 * grad
    np.testing.assert_allclose(w.data, expected)


def test_a_view_taken_before_a_step_and_used_after_it_is_not_refused():
    # PyTorch compares a saved view with the version its base had when the view was saved. The
    # view w[:2] was made before the step and saved by the product after it: nothing changed since.
    w = tg.Tensor([1.0, 2.0, 3.0, 4.0], requires_grad=True)
    first_two = w[:2]
    w.grad = tg.Tensor(np.ones(4))
    optim.SGD([w], lr=0.5).step()
    loss = (first_two * first_two).sum()
    other = tg.Tensor([1.0], requires_grad=True)
    with tg.no_grad():
        other += 1  # a write elsewhere, after the product: the product's inputs are still as saved
    w.grad = None
    loss.backward()
    np.testing.assert_allclose(w.grad.data, [1.0, 3.0, 0.0, 0.0])  # 2 * w[:2] after the step


def test_a_write_after_the_save_is_refused_however_many_writes_came_before():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    with tg.no_grad():
        w += 1
        w += 1
    loss = (w * w).sum()  # saved at version 2
    with tg.no_grad():
        w += 1
    message = r"Mul's input 0 \(shape \(2,\)\) was modified by an inplace operation after it was saved"
    with pytest.raises(RuntimeError, match=message + r" for backward \(it is at version 3 now\)"):
        loss.backward()


def test_load_state_dict_counts_as_an_in_place_write():
    layer = nn.Linear(2, 2)
    loss = layer(tg.Tensor(np.ones((1, 2), np.float32), requires_grad=True)).sum()  # its gradient reads W
    layer.load_state_dict(layer.state_dict())
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


@pytest.mark.parametrize("size", [3, 100_000])
def test_a_saved_numpy_constant_changed_after_the_forward_is_refused(size):
    x = tg.Tensor(np.ones(size), requires_grad=True)
    constant = np.full(size, 2.0)
    loss = (x * constant).sum()
    constant *= 5  # NumPy arrays keep no version: the engine compares their values
    with pytest.raises(RuntimeError, match=rf"Mul's input 1 \(a NumPy array of shape \({size},\)\) was modified"):
        loss.backward()


def test_an_unchanged_numpy_constant_gives_its_gradient():
    x = tg.Tensor(np.ones(3), requires_grad=True)
    constant = np.array([1.0, np.nan, 3.0])
    (x * constant).sum().backward()
    np.testing.assert_array_equal(x.grad.data, constant)


def test_an_index_array_changed_after_the_forward_does_not_move_the_gradient():
    x = tg.Tensor(np.arange(4.0), requires_grad=True)
    index = np.array([0, 0, 2])
    loss = x[index].sum()
    index[:] = 3
    loss.backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 0.0, 1.0, 0.0])


# ---- in-place arithmetic -------------------------------------------------------------------
def test_the_update_idiom_under_no_grad_updates_the_parameter_in_place():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    data = w.data
    (w * w).sum().backward()
    with tg.no_grad():
        w -= 0.25 * w.grad
    assert w.is_leaf and w.requires_grad and w.data is data and w.dtype == np.float32
    np.testing.assert_allclose(w.data, [0.5, 1.0])
    assert w._version == 1


@pytest.mark.parametrize("symbol", ["+=", "-=", "*=", "/="])
def test_each_in_place_operator_under_no_grad_writes_into_the_data(symbol):
    t = tg.Tensor(np.array([[2.0, 4.0]]))
    expected = {"+=": [[4.0, 8.0]], "-=": [[0.0, 0.0]], "*=": [[4.0, 16.0]], "/=": [[1.0, 1.0]]}[symbol]
    data = t.data
    with tg.no_grad():
        exec(f"t {symbol} t.detach() * 1.0", {"t": t})
    assert t.data is data
    np.testing.assert_array_equal(t.data, expected)


def test_in_place_on_a_leaf_that_requires_grad_in_grad_mode_shows_the_idiom():
    w = tg.Tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"with tg.no_grad\(\):\n\s+w -= lr \* w.grad"):
        w -= 0.1


def test_in_place_in_grad_mode_on_a_non_leaf_is_recorded_as_a_new_tensor():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    before = h
    h += x  # a non-leaf: recorded as h = h + x
    assert h is not before and before.data.tolist() == [2.0, 4.0]
    h.sum().backward()
    np.testing.assert_allclose(x.grad.data, [3.0, 3.0])


@pytest.mark.parametrize("symbol", ["+=", "-=", "*=", "/="])
def test_in_place_in_grad_mode_with_nothing_to_record_writes_like_numpy(symbol):
    # NumPy and PyTorch write in place: every name bound to t, and the array t was made of, see it.
    array = np.array([1.0, 2.0])
    t = tg.Tensor(array)
    alias = t
    exec(f"t {symbol} 2.0", {"t": t})
    assert alias.data is array and t.data is array
    np.testing.assert_allclose(array, eval(f"np.array([1.0, 2.0]) {symbol[0]} 2.0"))
    assert t._version == 1


def test_in_place_that_would_change_shape_or_dtype_kind_names_the_problem():
    t = tg.Tensor(np.zeros(3))
    with tg.no_grad():
        with pytest.raises(ValueError, match=r"in-place \+= on a tensor of shape \(3,\).*shape \(2, 3\)"):
            t += np.ones((2, 3))
        counts = tg.Tensor(np.array([1, 2]))
        with pytest.raises(TypeError, match=r"in-place /= on a tensor of shape \(2,\) and dtype int64"):
            counts /= 2
    assert t._version == 0 and counts.data.tolist() == [1, 2]


# ---- retain_grad ---------------------------------------------------------------------------
def test_retain_grad_keeps_a_non_leaf_gradient_and_accumulates():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.retain_grad()
    h.retain_grad()  # twice is once
    assert h.retains_grad and not x.retains_grad
    loss = (h * h).sum()
    loss.backward(retain_graph=True)
    np.testing.assert_allclose(h.grad.data, [6.0, 12.0])
    loss.backward()
    np.testing.assert_allclose(h.grad.data, [12.0, 24.0])
    np.testing.assert_allclose(x.grad.data, [36.0, 72.0])


def test_retain_grad_on_a_leaf_is_a_no_op_and_without_grad_an_error():
    x = tg.Tensor([1.0], requires_grad=True)
    x.retain_grad()
    (x * 2).sum().backward()
    np.testing.assert_allclose(x.grad.data, [2.0])
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.Tensor([1.0]).retain_grad()


def test_a_retained_grad_is_an_array_of_its_own_and_the_node_does_not_keep_the_tensor():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    h = x + 0
    h.retain_grad()
    y = h * 1
    y.sum().backward(retain_graph=True)
    assert h.grad.data.flags.writeable and h.grad.data.flags.owndata
    gone = weakref.ref(h)
    del h
    assert gone() is None
    y.sum().backward()  # the node's hook finds its tensor gone and does nothing


# ---- operations that would drop the graph --------------------------------------------------
@pytest.mark.parametrize("make", [lambda x: x * 1j, lambda x: x + np.array([1, 2], dtype=object),
                                  lambda x: np.array([1, 2], dtype=object) + x])
def test_complex_or_object_results_are_refused_naming_the_op(make):
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError, match=r"(Mul|Add) gave (complex|object)"):
        make(x)


def test_numpy_given_a_list_of_tensors_that_require_grad_warns_naming_the_function():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.warns(tg.GraphDroppedWarning, match=r"numpy\.mean turned Tensors into plain arrays") as record:
        np.mean([x, x + 2])
    assert record[0].filename == __file__  # the learner's line


def test_scipy_given_a_tensor_that_requires_grad_warns_naming_the_function():
    from scipy.special import logsumexp

    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.warns(tg.GraphDroppedWarning, match=r"scipy\.logsumexp turned Tensors into plain arrays") as record:
        logsumexp(x)  # a plain float: tg.logsumexp keeps the graph
    assert record[0].filename == __file__


def test_a_tensor_made_from_a_list_of_tensors_that_require_grad_warns_at_the_callers_line():
    w = tg.Tensor(1.0, requires_grad=True)
    with pytest.warns(tg.GraphDroppedWarning, match=r"Tensor\(\) was given Tensors inside a list") as record:
        tg.Tensor([w * 2, w * 3])
    assert record[0].filename == __file__


def test_reading_values_on_purpose_stays_quiet(recwarn):
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    np.asarray(x)
    np.mean([x.detach(), (x + 2).detach()])
    np.mean([tg.Tensor([1.0]), tg.Tensor([2.0])])
    np.testing.assert_allclose(x, [1.0, 2.0])
    assert not [w for w in recwarn if issubclass(w.category, tg.GraphDroppedWarning)]


def test_retain_grad_keeps_earlier_hook_handles_working():
    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    calls = []
    handle = h.register_hook(lambda grad: calls.append(1))
    h.retain_grad()
    handle.remove()
    h.sum().backward()
    assert calls == [] and h.grad is not None


def test_item_assignment_writes_under_no_grad_and_counts_as_an_in_place_write():
    w = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    loss = (w * w).sum()  # saves w for its backward
    with tg.no_grad():
        w[0] = 0.0
        w[1, tg.Tensor(np.array([0, 2]))] = tg.Tensor(np.array([5.0, 6.0]))
    assert w.data.tolist() == [[0.0, 0.0, 0.0], [5.0, 1.0, 6.0]] and w.is_leaf and w.grad_fn is None
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()  # the saved w changed: as PyTorch's version counter
    mask = tg.Tensor(np.zeros(3))  # requires no grad: a plain write, also in grad mode
    mask[1:] = 1.0
    assert mask.data.tolist() == [0.0, 1.0, 1.0]


def test_item_assignment_in_grad_mode_on_a_leaf_that_requires_grad_is_refused_with_the_idiom():
    w = tg.Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"(?s)leaf that requires grad \(shape \(3,\)\).*no_grad"):
        w[0] = 0.0
    assert w.data.tolist() == [1.0, 1.0, 1.0] and w.is_leaf
    with tg.no_grad(), pytest.raises(ValueError, match="could not broadcast"):
        w[:2] = np.ones(3)  # NumPy's shape message


# ---- t[index] = value in grad mode: recorded, as PyTorch's CopySlices ------------------------------------
def test_item_assignment_into_a_non_leaf_sends_no_gradient_to_the_overwritten_values():
    # PyTorch 2.13, the same lines: x.grad [0, 4, 6]; y.grad [1, 2, 3] (retain_grad follows y); the hook
    # registered before the write saw the gradient of the old values, [0, 2, 3].
    x = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    y.retain_grad()
    y.name = "y"
    seen = []
    y.register_hook(lambda g: seen.append(g.data.copy()))
    y[0] = 10.0
    assert y.data.tolist() == [10.0, 4.0, 6.0] and y.grad_fn.name == "SetItem" and y.name == "y"
    (y * tg.Tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [0.0, 4.0, 6.0])
    np.testing.assert_array_equal(y.grad.data, [1.0, 2.0, 3.0])
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [0.0, 2.0, 3.0])


def test_item_assignment_of_a_value_that_requires_grad_makes_a_plain_tensor_part_of_the_graph():
    v = tg.Tensor(5.0, requires_grad=True)
    z = tg.zeros(3)
    z[1:] = v  # broadcast into two places: PyTorch 2.13 gives v.grad 2
    assert z.requires_grad and not z.is_leaf and z.data.tolist() == [0.0, 5.0, 5.0]
    z.sum().backward()
    assert v.grad.item() == 2.0
    mask_case = tg.Tensor([1.0, -2.0, 3.0], requires_grad=True)
    clipped = mask_case * 1.0
    clipped[clipped < 0] = 0.0  # PyTorch 2.13: [1, 0, 1]
    clipped.sum().backward()
    np.testing.assert_array_equal(mask_case.grad.data, [1.0, 0.0, 1.0])


def test_item_assignment_casts_the_value_and_its_gradient_comes_back_in_its_own_dtype():
    w = tg.Tensor(np.array([1.0, 2.0]), requires_grad=True)  # float64
    a = tg.zeros((2, 2))  # float32
    a[0] = w
    assert a.dtype == np.float32
    a.sum().backward()
    assert w.grad.dtype == np.float64
    np.testing.assert_array_equal(w.grad.data, [1.0, 1.0])


def test_item_assignment_with_a_repeated_index_gives_each_copy_of_the_value_its_place_gradient():
    # NumPy keeps the last write; PyTorch's index_put gives every value grad[index] (2.13: [2, 2, 3]).
    y = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True) * 1.0
    v = tg.Tensor([7.0, 8.0, 9.0], requires_grad=True)
    y[np.array([1, 1, 2])] = v
    assert y.data.tolist() == [1.0, 8.0, 9.0]
    (y * tg.Tensor([1.0, 2.0, 3.0])).sum().backward()
    np.testing.assert_array_equal(v.grad.data, [2.0, 2.0, 3.0])


def test_item_assignment_keeps_the_old_values_for_the_graph_and_for_earlier_views():
    # tanh saved its output: PyTorch 2.13 raises in backward here ("modified by an inplace operation");
    # here y gets a new array, so tanh's backward still has its values and the gradient is right.
    x = tg.Tensor([0.5, -1.0, 2.0], requires_grad=True)
    y = x.tanh()
    earlier = y[1:]
    y[0] = 0.0
    assert earlier.data.tolist() == np.tanh([-1.0, 2.0]).astype(np.float32).tolist()
    (y.sum() + earlier.sum()).backward()
    expected = (1 - np.tanh(np.array([0.5, -1.0, 2.0], np.float32)) ** 2) * np.array([0.0, 2.0, 2.0])
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-6)


def test_item_assignment_refusals_name_the_problem_and_change_nothing():
    y = tg.Tensor([1.0, 2.0], requires_grad=True) * 1.0
    y.retain_grad()
    node = y.grad_fn
    with pytest.raises(ValueError, match=r"SetItem of shapes \(2,\) and \(3,\)"):
        y[:] = tg.Tensor([1.0, 2.0, 3.0], requires_grad=True)
    assert y.grad_fn is node and y.retains_grad  # the refused write left its retain_grad in place
    counts = tg.Tensor(np.array([1, 2]))
    with pytest.raises(TypeError, match="into a int64 tensor"):
        counts[0] = tg.Tensor(1.0, requires_grad=True)
    assert counts.data.tolist() == [1, 2] and y.data.tolist() == [1.0, 2.0]


def test_in_place_into_a_read_only_array_names_it_and_changes_nothing():
    # Written in place now that nothing is recorded, a read-only array (np.load(mmap_mode='r')) refuses.
    array = np.zeros(3)
    array.flags.writeable = False
    t = tg.Tensor(array)
    with pytest.raises(ValueError, match=r"in-place \+= on a tensor of shape \(3,\).*read-only"):
        t += 1.0
    with pytest.raises(ValueError, match="read-only"):
        t[0] = 1.0
    assert t.data is array and array.tolist() == [0.0, 0.0, 0.0] and t._version == 0
