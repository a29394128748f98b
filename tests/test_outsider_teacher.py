"""Outsider campaign: the teaching tools (drawings, explain, check_backprop, the doctor, Jupyter
display) at the edges a user reaches and our own tests did not: huge graphs, learner functions
that misbehave, odd output paths, graphs with nothing to show.

Each test failed before its fix. A tool that teaches must answer clearly or refuse clearly:
never a wrong verdict, a hang, or an error that names a file the user never asked for.
"""
import sys

import numpy as np

import tinygrad_edu as tg
from tinygrad_edu.viz import draw_graph


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
