"""Outsider campaign: the teaching tools (drawings, explain, check_backprop, the doctor, Jupyter
display) at the edges a user reaches and our own tests did not: huge graphs, learner functions
that misbehave, odd output paths, graphs with nothing to show.

Each test failed before its fix. A tool that teaches must answer clearly or refuse clearly:
never a wrong verdict, a hang, or an error that names a file the user never asked for.
"""
import errno
import html
import os
import sys

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu.viz import draw_graph, render


# ---- drawings of any size ---------------------------------------------------------------------
def _python_lines_to_draw(root) -> int:
    """How many lines of Python drawing `root` runs: a measure of the work that does not depend on
    how busy the machine is."""
    lines = 0

    def count(frame, event, arg):
        nonlocal lines
        lines += event == "line"
        return count

    sys.settrace(count)
    try:
        draw_graph(root)
    finally:
        sys.settrace(None)
    return lines


def _sum_of_fresh_leaves(n: int):
    """loss = w0 + w1 + ... + w(n-1), each w its own parameter: a run of n Adds, n leaves hidden in it."""
    weights = [tg.Tensor(np.ones(3), requires_grad=True) for _ in range(n)]
    total = weights[0]
    for weight in weights[1:]:
        total = total + weight
    return total.sum()


def test_folding_a_run_that_hides_thousands_of_leaves_takes_work_linear_in_the_graph():
    # Each of the n Adds brings in a fresh leaf; counting every leaf's uses over the whole run
    # made drawing quadratic (10 000 leaves: many seconds). Twice the graph, about twice the work.
    small = _python_lines_to_draw(_sum_of_fresh_leaves(400))
    large = _python_lines_to_draw(_sum_of_fresh_leaves(800))
    assert large < 3 * small, (small, large)
    labels = draw_graph(_sum_of_fresh_leaves(800)).source
    assert "Add x 799" in labels and "+799 more tensors" in labels


# ---- check_backprop with a learner's functions that misbehave -----------------------------------
_rng = np.random.default_rng(0)
X = _rng.normal(size=(6, 3))
Y = _rng.normal(size=(6, 1))
P = [_rng.normal(size=(3, 1)), _rng.normal(size=(1, 1))]


def _cost(p, x, y):
    residual = np.dot(x, p[0]) + p[1] - y
    return np.sum(np.square(residual)) / (2 * x.shape[0])


def _backprop(p, x, y):
    residual = np.dot(x, p[0]) + p[1] - y
    return [np.dot(x.T, residual) / x.shape[0], np.sum(residual, axis=0, keepdims=True) / x.shape[0]]


def test_a_cost_that_centres_the_data_in_place_is_refused_and_the_data_stay_as_they_were():
    # Before: the verdict came back "ok" while the caller's X had been centred behind their back.
    def centring_cost(p, x, y):
        x -= x.mean(axis=0)
        return _cost(p, x, y)

    data = X.copy()
    with pytest.raises(ValueError, match=r"cost writes into params or the data in place.*x = x - "):
        tg.check_backprop(centring_cost, _backprop, P, data, Y)
    assert np.array_equal(data, X)


def test_a_backprop_that_scales_the_data_in_place_is_refused_and_the_data_stay_as_they_were():
    def scaling_backprop(p, x, y):
        x *= 2.0
        return _backprop(p, x, y)

    data = X.copy()
    with pytest.raises(ValueError, match="backprop writes into the data"):
        tg.check_backprop(_cost, scaling_backprop, P, data, Y)
    assert np.array_equal(data, X)


def test_a_cost_that_overwrites_a_parameter_is_refused_not_judged_on_drifting_numbers():
    # Before: autograd refused the write, central differences ran on a parameter the cost kept
    # changing, and both (correct) gradients were reported as wrong values.
    def clobbering_cost(p, x, y):
        p[0][0, 0] = 0.0
        return _cost(p, x, y)

    with pytest.raises(ValueError, match="cost writes into params or the data"):
        tg.check_backprop(clobbering_cost, _backprop, P, X, Y)


