"""tinygrad_edu.nn: the Module system (registration, names, modes, state dicts, repr, hooks),
the layers against NumPy, Dropout's statistics, and the loss modules against their functions.

Oracles are NumPy and central differences; names and reprs follow PyTorch exactly.
"""

import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn
from tinygrad_edu.gradcheck import numeric_grad


def rng(seed=0):
    return np.random.default_rng(seed)


def const(values, dtype=np.float32):
    return tg.Tensor(np.array(values, dtype=dtype))


def leaf(values, dtype=np.float32):
    return tg.Tensor(np.array(values, dtype=dtype), requires_grad=True)


class Net(nn.Module):
    """A custom module holding a Sequential and a Linear: dotted names two levels deep."""

    def __init__(self, head_bias=True):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(2, 3), nn.Tanh())
        self.head = nn.Linear(3, 1, bias=head_bias)

    def forward(self, x):
        return self.head(self.body(x))


def mlp():
    return nn.Sequential(nn.Linear(2, 3), nn.Tanh(), nn.Linear(3, 1))


# ---- registration and names -----------------------------------------------------------------
def test_parameters_and_submodules_set_as_attributes_register_themselves():
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(np.ones(3, dtype=np.float32))
            self.inner = nn.Linear(3, 2)
            self.offset = tg.Tensor(np.zeros(3, dtype=np.float32))  # a plain Tensor is not a parameter
            self.note = "not a module"

        def forward(self, x):
            return self.inner(x * self.scale + self.offset)

    model = Scaled()
    names = [name for name, _ in model.named_parameters()]
    assert names == ["scale", "inner.weight", "inner.bias"]
    params = list(model.parameters())
    assert [p is q for p, q in zip(params, [model.scale, model.inner.weight, model.inner.bias])] == [True] * 3
    assert list(model.children()) == [model.inner]


def test_nested_custom_module_has_dotted_pytorch_names():
    model = Net()
    named = list(model.named_parameters())
    assert [name for name, _ in named] == ["body.0.weight", "body.0.bias", "head.weight", "head.bias"]
    assert named[0][1] is model.body[0].weight and named[3][1] is model.head.bias
    assert [p.shape for p in model.parameters()] == [(3, 2), (3,), (1, 3), (1,)]


def test_module_list_registers_its_items_with_indices():
    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2, bias=False)])

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    model = Stack()
    assert [name for name, _ in model.named_parameters()] == ["layers.0.weight", "layers.0.bias", "layers.1.weight"]
    assert len(model.layers) == 2 and model.layers[1].bias is None
    assert model(const(np.ones((4, 2)))).shape == (4, 2)


def test_shared_parameter_is_yielded_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.encode = nn.Linear(3, 3)
            self.decode = nn.Linear(3, 3)
            self.decode.weight = self.encode.weight

        def forward(self, x):
            return self.decode(self.encode(x))

    model = Tied()
    assert [name for name, _ in model.named_parameters()] == ["encode.weight", "encode.bias", "decode.bias"]
    assert len(list(model.parameters())) == 3


