"""`python -m tinygrad_edu demo` (also `tinygrad-edu demo`): train, check and explain a network.

The default is the first learner's network (a sigmoid hidden layer of 25 units, 10 outputs,
mean-squared error + L2) on the digits bundled with scikit-learn; `--init rand` gives the
second learner's (two sigmoid hidden layers of 128 units, all-positive initial weights), which
stalls, and the diagnostics say why. The demo reads in steps: check the flags, load the data,
prepare the output folder, build the model, train, check the gradients, write the files.
Bad flags, a bad data file or an output that cannot be written give a one-line error and exit
status 2, before any training; a run that diverges (NaN or infinite loss) exits with status 1
and writes no checkpoint.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import math
import os
import pathlib
import sys
import tempfile
import time

import numpy as np

from ._files import atomic_write

PROGRAM = "tinygrad-edu"
ACTIVATIONS = ("sigmoid", "tanh", "relu")
INITS = ("auto", "xavier", "kaiming", "pytorch", "rand", "normal")
OPTIMIZERS = ("sgd", "adam", "lbfgs", "cg")
LOSSES = ("mse", "cross-entropy")
FIRST_LEARNERS_HIDDEN = (25,)
SECOND_LEARNERS_HIDDEN = (128, 128)
GRAPH_SAMPLES = 8  # graph.svg and explain.txt show one small batch: readable shapes, same operations
CHECK_SAMPLES = 4  # the gradient check's batch: enough to involve every unit, quick in float64
OUTPUTS = ("explain.txt", "graph.svg", "graph.dot", "diagnostics.txt", "curves.png", "model.npz")


class UsageError(Exception):
    """A bad flag, a bad input file or an output that cannot be written: one line, exit status 2."""


class TrainingFailed(Exception):
    """The run diverged or its gradients are wrong: one line, exit status 1, no checkpoint written."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse prints usage + message; one line is kinder
        raise UsageError(message)


