"""tg.compare_grads: a learner's gradient for every step (dz3, dz2, dw2, ...) held against autograd's,
on learner 000's own network; the report names the first wrong one in backward order and its kind."""
import numpy as np
import pytest

import seed_learner as learner
import tinygrad_edu as tg

RNG = np.random.default_rng(3)
M = 40


def network(seed=0):
    """Learner 000's 400-25-10 sigmoid network on Tensors (their feedForward), intermediates kept."""
    rng = np.random.default_rng(seed)
    X = rng.random((M, 400))
    Y = np.eye(10)[rng.integers(0, 10, M)]
    p = [tg.Tensor(rng.uniform(-0.12, 0.12, shape), requires_grad=True)
         for shape in [(400, 25), (1, 25), (25, 10), (1, 10)]]
    [a, z] = learner.feedForward(p, X)
    for t in z:
        t.retain_grad()
    h = a[-1]
    J = np.square(Y - h).sum() * 0.5 / M + (learner.lmda * 0.5 / M) * (np.square(p[0]).sum()
                                                                      + np.square(p[2]).sum())
    J.backward()
    expected = {"dz3": z[1], "dw2": p[2], "dw2b": p[3], "dz2": z[0], "dw1": p[0], "dw1b": p[1]}
    return [t.numpy() for t in p], X, Y, expected


def learners_gradients(p, X, Y, broken=None):
    """Their backpropagate, step by step, with every intermediate returned; `broken` breaks one step."""
    [a, z] = learner.feedForward(p, X)
    h = a[-1]
    dz4 = np.divide(-(Y - h), M)
    dz3 = np.multiply(dz4, learner.gPrime(z[-1]))
    dw2 = np.dot(a[-2].T, dz3) + np.multiply(learner.lmda / M, p[2])
    dw2b = np.sum(dz3, 0)
    dz2 = np.multiply(np.dot(dz3, p[2].T), learner.gPrime(z[-2]))
    if broken == "dz2 without gPrime":
        dz2 = np.dot(dz3, p[2].T)
    if broken == "dz2 transposed":
        dz2 = dz2.T
    dw1 = np.dot(a[-3].T, dz2 if dz2.shape == (M, 25) else dz2.T) + np.multiply(learner.lmda / M, p[0])
    dw1b = np.sum(dz2 if dz2.shape == (M, 25) else dz2.T, 0)
    return {"dz3": dz3, "dw2": dw2, "dw2b": dw2b, "dz2": dz2, "dw1": dw1, "dw1b": dw1b}


def test_the_learners_steps_all_match_and_come_in_backward_order():
    p, X, Y, expected = network()
    report = tg.compare_grads(expected, learners_gradients(p, X, Y), samples=M)
    assert report.ok and bool(report) and report.first_wrong is None
    assert [row.key for row in report.rows] == ["dz3", "dw2b", "dw2", "dz2", "dw1b", "dw1"]
    assert str(report).startswith("compare_grads: all 6 gradients match autograd's")


def test_a_broken_dz2_is_named_first_and_the_steps_after_it_are_wrong_too():
    p, X, Y, expected = network()
    report = tg.compare_grads(expected, learners_gradients(p, X, Y, broken="dz2 without gPrime"))
    assert not report.ok
    assert report.first_wrong.key == "dz2"
    assert [row.key for row in report.wrong] == ["dz2", "dw1b", "dw1"]
    assert all(report[key].ok for key in ("dz3", "dw2", "dw2b"))
    assert "the first in backward order is 'dz2'" in str(report)
    assert repr(report) == "GradientReport(ok=False, first_wrong='dz2', wrong=['dz2', 'dw1b', 'dw1'])"


def test_a_transposed_step_is_classified_as_transposed():
    p, X, Y, expected = network()
    report = tg.compare_grads(expected, learners_gradients(p, X, Y, broken="dz2 transposed"))
    assert report.first_wrong.key == "dz2" and report.first_wrong.kind == "transposed"
    assert report["dw1"].ok  # the learner's next step undid it


def test_missing_and_unknown_names_are_reported():
    p, X, Y, expected = network()
    mine = learners_gradients(p, X, Y)
    del mine["dw1"]
    mine["dz4"] = np.zeros(3)
    report = tg.compare_grads(expected, mine)
    assert report["dw1"].kind == "missing" and report.first_wrong.key == "dw1"
    assert report.extra_keys == ("dz4",) and "'dz4'" in str(report)


def test_bad_input_gets_a_clear_error():
    w = tg.Tensor([1.0, 2.0], requires_grad=True, name="w")
    z = w * 2.0
    (z * z).sum().backward()
    with pytest.raises(ValueError, match=r"expected\['dz'\] has no \.grad: call \.retain_grad\(\)"):
        tg.compare_grads({"dz": z}, {"dz": np.ones(2)})
    with pytest.raises(ValueError, match=r"expected\['dv'\] has no \.grad: call loss\.backward\(\) first"):
        tg.compare_grads({"dv": tg.Tensor([1.0], requires_grad=True)}, {"dv": np.ones(1)})
    with pytest.raises(TypeError, match=r"expected\['dw'\] is a ndarray, not a Tensor"):
        tg.compare_grads({"dw": w.numpy()}, {"dw": np.ones(2)})
    with pytest.raises(TypeError, match="two dicts"):
        tg.compare_grads([w], [np.ones(2)])


def test_the_report_is_a_table_in_text_and_in_html():
    p, X, Y, expected = network()
    report = tg.compare_grads(expected, learners_gradients(p, X, Y, broken="dz2 without gPrime"))
    lines = str(report).splitlines()
    assert lines[1].split()[:3] == ["name", "expected", "shape"] and lines[1].split()[-1] == "kind"
    assert any(line.startswith("gradient 'dz2': ") for line in lines)
    page = report._repr_html_()
    assert page.count("<tr") == 7 and page.count("background:") == 3  # header + 6 rows, 3 wrong tinted
