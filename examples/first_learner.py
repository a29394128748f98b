"""The first learner's network: their backprop checked, their 10% accuracy explained and fixed.

The learner (shared/seeds/000_*.txt) hand-derived backprop for a 3-layer sigmoid network
trained with mean-squared error + L2 on 20x20 digit images (400-25-10). The cost fell every
iteration, yet accuracy stayed at 10%. Here the same code runs on the 8x8 digits bundled with
scikit-learn (`tinygrad_edu.data.load_digits()`), so the network is 64-25-10. Steps:

1. `tg.check_backprop` on their `cost` and `backpropagate`: all four gradients are right.
2. Their own training loop, with their own gradients: the network learns, but their `predict`
   says ~10%, because a (m, 1) column of predictions is compared with a (m,) row of labels.
   NumPy silently broadcasts that to an (m, m) table. On Tensors the broadcast guard catches it.
3. The fix: compare two 1-D vectors of class indices (or use `F.accuracy`).
4. The same network in tinygrad_edu, with no hand derivation: >= 90% train accuracy.

Run:  python examples/first_learner.py [--iterations 300] [--alpha 8.0] [--seed 0]
"""
from __future__ import annotations

import argparse

import numpy as np

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn, optim
from tinygrad_edu.data import load_digits, train_test_split

# The learner's code, verbatim, lives in seed_learner.py (the one copy; the tests run it too).
# Their randomInitialize is not used: the same U(-0.12, 0.12) weights are drawn from a seeded
# generator instead, so every run of this example is the same.
import seed_learner as learner  # noqa: E402  (examples/ is the script's folder, so on the path)
from seed_learner import backpropagate, cost, feedForward, predict, train  # noqa: E402


def predict_fixed(p, x, y):
    """Their predict with the reshape removed: both sides are 1-D, one class index per sample."""
    [pred, z] = feedForward(p, x)
    a = pred[-1].argmax(axis=1)  # (m,)
    b = np.argmax(y, axis=1)  # (m,)
    return a, np.mean(a == b) * 100


def initial_params(rng: np.random.Generator, n_in: int = 64, n_hidden: int = 25, n_out: int = 10) -> list:
    """Their layout p = [w1, w1b, w2, w2b] and their init, U(-0.12, 0.12)."""
    shapes = [(n_in, n_hidden), (1, n_hidden), (n_hidden, n_out), (1, n_out)]
    return [rng.uniform(-0.12, 0.12, shape) for shape in shapes]


