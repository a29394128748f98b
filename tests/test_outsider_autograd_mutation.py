"""Mutation semantics against PyTorch, as an outsider porting PyTorch's autograd tests finds them:
the version counter belongs to the memory (a tensor, its views and its detach() share it), hooks,
`.grad`, and copies. Expected behaviour is PyTorch 2.13's (CPU), written out as literal values.
"""
import gc

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import Tensor

INPLACE = "modified by an inplace operation after it was saved for backward"


# ---- the version counter is shared by every tensor that sees the memory ---------------------------
def _write(t, how):
    """One in-place write the framework counts: in-place arithmetic under no_grad, or t[i] = v."""
    if how == "+=":
        with tg.no_grad():
            t += 1.0
    else:
        t[0] = 10.0  # allowed outside no_grad on a tensor that does not require grad


def _under_no_grad(make):
    with tg.no_grad():
        return make()


ALIASES = {  # made without a graph node: the write cannot reach x through the graph
    "x.detach()": lambda x: x.detach(),
    "x.detach().detach()": lambda x: x.detach().detach(),
    "x.detach()[:1]": lambda x: x.detach()[:1],
    "x[:1] made under no_grad": lambda x: _under_no_grad(lambda: x[:1]),
    "x.reshape(2) made under no_grad": lambda x: _under_no_grad(lambda: x.reshape(2)),
}


@pytest.mark.parametrize("how", ["+=", "setitem"])
@pytest.mark.parametrize("name", list(ALIASES))
def test_a_write_through_an_alias_made_outside_the_graph_is_refused(name, how):
    # PyTorch 2.13: detach() and every view share the version counter of their base, in grad mode
    # or not, so `loss.backward()` raises "one of the variables needed for gradient computation has
    # been modified by an inplace operation". We computed 2 * (x + 1) silently.
    x = Tensor([1.0, 2.0], requires_grad=True)
    loss = (x * x).sum()
    _write(ALIASES[name](x), how)
    with pytest.raises(RuntimeError, match=r"Mul's input 0 \(shape \(2,\)\) was " + INPLACE):
        loss.backward()


def test_a_write_into_a_non_leaf_through_its_detach_is_refused():
    # PyTorch 2.13 raises; we used 2 * (h + 1) for h's gradient: x.grad was [12, 20], not [8, 16].
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    loss = (h * h).sum()
    _write(h.detach(), "+=")
    with pytest.raises(RuntimeError, match=INPLACE):
        loss.backward()


def test_a_write_into_the_base_reaches_a_saved_detach():
    # w's gradient reads the detached values d; the write into x changes them (PyTorch 2.13 raises).
    x = Tensor([1.0, 2.0], requires_grad=True)
    w = Tensor([3.0, 4.0], requires_grad=True)
    loss = (x.detach() * w).sum()
    _write(x, "+=")
    with pytest.raises(RuntimeError, match=INPLACE):
        loss.backward()


@pytest.mark.parametrize("write_the", ["base", "view"])
def test_views_of_a_tensor_that_needs_no_grad_share_its_version(write_the):
    # c needs no grad, so c[:2] records no node; PyTorch 2.13 still counts the write for both.
    c = Tensor([1.0, 2.0, 3.0])
    w = Tensor([1.0, 1.0], requires_grad=True)
    view = c[:2]
    loss = ((view if write_the == "base" else c[1:]) * w).sum()  # saves the view, or c's memory
    _write(c if write_the == "base" else view, "setitem")
    with pytest.raises(RuntimeError, match=r"Mul's input 0 \(shape \(2,\)\) was " + INPLACE):
        loss.backward()


def test_a_write_through_a_transposed_view_made_under_no_grad_is_refused():
    x = Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    loss = (x * x).sum()
    with tg.no_grad():
        x.T[0, 1] = 0.0
    with pytest.raises(RuntimeError, match=INPLACE):
        loss.backward()


def test_every_alias_reports_the_same_version_as_pytorch():
    # PyTorch 2.13: after one write through d, x._version == d._version == v._version == 1.
    x = Tensor([1.0, 2.0], requires_grad=True)
    d = x.detach()
    v = x[:1]
    _write(d, "+=")
    assert (x._version, d._version, v._version) == (1, 1, 1)
    _write(v.detach(), "setitem")
    assert (x._version, d._version, v._version) == (2, 2, 2)
    assert Tensor([1.0])._version == 0


def test_writes_before_the_forward_or_into_unsaved_memory_still_run():
    # Never refuse what PyTorch 2.13 runs: the write came first, or the node saved nothing of it.
    x = Tensor([1.0, 2.0], requires_grad=True)
    _write(x.detach(), "+=")
    loss = (x * x).sum() + (x.detach() * 0 + x).sum()  # Add saves nothing
    b = Tensor([5.0, 5.0], requires_grad=True)
    unsaved = (b + 1).sum()
    _write(b.detach(), "+=")
    loss.backward()
    unsaved.backward()
    np.testing.assert_allclose(x.grad.data, [5.0, 7.0])  # 2 * x + 1 at x = [2, 3]
    np.testing.assert_allclose(b.grad.data, [1.0, 1.0])


