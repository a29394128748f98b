"""PyTorch (CPU, eager) versions of the workloads: an extra column when torch is installed.

Never required, and kept short: the same steps as tinygrad_versions, in torch's API.
Threads: PyTorch's default, or BENCH_THREADS when run.py is given --threads, like the other columns' BLAS.
"""
from __future__ import annotations

import os

import torch

if "BENCH_THREADS" in os.environ:
    torch.set_num_threads(int(os.environ["BENCH_THREADS"]))


class _Version:
    def __init__(self, problem):
        self.batches = [self._prepare(batch) for batch in problem.batches]
        self.warmup_batch = self._prepare(problem.warmup_batch)
        self._count = 0

    @staticmethod
    def _prepare(batch):
        return None if batch is None else tuple(torch.from_numpy(array.copy()) for array in batch)

    def _next_batch(self):
        batch = self.batches[self._count % len(self.batches)]
        self._count += 1
        return batch

    def reset(self) -> None:
        for param in self.params:
            param.grad = None

    def parameter_arrays(self) -> list:
        return [param.detach().numpy() for param in self.params]

    def loss_and_grads(self, batch=None):
        self.reset()
        loss = self._forward_backward(self.batches[0] if batch is None else batch)
        return loss.item(), [param.grad.numpy().copy() for param in self.params]


class W1Version(_Version):
    def __init__(self, problem):
        super().__init__(problem)
        self.params = [torch.tensor(p, requires_grad=True) for p in problem.params]
        self.lr, self.lam = problem.hyper["lr"], problem.hyper["lam"]

    def _forward_backward(self, batch):
        X, Y = batch
        w1, b1, w2, b2 = self.params
        m = X.shape[0]
        h = torch.sigmoid(torch.sigmoid(X @ w1 + b1) @ w2 + b2)
        loss = ((Y - h) ** 2).sum() * (0.5 / m) + ((w1**2).sum() + (w2**2).sum()) * (self.lam * 0.5 / m)
        loss.backward()
        return loss

    def step(self, batch=None) -> None:
        self._forward_backward(self._next_batch() if batch is None else batch)
        with torch.no_grad():
            for param in self.params:
                param -= self.lr * param.grad
                param.grad = None


class _SequentialVersion(_Version):
    def __init__(self, problem, activation, loss, dtype):
        super().__init__(problem)
        sizes = problem.hyper["layers"]
        layers = []
        for n_in, n_out in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(n_in, n_out, dtype=dtype), activation()]
        self.model = torch.nn.Sequential(*layers[:-1])
        self.params = list(self.model.parameters())  # weight, bias per Linear: the canonical order
        with torch.no_grad():
            for param, initial in zip(self.params, problem.params):
                param.copy_(torch.from_numpy(initial))
        self.loss = loss
        self.optimizer = torch.optim.SGD(self.params, lr=problem.hyper["lr"])

    def _forward_backward(self, batch):
        x, y = batch
        loss = self.loss(self.model(x), y)
        loss.backward()
        return loss

    def step(self, batch=None) -> None:
        self.optimizer.zero_grad()
        self._forward_backward(self._next_batch() if batch is None else batch)
        self.optimizer.step()


class W4Version(_Version):
    def __init__(self, problem):
        super().__init__(problem)
        self.x = torch.tensor(problem.params[0], requires_grad=True)
        self.params = [self.x]
        self.cycles, self.scale, self.shift = (problem.hyper[k] for k in ("cycles", "scale", "shift"))

    def _forward_backward(self, batch):
        h = self.x
        for _ in range(self.cycles):
            h = torch.tanh(h * self.scale) + self.shift
        loss = h.sum()
        loss.backward()
        return loss

    def step(self, batch=None) -> None:
        self.x.grad = None
        self._forward_backward(None)


class W6Version(_SequentialVersion):
    def __init__(self, problem):
        _Version.__init__(self, problem)
        c0, c1, c2 = problem.hyper["channels"]
        k, side = problem.hyper["kernel"], problem.hyper["side"]
        self.model = torch.nn.Sequential(
            torch.nn.Conv2d(c0, c1, k, padding=k // 2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(c1, c2, k, padding=k // 2), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Flatten(), torch.nn.Linear(c2 * (side // 4) ** 2, problem.hyper["classes"]),
        )
        self.params = list(self.model.parameters())
        with torch.no_grad():
            for param, initial in zip(self.params, problem.params):
                param.copy_(torch.from_numpy(initial))
        self.loss = torch.nn.functional.cross_entropy
        self.optimizer = torch.optim.SGD(self.params, lr=problem.hyper["lr"])


_F = torch.nn.functional
VERSIONS = {
    "W1": W1Version,
    "W2": lambda problem: _SequentialVersion(problem, torch.nn.Sigmoid, _F.cross_entropy, torch.float32),
    "W3": lambda problem: _SequentialVersion(problem, torch.nn.Tanh, _F.mse_loss, torch.float64),
    "W4": W4Version,
    "W5": lambda problem: _SequentialVersion(problem, torch.nn.ReLU, _F.cross_entropy, torch.float32),
    "W6": W6Version,
}