def _number(kind, positive: bool):
    """An argparse type: a finite number of `kind`, > 0 (positive) or >= 0."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if positive and not value > 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        if not positive and value < 0:
            raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
        return value

    return parse


def _fraction(text):
    value = _number(float, positive=True)(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _layer_sizes(text):
    """`--hidden 25` or `--hidden 128,128`: one positive unit count per hidden layer."""
    parts = text.split(",")
    try:
        return tuple(_number(int, positive=True)(part.strip()) for part in parts)
    except argparse.ArgumentTypeError as error:
        if len(parts) == 1:
            raise
        raise argparse.ArgumentTypeError(f"{error} (in {text!r}: give unit counts like 25 or 128,128)") \
            from None


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROGRAM,
                     description="tinygrad_edu: a small, honest autograd framework for learners")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    demo = commands.add_parser(
        "demo", help="train, check and explain the first learner's network",
        description="Train the first learner's network (a sigmoid hidden layer, 10 outputs) on "
                    "handwritten digits, check its gradients, then write its graph, curves, "
                    "diagnostics and checkpoint.",
    )
    demo.add_argument("--data", metavar="PATH.mat", help="a MATLAB/Octave file with X (m, n) and y (m,); "
                      "labels 1..10 are read as the course convention (10 means the digit 0). "
                      "Default: scikit-learn's 8x8 digits")
    demo.add_argument("--hidden", type=_layer_sizes, default=None, metavar="UNITS[,UNITS...]",
                      help="hidden units per layer, e.g. 25 or 128,128 (default 25, the first learner's; "
                           "with --init rand 128,128, the second learner's)")
    demo.add_argument("--activation", choices=ACTIVATIONS, default="sigmoid", help="hidden activation")
    demo.add_argument("--init", choices=INITS, default="auto",
                      help="auto: Xavier for sigmoid/tanh, Kaiming for ReLU; rand: the second learner's "
                           "all-positive rand * sqrt(1/n), to see saturation")
    demo.add_argument("--loss", choices=LOSSES, default="mse",
                      help="mse: sigmoid outputs + squared error (the learner's); cross-entropy: softmax")
    demo.add_argument("--l2", type=_number(float, positive=False), default=1.0, metavar="LAMBDA",
                      help="L2 penalty lambda / (2 m) * sum of squared weights (default 1, the learner's)")
    demo.add_argument("--optimizer", choices=OPTIMIZERS, default="sgd",
                      help="sgd (momentum 0.9), adam, or full-batch lbfgs / cg through SciPy")
    demo.add_argument("--lr", type=_number(float, positive=True), default=None,
                      help="learning rate (sgd 1.0, adam 0.01)")
    demo.add_argument("--epochs", type=_number(int, positive=True), default=40, help="passes over the data "
                      "(iterations for lbfgs / cg; default 40)")
    demo.add_argument("--batch-size", type=_number(int, positive=True), default=32, help="default 32")
    demo.add_argument("--test-size", type=_fraction, default=0.2, help="held-out fraction (default 0.2)")
    demo.add_argument("--seed", type=_number(int, positive=False), default=0, help="default 0")
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
    except TrainingFailed as error:
        print(f"{PROGRAM} demo: failed: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROGRAM} demo: interrupted", file=sys.stderr)
        return 130


# ---- the demo, step by step ----------------------------------------------------------------------
def demo(args) -> int:
    """Check what can fail before training (data, folder, memory), build, train, check, write."""
    import tinygrad_edu as tg

    hidden = args.hidden or (SECOND_LEARNERS_HIDDEN if args.init == "rand" else FIRST_LEARNERS_HIDDEN)
    x, y, source = load_data(args.data)
    out = prepare_output_folder(args.out)
    classes = int(y.max()) + 1
    check_memory(x.shape, hidden, classes)
    tg.manual_seed(args.seed)
    x_train, x_test, y_train, y_test = split(x, y, args)
    model = build_model(x.shape[1], hidden, classes, args.activation, args.init)
    cost = Cost(args.loss, args.l2, classes, len(x_train))
    print(f"data: {source}: {len(x)} samples of {x.shape[1]} features, {classes} classes; "
          f"{len(x_train)} for training, {len(x_test)} held out")
    print(f"model: {'-'.join(str(n) for n in (x.shape[1], *hidden, classes))}, {args.activation} hidden "
          f"layer{'s' if len(hidden) > 1 else ''}, {cost.description}, {args.optimizer}, init {args.init}")

    # A diverging run overflows on its way to inf; train() says so in one line (TrainingFailed), where
    # NumPy's warnings would add lines of library code to the terminal
    with _one_blas_thread(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        history, monitor, seconds = train(model, cost, (x_train, y_train, x_test, y_test), args)
    print(f"trained in {seconds:.1f} s: train accuracy {history['train_accuracy'][-1]:.1%}, "
          f"test accuracy {history['test_accuracy'][-1]:.1%}")
    print("gradient check: " + check_gradients(model, cost, x_train[:CHECK_SAMPLES], y_train[:CHECK_SAMPLES]))
    warnings = monitor.report().warnings
    if warnings:
        print("diagnostics: " + " | ".join(str(w).splitlines()[0] for w in warnings))
    written = write_outputs(out, model, cost, x_train[:GRAPH_SAMPLES], y_train[:GRAPH_SAMPLES],
                            history, monitor, args)
    print(f"wrote to {out}/: " + ", ".join(written))
    return 0


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
    bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise UsageError(f"cannot use --data {path}: X holds {bad} NaN or infinite values of {x.size}")
    return x, y, f"{path}{note}"


def check_memory(data_shape: tuple, hidden: tuple, classes: int) -> None:
    """Refuse a network that cannot fit in memory now, rather than fail after minutes of allocating."""
    samples, features = data_shape
    sizes = (features, *hidden, classes)
    parameters = sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(sizes, sizes[1:]))
    # float32: weights, gradients, two optimizer moments and a copy for the gradient check; activations of
    # the whole training set (accuracy is measured on all of it) with their gradients.
    needed = 4 * (5 * parameters + 3 * samples * sum(sizes[1:]))
    available = _physical_memory()
    if available and needed > available:
        raise UsageError(f"--hidden {','.join(map(str, hidden))} needs about {_bytes_text(needed)} "
                         f"({parameters:,} parameters), more than this machine's {_bytes_text(available)}")


def _physical_memory():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None  # not a POSIX system: no estimate, the allocation itself will say


def _bytes_text(count: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "bytes" else f"{count:.1f} {unit}"
        count /= 1000


def prepare_output_folder(name: str) -> pathlib.Path:
    """Create the folder and prove that it takes files, before any training."""
    out = pathlib.Path(name)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the output folder {out}: {error.strerror or error}") from None
    try:
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise UsageError(f"cannot write to the output folder {out}: {error.strerror or error}") from None
    for output in OUTPUTS:
        target = out / output
        if target.exists() and not target.is_file():
            raise UsageError(f"cannot write {target}: something other than a file is in the way")
    return out


def split(x, y, args):
    from . import data

    try:
        return data.train_test_split(x.astype(np.float32), y, test_size=args.test_size, seed=args.seed,
                                     stratify=y)
    except ValueError as error:
        raise UsageError(f"cannot split the data: {error}") from None


def build_model(inputs: int, hidden, classes: int, activation: str, init: str):
    """Linear, activation, ..., Linear: one hidden layer per entry of `hidden` (an int is one layer)."""
    from . import nn
    from .random_generator import generator

    hidden = (hidden,) if isinstance(hidden, int) else tuple(hidden)
    act = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}[activation]
    sizes = (inputs, *hidden, classes)
    layers = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        layers += [nn.Linear(fan_in, fan_out), act()]
    model = nn.Sequential(*layers[:-1])  # scores: the output's sigmoid or softmax is in the cost
    if init == "auto":
        init = "kaiming" if activation == "relu" else "xavier"
    linears = [layer for layer in model if isinstance(layer, nn.Linear)]
    for layer in linears:
        if init == "xavier":
            # A sigmoid's slope is at most 1/4: gain 4 keeps its gradient's variance (docs/initialisation.md)
            hidden_gain = 4.0 if activation == "sigmoid" else nn.init.calculate_gain(activation)
            nn.init.xavier_uniform_(layer.weight, gain=hidden_gain if layer is not linears[-1] else 1.0)
        elif init == "kaiming":
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        elif init == "rand":  # the second learner's: all positive, every unit saturates
            layer.weight.data[...] = generator().random(layer.weight.shape) * math.sqrt(1 / layer.in_features)
        elif init == "normal":
            nn.init.normal_(layer.weight, 0.0, 1.0)
        if init != "pytorch":
            nn.init.zeros_(layer.bias)
    return model


class Cost:
    """The training cost: the learner's squared error (or cross-entropy) plus the L2 penalty."""

    def __init__(self, loss: str, l2: float, classes: int, samples: int):
        self.loss, self.l2, self.classes, self.samples = loss, l2, classes, samples
        fit = "sigmoid outputs + squared error" if loss == "mse" else "softmax + cross-entropy"
        self.description = fit + (f" + L2 ({l2:g})" if l2 else "")
        self.short_name = ("squared error" if loss == "mse" else "cross-entropy") + (" + L2" if l2 else "")

    def __call__(self, model, inputs, labels):
        """(cost, scores) of `model` on one batch."""
        from . import data
        from . import functional as F
        from . import nn

        scores = model(inputs)
        if self.loss == "mse":
            targets = data.one_hot(labels, self.classes).astype(scores.dtype)
            cost = F.mse_loss(scores.sigmoid(), targets, reduction="sum") * (0.5 / len(labels))  # sum / (2 m)
        else:
            cost = F.cross_entropy(scores, labels)
        if self.l2:
            weights = [layer.weight for layer in model if isinstance(layer, nn.Linear)]
            cost = cost + (self.l2 * 0.5 / self.samples) * sum((w * w).sum() for w in weights)
        return cost, scores