def test_shared_module_is_yielded_once():
    layer = nn.Linear(2, 2)
    model = nn.Sequential(layer, nn.Tanh(), layer)
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias"]
    assert [name for name, _ in model.named_modules()] == ["", "0", "1"]
    # as in PyTorch, the state dict names the shared module at every place it is used
    assert list(model.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    model.load_state_dict({key: np.full(value.shape, 0.5) for key, value in model.state_dict().items()})
    np.testing.assert_array_equal(layer.weight.data, np.full((2, 2), 0.5, dtype=np.float32))


def test_children_and_modules():
    model = Net()
    assert list(model.children()) == [model.body, model.head]
    assert [name for name, _ in model.named_children()] == ["body", "head"]
    expected = [model, model.body, model.body[0], model.body[1], model.head]
    assert [m is e for m, e in zip(model.modules(), expected)] == [True] * 5
    assert len(list(model.modules())) == 5
    named = list(model.named_modules())
    assert [name for name, _ in named] == ["", "body", "body.0", "body.1", "head"]
    assert named[0][1] is model and named[3][1] is model.body[1]


def test_leaf_layers_have_no_children_and_activations_no_parameters():
    assert list(nn.Linear(2, 3).children()) == []
    for module in (nn.ReLU(), nn.Sigmoid(), nn.Tanh(), nn.Softmax(), nn.Dropout(), nn.Identity()):
        assert list(module.parameters()) == []


def test_unknown_attribute_raises_attribute_error():
    model = Net()
    with pytest.raises(AttributeError, match="no_such_layer"):
        model.no_such_layer
    with pytest.raises(AttributeError):
        nn.Linear(2, 3).nonexistent
    assert not hasattr(model, "weight")


def test_parameter_is_a_leaf_tensor_requiring_grad_and_floating_only():
    p = nn.Parameter(np.zeros((2, 3), dtype=np.float32))
    assert isinstance(p, tg.Tensor)
    assert p.requires_grad and p.is_leaf and p.grad_fn is None and p.shape == (2, 3)
    with pytest.raises(TypeError):
        nn.Parameter(np.arange(3))


# ---- zero_grad, train/eval ----------------------------------------------------------------------
def backward_once(model):
    model(const(rng().normal(size=(4, 2)))).sum().backward()


def test_zero_grad_sets_gradients_to_none_by_default():
    model = Net()
    backward_once(model)
    assert all(p.grad is not None for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_zero_grad_without_set_to_none_leaves_zero_arrays():
    model = Net()
    backward_once(model)
    model.zero_grad(set_to_none=False)
    for p in model.parameters():
        assert isinstance(p.grad, tg.Tensor) and p.grad.shape == p.shape
        np.testing.assert_array_equal(p.grad.data, 0.0)
    backward_once(model)  # the zeroed arrays still accumulate
    assert any(np.any(p.grad.data != 0) for p in model.parameters())


def test_train_and_eval_propagate_and_return_self():
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5), Net())
    assert all(m.training for m in model.modules())
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    assert model.train() is model
    assert all(m.training for m in model.modules())
    assert model.train(False) is model
    assert not any(m.training for m in model.modules())