def test_two_tensors_around_one_numpy_array_share_the_count_unlike_pytorch():
    # Our documented difference (design_decisions.md): PyTorch 2.13's from_numpy tensors count
    # apart and would compute with the written values; we refuse.
    values = np.array([1.0, 2.0])
    x, same_memory = Tensor(values, requires_grad=True), Tensor(values)
    loss = (x * x).sum()
    _write(same_memory, "setitem")
    with pytest.raises(RuntimeError, match=INPLACE):
        loss.backward()


def test_the_write_count_of_memory_that_was_freed_is_forgotten():
    # The count lives beside the memory: freeing the memory frees its entry, and a new array that
    # NumPy happens to place at the same address starts at version 0.
    from tinygrad_edu.tensor import _writes

    gc.collect()
    before = len(_writes)
    for _ in range(50):
        scratch = Tensor(np.zeros(3))
        scratch[0] = 1.0
        assert scratch._version == 1
    del scratch
    gc.collect()
    assert len(_writes) == before


# ---- hooks ---------------------------------------------------------------------------------------
def test_hooks_run_with_grad_mode_off_in_a_plain_backward_and_on_with_create_graph():
    # PyTorch 2.13 runs backward (hooks included) in the grad mode create_graph asks for.
    seen = []
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    x.register_hook(lambda grad: seen.append(("leaf", tg.is_grad_enabled())))
    h.register_hook(lambda grad: seen.append(("non-leaf", tg.is_grad_enabled())))
    (h * h).sum().backward(retain_graph=True)
    assert seen == [("non-leaf", False), ("leaf", False)]
    seen.clear()
    (h * h).sum().backward(create_graph=True)
    assert seen == [("non-leaf", True), ("leaf", True)]


def test_a_hook_may_update_a_parameter_in_place_as_in_pytorch():
    # PyTorch 2.13: x.sub_(0.5 * g) inside x's hook works (grad mode is off); x becomes [-0.5, 0.5]
    # and x.grad is [3, 3]. We raised: "`-=` on a leaf that requires grad, in grad mode".
    x = Tensor([1.0, 2.0], requires_grad=True)

    def step_inside_backward(grad):
        nonlocal x
        x -= 0.5 * grad

    x.register_hook(step_inside_backward)
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.data, [-0.5, 0.5])
    np.testing.assert_allclose(x.grad.data, [3.0, 3.0])
    assert x._version == 1


@pytest.mark.parametrize("where", ["leaf", "non-leaf"])
def test_a_hook_that_changes_the_gradients_dtype_is_refused(where):
    # PyTorch 2.13: "hook '<lambda>' has changed the type of value (was torch.FloatTensor got
    # torch.DoubleTensor)". We gave a float32 leaf a float64 .grad (or cast a non-leaf's quietly).
    x = Tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    (x if where == "leaf" else h).register_hook(lambda grad: grad.astype(np.float64))
    with pytest.raises(TypeError, match=r"a hook returned dtype float64 for a gradient of dtype float32"):
        (h * h).sum().backward()
    y = Tensor([1.0, 2.0], requires_grad=True)
    y.register_hook(lambda grad: grad.data * 2)  # an array (no dtype of its own to keep) is cast
    (y * y).sum().backward()
    assert y.grad.dtype == np.float32


# ---- copies --------------------------------------------------------------------------------------
def test_deepcopy_of_a_non_leaf_is_refused_as_in_pytorch():
    # PyTorch 2.13: "Only Tensors created explicitly by the user (graph leaves) support the deepcopy
    # protocol". We copied the whole graph behind it, leaves included, so backward through the
    # copy filled copies of the parameters and never the originals.
    import copy

    w = Tensor([1.0, 2.0], requires_grad=True)
    hidden = w * 2
    with pytest.raises(RuntimeError, match=r"deepcopy of a tensor made by Mul: only leaves"):
        copy.deepcopy(hidden)
    twin = copy.deepcopy(hidden.detach())  # the values, as the message advises
    assert twin.is_leaf and not twin.requires_grad and twin.data is not hidden.data


def test_deepcopy_of_a_leaf_leaves_its_hooks_behind_as_in_pytorch():
    # PyTorch 2.13: the copy's gradient is [2, 4], its original's hook (x 100) does not come along.
    import copy

    x = Tensor([1.0, 2.0], requires_grad=True, name="w")
    x.register_hook(lambda grad: grad * 100)
    twin = copy.deepcopy(x)
    (twin * twin).sum().backward()
    np.testing.assert_allclose(twin.grad.data, [2.0, 4.0])
    assert twin.name == "w" and twin.requires_grad and twin.is_leaf and x.grad is None