@pytest.mark.parametrize("result, named", [(None, "NoneType"), ("0.5", "str")])
def test_a_cost_that_returns_no_number_is_named_by_its_type(result, named):
    with pytest.raises(ValueError, match=f"cost must return a single number, but it returned {named}"):
        tg.check_backprop(lambda p, x, y: result, _backprop, P, X, Y)


def test_one_array_returned_for_a_list_of_one_parameter_says_to_return_a_list():
    # Before: "backprop returned 3 gradients ((1,), (1,), (1,)) for 1 parameters": the rows of dw.
    def cost(p, x, y):
        return np.sum(np.square(np.dot(x, p[0]) - y))

    def backprop(p, x, y):
        return 2 * np.dot(x.T, np.dot(x, p[0]) - y)  # dw itself, not [dw]

    with pytest.raises(ValueError, match=r"one array of shape \(3, 1\), not a list of 1 gradient.*\[dw\]"):
        tg.check_backprop(cost, backprop, [P[0]], X, Y)


# ---- where drawings are written ---------------------------------------------------------------
def test_render_onto_a_folder_says_it_is_a_folder_and_leaves_it_as_it_was(tmp_path):
    # Before: IsADirectoryError naming '.pictures.<hex>.tgtmp' -> 'pictures', a file never asked for.
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "kept.txt").write_text("mine")
    x = tg.Tensor([1.0, 2.0], requires_grad=True, name="x")
    with pytest.raises(IsADirectoryError, match=r"cannot write .*pictures: it is a folder") as caught:
        render(draw_graph((x * x).sum()), folder, format="svg")
    assert "tgtmp" not in str(caught.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pictures"]
    assert [p.name for p in folder.iterdir()] == ["kept.txt"]


def test_render_into_a_folder_it_may_not_write_names_the_picture_not_a_temporary(tmp_path, monkeypatch):
    # As root, chmod cannot refuse a write, so the refusal comes from os.open, as it would for a user.
    import tinygrad_edu._files as files

    real_open = os.open

    def refusing_open(path, flags, *rest):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags, *rest)

    monkeypatch.setattr(files.os, "open", refusing_open)
    x = tg.Tensor([1.0, 2.0], requires_grad=True, name="x")
    with pytest.raises(PermissionError, match=r"cannot write .*graph\.svg: cannot create a file in the folder"
                       ) as caught:
        render(draw_graph((x * x).sum()), tmp_path / "graph.svg")
    assert "tgtmp" not in str(caught.value)


# ---- Jupyter display ----------------------------------------------------------------------------
def test_a_drawing_in_jupyter_without_dot_shows_what_to_install_and_its_dot_text(tmp_path, monkeypatch):
    # Before: IPython printed graphviz's ExecutableNotFound traceback and then showed
    # '<graphviz.graphs.Digraph at 0x...>'.
    formatters = pytest.importorskip("IPython.core.formatters")
    monkeypatch.setenv("PATH", str(tmp_path))  # a folder without `dot`
    x = tg.Tensor([1.0, 2.0], requires_grad=True, name="x")
    graph = draw_graph((x * x).sum())
    shown, _ = formatters.DisplayFormatter().format(graph)
    page = shown["text/html"]
    assert page.startswith("<pre>") and "n0 [label=&quot;Sum" in page  # the DOT text, escaped for HTML
    for text in (shown["text/plain"], html.unescape(page)):
        assert "'dot' program" in text and "apt-get install -y graphviz" in text
        assert graph.source in text and "Digraph at" not in text


# ---- what the colours of show_grads say -------------------------------------------------------------
def _node_line(graph, name: str) -> str:
    return next(line for line in graph.source.splitlines() if f'label="{name}\\n' in line)