# ---- state_dict / load_state_dict ---------------------------------------------------------------
def test_state_dict_keys_are_pytorch_names_in_registration_order():
    assert list(mlp().state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert list(Net(head_bias=False).state_dict()) == ["body.0.weight", "body.0.bias", "head.weight"]


def test_state_dict_values_are_ndarray_snapshots():
    model = mlp()
    sd = model.state_dict()
    for name, p in model.named_parameters():
        assert type(sd[name]) is np.ndarray and sd[name].dtype == p.dtype
        np.testing.assert_array_equal(sd[name], p.data)
        assert not np.shares_memory(sd[name], p.data)
    before = {k: v.copy() for k, v in sd.items()}
    backward_once(model)
    for p in model.parameters():  # one in-place SGD step, as an optimizer would do
        p.data -= 0.5 * p.grad.data
    assert not np.array_equal(model[0].weight.data, before["0.weight"])
    for k in before:
        np.testing.assert_array_equal(sd[k], before[k])
    sd["0.bias"][:] = 100.0  # and writing into the snapshot leaves the model alone
    assert not np.any(model[0].bias.data == 100.0)


def test_load_state_dict_round_trip_gives_identical_outputs_and_keeps_parameters():
    tg.manual_seed(1)
    source = mlp()
    tg.manual_seed(2)
    target = mlp()
    x = const(rng().normal(size=(5, 2)))
    assert not np.array_equal(source(x).data, target(x).data)
    params = list(target.parameters())
    arrays = [p.data for p in params]
    sd = source.state_dict()
    result = target.load_state_dict(sd)
    assert list(result.missing_keys) == [] and list(result.unexpected_keys) == []
    missing, unexpected = result  # a namedtuple
    assert list(missing) == [] and list(unexpected) == []
    np.testing.assert_array_equal(target(x).data, source(x).data)
    assert all(p is q for p, q in zip(target.parameters(), params))
    assert all(p.data is a for p, a in zip(params, arrays))  # copied INTO the existing arrays
    sd["0.weight"][:] = 0.0  # the model does not alias the loaded arrays
    assert np.any(target[0].weight.data != 0)


@pytest.mark.parametrize("convert", [tg.Tensor, np.ndarray.tolist, lambda a: a.astype(np.float64)],
                         ids=["tensor", "list", "float64"])
def test_load_state_dict_accepts_tensors_and_lists_and_casts_to_parameter_dtype(convert):
    source, target = mlp(), mlp()
    target.load_state_dict({k: convert(v) for k, v in source.state_dict().items()})
    for p, q in zip(source.parameters(), target.parameters()):
        assert q.dtype == np.float32
        np.testing.assert_array_equal(q.data, p.data)


def assert_unchanged(model, snapshot):
    for name, p in model.named_parameters():
        np.testing.assert_array_equal(p.data, snapshot[name], err_msg=name)


def check_state_dict_error(model, sd, *fragments, strict=True):
    snapshot = model.state_dict()
    for error_type in (nn.StateDictError, RuntimeError, ValueError):
        with pytest.raises(error_type) as info:
            model.load_state_dict(sd, strict=strict)
        for fragment in fragments:
            assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"
        assert_unchanged(model, snapshot)


def test_state_dict_error_is_both_runtime_and_value_error():
    assert issubclass(nn.StateDictError, RuntimeError) and issubclass(nn.StateDictError, ValueError)


def test_missing_keys_raise_naming_each_and_modify_nothing():
    model = mlp()
    sd = mlp().state_dict()  # different values: a partial load would show
    del sd["2.bias"], sd["0.weight"]
    check_state_dict_error(model, sd, "2.bias", "0.weight")


def test_unexpected_key_raises_naming_it():
    model = mlp()
    sd = mlp().state_dict()
    sd["3.weight"] = np.zeros((1, 1), dtype=np.float32)
    check_state_dict_error(model, sd, "3.weight")


@pytest.mark.parametrize("strict", [True, False])
def test_shape_mismatch_raises_naming_key_and_both_shapes(strict):
    model = mlp()
    sd = mlp().state_dict()  # the earlier keys are valid and must not be loaded either
    sd["2.weight"] = np.zeros((3, 1), dtype=np.float32)
    check_state_dict_error(model, sd, "2.weight", "(3, 1)", "(1, 3)", strict=strict)


def test_non_strict_load_reports_missing_and_unexpected_keys_and_loads_the_rest():
    model, source = mlp(), mlp()
    sd = source.state_dict()
    del sd["2.bias"]
    sd["extra"] = np.ones(2, dtype=np.float32)
    old_bias = model[2].bias.data.copy()
    result = model.load_state_dict(sd, strict=False)
    assert list(result.missing_keys) == ["2.bias"]
    assert list(result.unexpected_keys) == ["extra"]
    np.testing.assert_array_equal(model[0].weight.data, source[0].weight.data)
    np.testing.assert_array_equal(model[2].bias.data, old_bias)


# ---- repr -----------------------------------------------------------------------------------
def test_sequential_repr_is_pytorchs_tree():
    model = nn.Sequential(nn.Linear(2, 3), nn.Sigmoid(), nn.Dropout(0.25), nn.Linear(3, 1, bias=False))
    assert repr(model) == (
        "Sequential(\n"
        "  (0): Linear(in_features=2, out_features=3, bias=True)\n"
        "  (1): Sigmoid()\n"
        "  (2): Dropout(p=0.25)\n"
        "  (3): Linear(in_features=3, out_features=1, bias=False)\n"
        ")"
    )


def test_nested_custom_module_repr_indents_each_level():
    assert repr(Net(head_bias=False)) == (
        "Net(\n"
        "  (body): Sequential(\n"
        "    (0): Linear(in_features=2, out_features=3, bias=True)\n"
        "    (1): Tanh()\n"
        "  )\n"
        "  (head): Linear(in_features=3, out_features=1, bias=False)\n"
        ")"
    )


@pytest.mark.parametrize("module, text", [
    (nn.LeakyReLU(), "LeakyReLU(negative_slope=0.01)"),
    (nn.Dropout(), "Dropout(p=0.5)"),
    (nn.Softmax(), "Softmax(axis=-1)"),
    (nn.LogSoftmax(axis=0), "LogSoftmax(axis=0)"),
    (nn.Flatten(), "Flatten(start_axis=1, end_axis=-1)"),
    (nn.ReLU(), "ReLU()"),
    (nn.Identity(), "Identity()"),
    (nn.MSELoss(), "MSELoss()"),
    (nn.CrossEntropyLoss(), "CrossEntropyLoss()"),
], ids=lambda v: v if isinstance(v, str) else "m")
def test_leaf_module_repr(module, text):
    assert repr(module) == text


# ---- forward hooks --------------------------------------------------------------------------
def test_forward_hook_sees_module_inputs_and_output():
    model = mlp()
    seen = []
    model[0].register_forward_hook(lambda module, inputs, output: seen.append((module, inputs, output)))
    x = const(rng().normal(size=(4, 2)))
    model(x)
    assert len(seen) == 1
    module, inputs, output = seen[0]
    assert module is model[0]
    assert isinstance(inputs, tuple) and len(inputs) == 1 and inputs[0] is x
    np.testing.assert_allclose(output.data, x.data @ model[0].weight.data.T + model[0].bias.data, rtol=1e-6)


def test_forward_hook_return_value_replaces_output_until_removed():
    model = mlp()
    x = const(rng().normal(size=(4, 2)))
    plain = model(x).data
    handle = model[1].register_forward_hook(lambda module, inputs, output: output * 0.0)
    np.testing.assert_array_equal(model(x).data, np.broadcast_to(model[2].bias.data, (4, 1)))
    handle.remove()
    np.testing.assert_array_equal(model(x).data, plain)


def test_forward_hook_returning_none_keeps_output():
    model = mlp()
    x = const(rng().normal(size=(4, 2)))
    plain = model(x).data
    calls = []
    model.register_forward_hook(lambda module, inputs, output: calls.append(1))
    np.testing.assert_array_equal(model(x).data, plain)
    assert calls == [1]


# ---- Linear -----------------------------------------------------------------------------------
@pytest.mark.parametrize("batch", [(), (5,), (2, 4)], ids=str)
def test_linear_is_x_times_weight_transposed_plus_bias(batch):
    layer = nn.Linear(3, 2)
    assert layer.weight.shape == (2, 3) and layer.bias.shape == (2,)
    assert isinstance(layer.weight, nn.Parameter) and isinstance(layer.bias, nn.Parameter)
    assert layer.weight.dtype == np.float32 and layer.in_features == 3 and layer.out_features == 2
    x = rng().normal(size=batch + (3,)).astype(np.float32)
    out = layer(tg.Tensor(x))
    assert out.shape == batch + (2,) and out.dtype == np.float32
    np.testing.assert_allclose(out.data, x @ layer.weight.data.T + layer.bias.data, rtol=1e-5, atol=1e-6)


def test_linear_without_bias():
    layer = nn.Linear(4, 3, bias=False)
    assert layer.bias is None
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    x = rng().normal(size=(6, 4)).astype(np.float32)
    np.testing.assert_allclose(layer(tg.Tensor(x)).data, x @ layer.weight.data.T, rtol=1e-5, atol=1e-6)


def test_linear_follows_dtype_and_default_dtype():
    assert nn.Linear(2, 2, dtype=np.float64).weight.dtype == np.float64
    tg.set_default_dtype(np.float64)
    layer = nn.Linear(2, 2)
    assert layer.weight.dtype == np.float64 and layer.bias.dtype == np.float64


def test_linear_default_init_fills_plus_minus_one_over_sqrt_in_features():
    tg.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / np.sqrt(400)
    w, b = np.abs(layer.weight.data), np.abs(layer.bias.data)
    assert w.max() <= bound * (1 + 1e-6) and b.max() <= bound * (1 + 1e-6)
    assert w.max() > 0.99 * bound and b.max() > 0.95 * bound  # spread, not squeezed
    assert layer.weight.data.std() == pytest.approx(bound / np.sqrt(3), rel=0.02)  # uniform
    assert abs(layer.weight.data.mean()) < 0.02 * bound


def test_linear_init_is_reproducible_with_manual_seed():
    tg.manual_seed(7)
    a = nn.Linear(3, 4)
    tg.manual_seed(7)
    b = nn.Linear(3, 4)
    c = nn.Linear(3, 4)
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    np.testing.assert_array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(b.weight.data, c.weight.data)


# ---- Sequential -------------------------------------------------------------------------------
def test_sequential_applies_modules_in_order():
    model = mlp()
    x = rng().normal(size=(4, 2)).astype(np.float32)
    hidden = np.tanh(x @ model[0].weight.data.T + model[0].bias.data)
    expected = hidden @ model[2].weight.data.T + model[2].bias.data
    np.testing.assert_allclose(model(tg.Tensor(x)).data, expected, rtol=1e-5, atol=1e-6)


def test_sequential_indexing_iteration_and_len():
    layers = [nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1), nn.Sigmoid()]
    model = nn.Sequential(*layers)
    assert len(model) == 4
    assert model[0] is layers[0] and model[2] is layers[2]
    assert model[-1] is layers[3] and model[-4] is layers[0]
    assert [m is layer for m, layer in zip(model, layers)] == [True] * 4
    tail = model[1:]
    assert isinstance(tail, nn.Sequential) and len(tail) == 3
    assert [m is layer for m, layer in zip(tail, layers[1:])] == [True] * 3
    stepped = model[::2]
    assert isinstance(stepped, nn.Sequential) and [m is layer for m, layer in zip(stepped, layers[::2])] == [True] * 2
    assert len(list(stepped.parameters())) == 4
    with pytest.raises(IndexError):
        model[4]


