"""tinygrad_edu.viz: the DOT source of real graphs (names, shapes, ops, edges), gradient norms and
their colours, folding module calls, the errors, and rendering with the real `dot` program.

The DOT text is parsed back into nodes and edges, so tests check structure, not formatting.
Oracles: a separate walk over the nodes' `parents` for edge counts, hand-derived gradients for norms.
"""
import os
import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu import nn
from tinygrad_edu.autograd import Context
from tinygrad_edu.viz import GraphvizNotFoundError, draw_graph, render

NODE_LINE = re.compile(r'^\s*(\w+) \[label=(".*?(?<!\\)"|<.*>|[^\s"<]+)(.*)\]$')
EDGE_LINE = re.compile(r"^\s*(\w+) -> (\w+)$")
ATTRIBUTE = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


class Drawing:
    """The nodes (key -> label lines, attributes) and edges of a drawing's DOT source."""

    def __init__(self, graph):
        self.source = graph.source
        self.labels, self.attributes, self.edges = {}, {}, []
        for line in self.source.splitlines():
            node, edge = NODE_LINE.match(line), EDGE_LINE.match(line)
            if node:
                key, label, rest = node.groups()
                self.labels[key] = label.strip('"').split("\\n")
                self.attributes[key] = {name: value.strip('"') for name, value in ATTRIBUTE.findall(rest)}
            elif edge:
                self.edges.append(edge.groups())

    @property
    def graph_nodes(self):
        """Node keys without the legend."""
        return [key for key in self.labels if key != "legend"]

    def find(self, first_line):
        """The keys of nodes whose label starts with this line."""
        return [key for key in self.graph_nodes if self.labels[key][0] == first_line]

    def one(self, first_line):
        keys = self.find(first_line)
        assert len(keys) == 1, f"expected one node {first_line!r}, found {len(keys)} in\n{self.source}"
        return keys[0]

    def grad_norm(self, key):
        line = next(line for line in self.labels[key] if line.startswith("|grad| = "))
        return float(line[len("|grad| = "):])


def const(values):
    return tg.Tensor(np.array(values, dtype=np.float32))


def leaf(values, name=None):
    return tg.Tensor(np.array(values, dtype=np.float32), requires_grad=True, name=name)


def learners_layer(seed=0):
    """The first learner's hidden layer: sigmoid(x @ W1 + b1), 400 inputs, 25 units."""
    rng = np.random.default_rng(seed)
    x = const(rng.normal(size=(20, 400)))
    W1 = leaf(rng.normal(scale=0.05, size=(400, 25)))
    b1 = leaf(rng.normal(scale=0.1, size=25))
    return x, W1, b1, F.sigmoid(x @ W1 + b1)


def drawn_parents(item):
    """The inputs of a graph item that are drawn as boxes: nodes, tensors and arrays (numbers are
    written into the op's label). Read from `ctx.parents` directly, independently of viz."""
    if type(item) is not Context:
        return []  # a leaf or a constant has no inputs
    return [p for p in item.parents if isinstance(p, (Context, tg.Tensor, np.ndarray))]


def reachable_objects(root):
    """Distinct graph items (nodes, leaves, arrays) the graph of root is made of."""
    seen, stack = set(), [root._ctx or root]
    while stack:
        item = stack.pop()
        if id(item) not in seen:
            seen.add(id(item))
            stack.extend(drawn_parents(item))
    return len(seen)


