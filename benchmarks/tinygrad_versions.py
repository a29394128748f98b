"""Each workload written the way a user writes it with tinygrad_edu's public API.

W1 is the first learner's network with Tensors and operators and a plain gradient-descent
update on `.data`; W2, W3 and W5 use nn.Sequential, a loss from `functional` and optim.SGD;
W4 is an operator chain. Batches are wrapped in Tensors once, as a DataLoader would hand them.
COMPILED_VERSIONS are the same classes with the loss function passed through `tg.compile`.
"""
from __future__ import annotations

import numpy as np

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn, optim


class _Version:
    params: list

    def __init__(self, problem):
        self.batches = [self._prepare(batch) for batch in problem.batches]
        self.warmup_batch = self._prepare(problem.warmup_batch)
        self._count = 0

    @staticmethod
    def _prepare(batch):
        return None if batch is None else tuple(tg.Tensor(array) for array in batch)

    def _next_batch(self):
        batch = self.batches[self._count % len(self.batches)]
        self._count += 1
        return batch

    def reset(self) -> None:
        for param in self.params:
            param.grad = None

    def parameter_arrays(self) -> list:
        return [param.data for param in self.params]

    def loss_and_grads(self, batch=None):
        self.reset()
        loss = self._forward_backward(self.batches[0] if batch is None else batch)
        return loss.item(), [param.grad.data.copy() for param in self.params]


class W1Version(_Version):
    def __init__(self, problem):
        super().__init__(problem)
        self.params = [tg.Tensor(p.copy(), requires_grad=True) for p in problem.params]
        self.lr, self.lam = problem.hyper["lr"], problem.hyper["lam"]

    def _loss(self, X, Y):
        w1, b1, w2, b2 = self.params
        m = X.shape[0]
        h1 = (X @ w1 + b1).sigmoid()
        h = (h1 @ w2 + b2).sigmoid()
        return ((Y - h) ** 2).sum() * (0.5 / m) + ((w1**2).sum() + (w2**2).sum()) * (self.lam * 0.5 / m)

    def _forward_backward(self, batch):
        loss = self._loss(*batch)
        loss.backward()
        return loss

    def step(self, batch=None) -> None:
        self._forward_backward(self._next_batch() if batch is None else batch)
        for param in self.params:
            param.data -= self.lr * param.grad.data
            param.grad = None


class _ModelVersion(_Version):
    """An nn model (the subclass builds it) from the problem's initial weights, trained by optim.SGD."""

    def _train(self, model, params, problem):
        self.model, self.params = model, params
        for param, initial in zip(self.params, problem.params):
            param.data[...] = initial
        self.optimizer = optim.SGD(self.model.parameters(), lr=problem.hyper["lr"])

    def _loss(self, x, y):
        return self.loss(self.model(x), y)

    def _forward_backward(self, batch):
        loss = self._loss(*batch)
        loss.backward()
        return loss

    def step(self, batch=None) -> None:
        self.optimizer.zero_grad()
        self._forward_backward(self._next_batch() if batch is None else batch)
        self.optimizer.step()


class _SequentialVersion(_ModelVersion):
    """Linear layers with `activation` between them."""

    activation = None
    dtype = np.float32

    def __init__(self, problem):
        super().__init__(problem)
        sizes = problem.hyper["layers"]
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(n_in, n_out, dtype=self.dtype), self.activation()]
        model = nn.Sequential(*layers[:-1])
        linears = [layer for layer in model if isinstance(layer, nn.Linear)]
        self._train(model, [t for layer in linears for t in (layer.weight, layer.bias)], problem)


class W2Version(_SequentialVersion):
    activation = nn.Sigmoid
    loss = staticmethod(F.cross_entropy)


class W3Version(_SequentialVersion):
    activation = nn.Tanh
    dtype = np.float64
    loss = staticmethod(F.mse_loss)


class W5Version(_SequentialVersion):
    activation = nn.ReLU
    loss = staticmethod(F.cross_entropy)


class W4Version(_Version):
    def __init__(self, problem):
        super().__init__(problem)
        self.x = tg.Tensor(problem.params[0].copy(), requires_grad=True)
        self.params = [self.x]
        self.cycles = problem.hyper["cycles"]
        self.scale, self.shift = problem.hyper["scale"], problem.hyper["shift"]

    def _loss(self):
        h = self.x
        for _ in range(self.cycles):
            h = (h * self.scale).tanh() + self.shift
        return h.sum()

    def _forward_backward(self, batch):
        loss = self._loss()
        loss.backward()
        return loss

    def step(self, batch=None) -> None:
        self.x.grad = None
        self._forward_backward(None)


class W6Version(_ModelVersion):
    """The CNN of examples/cnn_digits.py at 28x28: two (Conv2d, ReLU, MaxPool2d) blocks, Linear."""

    loss = staticmethod(F.cross_entropy)

    def __init__(self, problem):
        super().__init__(problem)
        c0, c1, c2 = problem.hyper["channels"]
        k, side = problem.hyper["kernel"], problem.hyper["side"]
        model = nn.Sequential(
            nn.Conv2d(c0, c1, k, padding=k // 2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, k, padding=k // 2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(c2 * (side // 4) ** 2, problem.hyper["classes"]),
        )
        self._train(model, list(model.parameters()), problem)


VERSIONS = {"W1": W1Version, "W2": W2Version, "W3": W3Version, "W4": W4Version, "W5": W5Version,
            "W6": W6Version}


def _compiled(version: type) -> type:
    """`version` with its loss traced once by tg.compile: each step replays the NumPy program."""

    class Compiled(version):
        def __init__(self, problem):
            super().__init__(problem)
            self._step = tg.compile(self._loss)

        def _forward_backward(self, batch):
            return self._step(*(batch or ()))

    Compiled.__name__ = Compiled.__qualname__ = "Compiled" + version.__name__
    return Compiled


COMPILED_VERSIONS = {name: _compiled(VERSIONS[name]) for name in ("W1", "W2", "W3", "W4")}
