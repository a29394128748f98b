"""The documentation stays true: every public name of the API contract exists and has an entry in
docs/api.md, api.md is what docs/gen_api.py writes from today's docstrings, and every relative
link in README.md and docs/*.md reaches an existing file (and heading).

The pages' code examples are doctests of their own (pytest runs ``--doctest-glob=*.md``).
"""
import functools
import importlib
import importlib.util
import re
import sys
from pathlib import Path

import pytest

from tinygrad_edu import Tensor

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
API_MD = DOCS / "api.md"

# Every public name of the API contract (the project's API.md, which lives outside this
# repository), as it is written after `import tinygrad_edu as tg`, `from tinygrad_edu import nn,
# optim` and `import tinygrad_edu.functional as F`.
CONTRACT = (
    # Tensor and autograd
    "tg.Tensor", "tg.Tensor.data", "tg.Tensor.grad", "tg.Tensor.requires_grad", "tg.Tensor.shape",
    "tg.Tensor.ndim", "tg.Tensor.size", "tg.Tensor.dtype", "tg.Tensor.name", "tg.Tensor.grad_fn",
    "tg.Tensor.is_leaf", "tg.Tensor.numpy", "tg.Tensor.item", "tg.Tensor.tolist", "tg.Tensor.__array__",
    "tg.Tensor.detach", "tg.Tensor.astype", "tg.Tensor.backward", "tg.Tensor.register_hook",
    "tg.get_default_dtype", "tg.set_default_dtype",
    "tg.grad", "tg.no_grad", "tg.enable_grad", "tg.is_grad_enabled", "tg.manual_seed",
    "tg.zeros", "tg.ones", "tg.full", "tg.zeros_like", "tg.ones_like", "tg.arange", "tg.eye",
    "tg.rand", "tg.randn",
    # differentiable operations
    "tg.Tensor.__add__", "tg.Tensor.__sub__", "tg.Tensor.__mul__", "tg.Tensor.__truediv__",
    "tg.Tensor.__pow__", "tg.Tensor.__matmul__", "tg.Tensor.__neg__", "tg.Tensor.__radd__",
    "tg.Tensor.__rsub__", "tg.Tensor.__rmul__", "tg.Tensor.__rtruediv__", "tg.Tensor.__rmatmul__",
    "tg.Tensor.__lt__", "tg.Tensor.__le__", "tg.Tensor.__gt__", "tg.Tensor.__ge__",
    "tg.Tensor.__eq__", "tg.Tensor.__ne__",
    "tg.Tensor.exp", "tg.Tensor.log", "tg.Tensor.sqrt", "tg.Tensor.abs", "tg.Tensor.sigmoid",
    "tg.Tensor.tanh", "tg.Tensor.relu", "tg.Tensor.clip",
    "tg.maximum", "tg.minimum", "tg.where",
    "tg.Tensor.sum", "tg.Tensor.mean", "tg.Tensor.max", "tg.Tensor.min", "tg.Tensor.var",
    "tg.Tensor.argmax", "tg.Tensor.argmin", "tg.Tensor.logsumexp",
    "tg.Tensor.reshape", "tg.Tensor.transpose", "tg.Tensor.T", "tg.Tensor.squeeze",
    "tg.Tensor.unsqueeze", "tg.Tensor.broadcast_to", "tg.Tensor.flatten", "tg.Tensor.__getitem__",
    "tg.concatenate", "tg.stack", "tg.einsum",
    # tinygrad_edu.functional
    "F.sigmoid", "F.tanh", "F.relu", "F.leaky_relu", "F.softmax", "F.log_softmax", "F.logsumexp",
    "F.linear", "F.dropout", "F.one_hot", "F.mse_loss", "F.cross_entropy",
    "F.binary_cross_entropy", "F.binary_cross_entropy_with_logits", "F.nll_loss", "F.accuracy",
    # tinygrad_edu.nn
    "nn.Module", "nn.Module.forward", "nn.Module.__call__", "nn.Module.parameters",
    "nn.Module.named_parameters", "nn.Module.children", "nn.Module.modules",
    "nn.Module.named_modules", "nn.Module.zero_grad", "nn.Module.train", "nn.Module.eval",
    "nn.Module.state_dict", "nn.Module.load_state_dict", "nn.Module.register_forward_hook",
    "nn.Parameter", "nn.Linear", "nn.Sequential", "nn.Sequential.__getitem__",
    "nn.Sequential.__len__", "nn.Sequential.__iter__", "nn.ModuleList",
    "nn.Sigmoid", "nn.Tanh", "nn.ReLU", "nn.LeakyReLU", "nn.Softmax", "nn.LogSoftmax",
    "nn.Dropout", "nn.Flatten", "nn.Identity",
    "nn.MSELoss", "nn.CrossEntropyLoss", "nn.CrossEntropy", "nn.BCELoss", "nn.BCEWithLogitsLoss",
    "nn.NLLLoss", "nn.StateDictError",
    "nn.init.calculate_gain", "nn.init.uniform_", "nn.init.normal_", "nn.init.zeros_",
    "nn.init.ones_", "nn.init.constant_", "nn.init.xavier_uniform_", "nn.init.xavier_normal_",
    "nn.init.kaiming_uniform_", "nn.init.kaiming_normal_", "nn.init.lecun_normal_",
    "nn.utils.clip_grad_norm_", "nn.utils.clip_grad_value_",
    # tinygrad_edu.optim
    "optim.Optimizer", "optim.Optimizer.step", "optim.Optimizer.zero_grad",
    "optim.Optimizer.state_dict", "optim.Optimizer.load_state_dict",
    "optim.SGD", "optim.Adam", "optim.AdamW", "optim.RMSprop", "optim.minimize",
    # tinygrad_edu.data
    "tinygrad_edu.data.TensorDataset", "tinygrad_edu.data.DataLoader", "tinygrad_edu.data.one_hot",
    "tinygrad_edu.data.train_test_split", "tinygrad_edu.data.load_mat",
    "tinygrad_edu.data.load_digits",
    # checking and seeing
    "tg.gradcheck", "tg.GradcheckError", "tinygrad_edu.gradcheck.numeric_grad",
    "tinygrad_edu.viz.draw_graph", "tinygrad_edu.viz.render", "tinygrad_edu.viz.GraphvizNotFoundError",
    "tg.save", "tg.load",
    # learning aids
    "tg.Tensor.__array_ufunc__", "tg.Tensor.__array_function__",
    "tg.check_backprop", "tg.BackpropReport", "tg.explain",
    "tg.set_broadcast_check", "tg.get_broadcast_check", "tg.BroadcastWarning", "tg.BroadcastError",
    "tg.detect_anomaly", "tg.is_anomaly_enabled", "tg.AnomalyError",
    "tinygrad_edu.diagnostics.Monitor", "tinygrad_edu.diagnostics.Monitor.step",
    "tinygrad_edu.diagnostics.Monitor.report", "tinygrad_edu.diagnostics.Monitor.remove",
    "tinygrad_edu.diagnostics.Monitor.plot", "tinygrad_edu.diagnostics.DiagnosticsReport",
    "tinygrad_edu.diagnostics.DiagnosticWarning",
    "tinygrad_edu.diagnostics.sanity_check", "tinygrad_edu.diagnostics.SanityReport",
    "tinygrad_edu.diagnostics.lr_find", "tinygrad_edu.diagnostics.LRFindResult",
    "tinygrad_edu.diagnostics.NumpyMonitor", "tinygrad_edu.diagnostics.NumpyMonitor.step",
    "tinygrad_edu.diagnostics.NumpyMonitor.report", "tinygrad_edu.diagnostics.check_broadcasts",
    "tinygrad_edu.diagnostics.BroadcastReport",
)

