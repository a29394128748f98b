"""tg.explain: the backward pass as equations with shapes, parameters named; checked on the first
learner's 400-25-10 network (their own cost function, run on Tensors) and on nn modules."""
import html
import inspect
import re

import numpy as np
import pytest

import seed_learner as learner
import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn, ops
from tinygrad_edu.autograd import Function
from tinygrad_edu.explain import _rule

RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def learner_explanation():
    """explain() of the learner's own cost on 5000 x 400 inputs, parameters named as in their notes."""
    x = RNG.random((5000, 400))
    y = np.eye(10)[RNG.integers(0, 10, 5000)]
    W1, b1, W2, b2 = [tg.Tensor(RNG.uniform(-0.12, 0.12, s), requires_grad=True)
                      for s in [(400, 25), (1, 25), (25, 10), (1, 10)]]
    cost = learner.cost([W1, b1, W2, b2], x, y)
    return tg.explain(cost, params={"W1": W1, "b1": b1, "W2": W2, "b2": b2, "X": x})


def lines_for(text, name):
    return [line.strip() for line in text.splitlines() if re.match(rf"\s*dL/d{re.escape(name)} \+?=", line)]


def test_dW1_and_dW2_are_formed_from_the_layer_input_and_the_upstream_gradient(learner_explanation):
    (dW1,) = [line for line in lines_for(learner_explanation, "W1") if "@" in line]
    assert re.fullmatch(r"dL/dW1 = X\.T @ dL/dv\d+ +\(400, 5000\) @ \(5000, 25\) -> \(400, 25\)", dW1)
    (dW2,) = [line for line in lines_for(learner_explanation, "W2") if "@" in line]
    assert re.fullmatch(r"dL/dW2 = v\d+\.T @ dL/dv\d+ +\(25, 5000\) @ \(5000, 10\) -> \(25, 10\)", dW2)


def test_bias_gradients_say_which_axis_is_summed(learner_explanation):
    (db1,) = lines_for(learner_explanation, "b1")
    assert re.fullmatch(r"dL/db1 = dL/dv\d+ +\(5000, 25\) summed over axis 0 -> \(1, 25\)", db1)
    (db2,) = lines_for(learner_explanation, "b2")
    assert db2.endswith("(5000, 10) summed over axis 0 -> (1, 10)")


def test_the_l2_term_adds_to_the_weight_gradients(learner_explanation):
    # W1 is used by X @ W1 and twice by np.square(W1) = W1 * W1: the two equal terms are one line.
    dW1 = lines_for(learner_explanation, "W1")
    assert len(dW1) == 2 and [line.split()[1] for line in dW1] == ["=", "+="]
    assert re.search(r"dL/dW1 \+= 2 \* \(dL/dv\d+ \* W1\) +-> \(400, 25\)", dW1[1])


def test_an_input_used_twice_by_one_op_gives_one_line_with_a_factor_not_two_equal_lines():
    w = tg.Tensor([1.0, 2.0], requires_grad=True, name="w")
    text = str(tg.explain((w * w).sum()))
    assert lines_for(text, "w") == ["dL/dw = 2 * (dL/dv1 * w)                            -> (2,)"]
    mixed = str(tg.explain((w * w.exp()).sum()))  # different rules: two lines, added
    assert [line.split()[1] for line in lines_for(mixed, "w")] == ["=", "+="]


def test_well_known_functions_are_named_with_their_rule_beside_them():
    x = tg.Tensor(RNG.random((4, 3)), requires_grad=True, name="x")
    text = str(tg.explain(F.relu(x.sigmoid()).sum()))
    assert "v1 = sigmoid(x) = 1 / (1 + exp(-x))" in text
    assert "v2 = relu(v1) = max(v1, 0)" in text
    assert "v1 = exp(x)" in str(tg.explain(x.exp().sum()))  # a rule that names itself stays as it is
    assert "v1 = x + x" in str(tg.explain((x + x).sum()))  # operators need no name


def test_a_sum_says_which_axis_it_runs_over():
    x = tg.Tensor(RNG.random((4, 3)), requires_grad=True, name="x")
    text = str(tg.explain(x.sum(axis=0).max(axis=-1)))
    assert re.search(r"v1 = sum\(x, axis=0\) +\(4, 3\) -> \(3,\)", text)
    assert re.search(r"L = max\(v1, axis=0\) +\(3,\) -> \(\)", text)
    assert "dL/dv1 = dL/dL * (1 at the maximum" in text
    assert re.search(r"dL/dx = dL/dv1 spread back over axis 0 +-> \(4, 3\)", text)
    assert "sum(x, axis=(0, 1))" in str(tg.explain(x.sum()))


def test_explain_displays_as_text_in_jupyter_and_is_still_a_str():
    w = tg.Tensor([1.0, 2.0], requires_grad=True, name="w")
    explanation = tg.explain((w * 3.0).sum())
    assert isinstance(explanation, str) and explanation.startswith("Forward (2 operations):")
    assert repr(explanation) == str(explanation)  # the prompt shows lines, not a quoted "...\n..."
    assert explanation._repr_html_() == "<pre>" + html.escape(str(explanation)) + "</pre>"
    pytest.importorskip("IPython")
    from IPython.lib.pretty import pretty
    assert pretty(explanation) == str(explanation)


def test_the_sigmoid_steps_show_the_learners_gPrime(learner_explanation):
    sigmoid_steps = re.findall(r"dL/dv\d+ = dL/dv(\d+) \* v(\d+) \* \(1 - v(\d+)\) +-> \((5000, \d+)\)",
                               learner_explanation)
    assert {shape for *_, shape in sigmoid_steps} == {"5000, 25", "5000, 10"}
    assert all(a == b == c for a, b, c, _ in sigmoid_steps)  # a * (1 - a), a = the sigmoid's output


