"""Why doesn't it start learning? One deep sigmoid network, initialised four ways, side by side.

The second learner (shared/seeds/001_*.txt) drew weights as `np.random.rand(n_in, n_out) *
sqrt(1 / n_in)` (all positive) for a 784-128-128-10 sigmoid network on MNIST, and asked for a
systematic way to choose initial weights. That network is too slow for a quick example, so
this one keeps its hidden layers and runs on the 8x8 digits: 64-128-128-10, sigmoid hidden
layers, softmax cross-entropy, and the same seed, data, mini-batches, optimizer (SGD with
momentum) and number of steps for each of:

- rand:    U(0, 1) * sqrt(1 / fan_in), the learner's (all positive);
- normal:  N(0, 1), zero-mean but blind to the layer's size;
- xavier:  nn.init.xavier_uniform_, variance 2 / (fan_in + fan_out) (derived for tanh);
- kaiming: nn.init.kaiming_normal_(nonlinearity='relu'), variance 2 / fan_in (for ReLU);
- xavier4: nn.init.xavier_uniform_(gain=4) on the sigmoid layers: Xavier corrected for the
           sigmoid's slope of 1/4 (a fifth row, because it is the answer for sigmoid layers).

For each it prints the loss after N steps, the training accuracy, the size of each layer's
sums at the start, and what `diagnostics.Monitor` says about the first steps; then it plots
the loss curves and explains the numbers.

Run:  python examples/initialisation.py [--steps 300] [--depth 2] [--out FOLDER] [--seed 0]
"""
from __future__ import annotations

import argparse
import contextlib
import math
import pathlib
import tempfile
import textwrap

import numpy as np

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn, optim
from tinygrad_edu.data import load_digits
from tinygrad_edu.diagnostics import Monitor

INITS = ["rand", "normal", "xavier", "kaiming", "xavier4"]
DEFAULT_OUT = pathlib.Path(tempfile.gettempdir()) / "tinygrad_edu_examples"


def build_model(depth: int, width: int) -> nn.Sequential:
    layers = [nn.Linear(64, width), nn.Sigmoid()]
    for _ in range(depth - 1):
        layers += [nn.Linear(width, width), nn.Sigmoid()]
    return nn.Sequential(*layers, nn.Linear(width, 10))  # scores; the softmax is inside the loss


def initialise(model: nn.Sequential, how: str) -> None:
    """Fill every weight matrix the chosen way; biases start at zero, as the learner's did."""
    for layer in model:
        if not isinstance(layer, nn.Linear):
            continue
        if how == "rand":
            nn.init.uniform_(layer.weight, 0.0, 1.0)  # np.random.rand: uniform on [0, 1)
            layer.weight.data *= math.sqrt(1 / layer.in_features)
        elif how == "normal":
            nn.init.normal_(layer.weight, 0.0, 1.0)
        elif how == "xavier":
            nn.init.xavier_uniform_(layer.weight)
        elif how == "xavier4":
            nn.init.xavier_uniform_(layer.weight, gain=4.0 if layer is not model[-1] else 1.0)
        elif how == "kaiming":
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        else:
            raise ValueError(f"unknown initialisation {how!r}; choose from {INITS}")
        nn.init.zeros_(layer.bias)


def pre_activation_scale(model: nn.Sequential, x: np.ndarray) -> list:
    """(mean, std) of the sums z = x @ W.T + b entering each sigmoid layer, on the data.

    A sigmoid is steep only for |z| below about 4; far outside it, it is flat (saturated)
    and passes back almost no gradient. Variance-preserving inits keep these near 0 and 1.
    """
    scales, h = [], tg.Tensor(x)
    with tg.no_grad():
        for layer in model:
            h = layer(h)
            if isinstance(layer, nn.Linear) and layer is not model[-1]:
                scales.append((float(h.data.mean()), float(h.data.std())))
    return scales


