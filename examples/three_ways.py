"""A tiny network written three ways: hand-written backprop, NumPy code on Tensors, nn modules.

The network is 2-3-1 (tanh hidden layer, sigmoid output) learning XOR from its four points,
with the mean squared error as the loss. The three versions are:

1. NumPy only: a forward pass and a backward pass derived by hand with the chain rule.
2. The SAME NumPy forward function, called with Tensors instead of arrays: NumPy functions on
   Tensors are recorded (tinygrad_edu's NumPy interop), so `loss.backward()` gives every
   gradient and the hand derivation is no longer needed.
3. `nn.Sequential`, `F.mse_loss` and `optim.SGD`: how you would write it from scratch.

All three start from the same weights (float64) and take the same gradient-descent steps, so
their losses and gradients agree to rounding at the first step and after training.

Run:  python examples/three_ways.py [--steps 2000] [--lr 2.0] [--seed 0]
"""
from __future__ import annotations

import argparse

import numpy as np

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn, optim

# XOR: four points, the classic problem no single linear layer can solve.
X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
# A column (4, 1) like the network's output, so `out - Y` never broadcasts a row against a column.
Y = np.array([[0.0], [1.0], [1.0], [0.0]])
NAMES = ["W1", "b1", "W2", "b2"]


def initial_params(seed: int) -> list:
    """W1 (2, 3), b1 (3,), W2 (3, 1), b2 (1,): zero-mean, Xavier-sized, float64."""
    rng = np.random.default_rng(seed)
    return [
        rng.uniform(-1.0, 1.0, (2, 3)) * np.sqrt(6 / 5),  # Xavier bound sqrt(6 / (fan_in + fan_out))
        np.zeros(3),
        rng.uniform(-1.0, 1.0, (3, 1)) * np.sqrt(6 / 4),
        np.zeros(1),
    ]


# ---- 1. NumPy, backprop by hand ---------------------------------------------------------------
def forward(p, x):
    """The forward pass in plain NumPy calls; it works on arrays AND on Tensors (way 2)."""
    hidden = np.tanh(np.dot(x, p[0]) + p[1])
    out = 1 / (1 + np.exp(-(np.dot(hidden, p[2]) + p[3])))  # sigmoid
    return hidden, out


def loss_fn(p, x, y):
    _, out = forward(p, x)
    return np.mean(np.square(out - y))


def backprop_by_hand(p, x, y):
    """The chain rule written out, one local derivative per line, from the loss back."""
    hidden, out = forward(p, x)
    m = out.size
    d_out = 2 * (out - y) / m  # d mean((out - y)^2) / d out
    d_z2 = d_out * out * (1 - out)  # sigmoid'(z) = s (1 - s)
    d_W2 = hidden.T @ d_z2  # z2 = hidden @ W2 + b2: the gradient of W2 has W2's shape (3, 1)
    d_b2 = d_z2.sum(axis=0)  # b2 was added to every row: sum the rows back
    d_hidden = d_z2 @ p[2].T
    d_z1 = d_hidden * (1 - hidden**2)  # tanh'(z) = 1 - tanh(z)^2
    d_W1 = x.T @ d_z1
    d_b1 = d_z1.sum(axis=0)
    return [d_W1, d_b1, d_W2, d_b2]


def train_by_hand(p, steps: int, lr: float):
    p = [w.copy() for w in p]
    losses = []
    for _ in range(steps):
        losses.append(float(loss_fn(p, X, Y)))
        grads = backprop_by_hand(p, X, Y)
        p = [w - lr * g for w, g in zip(p, grads)]
    return p, losses


# ---- 2. the same NumPy functions on Tensors: autograd does the backward pass -----------------
def gradients_by_autograd(p, x, y):
    params = [tg.Tensor(w.copy(), requires_grad=True) for w in p]
    loss = loss_fn(params, x, y)  # the NumPy code above, unchanged: np.tanh, np.dot... are recorded
    loss.backward()
    return loss.item(), [w.grad.numpy() for w in params]


def train_by_autograd(p, steps: int, lr: float):
    params = [tg.Tensor(w.copy(), requires_grad=True) for w in p]
    losses = []
    for _ in range(steps):
        loss = loss_fn(params, X, Y)
        for w in params:
            w.grad = None  # gradients accumulate: clear them before each backward
        loss.backward()
        with tg.no_grad():
            for w in params:
                w.data -= lr * w.grad.data  # the update is not part of the graph
        losses.append(loss.item())
    return [w.numpy() for w in params], losses