def test_deepcopy_keeps_a_tensor_subclass_and_its_attributes():
    import copy

    class Tagged(Tensor):
        pass

    tagged = Tagged([1.0], requires_grad=True)
    tagged.tag = ["kept"]
    twin = copy.deepcopy(tagged)
    assert type(twin) is Tagged and twin.tag == ["kept"] and twin.tag is not tagged.tag


# ---- .grad ---------------------------------------------------------------------------------------
def test_assigning_a_gradient_of_another_shape_or_not_a_tensor_is_refused_at_once():
    # PyTorch 2.13 raises at the assignment ("attempting to assign a gradient of size '[3]' to a
    # tensor of size '[2]'"; "assigned grad expected to be a Tensor or None"). We kept it, and the
    # next backward broadcast the new gradient into it: x.grad came out with shape (2, 2).
    x = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ValueError, match=r"a gradient of shape \(2, 1\) for a tensor of shape \(2,\)"):
        x.grad = Tensor(np.zeros((2, 1), np.float32))
    with pytest.raises(TypeError, match=r"a Tensor or None, not ndarray.*tg.Tensor\(array\)"):
        x.grad = np.zeros(2, np.float32)
    with pytest.raises(RuntimeError, match="its own gradient"):
        x.grad = x  # PyTorch 2.13: "can't assign Variable as its own grad"; zero_grad would zero x
    assert x.grad is None
    x.grad = Tensor([10.0, 10.0])
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [12.0, 14.0])  # accumulated into, as PyTorch


def test_reading_the_grad_of_a_non_leaf_warns_as_in_pytorch(recwarn):
    # PyTorch 2.13: "The .grad attribute of a Tensor that is not a leaf Tensor is being accessed.
    # Its .grad attribute won't be populated during autograd.backward()..." (a UserWarning).
    x = Tensor([1.0, 2.0], requires_grad=True)
    hidden = x * 2
    (hidden * hidden).sum().backward()
    with pytest.warns(UserWarning, match=r"\.grad of a non-leaf tensor \(made by Mul\).*retain_grad\(\)"):
        assert hidden.grad is None
    kept = x * 3
    kept.retain_grad()
    kept.sum().backward()
    assert x.grad is not None and kept.grad is not None and Tensor([1.0]).grad is None
    assert not [w for w in recwarn if "non-leaf" in str(w.message)]  # leaves and retained: quiet


# ---- more writes the framework makes -------------------------------------------------------------
@pytest.mark.parametrize("name, args", [("zeros_", ()), ("ones_", ()), ("constant_", (0.5,)),
                                        ("uniform_", ()), ("normal_", ()), ("xavier_uniform_", ()),
                                        ("kaiming_normal_", ())])
def test_nn_init_between_forward_and_backward_is_refused(name, args):
    # PyTorch 2.13 raises for each (its init functions write in place and count it, version 1).
    # We wrote into .data uncounted, and x's gradient used the new weights silently.
    from tinygrad_edu import nn

    x = Tensor(np.ones((3, 2), np.float32), requires_grad=True)
    w = Tensor(np.ones((2, 2), np.float32), requires_grad=True)
    loss = (x @ w).sum()  # x's gradient reads w
    assert getattr(nn.init, name)(w, *args) is w
    assert w._version == 1
    with pytest.raises(RuntimeError, match=r"MatMul's input 1 \(shape \(2, 2\)\) was " + INPLACE):
        loss.backward()


def test_a_leaf_that_stopped_requiring_grad_before_backward_gets_no_gradient():
    # PyTorch 2.13: a.requires_grad_(False) after the forward -> a.grad stays None, b.grad = [1, 1].
    # We filled a.grad, so an optimizer holding a "frozen" parameter still moved it.
    a = Tensor([1.0, 1.0], requires_grad=True)
    b = Tensor([1.0, 1.0], requires_grad=True)
    loss = (a * b).sum()
    a.requires_grad_(False)
    loss.backward()
    assert a.grad is None
    np.testing.assert_allclose(b.grad.data, [1.0, 1.0])


@pytest.mark.parametrize("how", ["pickle", "copy.copy"])
def test_pickle_and_copy_of_a_non_leaf_give_a_leaf_without_the_graph(how):
    # PyTorch 2.13: both give a leaf that requires grad (grad_fn None), without hooks; copy.copy
    # shares the data. We carried the whole graph, saved arrays and copies of the leaves included.
    import copy
    import pickle

    x = Tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda grad: grad * 100)
    hidden = x * 2
    copied = pickle.loads(pickle.dumps(hidden)) if how == "pickle" else copy.copy(hidden)
    assert copied.is_leaf and copied.requires_grad and copied.grad_fn is None
    np.testing.assert_array_equal(copied.data, [2.0, 4.0])
    leaf = pickle.loads(pickle.dumps(x)) if how == "pickle" else copy.copy(x)
    (leaf * leaf).sum().backward()
    np.testing.assert_allclose(leaf.grad.data, [2.0, 4.0])
    assert (leaf.data is x.data) == (how == "copy.copy") and x.grad is None


