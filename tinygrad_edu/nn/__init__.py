"""Neural-network building blocks: Module and Parameter, layers, losses and initialisation (`nn.init`)."""
from . import init
from .layers import Dropout, Flatten, Identity, LeakyReLU, Linear, LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from .losses import BCELoss, BCEWithLogitsLoss, CrossEntropy, CrossEntropyLoss, MSELoss, NLLLoss
from .module import Module, ModuleList, Parameter, Sequential, StateDictError

__all__ = [
    "Module", "Parameter", "Sequential", "ModuleList", "StateDictError", "init",
    "Linear", "Identity", "Sigmoid", "Tanh", "ReLU", "LeakyReLU", "Softmax", "LogSoftmax", "Dropout",
    "Flatten",
    "MSELoss", "CrossEntropyLoss", "CrossEntropy", "NLLLoss", "BCELoss", "BCEWithLogitsLoss",
]