# ---- 3. nn modules, a loss function and an optimizer ------------------------------------------
def build_model(p) -> nn.Sequential:
    """nn.Linear stores weight as (out, in) and computes x @ weight.T + bias: copy W.T in."""
    model = nn.Sequential(
        nn.Linear(2, 3, dtype=np.float64), nn.Tanh(), nn.Linear(3, 1, dtype=np.float64), nn.Sigmoid()
    )
    model[0].weight.data[...] = p[0].T
    model[0].bias.data[...] = p[1]
    model[2].weight.data[...] = p[2].T
    model[2].bias.data[...] = p[3]
    return model


def model_params(model: nn.Sequential) -> list:
    """The model's parameters in way 1's layout (W1, b1, W2, b2), to compare them."""
    first, second = model[0], model[2]
    return [first.weight.numpy().T, first.bias.numpy(), second.weight.numpy().T, second.bias.numpy()]


def model_grads(model: nn.Sequential) -> list:
    return [model[0].weight.grad.numpy().T, model[0].bias.grad.numpy(),
            model[2].weight.grad.numpy().T, model[2].bias.grad.numpy()]


def gradients_by_modules(p, x, y):
    model = build_model(p)
    loss = F.mse_loss(model(x), y)
    loss.backward()
    return loss.item(), model_grads(model)


def train_by_modules(p, steps: int, lr: float):
    model = build_model(p)
    optimizer = optim.SGD(model.parameters(), lr=lr)  # no momentum: plain gradient descent
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.mse_loss(model(X), Y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return model_params(model), losses, model


def max_difference(a: list, b: list) -> float:
    return max(float(np.max(np.abs(np.asarray(u) - np.asarray(v)))) for u, v in zip(a, b))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000, help="gradient-descent steps for each way")
    parser.add_argument("--lr", type=float, default=2.0, help="learning rate (the same for all three)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights")
    args = parser.parse_args(argv)
    tg.manual_seed(args.seed)
    p0 = initial_params(args.seed)

    print("2-3-1 network (tanh, sigmoid) on XOR, loss = mean((out - y)^2), float64, same start")
    print("\nFirst step: loss and gradients")
    hand_loss, hand_grads = float(loss_fn(p0, X, Y)), backprop_by_hand(p0, X, Y)
    auto_loss, auto_grads = gradients_by_autograd(p0, X, Y)
    module_loss, module_grads = gradients_by_modules(p0, X, Y)
    print(f"{'':28s}{'loss':>12s}" + "".join(f"{'|d' + n + '|':>12s}" for n in NAMES))
    for name, loss, grads in [
        ("1. NumPy, by hand", hand_loss, hand_grads),
        ("2. NumPy code on Tensors", auto_loss, auto_grads),
        ("3. nn modules", module_loss, module_grads),
    ]:
        print(f"{name:28s}{loss:12.8f}" + "".join(f"{np.linalg.norm(g):12.8f}" for g in grads))
    first_step = {
        "autograd vs hand": max(abs(auto_loss - hand_loss), max_difference(auto_grads, hand_grads)),
        "modules vs hand": max(abs(module_loss - hand_loss), max_difference(module_grads, hand_grads)),
    }
    for name, difference in first_step.items():
        print(f"max |difference| {name}, loss and every gradient entry: {difference:.1e}")

    print(f"\nTraining: {args.steps} steps of gradient descent, lr {args.lr}")
    hand_p, hand_losses = train_by_hand(p0, args.steps, args.lr)
    auto_p, auto_losses = train_by_autograd(p0, args.steps, args.lr)
    module_p, module_losses, model = train_by_modules(p0, args.steps, args.lr)
    runs = [("1. by hand", hand_losses), ("2. on Tensors", auto_losses), ("3. nn modules", module_losses)]
    for name, losses in runs:
        print(f"{name:16s} loss {losses[0]:.6f} -> {losses[-1]:.6f}")
    trained = {
        "autograd vs hand": max_difference(auto_p, hand_p),
        "modules vs hand": max_difference(module_p, hand_p),
    }
    for name, difference in trained.items():
        print(f"max |difference| of the trained weights, {name}: {difference:.1e}")
    _, out = forward(hand_p, X)
    print("XOR outputs after training:", np.round(out.ravel(), 3).tolist(), "targets:", Y.ravel().tolist())
    return {
        "first_step": first_step,
        "trained": trained,
        "losses": {"hand": hand_losses, "autograd": auto_losses, "modules": module_losses},
        "outputs": out.ravel(),
    }


if __name__ == "__main__":
    main()
