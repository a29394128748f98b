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