def test_pythons_builtin_sum_is_shown_as_one_sum_not_thousands_of_rows(learner_explanation):
    assert "sum(rows of v" in learner_explanation
    assert "(Python's built-in sum: 5000 additions)" in learner_explanation
    assert "[index]" not in learner_explanation
    assert len(learner_explanation.splitlines()) < 60


def test_module_parameters_are_named_and_linear_shows_its_products():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 2))
    x = tg.Tensor(RNG.random((5, 4)), name="X")
    text = tg.explain(F.cross_entropy(model(x), [0, 1, 0, 1, 1]), params=model)
    assert re.search(r"v1 = X @ 0\.weight\.T \+ 0\.bias +\(5, 4\), \(3, 4\), \(3,\) -> \(5, 3\)", text)
    assert re.search(r"dL/d0\.weight = \(dL/dv1\)\.T @ X +\(3, 5\) @ \(5, 4\) -> \(3, 4\)", text)
    assert re.search(r"dL/dv2 = dL/dv3 @ 2\.weight +\(5, 2\) @ \(2, 3\) -> \(5, 3\)", text)
    assert re.search(r"dL/d2\.bias = dL/dv\d+ +\(5, 2\) summed over axis 0 -> \(2,\)", text)
    assert "[reduction='mean']" in text
    assert re.search(r"dL/dv\d+ = dL/dv\d+ \* \(1 - v\d+\*\*2\)", text)  # tanh' = 1 - tanh**2


def test_class_labels_read_as_one_hot_rows_and_a_difference_is_bracketed():
    logits = tg.Tensor(RNG.random((5, 3)), requires_grad=True, name="s")
    by_index = tg.explain(F.cross_entropy(logits, [0, 2, 1, 1, 0]))
    forward = (r"L = softmax_cross_entropy\(s, c1\) = -sum\(onehot\(c1\) \* log_softmax\(s\), axis=1\)"
               r".*\(5, 3\), \(5,\) -> \(\)")
    assert re.search(forward, by_index)
    # the upstream gradient multiplies the whole difference, not only its first term
    assert "dL/ds = dL/dL * (softmax(s) * sum(onehot(c1)) - onehot(c1))" in by_index
    by_rows = tg.explain(F.cross_entropy(logits, np.eye(3)[[0, 2, 1, 1, 0]]))
    assert "dL/ds = dL/dL * (softmax(s) * sum(c1) - c1)" in by_rows


def test_every_tensor_that_needs_a_gradient_gets_one_line_per_use_with_its_shape():
    a = tg.Tensor(RNG.random((3, 1)), requires_grad=True, name="a")
    b = tg.Tensor(RNG.random(4), requires_grad=True, name="b")
    with tg.set_broadcast_check("off"):  # an outer product on purpose
        c = a * b + a  # a is used twice
    loss = (c.exp() / 2.0).max()
    text = tg.explain(loss)
    assert len(lines_for(text, "a")) == 2 and len(lines_for(text, "b")) == 1
    assert lines_for(text, "a")[0].endswith("-> (3, 1)") and "summed over axis 1" in lines_for(text, "a")[0]
    assert lines_for(text, "b")[0].endswith("(3, 4) summed over axis 0 -> (4,)")


def test_every_primitive_has_a_rule_for_each_of_its_inputs():
    for cls in [c for _, c in inspect.getmembers(ops, inspect.isclass)
                if issubclass(c, Function) and c is not Function and c.__module__ == ops.__name__]:
        _, partials, symbols = _rule(cls)
        settings = {"index", "axis", "axes", "shape", "reduction", "dtype", "cond"}  # not differentiable
        differentiable = ["xs[i]"] if symbols[-1:] == ("xs",) else [s for s in symbols if s not in settings]
        missing = [s for s in differentiable if s not in partials]
        assert not missing, f"{cls.__name__}'s docstring has no dz/d{missing[0]} for explain()"


def test_a_non_tensor_and_bad_params_are_refused_clearly_and_explain_works_after_backward():
    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    with pytest.raises(TypeError, match="Module, a dict of name -> Tensor or a list of Tensors"):
        tg.explain(loss, params=w)
    with pytest.raises(TypeError, match="got ndarray"):
        tg.explain(np.ones(2))
    before = str(tg.explain(loss))
    loss.backward()
    assert str(tg.explain(loss)) == before  # backward frees the saved arrays, not the structure
    with pytest.raises(RuntimeError):
        loss.backward()


def test_a_weight_transpose_reads_as_W_T():
    w = tg.Tensor(RNG.random((3, 4)), requires_grad=True, name="W")
    text = tg.explain(F.linear(tg.Tensor(RNG.random((5, 4)), name="X"), w).sum())  # no bias: W.T, then @
    assert re.search(r"v1 = W\.T +\(3, 4\) -> \(4, 3\)", text)
    assert re.search(r"dL/dW = \(dL/dv1\)\.T +\(4, 3\) -> \(3, 4\)", text)


def test_a_leaf_has_nothing_to_explain():
    text = tg.explain(tg.Tensor([1.0], requires_grad=True, name="w"))
    assert text.splitlines()[0] == "Forward (0 operations):"


def test_a_named_intermediate_keeps_its_name_after_the_tensor_is_gone():
    w = tg.Tensor([1.0, 2.0], requires_grad=True, name="w")
    hidden = w.tanh()
    hidden.name = "h"
    loss = (hidden * 3.0).sum()
    del hidden  # the graph keeps nodes, not tensors
    text = tg.explain(loss)
    assert "  h = tanh(w)" in text and "dL/dh = dL/dv1 * 3" in text
