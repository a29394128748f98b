"""The package's import structure: which modules need each other when Python loads them.

Only the four files of the core (tensor, autograd, ops, functional) may import each other at
module level: Tensor's methods call ops and composites, ops are Functions of the engine, and
the engine and composites build Tensors. Every other module sits outside that circle and
imports in one direction, so it can be read (and changed) without the rest loading first.
"""
import ast
import pathlib

import tinygrad_edu

PACKAGE = pathlib.Path(tinygrad_edu.__file__).parent
CORE = {"tinygrad_edu.tensor", "tinygrad_edu.autograd", "tinygrad_edu.ops", "tinygrad_edu.functional"}


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: pathlib.Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def module_level_statements(body):
    """Statements that run when the module loads: the top level and inside if/try/with,
    but not inside functions or classes (those imports run later, when called)."""
    for node in body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        yield node
        for field in ("body", "orelse", "finalbody", "handlers"):
            yield from module_level_statements(getattr(node, field, []) or [])


def imported_modules(path: pathlib.Path, modules: set) -> set:
    """The package's modules that loading `path` loads directly."""
    found = set()
    for node in module_level_statements(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package_of(path).split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # `from . import ops` names a module; `from .tensor import Tensor` names a module's attribute
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            # Loading a.b.c loads the packages a.b first, except the package root, which every
            # module's loading passes through and which is not part of any module's job.
            parts = target.split(".")
            for end in range(2, len(parts) + 1):
                prefix = ".".join(parts[:end])
                if prefix in modules:
                    found.add(prefix)
    # A module's own packages are loaded before it (Python loads parents first), so they are
    # not something it needs: `from . import kinds` inside diagnostics/ names the sibling only.
    name = module_name(path)
    return {m for m in found if m != name and not name.startswith(m + ".")}


def import_graph() -> dict:
    paths = [p for p in PACKAGE.rglob("*.py")]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imported_modules(p, modules) for p in paths}


