"""An outsider's parity campaign: nn layers' initialisation and the Module API against PyTorch.

Initial values are random, so they are checked against PyTorch's formulas (bounds, standard
deviations, gains) on tensors large enough for the statistics to be tight; the Module API
against the names and orders PyTorch 2.13.0 gives for the same model, written here as literals.
"""
import math

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn
from tinygrad_edu.nn import init


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 4)
        self.act = nn.ReLU()
        self.bn = nn.BatchNorm1d(4)

    def forward(self, x):
        return self.bn(self.act(self.fc(x)))


class Net(nn.Module):
    """A block registered under two names, and a weight shared by two layers."""

    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2))
        self.shared = self.block
        self.tied = nn.Linear(4, 4, bias=False)
        self.tied.weight = self.head[0].weight


# ---- the Module API: what PyTorch 2.13.0 lists for Net ------------------------------------------
def test_a_module_registered_twice_is_one_child_as_in_pytorch():
    net = Net()
    assert [name for name, _ in net.named_children()] == ["block", "head", "tied"]
    assert len(list(net.children())) == 3


def test_apply_visits_a_shared_module_once_children_first_as_in_pytorch():
    visited = []
    Net().apply(lambda module: visited.append(type(module).__name__))
    assert visited == ["Linear", "ReLU", "BatchNorm1d", "Block", "Linear", "Tanh", "Linear", "Sequential",
                       "Linear", "Net"]


def test_names_and_orders_are_pytorchs():
    net = Net()
    assert [name for name, _ in net.named_modules()] == [
        "", "block", "block.fc", "block.act", "block.bn", "head", "head.0", "head.1", "head.2", "tied"]
    assert [name for name, _ in net.named_modules(remove_duplicate=False)] == [
        "", "block", "block.fc", "block.act", "block.bn", "head", "head.0", "head.1", "head.2",
        "shared", "shared.fc", "shared.act", "shared.bn", "tied"]
    # the tied weight is listed once, under its first name: an optimizer must not update it twice
    assert [name for name, _ in net.named_parameters()] == [
        "block.fc.weight", "block.fc.bias", "block.bn.weight", "block.bn.bias",
        "head.0.weight", "head.0.bias", "head.2.weight", "head.2.bias"]
    assert len(list(net.parameters())) == 8
    assert [name for name, _ in net.named_buffers()] == [
        "block.bn.running_mean", "block.bn.running_var", "block.bn.num_batches_tracked"]
    # a state dict, though, has every name under which a value is reachable
    assert list(net.state_dict()) == [
        "block.fc.weight", "block.fc.bias", "block.bn.weight", "block.bn.bias", "block.bn.running_mean",
        "block.bn.running_var", "block.bn.num_batches_tracked", "head.0.weight", "head.0.bias",
        "head.2.weight", "head.2.bias", "shared.fc.weight", "shared.fc.bias", "shared.bn.weight",
        "shared.bn.bias", "shared.bn.running_mean", "shared.bn.running_var",
        "shared.bn.num_batches_tracked", "tied.weight"]


def test_a_state_dict_with_shared_values_loads_back():
    source, target = Net(), Net()
    target.load_state_dict(source.state_dict())
    for (name, mine), (_, theirs) in zip(target.named_parameters(), source.named_parameters()):
        assert np.array_equal(mine.numpy(), theirs.numpy()), name
    assert target.tied.weight is target.head[0].weight


def test_train_and_eval_reach_every_module_and_return_it():
    net = Net()
    assert net.eval() is net and not any(module.training for module in net.modules())
    assert net.train() is net and all(module.training for module in net.modules())