def train(model, cost: Cost, splits, args):
    """Train with the chosen optimizer, one record per epoch; stop with TrainingFailed on NaN/inf."""
    import tinygrad_edu as tg
    from . import data, optim
    from . import functional as F
    from .diagnostics import Monitor

    x_train, y_train, x_test, y_test = splits
    history = {"epoch": [], "loss": [], "train_accuracy": [], "test_accuracy": []}
    monitor = Monitor(model)
    progress = _progress(args.epochs, args.no_progress)
    started = time.perf_counter()

    def record(epoch, loss_value):
        _refuse_non_finite(model, loss_value, epoch, args)
        with tg.no_grad():
            history["epoch"].append(epoch)
            history["loss"].append(loss_value)
            history["train_accuracy"].append(F.accuracy(model(x_train), y_train))
            history["test_accuracy"].append(F.accuracy(model(x_test), y_test))
        progress.update(history)

    def monitored_step():  # one full-batch step the Monitor sees: the full-batch methods run outside it
        loss, scores = cost(model, x_train, y_train)
        model.zero_grad()
        loss.backward()
        monitor.step(loss, scores, y_train)
        return loss

    try:
        if args.optimizer in ("lbfgs", "cg"):
            monitored_step()  # the starting point
            iteration = [0]

            def after_iteration():
                iteration[0] += 1
                record(iteration[0], cost(model, x_train, y_train)[0].item())

            method = "L-BFGS-B" if args.optimizer == "lbfgs" else "CG"
            optim.minimize(lambda: cost(model, x_train, y_train)[0], model, method=method,
                           maxiter=args.epochs, callback=after_iteration)
            monitored_step()
        else:
            if args.optimizer == "sgd":
                optimizer = optim.SGD(model.parameters(), lr=args.lr or 1.0, momentum=0.9)
            else:
                optimizer = optim.Adam(model.parameters(), lr=args.lr or 0.01)
            batches = data.DataLoader(data.TensorDataset(x_train, y_train), batch_size=args.batch_size,
                                      shuffle=True)
            for epoch in range(1, args.epochs + 1):
                total = 0.0
                for inputs, labels in batches:
                    optimizer.zero_grad()
                    loss, scores = cost(model, inputs, labels)
                    loss.backward()
                    optimizer.step()
                    monitor.step(loss, scores, labels)
                    total += loss.item() * len(labels)
                record(epoch, total / len(x_train))
    finally:
        progress.close()
        monitor.remove()
    if not history["epoch"]:  # a full-batch method that stopped before its first iteration
        record(0, cost(model, x_train, y_train)[0].item())
    return history, monitor, time.perf_counter() - started