def learner_cost_on_model(model: nn.Sequential, x: tg.Tensor, y: np.ndarray) -> tg.Tensor:
    """Their cost written for nn modules: 0.5/m * sum of squared errors + lmda/(2m) * sum of W^2."""
    m = x.shape[0]
    h = model(x)
    penalty = (model[0].weight ** 2).sum() + (model[2].weight ** 2).sum()  # weights only, like theirs
    return ((y - h) ** 2).sum() * (0.5 / m) + (learner.lmda * 0.5 / m) * penalty


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300,
                        help="full-batch gradient-descent iterations (their loop, and ours)")
    parser.add_argument("--alpha", type=float, default=8.0, help="learning rate (theirs was 0.12)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tg.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    X, labels = load_digits()  # (1797, 64) in [0, 1], labels 0..9
    X_train, X_test, labels_train, labels_test = train_test_split(
        X, labels, test_size=0.25, seed=args.seed, stratify=labels)
    Y_train = np.eye(10)[labels_train]  # one-hot rows, their format (here column k is digit k)
    print(f"digits: {X_train.shape[0]} training and {X_test.shape[0]} test images of 8x8 = 64 pixels;"
          " the learner's 400-25-10 network becomes 64-25-10\n")

    # ---- 1. are the hand-derived gradients right? ------------------------------------------
    print("1. tg.check_backprop(cost, backpropagate, p, X, y) on 200 training images")
    p = initial_params(rng)
    report = tg.check_backprop(cost, backpropagate, p, X_train[:200], Y_train[:200])
    print(report)
    print("=> the hand-derived backprop is right; the problem is elsewhere.\n")

    # ---- 2. their training, their predict ----------------------------------------------------
    print("2. Their training loop and their predict")
    learner.alpha = 0.12  # their costPrime reads their module's global alpha, as in their notebook
    p_theirs, E = train(initial_params(rng), X_train, Y_train, 50)
    _, shown = predict(p_theirs, X_train, Y_train)
    _, real = predict_fixed(p_theirs, X_train, Y_train)
    print(f"their settings (alpha 0.12, 50 iterations): cost {E[0]:.3f} -> {E[-1]:.3f}; "
          f"predict says {shown:.1f}%, the real accuracy is {real:.1f}%")
    print("   (here too few small steps to learn anything yet: plain gradient descent on this cost\n"
          "    needs hundreds of iterations; examples/lbfgs.py shows what their course's fmincg does in 50)")

    learner.alpha = args.alpha
    p_trained, E = train(initial_params(rng), X_train, Y_train, args.iterations)
    learner.alpha = 0.12  # their value again, for other code that imports their module
    _, buggy_percent = predict(p_trained, X_train, Y_train)
    print(f"alpha {args.alpha}, {args.iterations} iterations: cost {E[0]:.3f} -> {E[-1]:.3f}; "
          f"predict says {buggy_percent:.1f}%")
    # What their predict compares: a column against a row.
    [pred, _] = feedForward(p_trained, X_train)
    a = np.reshape(pred[-1].argmax(axis=1), (Y_train.shape[0], 1))
    b = np.argmax(Y_train, axis=1)
    print(f"why: a has shape {a.shape}, b has shape {b.shape}, and a == b has shape {(a == b).shape}:\n"
          "   every prediction compared with every label. About 1 pair in 10 agrees by chance,\n"
          "   so the mean is ~10% whatever the network does. NumPy says nothing.")

    # The same predict on Tensors: the broadcast guard stops at the comparison.
    with tg.set_broadcast_check("raise"):
        try:
            predict([tg.Tensor(w) for w in p_trained], X_train, Y_train)
            caught = None
        except tg.BroadcastError as error:
            caught = str(error)
    print(f"on Tensors, with tg.set_broadcast_check('raise'):\n   BroadcastError: {caught}")

    # ---- 3. the fix -------------------------------------------------------------------------
    print("\n3. The fix: compare two 1-D vectors of class indices")
    _, fixed_percent = predict_fixed(p_trained, X_train, Y_train)
    metric = F.accuracy(pred[-1], labels_train)  # refuses a (m, 1) column of labels
    print(f"predict_fixed: {fixed_percent:.1f}%   F.accuracy(scores, labels): {metric:.1%}   "
          f"(their predict said {buggy_percent:.1f}%)")
    try:
        F.accuracy(pred[-1], labels_train.reshape(-1, 1))
    except ValueError as error:
        print(f"F.accuracy with a (m, 1) column of labels: ValueError: {error}")

    # ---- 4. the same network in tinygrad_edu ---------------------------------------------------
    print("\n4. The same network in tinygrad_edu: nn modules, their cost, gradients from autograd")
    model = nn.Sequential(nn.Linear(64, 25, dtype=np.float64), nn.Sigmoid(),
                          nn.Linear(25, 10, dtype=np.float64), nn.Sigmoid())
    for layer in (model[0], model[2]):
        nn.init.uniform_(layer.weight, -0.12, 0.12)  # their init; zero-mean, so nothing saturates
        nn.init.uniform_(layer.bias, -0.12, 0.12)
    optimizer = optim.SGD(model.parameters(), lr=args.alpha)  # plain full-batch gradient descent
    x_train = tg.Tensor(X_train)
    for iteration in range(args.iterations):
        optimizer.zero_grad()
        loss = learner_cost_on_model(model, x_train, Y_train)
        loss.backward()  # replaces backpropagate(): no derivation to get wrong
        optimizer.step()
        if iteration % max(1, args.iterations // 4) == 0:
            print(f"   iteration {iteration:4d}  cost {loss.item():.4f}")
    with tg.no_grad():
        train_accuracy = F.accuracy(model(x_train), labels_train)
        test_accuracy = F.accuracy(model(tg.Tensor(X_test)), labels_test)
    print(f"final cost {loss.item():.4f}; train accuracy {train_accuracy:.1%}, "
          f"test accuracy {test_accuracy:.1%}")
    return {
        "report": report,
        "buggy_accuracy": buggy_percent / 100,
        "fixed_accuracy": fixed_percent / 100,
        "caught": caught,
        "train_accuracy": train_accuracy,
        "test_accuracy": test_accuracy,
    }


if __name__ == "__main__":
    main()