def test_an_empty_tensors_gradient_is_not_coloured_as_vanishing():
    # Before: |grad| = 0.0e+00 in red ("1e-6 or less: vanishing") for a tensor with no elements.
    empty = tg.Tensor(np.zeros((0, 3)), requires_grad=True, name="empty")
    w = tg.Tensor([1.0, 2.0], requires_grad=True, name="w")
    loss = (empty * 2.0).sum() + (w * w).sum()
    for graph in (draw_graph(loss, show_grads=True), None):
        if graph is None:  # and after backward, from the .grad it left
            loss.backward()
            graph = draw_graph(loss, show_grads=True)
        line = _node_line(graph, "empty")
        assert "|grad| of no elements" in line and 'fillcolor="#d9d9d9"' in line, line
        assert "|grad| = 4.5e+00" in _node_line(graph, "w")  # |2 w|, the others still measured


def test_after_backward_the_legend_says_a_retained_gradient_is_shown_only_for_tensors_in_params():
    # Before: "not kept by backward (retain_grad() keeps it)" beside a tensor that did call
    # retain_grad(): the drawing can only reach a tensor through params.
    w = tg.Tensor([1.0, 2.0], requires_grad=True, name="w")
    hidden = w * 3.0
    hidden.retain_grad()
    hidden.name = "hidden"
    loss = (hidden * hidden).sum()
    loss.backward()
    assert "|grad| not kept" in draw_graph(loss, show_grads=True).source
    assert "retain_grad(), and the tensor in params" in draw_graph(loss, show_grads=True).source
    shown = draw_graph(loss, params={"hidden": hidden, "w": w}, show_grads=True)
    assert "|grad| = " in _node_line(shown, "hidden = Mul(·, 3)")


# ---- explain with nothing to explain -----------------------------------------------------------
def test_explain_says_why_there_is_nothing_to_explain():
    # Before: two headings and nothing under them, for a leaf and for a result of no_grad.
    w = tg.Tensor([1.0, 2.0], requires_grad=True, name="w")
    text = tg.explain(w)
    assert text.splitlines()[0] == "Forward (0 operations):"
    assert "nothing to explain: w is a leaf" in text
    with tg.no_grad():
        loss = (w * w).sum()
    assert "does not require grad" in tg.explain(loss) and "tg.no_grad()" in tg.explain(loss)
    data = tg.Tensor([1.0, 2.0], name="data")
    assert "nothing to explain: L does not require grad" in tg.explain((data * 2.0).sum())
    assert "nothing to explain" not in tg.explain((w * 2.0).sum())


def test_a_monitor_shows_its_report_as_text_too_not_only_as_html():
    # Before: the IPython prompt (text/plain) showed '<...Monitor at 0x...>', Jupyter the report.
    formatters = pytest.importorskip("IPython.core.formatters")
    from tinygrad_edu import nn
    from tinygrad_edu.diagnostics import Monitor, NumpyMonitor

    class Network:  # a learner's own NumPy network: one weight matrix
        def __init__(self):
            self.W1 = np.full((3, 2), 0.5)

    for monitor in (Monitor(nn.Sequential(nn.Linear(3, 2))), NumpyMonitor(Network(), weights=["W1"])):
        shown, _ = formatters.DisplayFormatter().format(monitor)
        assert shown["text/plain"] == str(monitor.report()), shown["text/plain"]
        assert "text/html" in shown


def test_after_a_backward_from_another_head_show_grads_refuses_instead_of_showing_its_gradients():
    # Two losses share a trunk; l1.backward() freed the trunk. Before: drawing l2 with show_grads
    # labelled x with |grad| = 8.5 (that is |dl1/dx| = |6, 6|; |dl2/dx| is |10, 10| = 14.1).
    x = tg.Tensor([1.0, 2.0], requires_grad=True, name="x")
    trunk = x * 2.0
    l1, l2 = (trunk * 3.0).sum(), (trunk * 5.0).sum()
    l1.backward()
    with pytest.raises(ValueError, match="a backward\\(\\) from another tensor freed part of its graph"):
        draw_graph(l2, show_grads=True)
    assert "x\\n(2,) float32" in draw_graph(l2).source  # the structure still draws
    assert "|grad| = 8.5e+00" in _node_line(draw_graph(l1, show_grads=True), "x")  # its own: shown