def test_sequential_and_module_list_index_and_name_like_pytorch():
    head = Net().head
    assert len(head) == 3 and isinstance(head[-1], nn.Linear)
    assert isinstance(head[1:], nn.Sequential) and len(head[1:]) == 2
    assert list(nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)).state_dict()) == [
        "0.weight", "0.bias", "2.weight", "2.bias"]
    holder = nn.Module()
    holder.layers = nn.ModuleList([nn.Linear(1, 1), nn.Linear(1, 1)])
    assert list(holder.state_dict()) == [
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias"]


def test_defaults_are_pytorchs():
    assert repr(nn.Linear(3, 2)) == "Linear(in_features=3, out_features=2, bias=True)"
    norm = nn.BatchNorm1d(3)
    assert (norm.eps, norm.momentum) == (1e-5, 0.1)
    assert list(norm.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    assert nn.Dropout().p == 0.5 and nn.LeakyReLU().negative_slope == 0.01
    layer = nn.Linear(2, 1)
    layer(tg.ones(1, 2)).sum().backward()
    layer.zero_grad()
    assert layer.weight.grad is None  # set_to_none=True is the default since PyTorch 2.0


# ---- initialisation -----------------------------------------------------------------------------
# PyTorch 2.13.0's nn.init.calculate_gain
GAINS = [("linear", None, 1.0), ("conv2d", None, 1.0), ("conv_transpose2d", None, 1.0),
         ("sigmoid", None, 1.0), ("tanh", None, 5 / 3), ("relu", None, math.sqrt(2)), ("selu", None, 0.75),
         ("leaky_relu", None, 1.4141428569978354), ("leaky_relu", 0.2, 1.3867504905630728),
         ("leaky_relu", 0, math.sqrt(2))]


@pytest.mark.parametrize("nonlinearity, param, gain", GAINS)
def test_calculate_gain_is_pytorchs(nonlinearity, param, gain):
    assert init.calculate_gain(nonlinearity, param) == pytest.approx(gain, rel=1e-15)


@pytest.mark.parametrize("nonlinearity", ["softmax", "gelu"])
def test_calculate_gain_refuses_what_pytorch_refuses(nonlinearity):
    with pytest.raises(ValueError):
        init.calculate_gain(nonlinearity)


def assert_uniform(values, bound):
    """Samples of U(-bound, bound): inside it, reaching near its ends, with its std bound / sqrt(3)."""
    values = np.asarray(values)
    assert np.abs(values).max() <= bound and np.abs(values).max() > 0.99 * bound
    assert values.std() == pytest.approx(bound / math.sqrt(3), rel=0.03)


def test_linear_and_conv2d_start_as_pytorchs():
    # kaiming_uniform_(a=sqrt(5)) gives bound 1 / sqrt(fan_in) for the weight; the bias uses the same bound
    tg.manual_seed(0)
    assert_uniform(nn.Linear(400, 300).weight.numpy(), 1 / math.sqrt(400))
    assert_uniform(nn.Linear(400, 3000).bias.numpy(), 1 / math.sqrt(400))
    assert_uniform(nn.Conv2d(16, 32, 3).weight.numpy(), 1 / math.sqrt(16 * 9))
    assert_uniform(nn.Conv2d(16, 3000, 3).bias.numpy(), 1 / math.sqrt(16 * 9))


SHAPE = (64, 32, 3, 3)  # fan_in 32 * 9, fan_out 64 * 9, as PyTorch counts a conv weight's fans
FAN = {"fan_in": 32 * 9, "fan_out": 64 * 9}


@pytest.mark.parametrize("mode", ["fan_in", "fan_out"])
@pytest.mark.parametrize("nonlinearity, a", [("relu", 0), ("leaky_relu", 0.3), ("tanh", 0)])
def test_kaiming_bounds_and_std_are_pytorchs(mode, nonlinearity, a):
    tg.manual_seed(1)
    std = init.calculate_gain(nonlinearity, a) / math.sqrt(FAN[mode])
    assert_uniform(init.kaiming_uniform_(tg.zeros(*SHAPE), a=a, mode=mode, nonlinearity=nonlinearity).numpy(),
                   math.sqrt(3) * std)
    normal = init.kaiming_normal_(tg.zeros(*SHAPE), a=a, mode=mode, nonlinearity=nonlinearity).numpy()
    assert normal.std() == pytest.approx(std, rel=0.03)


def test_kaiming_uniform_default_is_leaky_relu_with_slope_0():
    tg.manual_seed(2)
    assert_uniform(init.kaiming_uniform_(tg.zeros(300, 400)).numpy(), math.sqrt(2) * math.sqrt(3 / 400))


def test_xavier_bounds_and_std_are_pytorchs():
    tg.manual_seed(3)
    fans = FAN["fan_in"] + FAN["fan_out"]
    assert_uniform(init.xavier_uniform_(tg.zeros(*SHAPE), gain=2.0).numpy(), 2.0 * math.sqrt(6 / fans))
    assert init.xavier_normal_(tg.zeros(*SHAPE), gain=2.0).numpy().std() == pytest.approx(
        2.0 * math.sqrt(2 / fans), rel=0.03)


@pytest.mark.parametrize("fill", [init.xavier_uniform_, init.kaiming_uniform_])
def test_fans_of_a_1d_tensor_are_refused_as_in_pytorch(fill):
    with pytest.raises(ValueError):
        fill(tg.zeros(5))


# ---- gradient clipping (torch.nn.utils) ---------------------------------------------------------
def with_grads():
    a = tg.Tensor(np.zeros((2, 2)), requires_grad=True)
    b = tg.Tensor(np.zeros(3), requires_grad=True)
    a.grad = tg.Tensor(np.array([[3.0, -4.0], [0.0, 12.0]]))
    b.grad = tg.Tensor(np.array([1.0, -2.0, 2.0]))
    return a, b


# (norm_type, PyTorch 2.13.0's total norm, a.grad and b.grad after clip_grad_norm_(max_norm=5))
CLIPPED = [
    (2.0, 13.341664064126334, [[1.1242974492241358, -1.499063265632181], [0.0, 4.497189796896543]],
     [0.37476581640804524, -0.7495316328160905, 0.7495316328160905]),
    (1.0, 24.0, [[0.6249999739583344, -0.8333332986111125], [0.0, 2.4999998958333376]],
     [0.20833332465277812, -0.41666664930555625, 0.41666664930555625]),
    (math.inf, 12.0, [[1.249999895833342, -1.6666665277777895], [0.0, 4.999999583333368]],
     [0.41666663194444736, -0.8333332638888947, 0.8333332638888947]),
    (3.0, 12.244965305752041, [[1.2249931625335537, -1.633324216711405], [0.0, 4.899972650134215]],
     [0.40833105417785126, -0.8166621083557025, 0.8166621083557025]),
]


@pytest.mark.parametrize("norm_type, total, a_grad, b_grad", CLIPPED)
def test_clip_grad_norm_scales_all_gradients_together_as_pytorch(norm_type, total, a_grad, b_grad):
    a, b = with_grads()
    norm = nn.utils.clip_grad_norm_([a, b], 5.0, norm_type=norm_type)
    assert isinstance(norm, tg.Tensor) and norm.shape == () and norm.item() == pytest.approx(total, rel=1e-14)
    np.testing.assert_allclose(a.grad.numpy(), a_grad, rtol=1e-14)
    np.testing.assert_allclose(b.grad.numpy(), b_grad, rtol=1e-14)


def test_clip_grad_norm_leaves_small_gradients_and_skips_missing_ones():
    a, b = with_grads()
    unused = tg.Tensor(np.zeros(2), requires_grad=True)
    assert nn.utils.clip_grad_norm_([a, b, unused], 100.0).item() == pytest.approx(13.341664064126334)
    assert a.grad.numpy().tolist() == [[3.0, -4.0], [0.0, 12.0]] and unused.grad is None
    assert nn.utils.clip_grad_norm_([unused], 1.0).item() == 0.0  # nothing to clip: PyTorch's tensor(0.)


def test_clip_grad_norm_takes_one_tensor_and_keeps_float32():
    weight = tg.Tensor(np.zeros(2, dtype=np.float32), requires_grad=True)
    weight.grad = tg.Tensor(np.array([3.0, 4.0], dtype=np.float32))
    norm = nn.utils.clip_grad_norm_(weight, 1.0)
    assert norm.dtype == np.float32 and weight.grad.dtype == np.float32
    np.testing.assert_allclose(weight.grad.numpy(), [0.6, 0.8], rtol=1e-6)  # PyTorch: [0.59999990, 0.79999983]


def test_clip_grad_norm_of_a_nonfinite_norm_spreads_nan_or_raises_when_asked():
    a, b = with_grads()
    b.grad.data[0] = np.nan
    assert np.isnan(nn.utils.clip_grad_norm_([a, b], 5.0).item())
    assert np.isnan(a.grad.numpy()).all()  # as PyTorch: every gradient is multiplied by a NaN scale
    a, b = with_grads()
    b.grad.data[0] = np.inf
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_([a, b], 5.0, error_if_nonfinite=True)
    assert a.grad.numpy().tolist() == [[3.0, -4.0], [0.0, 12.0]]  # refused: nothing changed


def test_clip_grad_value_clamps_each_element_as_pytorch():
    a, b = with_grads()
    assert nn.utils.clip_grad_value_([a, b], 2.5) is None
    assert a.grad.numpy().tolist() == [[2.5, -2.5], [0.0, 2.5]]
    assert b.grad.numpy().tolist() == [1.0, -2.0, 2.0]


def test_clipping_after_a_backward_of_broadcast_gradients_works():
    # the gradient of a sum is a read-only broadcast view: clipping must not write into it
    x = tg.Tensor(np.zeros((2, 3)), requires_grad=True)
    (x * 1.0).sum().backward()
    nn.utils.clip_grad_norm_([x], 1.0)
    np.testing.assert_allclose(x.grad.numpy(), np.full((2, 3), 1 / math.sqrt(6)), rtol=1e-5)
    nn.utils.clip_grad_value_([x], 0.1)
    assert x.grad.numpy().tolist() == [[0.1] * 3] * 2