PREFIXES = {
    "tg": "tinygrad_edu",
    "F": "tinygrad_edu.functional",
    "nn": "tinygrad_edu.nn",
    "optim": "tinygrad_edu.optim",
    "tinygrad_edu": "tinygrad_edu",
}


def resolve(name: str):
    """The object a documented name refers to: the longest importable module, then attributes."""
    first, _, rest = name.partition(".")
    parts = (PREFIXES[first] + ("." + rest if rest else "")).split(".")
    for split in range(len(parts), 0, -1):
        module_name = ".".join(parts[:split])
        try:
            obj = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if not (module_name + ".").startswith((error.name or "") + "."):
                raise  # the module exists but one of its own imports is broken
            continue
        for attribute in parts[split:]:
            obj = getattr(obj, attribute)
        return obj
    raise ModuleNotFoundError(name)


@functools.lru_cache(maxsize=1)
def documented_names() -> frozenset:
    """The names that have an entry (a heading) in docs/api.md."""
    return frozenset(re.findall(r"^#{3,4} `([^`]+)`$", API_MD.read_text(encoding="utf-8"), re.M))


def test_contract_lists_each_name_once():
    assert len(CONTRACT) == len(set(CONTRACT)), [n for n in CONTRACT if CONTRACT.count(n) > 1]