def input_op_pairs(root):
    """(input, op) pairs of the graph: one per node/tensor/array argument of each distinct node."""
    pairs, seen, stack = 0, set(), [root._ctx or root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        parents = drawn_parents(item)
        pairs += len(parents)
        stack.extend(parents)
    return pairs


# ---- structure ---------------------------------------------------------------------------------------
def test_learners_layer_shows_named_parameters_shapes_ops_and_data_flow():
    x, W1, b1, h = learners_layer()
    drawing = Drawing(draw_graph(h, params={"W1": W1, "b1": b1}))

    w, b, data = drawing.one("W1"), drawing.one("b1"), drawing.one("constant")
    assert drawing.labels[w] == ["W1", "(400, 25) float32"]
    assert drawing.labels[b] == ["b1", "(25,) float32"]
    assert drawing.labels[data] == ["constant", "(20, 400) float32"]
    matmul, add, sigmoid = drawing.one("MatMul"), drawing.one("Add"), drawing.one("Sigmoid")
    assert drawing.labels[matmul] == ["MatMul", "(20, 25)"]
    assert sorted(drawing.edges) == sorted(
        [(data, matmul), (w, matmul), (matmul, add), (b, add), (add, sigmoid)]
    )
    assert sigmoid == "n0" and drawing.attributes[sigmoid]["peripheries"] == "2"  # the root
    assert drawing.attributes[matmul].get("peripheries") is None
    # Parameters are filled differently from constants.
    assert drawing.attributes[w]["fillcolor"] == drawing.attributes[b]["fillcolor"]
    assert drawing.attributes[w]["fillcolor"] != drawing.attributes[data]["fillcolor"]
    assert "dashed" in drawing.attributes[data]["style"]
    assert "dashed" not in drawing.attributes[w]["style"]


def test_node_ids_are_short_deterministic_and_in_walk_order():
    x, W1, b1, h = learners_layer()
    first = draw_graph(h, params={"W1": W1, "b1": b1}).source
    assert first == draw_graph(h, params={"W1": W1, "b1": b1}).source
    assert Drawing(draw_graph(h)).graph_nodes == [f"n{i}" for i in range(6)]


def ops_named(drawing, name):
    """How many nodes are the op `name` (their label's first line is exactly the name)."""
    return sum(1 for lines in drawing.labels.values() if lines and lines[0] == name)


def test_sequential_mlp_names_come_from_the_module():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2))
    x = const(np.ones((5, 4)))
    loss = F.mse_loss(model(x), const(np.zeros((5, 2))))
    drawing = Drawing(draw_graph(loss, params=model))

    assert drawing.labels[drawing.one("0.weight")] == ["0.weight", "(3, 4) float32"]
    assert drawing.labels[drawing.one("0.bias")] == ["0.bias", "(3,) float32"]
    assert drawing.labels[drawing.one("2.weight")] == ["2.weight", "(2, 3) float32"]
    assert drawing.labels[drawing.one("2.bias")] == ["2.bias", "(2,) float32"]
    assert ops_named(drawing, "Linear") == 2 and not drawing.find("Transpose")  # nn.Linear is one node
    assert drawing.labels[drawing.one("Sigmoid")] == ["Sigmoid", "(5, 3)"]
    assert len(drawing.edges) == input_op_pairs(loss)
    # Every edge ends at an op: leaves and constants are never fed.
    leaves = {key for key in drawing.graph_nodes if drawing.attributes[key]["shape"] == "box"}
    assert leaves and not any(target in leaves for _, target in drawing.edges)


def test_a_tensor_used_twice_is_one_node_with_one_edge_per_use():
    a = leaf([1.0, 2.0], name="a")
    b = a * a
    c = b + a
    drawing = Drawing(draw_graph(c))
    node_a, mul, add = drawing.one("a"), drawing.one("Mul"), drawing.one("Add")
    assert drawing.edges.count((node_a, mul)) == 2  # Mul receives a twice: both arguments
    assert drawing.edges.count((node_a, add)) == 1
    assert len(drawing.edges) == input_op_pairs(c) == 4


STEPS = st.lists(
    st.tuples(st.sampled_from(["add", "mul", "sub", "tanh", "scale", "array"]), st.integers(0, 99),
              st.integers(0, 99)),
    min_size=1, max_size=12,
)


@given(STEPS)
def test_random_graphs_have_one_node_per_object_and_one_edge_per_argument(steps):
    """Expressions that reuse earlier results at random (diamonds, a * a, arrays as constants)."""
    pool = [leaf([1.0, 2.0], name="a"), leaf([0.5, -1.0])]
    for op, i, j in steps:
        x, y = pool[i % len(pool)], pool[j % len(pool)]
        made = {"add": lambda: x + y, "mul": lambda: x * y, "sub": lambda: x - y, "tanh": x.tanh,
                "scale": lambda: 0.5 * x, "array": lambda: x * np.array([2.0, 3.0], dtype=np.float32)}
        pool.append(made[op]())
    root = pool[-1]
    drawing = Drawing(draw_graph(root))
    assert drawing.graph_nodes == [f"n{i}" for i in range(reachable_objects(root))]
    assert len(drawing.edges) == input_op_pairs(root)
    assert not any(source == "n0" for source, _ in drawing.edges)  # nothing is made from the root
    assert all(source in drawing.labels and target in drawing.labels for source, target in drawing.edges)


