"""Outsider campaign: empty and one-sample batches through models, losses, optimizers and BatchNorm.

An empty batch (the tail of a filtered data set) goes through training as in PyTorch: an empty
output, and no statistic learned from nothing.
"""
import numpy as np
import pytest

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import Tensor, nn, optim


def _mlp():
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))


def _cnn():
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(8, 3))


@pytest.mark.parametrize("make, sample_shape", [(_mlp, (4,)), (_cnn, (1, 4, 4))], ids=["mlp", "cnn"])
def test_an_empty_batch_trains_nothing_and_learns_no_running_statistics(make, sample_shape):
    tg.manual_seed(0)
    model = make()
    batch_norm = model[1]
    mean_before, var_before = batch_norm.running_mean.numpy().copy(), batch_norm.running_var.numpy().copy()
    x = Tensor(np.zeros((0,) + sample_shape, np.float32))
    out = model(x)
    assert out.shape == (0, 3)
    loss = F.cross_entropy(out, np.zeros(0, int), reduction="sum")
    loss.backward()
    assert loss.item() == 0.0
    for p in model.parameters():
        np.testing.assert_array_equal(p.grad.numpy(), 0.0)
    np.testing.assert_array_equal(batch_norm.running_mean.numpy(), mean_before)
    np.testing.assert_array_equal(batch_norm.running_var.numpy(), var_before)


def test_batch_norm_of_an_empty_batch_is_empty_and_still_scaled_by_its_weight():
    x = Tensor(np.zeros((0, 3), np.float64), requires_grad=True)
    weight = Tensor(np.ones(3), requires_grad=True)
    out = F.batch_norm(x, np.zeros(3), np.ones(3), weight, np.zeros(3), training=True)
    assert out.shape == (0, 3)
    out.sum().backward()
    assert x.grad.shape == (0, 3)
    np.testing.assert_array_equal(weight.grad.numpy(), 0.0)


def test_one_value_per_channel_in_training_is_still_refused_as_pytorch_does():
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        nn.BatchNorm1d(3)(Tensor(np.ones((1, 3))))


@pytest.mark.parametrize("optimizer", [optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop])
def test_optimizers_step_over_a_one_sample_batch_like_any_other(optimizer):
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    opt = optimizer(model.parameters(), lr=0.01)
    before = [p.numpy().copy() for p in model.parameters()]
    loss = F.cross_entropy(model(Tensor(np.ones((1, 4), np.float32))), [1])
    loss.backward()
    opt.step()
    assert all(np.isfinite(p.numpy()).all() for p in model.parameters())
    assert any(not np.array_equal(b, p.numpy()) for b, p in zip(before, model.parameters()))


@pytest.mark.parametrize("optimizer", [optim.SGD, optim.Adam, optim.AdamW, optim.RMSprop])
@pytest.mark.parametrize("grad_shape", [(1, 3), (3,), (2, 1)])
def test_a_gradient_of_another_shape_is_refused_not_broadcast_over_the_parameter(optimizer, grad_shape):
    param = nn.Parameter(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"gradient of shape \(.*\) for a tensor of shape \(2, 3\)"):
        param.grad = Tensor(np.full(grad_shape, 0.5))  # refused when assigned, as PyTorch
    param.data = np.ones(grad_shape)  # a gradient for the old shape: the step refuses it
    param.grad = Tensor(np.full(grad_shape, 0.5))
    param.data = np.ones((2, 3))
    with pytest.raises(ValueError, match=r"gradient of shape \(.*\) .*parameter 0 of shape \(2, 3\)"):
        optimizer([param], lr=0.1).step()
    np.testing.assert_array_equal(param.numpy(), 1.0)


def test_a_gradient_set_as_a_plain_array_is_refused_with_what_to_write_instead():
    param = nn.Parameter(np.ones(3))
    with pytest.raises(TypeError, match=r"Tensor\(array\)"):
        param.grad = np.ones(3)
