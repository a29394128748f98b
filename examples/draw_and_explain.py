"""Draw a network's graph and read its backward pass as equations, with the shapes of every step.

A small classifier, 5 inputs -> 4 sigmoid units -> 3 classes, on a batch of 6 samples, trained
with cross-entropy. The script prints `tg.explain(loss, params=model)` (the forward pass and the
chain rule the engine runs, one line per step, named after the model's parameters) and draws
the graph twice with Graphviz:

- every operation, with the size of each gradient as a colour (`show_grads=True`);
- folded (`collapse=True`): one box per layer, as you would sketch it on paper.

Reading the two side by side answers the first learner's "dot product, Hadamard product or
transpose?": each gradient of a matrix product is the one product whose shapes fit.

Run:  python examples/draw_and_explain.py [--out FOLDER] [--seed 0]
"""
from __future__ import annotations

import argparse
import pathlib

import numpy as np

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn
from tinygrad_edu.viz import draw_graph, render


def build(seed: int):
    """The model, a batch of inputs and labels, and the loss (its graph not yet freed)."""
    tg.manual_seed(seed)  # nn.Linear and nn.init draw from the package's generator
    rng = np.random.default_rng(seed)
    # Every size differs (6 samples, 5 inputs, 4 hidden, 3 classes), so each shape names its axis.
    model = nn.Sequential(nn.Linear(5, 4), nn.Sigmoid(), nn.Linear(4, 3))
    nn.init.xavier_uniform_(model[0].weight)  # zero-mean, variance-preserving: sigmoid units stay steep
    x = tg.Tensor(rng.normal(size=(6, 5)).astype(np.float32), name="x")  # the name shows up in explain
    labels = rng.integers(0, 3, size=6)  # class indices, shape (6,)
    loss = F.cross_entropy(model(x), labels)
    return model, x, labels, loss


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."),
                        help="folder for graph.svg and graph_folded.svg (default: the current folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    model, x, labels, loss = build(args.seed)
    print(model)
    print(f"loss = cross_entropy(model(x), labels) = {loss.item():.4f}   "
          f"x {x.shape}, labels {labels.shape}\n")

    # explain() reads the graph's structure, which backward() keeps: before or after, same text.
    explanation = tg.explain(loss, params=model)
    print(explanation)
    print(
        "\nHow to read it: for v = a @ W.T + b (one nn.Linear), a gets dL/dv @ W and W gets\n"
        "(dL/dv).T @ a: the only products whose shapes fit (see the shapes on the right), and the\n"
        "second has W's own shape (out, in). A bias added to every row gets dL/dv summed over the\n"
        "samples (axis 0). The sigmoid multiplies elementwise by s * (1 - s): a Hadamard product."
    )

    # show_grads computes d(loss)/d(every node) with tg.grad(retain_graph=True): .grad stays empty.
    full = render(draw_graph(loss, params=model, show_grads=True), args.out / "graph.svg")
    folded = render(draw_graph(loss, params=model, collapse=True, show_grads=True),
                    args.out / "graph_folded.svg")
    print(f"\nevery operation, gradient sizes as colours: {full}")
    print(f"one box per layer (collapse=True):          {folded}")

    # The drawing did not use up the graph: training can go on from the same loss.
    loss.backward()
    names = [name for name, _ in model.named_parameters()]
    print("\nafter loss.backward(), the gradients explain() described:")
    for name, p in model.named_parameters():
        print(f"  dL/d{name:9s} shape {str(p.grad.shape):8s} norm {np.linalg.norm(p.grad.numpy()):.4f}")
    return {"explanation": explanation, "paths": [full, folded], "parameter_names": names}


if __name__ == "__main__":
    main()