def test_numbers_appear_in_the_op_label_and_arrays_as_constant_nodes():
    t = leaf([[1.0, 2.0, 3.0]], name="t")
    out = (1 - t) ** 2 * np.ones((2, 3))
    drawing = Drawing(draw_graph(out))
    assert drawing.find("Sub(1, ·)") and drawing.find("Pow(·, 2)")
    array = drawing.one("constant")
    assert drawing.labels[array] == ["constant", "(2, 3) float64"]
    assert (array, drawing.one("Mul")) in drawing.edges
    assert len(drawing.edges) == input_op_pairs(out) == 4


def test_leaf_names_fall_back_to_tensor_name_then_tensor_or_constant():
    named, anonymous, data = leaf([1.0], name="w"), leaf([2.0]), const([3.0])
    out = named * anonymous * data
    drawing = Drawing(draw_graph(out))
    assert drawing.find("w") and drawing.find("tensor") and drawing.find("constant")

    by_list = Drawing(draw_graph(out, params=[anonymous, named]))
    assert by_list.find("params[0]") and by_list.find("w") and not by_list.find("tensor")
    by_dict = Drawing(draw_graph(out, params={"scale": named}))  # params names win over .name
    assert by_dict.find("scale") and not by_dict.find("w")


def test_a_named_intermediate_tensor_shows_its_name_with_the_op():
    w = leaf([1.0, 2.0], name="w")
    hidden = w.tanh()
    hidden.name = "hidden"
    loss = hidden.sum()
    del hidden  # the graph keeps nodes, not tensors: the name must live on in the node
    assert Drawing(draw_graph(loss)).find("hidden = Tanh")


def test_show_shapes_false_leaves_shapes_out():
    x, W1, b1, h = learners_layer()
    drawing = Drawing(draw_graph(h, params={"W1": W1, "b1": b1}, show_shapes=False))
    assert sorted(label for labels in drawing.labels.values() for label in labels) == sorted(
        ["Sigmoid", "Add", "MatMul", "constant", "W1", "b1"]
    )


def test_a_leaf_root_is_a_one_node_graph():
    w = leaf([1.0, 2.0], name="w")
    drawing = Drawing(draw_graph(w, show_grads=False))
    assert drawing.graph_nodes == ["n0"] and drawing.edges == []
    assert drawing.labels["n0"] == ["w", "(2,) float32"]
    assert drawing.attributes["n0"]["peripheries"] == "2"


# ---- errors --------------------------------------------------------------------------------------------
def test_root_must_be_a_tensor():
    with pytest.raises(TypeError, match="ndarray"):
        draw_graph(np.ones(3))


@pytest.mark.parametrize("params, named", [("W1", "str"), (42, "int"), ({1, 2}, "set")])
def test_params_of_another_type_is_a_type_error_naming_it(params, named):
    _, _, _, h = learners_layer()
    with pytest.raises(TypeError, match=named):
        draw_graph(h, params=params)


def test_params_as_a_generator_hints_at_passing_the_module():
    model = nn.Linear(2, 1)
    with pytest.raises(TypeError, match="module itself"):
        draw_graph(model(const([[1.0, 2.0]])), params=model.parameters())


def test_params_entries_must_be_tensors():
    _, W1, _, h = learners_layer()
    with pytest.raises(TypeError, match="'W1' is a ndarray"):
        draw_graph(h, params={"W1": W1.data})


def test_a_graph_can_be_drawn_after_backward_and_shows_the_kept_gradients():
    _, W1, b1, h = learners_layer()
    loss = h.sum()
    expected = tg.grad(loss, [W1, b1], retain_graph=True)
    loss.backward()
    drawing = Drawing(draw_graph(loss, params={"W1": W1, "b1": b1}, show_grads=True))
    assert drawing.find("MatMul") and drawing.find("Sigmoid")
    for name, gradient in zip(["W1", "b1"], expected):
        assert np.isclose(drawing.grad_norm(drawing.one(name)), np.linalg.norm(gradient.data), rtol=1e-2)
    assert "|grad| not kept" in drawing.labels[drawing.one("Sigmoid")]
    assert "not kept by backward" in drawing.source  # the legend says what the pale nodes mean
    with pytest.raises(RuntimeError):
        loss.backward()  # the structure is kept, but the saved arrays are gone