def _one_blas_thread():
    """The demo's matrices are too small to share among BLAS threads: on a busy machine the threads wait
    for each other (`demo --init rand --epochs 2`, 3 interleaved runs each: median 8 s with one thread,
    14 s with the default). threadpoolctl comes with scikit-learn; without it, nothing changes."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _refuse_non_finite(model, loss_value: float, epoch: int, args) -> None:
    """A diverged run must not look like a result: no accuracy, no checkpoint, a reason."""
    unit = "epoch" if args.optimizer in ("sgd", "adam") else "iteration"
    if not math.isfinite(loss_value):
        what = f"the training loss became {loss_value} at {unit} {epoch}"
    else:
        broken = [name for name, p in model.named_parameters() if not np.isfinite(p.data).all()]
        if not broken:
            return
        what = f"the weights {', '.join(broken)} became NaN or infinite at {unit} {epoch}"
    raise TrainingFailed(f"{what}: try a smaller --lr or --l2 (tg.detect_anomaly() finds the operation); "
                         "model.npz was not written")


def check_gradients(model, cost: Cost, inputs, labels, per_parameter: int = 6, eps: float = 1e-6) -> str:
    """Compare autograd's gradients with central differences at a few entries of every parameter.

    On a float64 copy of the model (float32 differences would drown in rounding). Returns one
    line to print; raises TrainingFailed when a gradient disagrees.
    """
    import tinygrad_edu as tg

    twin = copy.deepcopy(model)
    for parameter in twin.parameters():
        parameter.data = parameter.data.astype(np.float64)
    inputs = np.asarray(inputs, dtype=np.float64)
    twin.zero_grad()
    cost(twin, inputs, labels)[0].backward()
    rng = np.random.default_rng(0)
    worst, checked = 0.0, 0
    for name, parameter in twin.named_parameters():
        picks = rng.choice(parameter.data.size, size=min(per_parameter, parameter.data.size), replace=False)
        for flat in picks:
            index = np.unravel_index(flat, parameter.shape)
            saved = parameter.data[index]
            with tg.no_grad():
                parameter.data[index] = saved + eps
                above = cost(twin, inputs, labels)[0].item()
                parameter.data[index] = saved - eps
                below = cost(twin, inputs, labels)[0].item()
            parameter.data[index] = saved
            numeric, autograd = (above - below) / (2 * eps), float(parameter.grad.data[index])
            error = abs(numeric - autograd) / max(abs(numeric), abs(autograd), 1e-4)
            if error > 1e-4:
                raise TrainingFailed(f"gradient check: d cost / d {name}{list(index)} is {autograd:.6g} by "
                                     f"autograd but {numeric:.6g} by central differences")
            worst, checked = max(worst, error), checked + 1
    return (f"autograd's gradients match central differences at {checked} sampled weights and biases "
            f"on {len(labels)} training samples (largest relative error {worst:.1e})")


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


def write_outputs(out, model, cost: Cost, x_small, y_small, history, monitor, args) -> list:
    """graph.svg, explain.txt, diagnostics.txt, curves.png, model.npz (what can be written)."""
    import tinygrad_edu as tg
    from . import viz

    written = []
    # The graph of one small batch: the same operations as every step, with readable shapes.
    loss, _ = cost(model, x_small, y_small)
    made_from = (f"the cost ({cost.short_name}) on the first {len(y_small)} training samples, "
                 "after training; every step runs these operations")
    with _writing(out / "explain.txt") as path:
        _write_text(path, f"# The backward pass of {made_from}.\n\n" + tg.explain(loss, params=model) + "\n")
    written.append("explain.txt")
    graph = viz.draw_graph(loss, params=model, show_grads=True)
    graph.attr(label=f"The graph of {made_from}", labelloc="t")
    try:
        with _writing(out / "graph.svg") as path:
            viz.render(graph, path)
        written.append("graph.svg")
    except viz.GraphvizNotFoundError:
        with _writing(out / "graph.dot") as path:
            _write_text(path, graph.source)
        written.append("graph.dot (Graphviz's dot is not installed: apt-get install -y graphviz)")
    with _writing(out / "diagnostics.txt") as path:
        _write_text(path, str(monitor.report()) + "\n")
    written.append("diagnostics.txt")
    try:
        with _writing(out / "curves.png") as path:
            _plot_curves(history, path, args, cost)
        written.append("curves.png")
    except ImportError:
        written.append("no curves.png (matplotlib missing: pip install tinygrad_edu[examples])")
    with _writing(out / "model.npz") as path:
        tg.save(model.state_dict(), path)
    written.append("model.npz")
    return written


@contextlib.contextmanager
def _writing(path: pathlib.Path):
    """Name the file when writing it fails (a full disk): atomic_write has already removed its temporary."""
    try:
        yield path
    except OSError as error:
        raise UsageError(f"cannot write {path}: {error.strerror or error} (nothing half-written is left; "
                         "files listed before it were written)") from None


def _write_text(path: pathlib.Path, text: str) -> None:
    """Atomically, like every file this package writes: whole or not at all, never through a link."""
    with atomic_write(path, text=True) as file:
        file.write(text)


def _plot_curves(history: dict, path: pathlib.Path, args, cost: Cost) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.5))
    FigureCanvasAgg(figure)
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    loss_axes.plot(history["epoch"], history["loss"])
    loss_axes.set(xlabel="epoch" if args.optimizer in ("sgd", "adam") else "iteration",
                  ylabel="training cost", title=f"training cost: {cost.short_name}")
    accuracy_axes.plot(history["epoch"], history["train_accuracy"], label="train")
    accuracy_axes.plot(history["epoch"], history["test_accuracy"], label="test")
    accuracy_axes.set(xlabel=loss_axes.get_xlabel(), ylabel="accuracy", ylim=(0, 1), title="accuracy")
    accuracy_axes.legend()
    figure.tight_layout()
    with atomic_write(path) as file:
        figure.savefig(file, format="png")


if __name__ == "__main__":
    sys.exit(main())
