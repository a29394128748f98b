"""One neuron, three ways to its gradients: by hand (chain rule), by autograd, by finite differences.

    loss = (tanh(w * x + b) - target) ** 2

Run:  python examples/scalar_demo.py
"""
import numpy as np

import tinygrad_edu as tg
from tinygrad_edu.gradcheck import numeric_grad


def by_hand(w, x, b, target):
    """The chain rule, one local derivative per step (what a learner writes on paper)."""
    z = w * x + b
    y = np.tanh(z)
    dloss_dy = 2 * (y - target)
    dy_dz = 1 - y**2
    dloss_dz = dloss_dy * dy_dz
    return {"w": dloss_dz * x, "b": dloss_dz}  # dz/dw = x, dz/db = 1


def by_autograd(w, x, b, target):
    w_t = tg.Tensor(np.array(w), requires_grad=True, name="w")
    b_t = tg.Tensor(np.array(b), requires_grad=True, name="b")
    loss = ((w_t * x + b_t).tanh() - target) ** 2
    loss.backward()
    return {"w": w_t.grad.item(), "b": b_t.grad.item()}


def by_finite_differences(w, x, b, target):
    def loss(w_value, b_value):
        return float((np.tanh(w_value * x + b_value) - target) ** 2)

    dw, db = numeric_grad(loss, [np.array(w), np.array(b)])
    return {"w": float(dw), "b": float(db)}


def main(w=0.8, x=1.5, b=-0.3, target=0.2):
    rows = {
        "by hand": by_hand(w, x, b, target),
        "autograd": by_autograd(w, x, b, target),
        "finite differences": by_finite_differences(w, x, b, target),
    }
    print(f"loss = (tanh({w} * {x} + {b}) - {target}) ** 2")
    print(f"{'':20s}{'dloss/dw':>14s}{'dloss/db':>14s}")
    for name, grads in rows.items():
        print(f"{name:20s}{grads['w']:14.8f}{grads['b']:14.8f}")
    return rows


if __name__ == "__main__":
    main()