@pytest.mark.parametrize("name", CONTRACT)
def test_public_name_exists_and_is_in_api_md(name):
    assert resolve(name) is not None, f"{name} resolves to None"
    assert name in documented_names(), (
        f"{name} has no entry in docs/api.md: regenerate it with `python docs/gen_api.py` "
        "(and if the name is still missing, docs/gen_api.py's SECTIONS do not reach it)"
    )


def test_resolve_fails_for_a_name_that_does_not_exist():
    with pytest.raises(AttributeError):
        resolve("tg.Tensor.no_such_method")
    assert "tg.Tensor.no_such_method" not in documented_names()


@functools.lru_cache(maxsize=1)
def _generator():
    spec = importlib.util.spec_from_file_location("docs_gen_api", DOCS / "gen_api.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.lru_cache(maxsize=1)
def _generated():
    """(api.md text, the writer) for the package as it is now: generated once for all tests."""
    return _generator()._generate()


def test_api_md_is_what_the_generator_writes_now():
    # api.md is derived: when it is stale this test rewrites it (a new op's method needs no
    # hand-made entry) and still fails once, so the new text is seen and committed.
    expected, writer = _generated()
    current = API_MD.read_text(encoding="utf-8")
    if current != expected:
        old, new = current.splitlines(), expected.splitlines()
        first = next((i for i, (a, b) in enumerate(zip(old, new)) if a != b), min(len(old), len(new)))
        rewritten = not writer.missing  # an entry without a docstring is never written
        if rewritten:
            API_MD.write_text(expected, encoding="utf-8")
        pytest.fail(
            "docs/api.md was out of date (a public name or a docstring changed): "
            + ("this test has rewritten it; check the difference and commit it. " if rewritten else
               f"write the missing docstrings ({', '.join(writer.missing)}), then run the tests again. ")
            + f"First difference at line {first + 1}:\n"
            f"  api.md:    {old[first] if first < len(old) else '<end of file>'}\n"
            f"  generated: {new[first] if first < len(new) else '<end of file>'}"
        )


def test_a_stale_api_md_is_rewritten_by_its_test(tmp_path, monkeypatch):
    stale = tmp_path / "api.md"
    stale.write_text("# API reference\nan old entry\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "API_MD", stale)
    with pytest.raises(pytest.fail.Exception, match="this test has rewritten it"):
        test_api_md_is_what_the_generator_writes_now()
    assert stale.read_text(encoding="utf-8") == _generated()[0]


def test_every_entry_has_a_summary():
    text = API_MD.read_text(encoding="utf-8")
    assert "*(no docstring)*" not in text, (
        "some entries of docs/api.md have no docstring (python docs/gen_api.py lists them): "
        "write one (a slot attribute: in its class docstring's Attributes section)"
    )
    assert _generated()[1].missing == [], "these public names have no docstring: write one"


def test_generator_fails_on_a_name_without_docstring(tmp_path, monkeypatch, capsys):
    # There is no table of stand-in summaries: a missing docstring must show and fail the run.
    gen = _generator()

    class Undocumented:
        """A class whose method has no docstring."""

        def method(self):
            pass

    writer = gen._Writer()
    writer.document("tg.Undocumented", Undocumented)
    assert writer.missing == ["tg.Undocumented.method"]
    assert gen.NO_DOCSTRING == "*(no docstring)*"  # the marker test_every_entry_has_a_summary looks for
    assert gen.NO_DOCSTRING in writer.lines
    up_to_date = tmp_path / "api.md"
    up_to_date.write_text("text\n", encoding="utf-8")
    monkeypatch.setattr(gen, "_generate", lambda: ("text\n", writer))
    monkeypatch.setattr(gen, "API_MD", up_to_date)
    assert gen.main(["--check"]) == 1  # the file is up to date: only the missing docstring fails
    assert "tg.Undocumented.method" in capsys.readouterr().err


def test_slot_attributes_are_described_by_the_class_attributes_section():
    gen = _generator()
    doc = """Summary.

    Parameters
    ----------
    data : array_like
        Not an attribute.

    Attributes
    ----------
    data : ndarray
        The values,
        on two lines.

        Second paragraph.
    grad : Tensor or None
        The gradient.

    Examples
    --------
    >>> 1
    1
    """
    assert gen._attributes(doc) == {
        "data": ("ndarray", "The values,\non two lines.\n\nSecond paragraph."),
        "grad": ("Tensor or None", "The gradient."),
    }
    text = _generated()[0]
    for name in ("data", "grad", "requires_grad", "name"):
        entry = text.split(f"#### `tg.Tensor.{name}`\n", 1)[1].split("####", 1)[0]
        assert "# attribute: " in entry, entry
        assert gen._first_paragraph(gen._attributes(Tensor.__doc__)[name][1]) in entry


def test_api_md_runs_no_code():
    # docs/ is collected with --doctest-glob=*.md: a '>>>' copied from a docstring would run here
    assert ">>>" not in API_MD.read_text(encoding="utf-8")


# ---- links --------------------------------------------------------------------------------------
PAGES = [ROOT / "README.md"] + sorted(DOCS.glob("*.md"))
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where brackets are not links."""
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.M | re.S)
    return re.sub(r"`+[^`\n]*`+", "", text)


def _anchors(page: Path) -> set:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -1 for repeats."""
    anchors, counts = set(), {}
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", _without_fences(page.read_text(encoding="utf-8")), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        anchors.add(slug if slug not in counts else f"{slug}-{counts[slug]}")
        counts[slug] = counts.get(slug, 0) + 1
    return anchors


def _without_fences(text: str) -> str:
    return re.sub(r"^(```|~~~).*?^\1[^\n]*$", "", text, flags=re.M | re.S)


def relative_links(page: Path) -> list:
    links = LINK.findall(_prose(page.read_text(encoding="utf-8")))
    return [link for link in links if not re.match(r"[a-zA-Z][\w+.-]*:", link)]  # http:, mailto:


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_existing_files(page):
    broken = []
    for link in dict.fromkeys(relative_links(page)):  # each distinct link once, in order
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.exists():
            broken.append(f"{link} (no file {target.relative_to(ROOT) if ROOT in target.parents else target})")
        elif anchor and target.suffix == ".md" and anchor not in _anchors(target):
            broken.append(f"{link} (no heading with anchor #{anchor} in {target.name})")
    assert not broken, f"broken links in {page.relative_to(ROOT)}: " + "; ".join(broken)


def test_link_checker_sees_links_and_skips_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "See [the tour](README.md#a-60-second-tour) and ![img](images/x.svg).\n"
        "```python\nmodel[0](x)  # [not](a-link.md)\n```\n"
        "Inline `[no](link.md)`, [web](https://example.org).\n# A 60-second tour\n",
        encoding="utf-8",
    )
    assert relative_links(page) == ["README.md#a-60-second-tour", "images/x.svg"]
    assert "a-60-second-tour" in _anchors(page)


def test_readme_links_every_docs_page():
    # The issue asks for docs/ pages linked from the README, so none of them is hidden.
    linked = {(ROOT / link.partition("#")[0]).resolve() for link in relative_links(ROOT / "README.md")}
    unlinked = [page.name for page in sorted(DOCS.glob("*.md")) if page.resolve() not in linked]
    assert not unlinked, f"README.md links no docs page named {unlinked}"
