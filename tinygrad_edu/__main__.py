"""`python -m tinygrad_edu demo` (also `tinygrad-edu demo`): train, check and explain a network.

The default is the first learner's network (a sigmoid hidden layer of 25 units, 10 outputs,
mean-squared error + L2) on the digits bundled with scikit-learn. It writes an output folder
with the rendered graph, the training curves, the diagnostics report, the backward equations
and a checkpoint. Bad flags or a bad data file give a one-line error and exit status 2.
"""
from __future__ import annotations

import argparse
import math
import pathlib
import sys
import time

import numpy as np

from ._files import atomic_write

PROGRAM = "tinygrad-edu"
ACTIVATIONS = ("sigmoid", "tanh", "relu")
INITS = ("auto", "xavier", "kaiming", "pytorch", "rand", "normal")
OPTIMIZERS = ("sgd", "adam", "lbfgs", "cg")
LOSSES = ("mse", "cross-entropy")


class UsageError(Exception):
    """A bad flag or a bad input file: reported in one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; one line is kinder
        raise UsageError(message)


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _fraction(text):
    value = _positive(float)(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROGRAM, description="tinygrad_edu: a small, honest autograd framework for learners")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    demo = commands.add_parser(
        "demo", help="train, check and explain the first learner's network",
        description="Train the first learner's network (a sigmoid hidden layer, 10 outputs) on "
                    "handwritten digits, then write its graph, curves, diagnostics and checkpoint.",
    )
    demo.add_argument("--data", metavar="PATH.mat", help="a MATLAB/Octave file with X (m, n) and y (m,); "
                      "labels 1..10 are read as the course convention (10 means the digit 0). "
                      "Default: scikit-learn's 8x8 digits")
    demo.add_argument("--hidden", type=_positive(int), default=25, help="hidden units (default 25)")
    demo.add_argument("--activation", choices=ACTIVATIONS, default="sigmoid", help="hidden activation")
    demo.add_argument("--init", choices=INITS, default="auto",
                      help="auto: Xavier for sigmoid/tanh, Kaiming for ReLU; rand: the second learner's "
                           "all-positive rand * sqrt(1/n), to see saturation")
    demo.add_argument("--loss", choices=LOSSES, default="mse",
                      help="mse: sigmoid outputs + squared error (the learner's); cross-entropy: softmax")
    demo.add_argument("--l2", type=float, default=1.0, metavar="LAMBDA",
                      help="L2 penalty lambda / (2 m) * sum of squared weights (default 1, the learner's)")
    demo.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                      help="sgd (momentum 0.9), adam, or full-batch lbfgs / cg through SciPy")
    demo.add_argument("--lr", type=_positive(float), default=None, help="learning rate (sgd 1.0, adam 0.01)")
    demo.add_argument("--epochs", type=_positive(int), default=40, help="passes over the data "
                      "(iterations for lbfgs / cg; default 40)")
    demo.add_argument("--batch-size", type=_positive(int), default=32, help="default 32")
    demo.add_argument("--test-size", type=_fraction, default=0.2, help="held-out fraction (default 0.2)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--out", default="tinygrad_edu_demo", metavar="DIR", help="output folder")
    demo.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        return demo(args)
    except UsageError as error:
        print(f"{PROGRAM} demo: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROGRAM} demo: interrupted", file=sys.stderr)
        return 130


# ---- the demo ------------------------------------------------------------------------------------
def load_data(path):
    """(X float, y int class indices 0..C-1, a description) from a .mat file or the bundled digits."""
    from . import data

    if path is None:
        try:
            x, y = data.load_digits()
        except ImportError as error:
            raise UsageError(str(error)) from None
        return x, y, "scikit-learn's 8x8 digits"
    try:
        x, y = data.load_mat(path)
    except (OSError, ValueError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise UsageError(f"cannot use --data {path}: {message}") from None
    note = ""
    if y.size and y.min() >= 1 and y.max() == 10:
        y = np.where(y == 10, 0, y)
        note = " (labels 1..10: 10 read as the digit 0)"
    if y.size == 0 or y.min() < 0:
        raise UsageError(f"cannot use --data {path}: labels must be class indices 0, 1, 2, ...")
    return x, y, f"{path}{note}"


def build_model(inputs: int, hidden: int, classes: int, activation: str, init: str):
    from . import nn

    act = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    model = nn.Sequential(nn.Linear(inputs, hidden), act(), nn.Linear(hidden, classes))
    if init == "auto":
        init = "kaiming" if activation == "relu" else "xavier"
    from .creation import generator

    for layer in (model[0], model[2]):
        if init == "xavier":
            # A sigmoid's slope is at most 1/4: gain 4 keeps its gradient's variance (docs/initialisation.md)
            gain = (4.0 if activation == "sigmoid" else nn.init.calculate_gain(activation)) if layer is model[0] else 1.0
            nn.init.xavier_uniform_(layer.weight, gain=gain)
        elif init == "kaiming":
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        elif init == "rand":  # the second learner's: all positive, every unit saturates
            layer.weight.data[...] = generator().random(layer.weight.shape) * math.sqrt(1 / layer.in_features)
        elif init == "normal":
            nn.init.normal_(layer.weight, 0.0, 1.0)
        if init != "pytorch":
            nn.init.zeros_(layer.bias)
    return model


def demo(args) -> int:
    import tinygrad_edu as tg
    from . import data, optim
    from . import functional as F
    from .diagnostics import Monitor

    x, y, source = load_data(args.data)
    out = pathlib.Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the output folder {out}: {error.strerror}") from None

    tg.manual_seed(args.seed)
    x = x.astype(np.float32)
    classes = int(y.max()) + 1
    try:
        x_train, x_test, y_train, y_test = data.train_test_split(
            x, y, test_size=args.test_size, seed=args.seed, stratify=y)
    except ValueError as error:
        raise UsageError(f"cannot split the data: {error}") from None
    model = build_model(x.shape[1], args.hidden, classes, args.activation, args.init)
    weights = [model[0].weight, model[2].weight]
    n_train = len(x_train)

    def loss_of(inputs, labels):
        scores = model(inputs)
        if args.loss == "mse":
            loss = F.mse_loss(scores.sigmoid(), data.one_hot(labels, classes).astype(np.float32), reduction="sum")
            loss = loss * (0.5 / len(labels))  # the learner's sum((y - h)**2) / (2 m)
        else:
            loss = F.cross_entropy(scores, labels)
        if args.l2:
            loss = loss + (args.l2 * 0.5 / n_train) * sum((w * w).sum() for w in weights)
        return loss, scores

    print(f"data: {source}: {len(x)} samples of {x.shape[1]} features, {classes} classes; "
          f"{n_train} for training, {len(x_test)} held out")
    print(f"model: {x.shape[1]}-{args.hidden}-{classes}, {args.activation} hidden layer, "
          f"{'sigmoid outputs + squared error' if args.loss == 'mse' else 'softmax + cross-entropy'}"
          f"{f' + L2 ({args.l2:g})' if args.l2 else ''}, {args.optimizer}, init {args.init}")

    history = {"epoch": [], "loss": [], "train_accuracy": [], "test_accuracy": []}
    monitor = Monitor(model)
    started = time.perf_counter()

    def record(epoch, loss_value):
        with tg.no_grad():
            history["epoch"].append(epoch)
            history["loss"].append(loss_value)
            history["train_accuracy"].append(F.accuracy(model(x_train), y_train))
            history["test_accuracy"].append(F.accuracy(model(x_test), y_test))

    progress = _progress(args.epochs, args.no_progress)
    if args.optimizer in ("lbfgs", "cg"):
        def closure():
            return loss_of(x_train, y_train)[0]

        epoch = [0]

        def after_iteration():
            epoch[0] += 1
            record(epoch[0], closure().item())
            progress.update(history)

        loss, scores = loss_of(x_train, y_train)  # one monitored step: the starting point
        loss.backward()
        monitor.step(loss, scores, y_train)
        method = "L-BFGS-B" if args.optimizer == "lbfgs" else "CG"
        optim.minimize(closure, model, method=method, maxiter=args.epochs, callback=after_iteration)
        loss, scores = loss_of(x_train, y_train)
        model.zero_grad()
        loss.backward()
        monitor.step(loss, scores, y_train)
    else:
        if args.optimizer == "sgd":
            optimizer = optim.SGD(model.parameters(), lr=args.lr or 1.0, momentum=0.9)
        else:
            optimizer = optim.Adam(model.parameters(), lr=args.lr or 0.01)
        loader = data.DataLoader(data.TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True)
        for epoch in range(1, args.epochs + 1):
            total = 0.0
            for inputs, labels in loader:
                optimizer.zero_grad()
                loss, scores = loss_of(inputs, labels)
                loss.backward()
                optimizer.step()
                monitor.step(loss, scores, labels)
                total += loss.item() * len(labels)
            record(epoch, total / n_train)
            progress.update(history)
    progress.close()
    monitor.remove()
    seconds = time.perf_counter() - started

    print(f"trained in {seconds:.1f} s: train accuracy {history['train_accuracy'][-1]:.1%}, "
          f"test accuracy {history['test_accuracy'][-1]:.1%}")
    if not all(math.isfinite(v) for v in history["loss"]):
        print("the loss became NaN/Inf: try a smaller --lr; tg.detect_anomaly() finds the operation")
    written = _write_outputs(out, model, loss_of, x_train[:8], y_train[:8], history, monitor, args)
    print(f"wrote to {out}/: " + ", ".join(written))
    return 0


class _progress:
    """A tqdm bar over epochs when tqdm is installed and wanted, else one line every few epochs."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.bar = total, None
        if not quiet:
            try:
                from tqdm import tqdm
            except ImportError:
                pass
            else:
                self.bar = tqdm(total=total, unit="epoch", desc="training", file=sys.stderr)

    def update(self, history: dict) -> None:
        loss, accuracy = history["loss"][-1], history["train_accuracy"][-1]
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}", train_acc=f"{accuracy:.1%}", refresh=False)
            self.bar.update(1)
        elif history["epoch"][-1] % max(1, self.total // 5) == 0 or history["epoch"][-1] == self.total:
            print(f"epoch {history['epoch'][-1]:4d}  loss {loss:.4f}  train accuracy {accuracy:.1%}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _write_outputs(out, model, loss_of, x_small, y_small, history, monitor, args) -> list:
    """graph.svg, explain.txt, diagnostics.txt, curves.png, model.npz (what can be written)."""
    import tinygrad_edu as tg
    from . import viz

    written = []
    # The graph of one small batch: the same operations as every step, with readable shapes.
    loss, _ = loss_of(x_small, y_small)
    _write_text(out / "explain.txt", tg.explain(loss, params=model) + "\n")
    written.append("explain.txt")
    graph = viz.draw_graph(loss, params=model, show_grads=True)
    try:
        viz.render(graph, out / "graph.svg")
        written.append("graph.svg")
    except viz.GraphvizNotFoundError:
        _write_text(out / "graph.dot", graph.source)
        written.append("graph.dot (Graphviz's dot is not installed: apt-get install -y graphviz)")
    report = str(monitor.report())
    _write_text(out / "diagnostics.txt", report + "\n")
    written.append("diagnostics.txt")
    try:
        _plot_curves(history, out / "curves.png", args)
        written.append("curves.png")
    except ImportError:
        written.append("no curves.png (matplotlib missing: pip install tinygrad_edu[examples])")
    tg.save(model.state_dict(), out / "model.npz")
    written.append("model.npz")
    warnings = monitor.report().warnings
    if warnings:
        print("diagnostics: " + " | ".join(str(w).splitlines()[0] for w in warnings))
    return written


def _write_text(path: pathlib.Path, text: str) -> None:
    """Atomically, like every file this package writes: whole or not at all, never through a link."""
    with atomic_write(path, text=True) as file:
        file.write(text)


def _plot_curves(history: dict, path: pathlib.Path, args) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.5))
    FigureCanvasAgg(figure)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    loss_axes.plot(history["epoch"], history["loss"])
    loss_axes.set(xlabel="epoch" if args.optimizer in ("sgd", "adam") else "iteration", ylabel="training loss",
                  title=f"loss ({args.loss})")
    accuracy_axes.plot(history["epoch"], history["train_accuracy"], label="train")
    accuracy_axes.plot(history["epoch"], history["test_accuracy"], label="test")
    accuracy_axes.set(xlabel=loss_axes.get_xlabel(), ylabel="accuracy", ylim=(0, 1), title="accuracy")
    accuracy_axes.legend()
    figure.tight_layout()
    with atomic_write(path) as file:
        figure.savefig(file, format="png")


if __name__ == "__main__":
    sys.exit(main())