def test_after_backward_a_retained_intermediate_shows_its_gradient():
    _, W1, b1, h = learners_layer()
    z = h * 2.0
    z.retain_grad()
    loss = z.sum()
    loss.backward()
    drawing = Drawing(draw_graph(loss, params={"W1": W1, "b1": b1, "z": z}, show_grads=True))
    assert drawing.grad_norm(drawing.one("z = Mul(·, 2)")) == pytest.approx(np.sqrt(z.size), rel=2e-2)


def test_a_graph_kept_by_retain_graph_can_be_drawn():
    _, W1, b1, h = learners_layer()
    loss = h.sum()
    loss.backward(retain_graph=True)
    assert Drawing(draw_graph(loss)).find("MatMul")


# ---- gradient norms -----------------------------------------------------------------------------------
def test_gradient_norms_match_hand_derived_gradients():
    x, W1, b1, h = learners_layer()
    loss = h.sum()
    drawing = Drawing(draw_graph(loss, params={"W1": W1, "b1": b1}, show_grads=True))

    s = 1 / (1 + np.exp(-(x.data.astype(np.float64) @ W1.data + b1.data)))
    dz = s * (1 - s)  # d(sum sigmoid(z))/dz
    expected = {
        "W1": np.linalg.norm(x.data.T @ dz),
        "b1": np.linalg.norm(dz.sum(axis=0)),
        "Add": np.linalg.norm(dz),
        "MatMul": np.linalg.norm(dz),
        "Sigmoid": np.linalg.norm(np.ones_like(s)),
        "Sum": 1.0,
    }
    for first_line, norm in expected.items():
        # Labels keep two significant digits, so up to 5% off.
        assert drawing.grad_norm(drawing.one(first_line)) == pytest.approx(norm, rel=0.051)
    assert not any(line.startswith("|grad|") for line in drawing.labels[drawing.one("constant")])
    assert "legend" in drawing.labels


def test_drawing_gradients_leaves_grad_untouched():
    _, W1, b1, h = learners_layer()
    W1.grad = tg.Tensor(np.full(W1.shape, 7.0, dtype=np.float32))
    before = W1.grad
    draw_graph(h.sum(), params={"W1": W1, "b1": b1}, show_grads=True)
    assert W1.grad is before and np.all(W1.grad.data == 7.0)
    assert b1.grad is None


def test_a_saturated_sigmoid_branch_is_coloured_as_vanishing():
    x = const([1.0])
    saturated, healthy = leaf([30.0], name="saturated"), leaf([0.5], name="healthy")
    loss = F.sigmoid(saturated * x).sum() + F.sigmoid(healthy * x).sum()
    drawing = Drawing(draw_graph(loss, show_grads=True))

    dead, alive = drawing.one("saturated"), drawing.one("healthy")
    assert drawing.grad_norm(dead) < 1e-6 * drawing.grad_norm(drawing.one("Add"))
    assert drawing.grad_norm(alive) == pytest.approx(0.235, rel=0.051)  # sigmoid'(0.5)
    vanishing = re.search(r'bgcolor="(#\w+)">\s*</td><td[^>]*>1e-6 or less', drawing.source).group(1)
    dead_colour, alive_colour = drawing.attributes[dead]["fillcolor"], drawing.attributes[alive]["fillcolor"]
    assert dead_colour == vanishing and alive_colour != vanishing
    red, green = int(dead_colour[1:3], 16), int(dead_colour[3:5], 16)
    assert red > green  # red for vanishing
    red, green = int(alive_colour[1:3], 16), int(alive_colour[3:5], 16)
    assert green > red  # green for healthy