def test_a_step_into_a_weight_used_through_its_array_is_refused_naming_the_input():
    # x * w.data keeps w's array as a NumPy constant; the optimizer writes into that memory. (PyTorch's
    # w.data has a counter of its own, so PyTorch 2.13 computes with the new values; we refuse.)
    from tinygrad_edu import optim

    w = Tensor([1.0, 2.0], requires_grad=True)
    x = Tensor([3.0, 4.0], requires_grad=True)
    loss = (x * w.data).sum()
    w.grad = Tensor([1.0, 1.0])
    optim.SGD([w], lr=0.5).step()
    with pytest.raises(RuntimeError, match=r"Mul's input 1 \(shape \(2,\)\) was " + INPLACE):
        loss.backward()


def test_retain_grad_follows_a_non_leaf_through_in_place_arithmetic():
    # PyTorch 2.13: h.retain_grad(); h += 1 (in grad mode) -> after backward of sum(h * h), h.grad is
    # [6, 6], the gradient of the new h; hooks registered before stay with the old value (they see
    # [6, 6] too here). We recorded h + 1 as a new tensor that kept nothing: h.grad was None.
    x = Tensor([1.0, 1.0], requires_grad=True)
    h = x * 2
    h.retain_grad()
    seen = []
    h.register_hook(lambda grad: seen.append(grad.data.tolist()))
    h += 1
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad.data, [6.0, 6.0])
    assert seen == [[6.0, 6.0]]
    np.testing.assert_allclose(x.grad.data, [12.0, 12.0])


def test_tg_grad_runs_no_hook_of_a_tensor_it_does_not_need():
    # PyTorch 2.13's autograd.grad(z, x) runs only what leads to x: the hook of the other factor y
    # (a leaf) and of m (a branch that does not lead to y) never run. We ran both.
    x = Tensor([1.0, 1.0], requires_grad=True)
    y = Tensor([1.0, 1.0], requires_grad=True)
    calls = []
    y.register_hook(lambda grad: calls.append("y"))
    hidden = (x * y) * 1
    hidden.register_hook(lambda grad: calls.append("hidden"))
    (dx,) = tg.grad((hidden * 3).sum(), x)
    assert calls == ["hidden"] and y.grad is None
    np.testing.assert_allclose(dx.data, [3.0, 3.0])
    calls.clear()
    m = x * 2
    m.register_hook(lambda grad: calls.append("m"))
    (dy,) = tg.grad((m + y).sum(), y)
    assert calls == ["y"]
    np.testing.assert_allclose(dy.data, [1.0, 1.0])


def test_setting_requires_grad_follows_the_rules_of_requires_grad_():
    # PyTorch 2.13: h.requires_grad = False on a non-leaf raises "you can only change requires_grad
    # flags of leaf variables ... use var.detach()"; an integer tensor cannot require grad. We set
    # the flag: the ops after h recorded nothing, and x silently lost that part of its gradient.
    x = Tensor([1.0, 2.0], requires_grad=True)
    hidden = x * 2
    with pytest.raises(RuntimeError, match=r"only a leaf's flag can change.*detach\(\)"):
        hidden.requires_grad = False
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        Tensor(np.array([1, 2])).requires_grad = True
    (hidden * x).sum().backward()
    np.testing.assert_allclose(x.grad.data, [4.0, 8.0])
    x.requires_grad = False  # a leaf may stop requiring grad (freezing a parameter)
    assert not x.requires_grad and not (x * 2).requires_grad


def test_item_assignment_of_a_value_that_requires_grad_is_recorded_in_grad_mode():
    # PyTorch 2.13 records c[0] = w * 3: c becomes a non-leaf; w.grad is 3 after c.sum().backward().
    c = Tensor(np.zeros(3, np.float32))
    w = Tensor(2.0, requires_grad=True)
    c[0] = w * 3
    assert c.data.tolist() == [6.0, 0.0, 0.0] and c.requires_grad and not c.is_leaf
    c.sum().backward()
    np.testing.assert_allclose(w.grad.data, 3.0)
    plain = Tensor(np.zeros(3, np.float32))
    plain[0] = (w * 3).detach()  # the value on purpose: a plain write, nothing recorded
    with tg.no_grad():
        plain[1] = w  # under no_grad nothing is recorded anyway, as in PyTorch
    assert plain.data.tolist() == [6.0, 2.0, 0.0] and plain.is_leaf and not plain.requires_grad
