"""tg.summary: one row per module call (name, type with extra_repr, output shape, parameters), the
total; the model is left as it was (mode, forward, no graph)."""
import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn


class TwoLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 3)
        self.out = nn.Linear(3, 2)

    def forward(self, x):
        return self.out(self.hidden(x).sigmoid())


def test_one_row_per_call_with_names_types_shapes_and_parameters():
    tg.manual_seed(0)
    model = nn.Sequential(TwoLayer(), nn.ReLU(), nn.Linear(2, 5))
    report = tg.summary(model, np.zeros((7, 4), dtype=np.float32))
    assert [(name, shape, count, depth) for name, _, shape, count, depth in report.rows] == [
        ("(model)", "(7, 5)", 15 + 8 + 15, 0),
        ("0", "(7, 2)", 15 + 8, 1),
        ("0.hidden", "(7, 3)", 15, 2),
        ("0.out", "(7, 2)", 8, 2),
        ("1", "(7, 2)", 0, 1),
        ("2", "(7, 5)", 15, 1),
    ]
    assert report.rows[2][1] == "Linear(in_features=4, out_features=3, bias=True)"  # extra_repr shown
    assert report.total_params == 38
    text = str(report)
    assert text.splitlines()[1].split() == ["layer", "type", "output", "shape", "params"]
    assert text.splitlines()[-1] == "total parameters: 38"
    assert "    0.hidden" in text  # nested calls are indented under their parent


def test_a_module_used_twice_has_two_rows_and_counts_once():
    shared = nn.Linear(3, 3)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    report = tg.summary(model, tg.zeros((2, 3)))
    assert [row[0] for row in report.rows] == ["(model)", "0", "1", "0"]
    assert report.total_params == 12


def test_frozen_parameters_are_counted_apart():
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    model[0].weight.requires_grad = False
    report = tg.summary(model, np.ones((1, 3), dtype=np.float32))
    assert str(report).splitlines()[-1] == "total parameters: 16 (7 trainable, 9 not)"


def test_the_model_is_left_as_it_was_and_nothing_is_recorded():
    model = nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5))
    x = tg.ones((2, 3))
    tg.summary(model, x)
    assert model.training and model[1].training
    assert all("forward" not in module.__dict__ for module in model.modules())
    out = model(x)  # still an ordinary model, recording a graph
    assert out.grad_fn is not None


def test_a_failing_forward_still_restores_the_model():
    model = nn.Sequential(nn.Linear(3, 3))
    with pytest.raises(ValueError):
        tg.summary(model, tg.ones((2, 4)))  # wrong width: Linear says so
    assert "forward" not in model[0].__dict__ and model.training


def test_summary_needs_a_module_and_displays_as_html():
    with pytest.raises(TypeError, match="needs an nn.Module, got function"):
        tg.summary(lambda x: x, np.ones(3))
    page = tg.summary(nn.Sequential(nn.Linear(2, 2)), np.ones((1, 2), dtype=np.float32))._repr_html_()
    assert page.startswith("<div><p><b>summary of Sequential</b>") and page.count("<tr") == 3
    assert "total parameters: 6" in page