def test_an_infinite_gradient_is_coloured_as_exploding():
    w = leaf([1.0, 2.0], name="w")
    with np.errstate(over="ignore"):
        loss = ((w * np.float32(1e30)) ** 2).sum()  # d/dw = 2e60 w: inf in float32
        drawing = Drawing(draw_graph(loss, show_grads=True))
    node = drawing.one("w")
    assert "|grad| = inf" in drawing.labels[node]
    exploding = re.search(r'bgcolor="(#\w+)">\s*</td><td[^>]*>nan or inf', drawing.source).group(1)
    assert drawing.attributes[node]["fillcolor"] == exploding


def test_a_list_used_in_an_op_is_a_constant_node():
    w = leaf([1.0, 2.0], name="w")
    drawing = Drawing(draw_graph((w + [1.0, 2.0]).sum()))
    assert drawing.labels[drawing.one("constant")] == ["constant", "(2,)"]
    assert (drawing.one("constant"), drawing.one("Add")) in drawing.edges


def test_show_grads_needs_a_one_element_root():
    _, _, _, h = learners_layer()
    with pytest.raises(ValueError, match=r"one element.*\(20, 25\)"):
        draw_graph(h, show_grads=True)


def test_without_show_grads_there_are_no_norms_and_no_legend():
    _, _, _, h = learners_layer()
    drawing = Drawing(draw_graph(h.sum()))
    assert "legend" not in drawing.labels and "|grad|" not in drawing.source


# ---- folding module calls ----------------------------------------------------------------------------
def small_mlp():
    tg.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Sigmoid(), nn.Linear(3, 2))
    x = const(np.ones((5, 4)))
    return model, x, model(x).sum()


def test_collapse_by_name_folds_that_call_and_hides_its_parameters():
    model, x, loss = small_mlp()
    drawing = Drawing(draw_graph(loss, params=model, collapse=["0"]))
    folded = drawing.one("0: Linear")
    assert drawing.labels[folded] == ["0: Linear", "(5, 3)", "0.weight (3, 4)", "0.bias (3,)"]
    assert not drawing.find("0.weight") and not drawing.find("0.bias")
    assert drawing.find("2.weight") and ops_named(drawing, "Linear") == 1  # layer 2 stays open
    assert (drawing.one("constant"), folded) in drawing.edges
    assert (folded, drawing.one("Sigmoid")) in drawing.edges


def test_collapse_by_class_folds_every_call_of_that_class():
    model, x, loss = small_mlp()
    drawing = Drawing(draw_graph(loss, params=model, collapse=[nn.Linear]))
    assert drawing.find("0: Linear") and drawing.find("2: Linear")
    assert not drawing.find("MatMul") and not drawing.find("Transpose")
    assert drawing.find("Sigmoid")  # an op, not folded
    assert len(drawing.graph_nodes) == 5  # x, Linear, Sigmoid, Linear, Sum

    without_names = Drawing(draw_graph(loss, collapse=[nn.Linear]))
    assert without_names.labels[without_names.graph_nodes[1]][0] == "Linear"


def test_collapse_true_folds_the_direct_children():
    model, x, loss = small_mlp()
    drawing = Drawing(draw_graph(loss, params=model, collapse=True))
    assert [drawing.labels[key][0] for key in drawing.graph_nodes] == [
        "Sum", "2: Linear", "1: Sigmoid", "0: Linear", "constant"
    ]
    assert len(drawing.edges) == 4


def test_collapse_the_whole_model_by_its_empty_name():
    model, x, loss = small_mlp()
    drawing = Drawing(draw_graph(loss, params=model, collapse=[""]))
    folded = drawing.one("Sequential")
    assert "0.weight (3, 4)" in drawing.labels[folded] and "2.bias (2,)" in drawing.labels[folded]
    assert len(drawing.graph_nodes) == 3


def test_a_module_called_on_an_array_keeps_the_edge_from_it():
    tg.manual_seed(0)
    layer = nn.Linear(2, 3)
    out = layer(np.ones((4, 2), dtype=np.float32)).sum()
    drawing = Drawing(draw_graph(out, params=layer, collapse=[nn.Linear]))
    assert (drawing.one("constant"), drawing.one("Linear")) in drawing.edges


def test_a_module_returning_its_input_is_not_folded():
    model = nn.Sequential(nn.Linear(2, 2), nn.Identity())
    out = model(const([[1.0, 2.0]])).sum()
    drawing = Drawing(draw_graph(out, params=model, collapse=True))
    assert drawing.find("0: Linear") and not drawing.find("1: Identity")