def test_a_backward_with_retain_graph_from_another_head_leaves_this_roots_gradients_computable():
    x = tg.Tensor([1.0, 2.0], requires_grad=True, name="x")
    trunk = x * 2.0
    l1, l2 = (trunk * 3.0).sum(), (trunk * 5.0).sum()
    l1.backward(retain_graph=True)
    assert "|grad| = 1.4e+01" in _node_line(draw_graph(l2, show_grads=True), "x")


def test_a_gradient_cleared_by_zero_grad_after_backward_is_not_called_unreached():
    # The loop ends with optimizer.zero_grad(). Before: every parameter was grey, "|grad| = none",
    # which the legend reads as "no gradient reaches it": a graph cut that is not there.
    from tinygrad_edu import nn, optim

    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    loss = tg.functional.cross_entropy(model(tg.Tensor(np.ones((5, 3), np.float32))), np.arange(5) % 2)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
    graph = draw_graph(loss, params=model, show_grads=True)
    line = _node_line(graph, "0.weight")
    assert "|grad| cleared since backward?" in line and "|grad| = none" not in line
    assert "cleared since backward (zero_grad?)" in graph.source  # the legend says what it means


def _cost_in_float32(p, x, y):  # a learner who keeps everything in float32, as their data loader does
    residual = np.dot(x.astype(np.float32), p[0].astype(np.float32)) - y.astype(np.float32)
    return np.sum(np.square(residual)) / np.float32(2 * x.shape[0])


def _backprop_one(p, x, y):
    return [np.dot(x.T, np.dot(x, p[0]) - y) / x.shape[0]]


def test_a_cost_computed_in_float32_is_checked_by_autograd_and_a_right_gradient_passes():
    # Before: the finite-difference probe (step 1e-6, lost in float32 rounding) disagreed with
    # autograd, central differences in float32 became the reference, and the right gradient was
    # reported as "wrong values" (3% off).
    report = tg.check_backprop(_cost_in_float32, _backprop_one, [P[0]], X, Y)
    assert report.ok and report.method == "autograd", str(report)
    wrong = tg.check_backprop(_cost_in_float32, lambda p, x, y: [2 * g for g in _backprop_one(p, x, y)],
                              [P[0]], X, Y)
    assert wrong[0].kind == "scale" and wrong.method == "autograd"


def _cut_in_float32(p, x, y):  # np.asarray leaves the graph
    return _cost_in_float32([np.asarray(p[0])], x, y)


def _untraceable_in_float32(p, x, y):  # np.linalg.norm is not supported on Tensors
    residual = np.dot(x.astype(np.float32), np.asarray(p[0], dtype=np.float32)) - y.astype(np.float32)
    return np.linalg.norm(residual) ** 2 / np.float32(2 * x.shape[0])


@pytest.mark.parametrize("cost", [_cut_in_float32, _untraceable_in_float32])
def test_a_float32_cost_that_autograd_cannot_use_is_refused_rather_than_differenced_in_float32(cost):
    # Before: central differences in float32 were the reference, and the right gradient "wrong".
    with pytest.raises(ValueError, match="lower precision than float64.*Compute cost in float64"):
        tg.check_backprop(cost, _backprop_one, [P[0]], X, Y)


# ---- the doctor on a learner's own NumPy code ----------------------------------------------------
def test_check_broadcasts_leaves_the_learners_arrays_as_they_were_even_when_fn_writes_into_them():
    # Before: the Tensors shared the caller's arrays, so fn's p[0] = 99 changed the learner's data.
    from tinygrad_edu.diagnostics import check_broadcasts

    def accuracy(predictions, labels):
        predictions[0] = 99  # the learner's function marks a sample, in place
        return np.mean(predictions.reshape(-1, 1) == labels)

    predictions, labels = np.array([1.0, 2.0, 3.0]), np.array([1, 2, 3])
    report = check_broadcasts(accuracy, predictions, labels)
    assert not report.ok  # the (3, 1) == (3,) table is still found
    assert predictions.tolist() == [1.0, 2.0, 3.0] and labels.tolist() == [1, 2, 3]