def test_sequential_append_registers_the_module():
    model = nn.Sequential(nn.Linear(2, 3))
    extra = nn.Linear(3, 1)
    model.append(nn.Tanh())
    model.append(extra)
    assert len(model) == 3 and model[2] is extra
    assert [name for name, _ in model.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert model(const(np.ones((5, 2)))).shape == (5, 1)


def test_sequential_from_a_dict_uses_its_names():
    model = nn.Sequential({"hidden": nn.Linear(2, 3), "act": nn.ReLU(), "out": nn.Linear(3, 1)})
    assert [name for name, _ in model.named_parameters()] == ["hidden.weight", "hidden.bias", "out.weight", "out.bias"]
    assert model.hidden is model[0] and len(model) == 3


# ---- activations and shape layers ---------------------------------------------------------------
def np_softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def np_log_softmax(x, axis):
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


@pytest.mark.parametrize("module, ref", [
    (nn.Sigmoid(), lambda x: 1 / (1 + np.exp(-x))),
    (nn.Tanh(), np.tanh),
    (nn.ReLU(), lambda x: np.maximum(x, 0)),
    (nn.LeakyReLU(), lambda x: np.where(x > 0, x, 0.01 * x)),
    (nn.LeakyReLU(negative_slope=0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    (nn.Softmax(), lambda x: np_softmax(x, -1)),
    (nn.Softmax(axis=0), lambda x: np_softmax(x, 0)),
    (nn.LogSoftmax(), lambda x: np_log_softmax(x, -1)),
    (nn.LogSoftmax(axis=1), lambda x: np_log_softmax(x, 1)),
    (nn.Identity(), lambda x: x),
], ids=["sigmoid", "tanh", "relu", "leaky", "leaky0.2", "softmax", "softmax0", "logsoftmax", "logsoftmax1",
        "identity"])
def test_activation_matches_numpy(module, ref):
    x = rng().normal(scale=3.0, size=(3, 4, 5))
    out = module(tg.Tensor(x))
    assert out.shape == x.shape and out.dtype == np.float64
    np.testing.assert_allclose(out.data, ref(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kwargs, shape", [
    ({}, (2, 60)),
    ({"start_axis": 0}, (120,)),
    ({"start_axis": 1, "end_axis": 2}, (2, 12, 5)),
    ({"start_axis": 2}, (2, 3, 20)),
], ids=str)
def test_flatten_matches_numpy_reshape(kwargs, shape):
    x = rng().normal(size=(2, 3, 4, 5))
    out = nn.Flatten(**kwargs)(tg.Tensor(x))
    np.testing.assert_array_equal(out.data, x.reshape(shape))


def test_activation_modules_pass_gradients():
    x = leaf(rng().normal(size=(3, 4)), dtype=np.float64)
    nn.Sigmoid()(x).sum().backward()
    s = 1 / (1 + np.exp(-x.data))
    np.testing.assert_allclose(x.grad.data, s * (1 - s), rtol=1e-10)


# ---- Dropout ------------------------------------------------------------------------------------
def test_dropout_is_identity_in_eval_mode():
    drop = nn.Dropout(0.5).eval()
    x = rng().normal(size=(50, 40)).astype(np.float32)
    np.testing.assert_array_equal(drop(tg.Tensor(x)).data, x)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_dropout_zeroes_a_fraction_p_and_scales_survivors_by_one_over_one_minus_p(p):
    tg.manual_seed(0)
    x = rng().uniform(0.5, 2.0, size=(1000, 1000)).astype(np.float32)  # no zeros of its own
    out = nn.Dropout(p)(tg.Tensor(x)).data
    assert out.shape == x.shape and out.dtype == np.float32
    dropped = out == 0
    n = x.size
    assert abs(dropped.mean() - p) < 5 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(out[~dropped], x[~dropped] / (1 - p), rtol=1e-6)


def test_dropout_is_reproducible_with_manual_seed():
    x = tg.Tensor(np.ones((30, 30), dtype=np.float32))
    drop = nn.Dropout(0.5)
    tg.manual_seed(3)
    first = drop(x).data
    tg.manual_seed(3)
    again = drop(x).data
    other = drop(x).data  # the generator moved on: a new mask
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_dropout_gradient_uses_the_same_mask():
    tg.manual_seed(1)
    x = leaf(rng().uniform(0.5, 2.0, size=(40, 50)))
    out = nn.Dropout(0.3)(x)
    upstream = rng().normal(size=x.shape).astype(np.float32)
    out.backward(upstream)
    kept = out.data != 0
    assert 0 < kept.mean() < 1
    np.testing.assert_allclose(x.grad.data, np.where(kept, upstream / 0.7, 0.0), rtol=1e-6)


def test_dropout_p_zero_is_identity_and_p_one_gives_zeros():
    x = leaf(rng().normal(size=(20, 20)))
    np.testing.assert_array_equal(nn.Dropout(0.0)(x).data, x.data)
    out = nn.Dropout(1.0)(x)
    np.testing.assert_array_equal(out.data, 0.0)  # zeros, not nan
    out.backward(np.ones(x.shape, dtype=np.float32))
    np.testing.assert_array_equal(x.grad.data, 0.0)


@pytest.mark.parametrize("p", [-0.1, 1.5])
def test_dropout_rejects_p_outside_zero_one(p):
    with pytest.raises(ValueError):
        nn.Dropout(p)


def test_model_eval_switches_dropout_off():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.9))
    x = const(np.ones((8, 4)))
    model.eval()
    np.testing.assert_array_equal(model(x).data, model[0](x).data)


# ---- loss modules -------------------------------------------------------------------------------
def loss_cases():
    r = rng(5)
    logits = r.normal(size=(6, 4))
    labels = np.array([0, 3, 1, 1, 2, 0])
    probs_target = np_softmax(r.normal(size=(6, 4)), -1)
    p = r.uniform(0.05, 0.95, size=(6, 3))
    bits = (r.uniform(size=(6, 3)) > 0.5).astype(np.float64)
    x = r.normal(size=(6, 3))
    y = r.normal(size=(6, 3))
    log_p = np_log_softmax(logits, -1)
    return [
        ("mse", nn.MSELoss, F.mse_loss, x, y, (x - y) ** 2),
        ("ce_labels", nn.CrossEntropyLoss, F.cross_entropy, logits, labels, -log_p[np.arange(6), labels]),
        ("ce_probs", nn.CrossEntropyLoss, F.cross_entropy, logits, probs_target, -(probs_target * log_p).sum(1)),
        ("nll", nn.NLLLoss, F.nll_loss, log_p, labels, -log_p[np.arange(6), labels]),
        ("bce", nn.BCELoss, F.binary_cross_entropy, p, bits, -(bits * np.log(p) + (1 - bits) * np.log(1 - p))),
        ("bce_logits", nn.BCEWithLogitsLoss, F.binary_cross_entropy_with_logits, x, p,
         -(p * np.log(1 / (1 + np.exp(-x))) + (1 - p) * np.log(1 - 1 / (1 + np.exp(-x))))),
    ]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("case", loss_cases(), ids=lambda c: c[0])
def test_loss_module_equals_its_function_and_numpy(case, reduction):
    _, module_class, function, input_array, target_array, per_sample = case
    inputs, target = tg.Tensor(input_array), tg.Tensor(target_array)
    got = module_class(reduction=reduction)(inputs, target)
    np.testing.assert_allclose(got.data, function(inputs, target, reduction=reduction).data, rtol=1e-12)
    expected = {"mean": per_sample.mean(), "sum": per_sample.sum(), "none": per_sample}[reduction]
    np.testing.assert_allclose(got.data, expected, rtol=1e-10)


def test_loss_module_default_reduction_is_mean():
    x, y = rng().normal(size=(5, 2)), rng(1).normal(size=(5, 2))
    np.testing.assert_allclose(nn.MSELoss()(tg.Tensor(x), tg.Tensor(y)).item(), ((x - y) ** 2).mean())


def test_cross_entropy_is_an_alias_of_cross_entropy_loss():
    assert nn.CrossEntropy is nn.CrossEntropyLoss


def test_loss_module_rejects_unknown_reduction():
    x = tg.Tensor(np.ones(3))
    with pytest.raises(ValueError, match="mean"):
        nn.MSELoss(reduction="average")(x, x)


# ---- gradients through a model -------------------------------------------------------------------
def test_gradient_reaches_every_parameter_of_an_mlp():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    x = const(rng().normal(size=(16, 4)))
    labels = tg.Tensor(rng().integers(0, 3, size=16))
    nn.CrossEntropyLoss()(model(x), labels).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert p.grad.shape == p.shape and p.grad.dtype == p.dtype, name
        assert np.any(p.grad.data != 0), name


def test_mlp_gradients_agree_with_central_differences_in_float64():
    tg.set_default_dtype(np.float64)
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))
    loss_fn = nn.MSELoss()
    x = tg.Tensor(rng(1).normal(size=(6, 3)), requires_grad=True)
    target = tg.Tensor(rng(2).normal(size=(6, 2)))
    assert tg.gradcheck(lambda inp: loss_fn(model(inp), target), [x])  # through every module

    weight = model[0].weight  # a parameter inside the model: perturb it where it lives
    assert weight.dtype == np.float64
    loss_fn(model(x), target).backward()
    original = weight.data.copy()

    def loss_at(w):
        weight.data[...] = w
        with tg.no_grad():
            return loss_fn(model(x), target).item()

    (numeric,) = numeric_grad(loss_at, [original])
    weight.data[...] = original
    np.testing.assert_allclose(weight.grad.data, numeric, rtol=1e-5, atol=1e-9)