def test_a_folded_call_shows_the_gradient_of_its_output():
    model, x, loss = small_mlp()
    drawing = Drawing(draw_graph(loss, params=model, collapse=True, show_grads=True))
    hidden = model[1](model[0](x))
    (expected,) = tg.grad(model[2](hidden).sum(), hidden)
    assert drawing.grad_norm(drawing.one("1: Sigmoid")) == pytest.approx(
        np.linalg.norm(expected.data), rel=0.051
    )


def test_collapse_errors():
    model, x, loss = small_mlp()
    with pytest.raises(ValueError, match=r"unknown module name.*'5'.*'0', '1', '2'"):
        draw_graph(loss, params=model, collapse=["5"])
    with pytest.raises(ValueError, match="params"):
        draw_graph(loss, collapse=["0"])
    with pytest.raises(ValueError, match="params"):
        draw_graph(loss, params={"w": model[0].weight}, collapse=True)
    with pytest.raises(TypeError, match="collapse"):
        draw_graph(loss, params=model, collapse=[3])
    with pytest.raises(TypeError, match="collapse"):
        draw_graph(loss, params=model, collapse=3)


def test_folding_keeps_a_deep_network_readable():
    tg.manual_seed(0)
    depth = 300
    layers = [module for _ in range(depth) for module in (nn.Linear(3, 3), nn.Tanh())]
    model = nn.Sequential(*layers)
    loss = model(const(np.ones((2, 3)))).sum()

    every_node = {"params": model, "max_nodes": None}
    assert len(Drawing(draw_graph(loss, **every_node)).graph_nodes) == 4 * depth + 2  # W, b, Linear, Tanh
    assert len(Drawing(draw_graph(loss, collapse=True, **every_node)).graph_nodes) == 2 * depth + 2
    assert len(Drawing(draw_graph(loss, collapse=[nn.Linear], **every_node)).graph_nodes) == 2 * depth + 2

    blocks = nn.Sequential(*[nn.Sequential(nn.Linear(3, 3), nn.Tanh()) for _ in range(depth)])
    loss = blocks(const(np.ones((2, 3)))).sum()
    drawing = Drawing(draw_graph(loss, params=blocks, collapse=True, max_nodes=None))
    assert len(drawing.graph_nodes) == depth + 2
    assert drawing.labels[drawing.one("0: Sequential")][2:] == ["0.0.weight (3, 3)", "0.0.bias (3,)"]


def test_a_deep_network_folds_into_its_repeated_block_by_default():
    tg.manual_seed(0)
    depth = 300
    model = nn.Sequential(*[module for _ in range(depth) for module in (nn.Linear(3, 3), nn.Tanh())])
    loss = model(const(np.ones((2, 3)))).sum()
    drawing = Drawing(draw_graph(loss, params=model))
    run = drawing.one("Linear -> Tanh x 300")
    assert drawing.labels[run][1] == "(2, 3)"
    assert drawing.labels[run][2:] == ["0.weight (3, 3)", "0.bias (3,)", "2.weight (3, 3)", "2.bias (3,)",
                                       "4.weight (3, 3)", "+595 more tensors"]
    assert len(drawing.graph_nodes) == 3 and ("n2", run) in drawing.edges  # the input feeds the run
    assert "Linear -> Tanh x 300 as one node" in drawing.source

    blocks = nn.Sequential(*[nn.Sequential(nn.Linear(3, 3), nn.Tanh()) for _ in range(depth)])
    drawing = Drawing(draw_graph(blocks(const(np.ones((2, 3)))).sum(), params=blocks, collapse=True))
    assert drawing.find("Sequential x 300") and len(drawing.graph_nodes) == 3