def strongly_connected_components(graph: dict) -> list:
    """Tarjan's algorithm, iterative: the groups of modules that (indirectly) import each other."""
    index, lowlink, on_stack, stack, components = {}, {}, set(), [], []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = lowlink[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = lowlink[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    lowlink[node] = min(lowlink[node], index[child])
                continue
            work.pop()
            if work:
                lowlink[work[-1][0]] = min(lowlink[work[-1][0]], lowlink[node])
            if lowlink[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def test_the_only_import_cycle_is_the_four_file_core():
    graph = import_graph()
    cycles = [c for c in strongly_connected_components(graph) if len(c) > 1]
    assert cycles == [CORE], (
        "modules outside tensor/autograd/ops/functional import each other in a circle: "
        + "; ".join(" <-> ".join(sorted(c)) for c in cycles)
        + " (import lazily inside the function that needs it, or move the function to its home)"
    )


def test_the_import_graph_reader_sees_lazy_and_relative_imports_correctly(tmp_path):
    graph = import_graph()
    assert "tinygrad_edu.autograd" in graph["tinygrad_edu.ops"]  # from .autograd import Function
    assert "tinygrad_edu.nn.module" in graph["tinygrad_edu.compile"]  # from .nn.module import Module
    assert "tinygrad_edu.nn" in graph["tinygrad_edu.compile"]  # the package loads first
    assert "tinygrad_edu.functional" in graph["tinygrad_edu.diagnostics.monitor"]  # from .. import functional


def test_cycle_finder_reports_a_cycle_and_ignores_a_chain():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    components = strongly_connected_components(graph)
    assert [c for c in components if len(c) > 1] == [{"a", "b", "c"}]


def attributes_set_on_other_objects_at_load(path: pathlib.Path) -> list:
    """`name.attr = ...` or `name.attr.other = ...` at module level, where `name` is imported:
    a module rewriting another module's state when it loads (import-time monkeypatching)."""
    statements = list(module_level_statements(ast.parse(path.read_text()).body))
    imported = set()
    for node in statements:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imported.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    found = []
    for node in statements:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        for target in targets:
            base = target
            while isinstance(base, ast.Attribute):
                base = base.value
            if target is not base and isinstance(base, ast.Name) and base.id in imported:
                found.append(f"{path.name}:{node.lineno}: {ast.unparse(target)}")
    return found


def test_no_module_rewrites_another_when_it_loads():
    # guards.py gives the engine its default checks through modes.set_default_checks, the one
    # documented seam, instead of assigning into another module's globals.
    found = [line for p in sorted(PACKAGE.rglob("*.py")) for line in attributes_set_on_other_objects_at_load(p)]
    assert not found, found


def test_the_checks_seam_names_an_unknown_check():
    import pytest

    from tinygrad_edu import modes

    with pytest.raises(TypeError, match="unknown checks.*'nan_check'"):
        modes.set_default_checks(nan_check=print)


def test_gradcheck_and_backprop_check_are_two_files_with_the_old_import_paths_kept():
    import tinygrad_edu as tg
    from tinygrad_edu import backprop_check
    from tinygrad_edu.gradcheck import BackpropReport, check_backprop, compare_grads, numeric_grad

    assert check_backprop is tg.check_backprop is backprop_check.check_backprop
    assert compare_grads is tg.compare_grads and BackpropReport is tg.BackpropReport
    assert callable(numeric_grad)
    gradcheck_source = (PACKAGE / "gradcheck.py").read_text()
    assert "def check_backprop" not in gradcheck_source and "def compare_grads" not in gradcheck_source


def test_the_first_learners_code_has_one_copy():
    # examples/first_learner.py and the tests import examples/seed_learner.py; a second verbatim
    # copy would drift from the first.
    root = PACKAGE.parent
    copies = [str(p.relative_to(root)) for folder in ("examples", "tests") for p in sorted((root / folder).glob("*.py"))
              if "\ndef backpropagate(p, x, y):" in p.read_text()]
    assert copies == ["examples/seed_learner.py"], copies


def test_the_softmax_shift_has_one_home():
    # ops._softmax_shift (the row maximum, 0 where it is infinite) serves the fused loss ops and
    # functional's softmax, log_softmax and logsumexp alike.
    functional_source = (PACKAGE / "functional.py").read_text()
    assert "np.max(x.data" not in functional_source
    assert functional_source.count("ops._softmax_shift(") == 3


def test_label_checks_have_one_home():
    # data.one_hot, load_mat and the losses check labels with functional's one check, so the
    # same bad labels get the same message wherever they are given.
    import numpy as np
    import pytest

    import tinygrad_edu.functional as F
    from tinygrad_edu import data

    for labels, num_classes in (([0.5, 1.0, 2.25], 3), ([0, -1, 2, -3], 3), ([0, 5, 12], 10)):
        messages = []
        for one_hot in (data.one_hot, F.one_hot):
            with pytest.raises(ValueError) as error:
                one_hot(np.array(labels), num_classes)
            messages.append(str(error.value))
        assert messages[0] == messages[1]
    with pytest.raises(IndexError, match=r"\[0, 3\), got 7"):
        F.cross_entropy(F.Tensor(np.zeros((2, 3))), np.array([0, 7]))


def test_shapes_are_written_one_way():
    import numpy as np

    from tinygrad_edu._tables import shape_text

    assert shape_text((np.int64(20), 5)) == "(20, 5)" and shape_text(()) == "()" and shape_text(None) == "-"
    defined = [p.name for p in PACKAGE.rglob("*.py") if "def _shape_text(" in p.read_text()]
    assert defined == [], defined


def test_params_are_named_one_way_in_explain_and_drawings():
    import pytest

    import tinygrad_edu as tg
    from tinygrad_edu import viz

    w = tg.Tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    messages = []
    for tool in (tg.explain, viz.draw_graph):
        with pytest.raises(TypeError) as error:
            tool(loss, params=w)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert "W" in str(tg.explain(loss, params={"W": w})) and "W" in viz.draw_graph(loss, params={"W": w}).source