def test_zero_grad_without_set_to_none_zeroes_the_same_array_in_place():
    model = nn.Linear(3, 2)
    model(tg.ones(4, 3)).sum().backward()
    held = model.weight.grad
    model.zero_grad(set_to_none=False)
    assert model.weight.grad is held
    np.testing.assert_array_equal(held.data, np.zeros((2, 3)))


def test_forward_hook_handle_works_as_a_context_manager():
    layer = nn.Identity()
    seen = []
    with layer.register_forward_hook(lambda module, inputs, output: seen.append(output)):
        layer(1.0)
    layer(2.0)
    assert seen == [1.0]


def test_train_mode_must_be_a_bool():
    with pytest.raises(ValueError, match="True or False"):
        nn.Linear(2, 2).train("no")


def test_loss_module_options_are_keywords():
    # PyTorch's first positional parameter is `size_average` (CrossEntropyLoss: `weight`, which it
    # takes in that place too), never `reduction`
    with pytest.raises(TypeError):
        nn.MSELoss("sum")
    with pytest.raises(TypeError):
        nn.CrossEntropyLoss(None, "sum")
    assert nn.MSELoss(reduction="sum").reduction == "sum"
    assert nn.CrossEntropyLoss(np.array([1.0, 2.0])).weight.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_keeps_the_input_dtype(dtype):
    tg.manual_seed(0)
    x = tg.Tensor(np.ones((50, 40), dtype=dtype), requires_grad=True)
    out = nn.Dropout(0.3)(x)
    assert out.dtype == dtype
    out.sum().backward()
    assert x.grad.dtype == dtype
    np.testing.assert_array_equal(x.grad.data, out.data)  # the gradient is the scaled mask