def run(how: str, X: np.ndarray, labels: np.ndarray, args) -> dict:
    """Train one initialisation; the seed fixes both the weights' generator and the batches."""
    tg.manual_seed(args.seed)
    model = build_model(args.depth, args.width)
    initialise(model, how)
    scales = pre_activation_scale(model, X)
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    batches = np.random.default_rng(args.seed)  # the same mini-batches for every initialisation
    x_all = tg.Tensor(X)
    losses = []
    monitor = Monitor(model)  # watches the first --watch steps: is it starting to learn?
    for step in range(args.steps):
        index = batches.choice(len(X), size=args.batch_size, replace=False)
        scores = model(x_all[index])
        loss = F.cross_entropy(scores, labels[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step < args.watch:
            monitor.step(loss, scores, labels[index])  # after optimizer.step(): it reads .grad
        if step + 1 == args.watch:
            monitor.remove()  # the hooks come off; what was recorded stays readable
    report = monitor.report(last=args.watch)
    with tg.no_grad():
        scores = model(x_all)
        final_loss = F.cross_entropy(scores, labels).item()
        train_accuracy = F.accuracy(scores, labels)
    layer_names = list(monitor.layers)
    return {
        "init": how,
        "losses": losses,
        "first_loss": losses[0],
        "final_loss": final_loss,
        "train_accuracy": train_accuracy,
        "pre_activations": scales,
        "saturated": [float(np.nanmean(monitor.layers[n].saturated)) for n in layer_names],
        "grad_rms": [float(np.nanmean(monitor.layers[n].grad_rms)) for n in layer_names],
        "kinds": sorted(report.kinds),
        "report": report,
    }


def print_table(rows: list, args, n_images: int) -> None:
    width = 6 * args.depth
    print(f"\n{'init':8s} {'first loss':>10s} {'loss after ' + str(args.steps):>15s} {'train acc':>9s}  "
          f"{'z mean':<{width}s} {'z std':<{width}s} {'saturated':<{width}s} {'grad 1st/last':>13s}  "
          f"Monitor warnings, first {args.watch} steps")
    for row in rows:
        means = " ".join(f"{mean:5.2f}" for mean, _ in row["pre_activations"])
        stds = " ".join(f"{std:5.2f}" for _, std in row["pre_activations"])
        saturated = " ".join(f"{s:5.0%}" for s in row["saturated"])
        ratio = row["grad_rms"][0] / row["grad_rms"][-1]
        print(f"{row['init']:8s} {row['first_loss']:10.3f} {row['final_loss']:15.3f} "
              f"{row['train_accuracy']:9.1%}  "
              f"{means:<{width}s} {stds:<{width}s} {saturated:<{width}s} {ratio:13.2g}  {', '.join(row['kinds']) or '-'}")
    print(f"""
init:  rand = U(0, 1) * sqrt(1 / fan_in) (the learner's); normal = N(0, 1); xavier = xavier_uniform_;
       kaiming = kaiming_normal_(nonlinearity='relu'); xavier4 = xavier_uniform_(gain=4) (sigmoid layers)
loss after {args.steps}: cross-entropy on all {n_images} images after training
       (ln 10 = {math.log(10):.3f}: a network that has learned nothing)
z mean, z std: the sums entering each sigmoid layer, at the start (|z| > 4: the sigmoid is flat)
saturated: fraction of each sigmoid layer's outputs below 0.01 or above 0.99, first {args.watch} steps
grad 1st/last: RMS of dL/d(activation) at the first sigmoid layer over that at the last one""")


def explain(rows: list, args) -> str:
    """One paragraph, with the numbers of this run (written for the default settings; the
    parts that depend on the outcome say what happened)."""
    by = {row["init"]: row for row in rows}
    rand, normal, xavier, kaiming, xavier4 = (by[name] for name in INITS)

    def ratio(row):
        return row["grad_rms"][0] / row["grad_rms"][-1]

    def stds(row):
        return " and ".join(f"{s:.2f}" for _, s in row["pre_activations"])

    def monitor_says(*chosen):
        kinds = sorted({kind for row in chosen for kind in row["kinds"]})
        return "the Monitor says nothing" if not kinds else f"the Monitor still warns: {', '.join(kinds)}"

    learned = "Here it still learns" if normal["final_loss"] < 0.5 * math.log(10) else "It does not learn"
    worst = max(max(xavier["saturated"]), max(kaiming["saturated"]))
    saturated = "no unit saturated" if worst < 0.005 else f"at most {worst:.0%} of a layer saturated"
    best = min(rows, key=lambda row: row["final_loss"])
    deeper = " (try --depth 4, where gain-1 Xavier's gradient vanishes)" if args.depth < 4 else ""
    return (
        f"Why: a unit's sum z adds fan_in products, so its size depends on the weights' mean and "
        f"spread times the number of inputs. The learner's weights are all positive: the sums do not "
        f"cancel, every unit of a layer gets about the same positive z (layer {len(rand['saturated'])} "
        f"mean {rand['pre_activations'][-1][0]:.2f}, std only {rand['pre_activations'][-1][1]:.2f}), "
        f"all units say the same thing, and the gradient reaching the first layer is "
        f"{ratio(rand):.3f} of the last one's (the Monitor: {', '.join(rand['kinds'])}). After "
        f"{args.steps} steps the loss is {rand['final_loss']:.2f}, accuracy {rand['train_accuracy']:.0%}. "
        f"Zero-mean weights fix that; their variance sets the rest. N(0, 1) ignores fan_in: z has std "
        f"{stds(normal)}, {normal['saturated'][-1]:.0%} of the last sigmoid layer is saturated and the "
        f"untrained scores are so large that the first loss is {normal['first_loss']:.1f}, not ln 10. "
        f"{learned} (loss {normal['final_loss']:.2f}): with 64 inputs and {args.width} units its sums are "
        f"only a few times too large and its unsaturated units pass the gradient on, but its scale is an "
        f"accident of the sizes (the sums grow like sqrt(fan_in): sqrt(784 / 64) = 3.5 times larger on "
        f"the learner's 784 pixels of the same brightness). Xavier and Kaiming set the variance from "
        f"the fan-in (and fan-out): z std {stds(xavier)} (xavier), {stds(kaiming)} (kaiming), "
        f"{saturated}, a first loss near ln 10, {monitor_says(xavier, kaiming)}, "
        f"and they reach {xavier['final_loss']:.2f} and {kaiming['final_loss']:.2f}. But a sigmoid's "
        f"slope is at most 1/4, so each sigmoid layer shrinks the gradient at least 4-fold (grad "
        f"1st/last {ratio(xavier):.2f} for xavier): Xavier was derived for units of slope 1 such as "
        f"tanh. Four times larger weights on the sigmoid layers (xavier4: z std {stds(xavier4)}, ratio "
        f"{ratio(xavier4):.2f}) make up for that: loss {xavier4['final_loss']:.2f}, "
        f"{monitor_says(xavier4)}{deeper}. Lowest loss in this run: {best['init']}. The systematic "
        f"answer: zero-mean weights with a variance set by fan-in/fan-out and by the activation's slope "
        f"(Xavier for tanh, 4x Xavier for sigmoid, Kaiming for ReLU), then a Monitor to check that no "
        f"layer saturates and that the gradient reaches the first layer."
    )


def plot(rows: list, path: pathlib.Path, args) -> pathlib.Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no window: works on a server and in tests
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    window = max(1, min(10, args.steps // 10))  # smooth the mini-batch noise a little
    for row in rows:
        losses = np.asarray(row["losses"])
        smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
        ax.plot(np.arange(len(smooth)) + window, smooth, label=f"{row['init']} ({row['final_loss']:.2f})")
    ax.axhline(math.log(10), color="grey", linestyle="--", linewidth=1, label="ln 10: learned nothing")
    ax.set_yscale("log")
    ax.set_xlabel("SGD step")
    ax.set_ylabel(f"cross-entropy (mean of {window} mini-batches)")
    ax.set_title(f"64-{'-'.join([str(args.width)] * args.depth)}-10 sigmoid network, SGD lr {args.lr}, "
                 f"momentum {args.momentum}")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def one_blas_thread():
    """Matrices of 64 x 128 are too small to share among BLAS threads: on a busy machine the threads
    wait for each other (measured: 300 steps x 5 inits took 7 s with one thread, 9 minutes with the
    default). threadpoolctl comes with scikit-learn, which this example needs anyway."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="SGD steps for each initialisation")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--depth", type=int, default=2, help="number of sigmoid hidden layers")
    parser.add_argument("--width", type=int, default=128, help="units per hidden layer")
    parser.add_argument("--watch", type=int, default=5, help="steps the Monitor watches at the start")
    parser.add_argument("--out", type=pathlib.Path, default=DEFAULT_OUT,
                        help=f"folder for init_comparison.png (default {DEFAULT_OUT})")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    args.watch = max(1, min(args.watch, args.steps))

    X, labels = load_digits()
    X = X.astype(np.float32)
    print(f"digits: {len(X)} images of 64 pixels; network 64-{'-'.join([str(args.width)] * args.depth)}-10 "
          f"(the learner's was 784-128-128-10 on MNIST); SGD lr {args.lr} momentum {args.momentum}, "
          f"batches of {args.batch_size}, "
          f"{args.steps} steps, seed {args.seed}")
    with one_blas_thread():
        rows = [run(how, X, labels, args) for how in INITS]
    print_table(rows, args, len(X))
    print("\nThe Monitor's warnings for the learner's initialisation:")
    for warning in rows[0]["report"].warnings:
        print(f"- {warning}")

    args.out.mkdir(parents=True, exist_ok=True)
    path = plot(rows, args.out / "init_comparison.png", args)
    print(f"\nloss curves: {path}\n")
    paragraph = explain(rows, args)
    print(textwrap.fill(paragraph, width=100, break_on_hyphens=False))
    return {"rows": {row["init"]: row for row in rows}, "plot": path, "explanation": paragraph}


if __name__ == "__main__":
    main()