def test_a_long_elementwise_chain_is_one_node_with_its_count_and_gradient():
    x = leaf([1.0, 2.0, 3.0], name="x")
    y = x
    for _ in range(3000):
        y = y * 1.001
    loss = y.sum()
    drawing = Drawing(draw_graph(loss, show_grads=True))
    run = drawing.one("Mul x 3000")
    assert drawing.labels[run][1] == "(3,)"
    assert drawing.graph_nodes == ["n0", run, drawing.one("x")]
    assert drawing.grad_norm(drawing.one("x")) == pytest.approx(np.sqrt(3) * 1.001 ** 3000, rel=2e-2)
    assert drawing.grad_norm(run) == pytest.approx(np.sqrt(3), rel=2e-2)  # d(sum)/d(the run's output)


def test_a_run_of_blocks_with_a_constant_each_hides_the_constants():
    x = leaf([1.0, 2.0], name="x")
    y = x
    for i in range(50):
        y = (y * np.array([1.0, 0.5], dtype=np.float32)).tanh()
    drawing = Drawing(draw_graph(y.sum()))
    run = drawing.one("Mul -> Tanh x 50")
    assert drawing.labels[run][2:] == ["+50 constants"]
    assert len(drawing.graph_nodes) == 3


def test_short_repeats_and_small_graphs_are_drawn_node_by_node():
    x = leaf([1.0, 2.0], name="x")
    y = x
    for _ in range(10):
        y = y * 2.0
    assert len(Drawing(draw_graph(y.sum())).find("Mul(·, 2)")) == 10  # 12 nodes: within the budget
    assert Drawing(draw_graph(y.sum(), max_nodes=5)).find("Mul x 10")


def test_python_builtin_sum_over_rows_is_one_node_saying_how_many_rows():
    t = leaf(np.arange(12.0).reshape(6, 2), name="t")
    total = sum(t * 2.0)  # 0 + row 0 + row 1 + ... : 6 adds and 6 row picks
    drawing = Drawing(draw_graph(total.sum()))
    folded = drawing.one("sum over 6 rows")
    assert drawing.labels[folded][1] == "(2,)"
    assert len(drawing.graph_nodes) == 4 and "1 built-in sum over rows (6 rows)" in drawing.source
    unfolded = Drawing(draw_graph(total.sum(), max_nodes=None))
    assert all(len(unfolded.find(f"GetItem[{row}]")) == 1 for row in range(6))  # each row pick, by its row


def test_a_builtin_sum_at_the_root_is_the_root_node():
    t = leaf(np.arange(12.0).reshape(6, 2), name="t")
    drawing = Drawing(draw_graph(sum(t)))
    assert drawing.graph_nodes == ["n0", "n1"] and drawing.labels["n0"][0] == "sum over 6 rows"
    assert drawing.attributes["n0"]["peripheries"] == "2" and drawing.edges == [("n1", "n0")]


def test_learner_000s_cost_at_full_size_draws_small_and_renders(tmp_path):
    """Their cost, verbatim (built-in sum(sum(...)) over 5000 rows), on Tensor parameters: 10959 graph
    items become a drawing of a few dozen nodes, which the dot program renders."""
    import seed_learner

    rng = np.random.default_rng(0)
    X = rng.random((5000, 400))
    Y = np.eye(10)[rng.integers(0, 10, 5000)]
    shapes = {"W1": (400, 25), "b1": (1, 25), "W2": (25, 10), "b2": (1, 10)}
    params = {name: tg.Tensor(rng.uniform(-0.12, 0.12, shape), requires_grad=True)
              for name, shape in shapes.items()}
    J = seed_learner.cost(list(params.values()), X, Y)
    assert reachable_objects(J) > 10000
    drawing = Drawing(draw_graph(J, params=params, show_grads=True))
    assert len(drawing.graph_nodes) < 200
    assert drawing.find("sum over 5000 rows") and drawing.find("W1")
    path = render(draw_graph(J, params=params, show_grads=True), tmp_path / "cost.svg")
    assert path.read_text().lstrip().startswith(("<?xml", "<svg")) and "<svg" in path.read_text()


def test_over_budget_the_nodes_farthest_from_the_root_become_one():
    leaves = [leaf(np.ones(i + 1), name=f"p{i}") for i in range(40)]
    total = leaves[0].sum()
    for p in leaves[1:]:
        total = total + (p * 2.0).sum()  # no repeats: every parameter has its own shape
    drawing = Drawing(draw_graph(total, max_nodes=20))
    assert len(drawing.graph_nodes) == 20
    more = [key for key in drawing.graph_nodes if drawing.labels[key][0].endswith("more nodes")]
    # The 38 adds below the root fold into one run first; 19 nodes are kept, the rest is one node.
    assert len(more) == 1
    assert drawing.labels[more[0]][0] == f"... {reachable_objects(total) - 37 - 19} more nodes"
    assert drawing.find("Add x 38")
    assert "shown as one (max_nodes=20)" in drawing.source
    assert drawing.labels["n0"][0] == "Add"  # the root is always kept


