"""Neural-network building blocks: Module and Parameter, layers, losses, initialisation (`nn.init`) and
gradient clipping (`nn.utils`)."""
from . import init, utils
from .layers import (
    AvgPool2d, BatchNorm1d, BatchNorm2d, Conv2d, Dropout, Embedding, Flatten, Identity, LayerNorm, LeakyReLU,
    Linear, LogSoftmax, MaxPool2d, ReLU, Sigmoid, Softmax, Tanh,
)
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropy, CrossEntropyLoss, MSELoss, NLLLoss
from .module import Module, ModuleList, Parameter, Sequential, StateDictError

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "StateDictError", "init", "utils",
    "Linear", "Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Softmax", "LogSoftmax", "Dropout",
    "Flatten", "Embedding", "Conv2d", "MaxPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm",
    "MSELoss", "CrossEntropyLoss", "CrossEntropy", "NLLLoss", "BCELoss", "BCEWithLogitsLoss",
]