def test_append_after_slicing_never_reuses_a_name():
    net = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 2))
    tail = net[1:].append(nn.ReLU())  # keeps the names "1" and "2"
    assert [name for name, _ in tail.named_children()] == ["1", "2", "3"]
    assert isinstance(tail[-1], nn.ReLU) and isinstance(tail[1], nn.Linear)


def test_swapaxes_out_of_range_names_the_axis():
    with pytest.raises(ValueError, match=r"axis 5 is out of range for a tensor of shape \(2, 3\)"):
        tg.Tensor(np.zeros((2, 3))).swapaxes(0, 5)


def test_linear_with_the_wrong_input_width_says_what_the_layer_takes():
    with pytest.raises(ValueError) as error:
        nn.Linear(400, 25)(tg.Tensor(np.ones((200, 25))))
    message = str(error.value)
    assert "(25, 400)" in message and "400 features" in message and "(200, 25)" in message
    assert "x @ y.T" not in message  # a matrix-product hint would not fit a layer call


def test_a_read_only_parameter_is_refused_before_anything_is_loaded():
    model = nn.Sequential(*(nn.Linear(2, 2) for _ in range(4)))
    model[2].weight.data = np.broadcast_to(np.float32(1), (2, 2))  # a read-only view
    sd = {key: np.full(value.shape, 7.0) for key, value in model.state_dict().items()}
    check_state_dict_error(model, sd, "'2.weight' holds a read-only array")


def test_a_cast_that_fails_changes_nothing(recwarn):
    import warnings

    model = nn.Sequential(*(nn.Linear(2, 2) for _ in range(4)))  # float32
    sd = {key: np.full(value.shape, 7.0) for key, value in model.state_dict().items()}
    sd["3.bias"] = np.full(2, 1e300)  # overflows float32: an error under this warnings filter
    snapshot = model.state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(RuntimeWarning, match="overflow"):
            model.load_state_dict(sd)
    assert_unchanged(model, snapshot)