@pytest.mark.parametrize("bad", [0, 1, -5, 2.5, True, "100"])
def test_max_nodes_must_be_an_int_of_at_least_two(bad):
    x = leaf([1.0], name="x")
    with pytest.raises(ValueError, match="max_nodes must be an int >= 2 or None"):
        draw_graph(x * 2.0, max_nodes=bad)


def test_a_large_model_graph_is_collapsed_automatically():
    tg.manual_seed(0)
    # Different widths: no two layers repeat, so only collapsing modules makes it small.
    widths = [3 + i for i in range(60)]
    model = nn.Sequential(*[nn.Sequential(nn.Linear(a, b), nn.Tanh(), nn.Linear(b, b)) for a, b in
                            zip(widths, widths[1:])])
    loss = model(const(np.ones((2, 3)))).sum()
    drawing = Drawing(draw_graph(loss, params=model))
    assert len(drawing.graph_nodes) <= 150
    assert drawing.find("0: Sequential") and "module calls collapsed" in drawing.source


# ---- rendering ---------------------------------------------------------------------------------------
@pytest.fixture
def graph():
    _, W1, b1, h = learners_layer()
    return draw_graph(h.sum(), params={"W1": W1, "b1": b1}, show_grads=True)


def test_render_svg_with_dot(graph, tmp_path):
    path = render(graph, tmp_path / "layer.svg")
    assert path == tmp_path / "layer.svg"
    text = path.read_text()
    assert text.startswith("<?xml") or "<svg" in text
    assert "MatMul" in text and "W1" in text
    assert os.listdir(tmp_path) == ["layer.svg"]  # no temporary file left


def test_render_png_and_pdf(graph, tmp_path):
    assert render(graph, str(tmp_path / "layer.png")).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert render(graph, tmp_path / "layer.PDF").read_bytes().startswith(b"%PDF")
    assert render(graph, tmp_path / "picture", format="svg").read_text().count("<svg") == 1
    assert sorted(os.listdir(tmp_path)) == ["layer.PDF", "layer.png", "picture"]


def test_render_gives_new_files_the_usual_permissions(graph, tmp_path):
    previous = os.umask(0o022)
    try:
        path = render(graph, tmp_path / "layer.svg")
    finally:
        os.umask(previous)
    assert path.stat().st_mode & 0o777 == 0o644


def test_render_rejects_unknown_formats(graph, tmp_path):
    with pytest.raises(ValueError, match=r"'layer\.jpg'.*\.svg"):
        render(graph, tmp_path / "layer.jpg")
    with pytest.raises(ValueError, match="'gif'"):
        render(graph, tmp_path / "layer.svg", format="gif")
    assert os.listdir(tmp_path) == []


def test_render_without_dot_explains_and_leaves_the_old_file(graph, tmp_path, monkeypatch):
    old = tmp_path / "layer.svg"
    old.write_bytes(b"old picture")
    empty = tmp_path / "empty_bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(GraphvizNotFoundError) as error:
        render(graph, old)
    message = str(error.value)
    advice = ("apt-get install -y graphviz", "brew install graphviz", "conda install graphviz",
              "graphviz.org", ".source")
    assert all(text in message for text in advice), message
    assert isinstance(error.value, RuntimeError)
    assert old.read_bytes() == b"old picture"
    assert sorted(os.listdir(tmp_path)) == ["empty_bin", "layer.svg"]
    assert graph.source.startswith("digraph") and "W1" in graph.source


def test_a_failed_write_leaves_no_partial_file(graph, tmp_path, monkeypatch):
    old = tmp_path / "layer.png"
    old.write_bytes(b"old picture")

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        render(graph, old)
    assert old.read_bytes() == b"old picture"
    assert os.listdir(tmp_path) == ["layer.png"]
