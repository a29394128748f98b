"""The first learner's network, with gradients from autograd instead of a hand derivation.

400-25-10 in their course (20x20 digit images); here the 8x8 digits bundled with scikit-learn,
so 64-25-10: sigmoid hidden layer, sigmoid outputs, mean-squared error + L2, full-batch
gradient descent. Accuracy is measured the safe way: both sides are 1-D class indices, so the
(200, 1) == (200,) broadcast that kept the learner at 10% cannot happen.

Run:  python examples/learner_network.py [--iterations N]
"""
import argparse

import numpy as np

import tinygrad_edu as tg


def load_digits_scaled():
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("this example needs scikit-learn: pip install -e '.[examples]'") from None
    digits = load_digits()
    return digits.data / 16.0, digits.target  # pixels 0..16 -> 0..1


def train(iterations: int = 1500, lr: float = 2.0, lmda: float = 1.0, seed: int = 0):
    x, labels = load_digits_scaled()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    test, train_idx = order[:300], order[300:]
    x_train, y_train = x[train_idx], np.eye(10)[labels[train_idx]]  # one-hot rows
    m = len(x_train)

    def uniform(*shape, epsilon=0.12):  # the learner's init: uniform on [-0.12, 0.12)
        return tg.Tensor(rng.uniform(-epsilon, epsilon, shape), requires_grad=True)

    w1, b1, w2, b2 = uniform(64, 25), uniform(25), uniform(25, 10), uniform(10)
    params = [w1, b1, w2, b2]

    def forward(inputs):
        hidden = (inputs @ w1 + b1).sigmoid()
        return (hidden @ w2 + b2).sigmoid()

    history = []
    for step in range(iterations):
        out = forward(tg.Tensor(x_train))
        cost = ((y_train - out) ** 2).sum() * (0.5 / m) + (lmda * 0.5 / m) * ((w1**2).sum() + (w2**2).sum())
        for p in params:
            p.grad = None
        cost.backward()  # every gradient the learner derived by hand, from the graph
        with tg.no_grad():
            for p in params:
                p.data = p.data - lr * p.grad.data
        history.append(cost.item())
        if step % (iterations // 5) == 0:
            print(f"iteration {step:5d}  cost {cost.item():.4f}")

    with tg.no_grad():
        train_acc = np.mean(forward(tg.Tensor(x_train)).argmax(axis=1).numpy() == labels[train_idx])
        test_acc = np.mean(forward(tg.Tensor(x[test])).argmax(axis=1).numpy() == labels[test])
    print(f"final cost {history[-1]:.4f}; train accuracy {train_acc:.1%}, test accuracy {test_acc:.1%}")
    return history, train_acc, test_acc


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--lr", type=float, default=2.0)
    args = parser.parse_args()
    train(args.iterations, args.lr)