def test_a_tiny_network_whose_few_random_weights_happen_to_be_positive_gets_no_init_warning():
    # Before: a 2-2-1 network (XOR) with a zero-mean init was told "every initial weight is >= 0"
    # whenever its two output weights came out positive: 1 run in 4.
    from tinygrad_edu import nn
    from tinygrad_edu.diagnostics import Monitor

    model = nn.Sequential(nn.Linear(2, 2), nn.Tanh(), nn.Linear(2, 1))
    model[0].weight.data[...] = [[0.4, -0.9], [-0.3, 0.8]]
    model[2].weight.data[...] = [[0.6, 0.2]]  # both positive, by chance
    assert "all_positive_init" not in Monitor(model).report().kinds
    wide = nn.Sequential(nn.Linear(4, 3))  # 12 weights all >= 0 is no accident (chance 1 in 4096)
    wide[0].weight.data[...] = np.abs(wide[0].weight.data) + 0.01
    assert "all_positive_init" in Monitor(wide).report().kinds


def test_render_refuses_to_replace_a_picture_its_owner_made_read_only(tmp_path, monkeypatch):
    # Before: the rename replaced it silently (a folder's permission is all a rename needs), where
    # open(path, "w") refuses. As root every file is writable, so os.access answers as for a user.
    import tinygrad_edu._files as files

    kept = tmp_path / "final.svg"
    kept.write_text("the picture for the report")
    kept.chmod(0o444)
    real_access = os.access
    monkeypatch.setattr(files.os, "access",
                        lambda path, mode: False if os.fspath(path) == str(kept) else real_access(path, mode))
    x = tg.Tensor([1.0, 2.0], requires_grad=True, name="x")
    with pytest.raises(PermissionError, match=r"cannot write .*final\.svg: the file is read-only"):
        render(draw_graph((x * x).sum()), kept)
    assert kept.read_text() == "the picture for the report"
    assert [p.name for p in tmp_path.iterdir()] == ["final.svg"]


def test_show_grads_after_an_in_place_step_says_the_drawing_ran_a_backward_pass():
    # Before: only the engine's "run backward before the in-place change", though the user had
    # called draw_graph, not backward.
    w = tg.Tensor([1.0, 2.0], requires_grad=True, name="w")
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    with tg.no_grad():
        w -= 0.1 * w.grad  # the optimizer step
    with pytest.raises(RuntimeError, match=r"show_grads=True runs a backward pass.*modified by an inplace"):
        draw_graph(loss, show_grads=True)
    assert "w\\n(2,) float32" in draw_graph(loss).source


def test_explain_writes_the_index_the_learner_wrote_not_the_word_index():
    # Before: "v1 = m[index]" and "placed back at index", whatever the slice.
    m = tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, name="m")
    text = tg.explain(m[:, 1:].sum())
    assert "v1 = m[:, 1:]" in text and "dL/dm = dL/dv1 placed back at [:, 1:] (zeros elsewhere" in text
    assert "L = m[-1, -2]" in tg.explain(m[-1, -2])
    assert "m[..., ::2]" in tg.explain(m[..., ::2].sum())
    assert "m[<int64 array (3,)>]" in tg.explain(m[np.array([0, 1, 1])].sum())
    assert "index" not in tg.explain(m[None, 0].sum()).replace("indices", "")


def test_a_drawing_of_indexing_shows_the_index_and_renders():
    m = tg.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, name="m")
    graph = draw_graph(m[np.array([0, 1])][:, 1:].sum())
    assert 'label="GetItem[:, 1:]\\n(2, 2)"' in graph.source
    assert 'label="GetItem[<int64 array (2,)>]\\n(2, 3)"' in graph.source
    assert "GetItem[&lt;int64 array (2,)&gt;]" in graph.pipe(format="svg").decode()  # text, not HTML
