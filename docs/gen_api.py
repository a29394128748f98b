"""Write docs/api.md, the API reference, from the package's signatures and docstrings.

Run ``python docs/gen_api.py`` after changing a public name or a docstring; ``--check`` only
compares (exit status 1 if api.md is out of date). tests/test_docs.py fails while api.md
differs from what this script produces, so the reference cannot drift from the code.
Modules that cannot be imported yet are left out (the test's list of names catches that).
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import re
import sys
import types
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
API_MD = DOCS / "api.md"

# (module, the prefix names get in api.md, title, page that explains the module)
SECTIONS = [
    ("tinygrad_edu.tensor.Tensor", "tg.Tensor", "`tg.Tensor`", "architecture.md"),
    ("tinygrad_edu", "tg", "`tinygrad_edu` (`tg`): autograd, creation, checking tools", None),
    ("tinygrad_edu.functional", "F", "`tinygrad_edu.functional` (`F`)", None),
    ("tinygrad_edu.nn", "nn", "`tinygrad_edu.nn`", None),
    ("tinygrad_edu.nn.init", "nn.init", "`tinygrad_edu.nn.init`", "initialisation.md"),
    ("tinygrad_edu.optim", "optim", "`tinygrad_edu.optim`", None),
    ("tinygrad_edu.data", "tinygrad_edu.data", "`tinygrad_edu.data`", None),
    ("tinygrad_edu.viz", "tinygrad_edu.viz", "`tinygrad_edu.viz`", "viz.md"),
    ("tinygrad_edu.diagnostics", "tinygrad_edu.diagnostics", "`tinygrad_edu.diagnostics`",
     "diagnostics.md"),
    ("tinygrad_edu.gradcheck", "tinygrad_edu.gradcheck", "`tinygrad_edu.gradcheck`",
     "check_backprop.md"),
]

# Modules that document only some of their public names (the rest are re-exported by `tg`).
ONLY = {"tinygrad_edu.gradcheck": ["numeric_grad", "BackpropRow"]}

# Special methods worth a reference entry: the containers' protocols, and (Tensor only, below)
# the operators and NumPy protocols.
DUNDERS = ["__call__", "__getitem__", "__len__", "__iter__", "__bool__"]
TENSOR_DUNDERS = [
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__pow__", "__rpow__", "__matmul__", "__rmatmul__", "__neg__", "__pos__",
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__getitem__", "__len__",
    "__iter__", "__bool__", "__float__", "__int__", "__index__", "__call__", "__array__",
    "__array_ufunc__", "__array_function__",
]

# Pages that explain a name; exact names first, then the longest matching prefix.
LINKS = {
    "tg.Tensor": "tutorial.md",
    "tg.Tensor.backward": "architecture.md",
    "tg.Tensor.register_hook": "architecture.md",
    "tg.Tensor.grad_fn": "architecture.md",
    "tg.Tensor.__array__": "numpy_interop.md",
    "tg.Tensor.__array_ufunc__": "numpy_interop.md",
    "tg.Tensor.__array_function__": "numpy_interop.md",
    "tg.Tensor.__iter__": "numpy_interop.md",
    "tg.Tensor.__eq__": "broadcast_guard.md",
    "tg.grad": "architecture.md",
    "tg.no_grad": "architecture.md",
    "tg.enable_grad": "architecture.md",
    "tg.is_grad_enabled": "architecture.md",
    "tg.einsum": "tutorial.md",
    "tg.gradcheck": "design_decisions.md",
    "tg.GradcheckError": "design_decisions.md",
    "tg.check_backprop": "check_backprop.md",
    "tg.BackpropReport": "check_backprop.md",
    "tg.explain": "explain.md",
    "tg.set_broadcast_check": "broadcast_guard.md",
    "tg.get_broadcast_check": "broadcast_guard.md",
    "tg.BroadcastWarning": "broadcast_guard.md",
    "tg.BroadcastError": "broadcast_guard.md",
    "tg.detect_anomaly": "detect_anomaly.md",
    "tg.is_anomaly_enabled": "detect_anomaly.md",
    "tg.AnomalyError": "detect_anomaly.md",
    "tg.save": "design_decisions.md",
    "tg.load": "design_decisions.md",
    "F.accuracy": "broadcast_guard.md",
    "F.cross_entropy": "tutorial.md",
    "nn.Module": "tutorial.md",
    "optim.Optimizer": "tutorial.md",
    "nn.init.": "initialisation.md",
    "tinygrad_edu.viz.": "viz.md",
    "tinygrad_edu.diagnostics.": "diagnostics.md",
    "tinygrad_edu.gradcheck.": "design_decisions.md",
}

# Summaries for names whose objects cannot carry a docstring of their own (slot attributes),
# or do not have one yet. Used only when the docstring is missing; `main` lists them.
FALLBACK = {
    "tg.Tensor.data": "The ndarray itself, not a copy: writing into it changes the tensor, outside the graph.",
    "tg.Tensor.grad": "The gradient accumulated by `backward` (a Tensor), or None; only leaves keep one.",
    "tg.Tensor.requires_grad": "Whether operations on this tensor are recorded so `backward` reaches it.",
    "tg.Tensor.name": "A label (str or None) used by `explain` and drawings of the graph.",
    "tg.Tensor.shape": "The shape of the data, a tuple.",
    "tg.Tensor.ndim": "The number of axes.",
    "tg.Tensor.size": "The number of elements.",
    "tg.Tensor.dtype": "The NumPy dtype of the data.",
    "tg.Tensor.is_leaf": "True for a tensor no recorded operation made (`grad_fn is None`).",
    "tg.Tensor.T": "The transpose (axes reversed), recorded in the graph.",
    "tg.Tensor.swapaxes": "Swap two axes, like ``np.swapaxes``.",
    "tg.Tensor.__add__": "`t + other`, broadcasting like NumPy.",
    "tg.Tensor.__radd__": "`other + t`.",
    "tg.Tensor.__sub__": "`t - other`.",
    "tg.Tensor.__rsub__": "`other - t`.",
    "tg.Tensor.__mul__": "`t * other`, elementwise (the Hadamard product).",
    "tg.Tensor.__rmul__": "`other * t`.",
    "tg.Tensor.__truediv__": "`t / other`.",
    "tg.Tensor.__rtruediv__": "`other / t`.",
    "tg.Tensor.__pow__": "`t ** other`.",
    "tg.Tensor.__rpow__": "`other ** t`.",
    "tg.Tensor.__matmul__": "`t @ other`: matrix product like ``np.matmul`` (1-D, 2-D, batched); "
                            "a shape mismatch names the dimensions that disagree.",
    "tg.Tensor.__rmatmul__": "`other @ t`, e.g. an ndarray times a Tensor.",
    "tg.Tensor.__neg__": "`-t`.",
    "tg.Tensor.__pos__": "`+t`: the tensor itself.",
    "tg.Tensor.__eq__": "`t == other`: a boolean Tensor outside the graph (watched by the broadcast guard).",
    "tg.Tensor.__ne__": "`t != other`: a boolean Tensor outside the graph.",
    "tg.Tensor.__lt__": "`t < other`: a boolean Tensor outside the graph.",
    "tg.Tensor.__le__": "`t <= other`: a boolean Tensor outside the graph.",
    "tg.Tensor.__gt__": "`t > other`: a boolean Tensor outside the graph.",
    "tg.Tensor.__ge__": "`t >= other`: a boolean Tensor outside the graph.",
    "tg.Tensor.__len__": "The length of axis 0.",
    "tg.Tensor.__iter__": "The rows, one recorded index each (so Python's built-in `sum()` works).",
    "tg.Tensor.__bool__": "The truth value of a one-element tensor.",
    "tg.Tensor.__float__": "`float(t)` of a one-element tensor.",
    "tg.Tensor.__int__": "`int(t)` of a one-element tensor.",
    "tg.Tensor.__index__": "Use a one-element integer tensor as an index.",
    "tg.Tensor.__array__": "`np.asarray(t)`: the data, outside the graph.",
    "tg.Tensor.__array_ufunc__": "NumPy ufuncs (`np.exp(t)`, `ndarray + t`) on Tensors return recorded Tensors.",
    "tg.Tensor.__array_function__": "NumPy functions (`np.dot`, `np.sum`, ...) on Tensors return recorded Tensors.",
    "tg.BackpropReport.ok": "True when every gradient matches (and no extra keys were returned).",
    "tg.BackpropReport.__bool__": "`report.ok`, so `assert tg.check_backprop(...)` works.",
    "tg.BackpropReport.__getitem__": "The `BackpropRow` of one parameter, by its index or dict key.",
    "nn.Module.forward": "The computation of the module; subclasses define it, and call the module "
                         "(`module(x)`), not `forward`, so that hooks run.",
    "nn.Module.__call__": "Run `forward`, then the forward hooks; records the call for `viz.draw_graph`.",
    "nn.Module.modules": "This module and every module below it.",
    "nn.Module.named_children": "(name, module) for the direct sub-modules.",
    "nn.Module.children": "The direct sub-modules.",
    "nn.Module.parameters": "Every parameter of this module and those below it (each once), for an optimizer.",
    "nn.Sequential.__getitem__": "`net[i]` is the i-th module; a slice gives a Sequential.",
    "nn.Sequential.__len__": "The number of modules.",
    "nn.Sequential.__iter__": "The modules, in order.",
    "nn.Sequential.append": "Add a module at the end; returns the Sequential.",
    "nn.ModuleList.__getitem__": "The i-th module; a slice gives a ModuleList.",
    "nn.ModuleList.__len__": "The number of modules.",
    "nn.ModuleList.__iter__": "The modules, in order.",
    "nn.ModuleList.append": "Add a module at the end; returns the ModuleList.",
    "nn.ModuleList.extend": "Add several modules at the end; returns the ModuleList.",
    "nn.Linear.reset_parameters": "Re-draw weight and bias as at construction: PyTorch's default, "
                                  "uniform in +-1/sqrt(in_features).",
    "tinygrad_edu.diagnostics.DiagnosticsReport.kinds": "The set of the warnings' kinds.",
    "tinygrad_edu.gradcheck.BackpropRow.ok": "True when this gradient matches (`kind == 'ok'`).",
    "tinygrad_edu.data.TensorDataset.__len__": "The number of samples (rows).",
    "tinygrad_edu.data.TensorDataset.__getitem__": "One sample (or several, for an index array): a tuple "
                                                   "of Tensors, one row of each array.",
    "tinygrad_edu.data.DataLoader.__len__": "The number of batches in one epoch.",
    "tinygrad_edu.data.DataLoader.__iter__": "The batches of one epoch, each a tuple of Tensors "
                                             "(a new order each time when `shuffle`).",
}

HEADER = """\
# API reference

Every public name of tinygrad_edu: its signature and the first paragraph of its docstring
(the docstrings are the source; `help(name)` shows the rest, with examples). **Do not edit this
file by hand**: it is written by `python docs/gen_api.py`, and `tests/test_docs.py` fails when
it is out of date. Where a page explains a name, the entry links to it.

Names are written as they are used after these imports:

```python
import numpy as np
import tinygrad_edu as tg
from tinygrad_edu import nn, optim
import tinygrad_edu.functional as F
```

Guides: [tutorial](tutorial.md) (from hand-derived backprop to autograd),
[initialisation](initialisation.md), [how the engine works](architecture.md).
"""


def _resolve(dotted: str):
    """Import `dotted` as a module, or as a class inside a module; None if it does not exist yet."""
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError as error:
        if not (dotted + ".").startswith((error.name or "") + "."):
            raise  # a module that exists but fails to import is a bug, not "not there yet"
    module_name, _, attribute = dotted.rpartition(".")
    module = _resolve(module_name) if module_name else None
    return getattr(module, attribute, None) if module is not None else None


def _public_names(module) -> list:
    """`__all__`, or else the functions and classes the module defines, in source order."""
    if module.__name__ in ONLY:
        return [name for name in ONLY[module.__name__] if hasattr(module, name)]
    names = getattr(module, "__all__", None)
    if names is not None:
        return [name for name in names if not isinstance(getattr(module, name, None), types.ModuleType)]
    found = [
        (name, obj) for name, obj in vars(module).items()
        if not name.startswith("_") and (inspect.isfunction(obj) or inspect.isclass(obj))
        and getattr(obj, "__module__", None) == module.__name__
    ]
    return [name for name, obj in sorted(found, key=lambda item: _source_line(item[1]))]


def _source_line(obj) -> int:
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return 0


def _first_paragraph(doc) -> str:
    """The docstring's first paragraph on one line, stopping before any example."""
    if not doc:
        return ""
    lines = []
    for line in inspect.cleandoc(doc).splitlines():
        if not line.strip() or line.lstrip().startswith(">>>"):
            break
        lines.append(line.strip())
    return " ".join(lines)


def _escape(text: str) -> str:
    """Backslash the `*` of formulas (``std**2``) outside code spans, so Markdown shows them."""
    parts = re.split(r"(`+[^`]*`+)", text)
    return "".join(part if part.startswith("`") else part.replace("*", r"\*") for part in parts)


def _annotation(annotation) -> str:
    if isinstance(annotation, str):
        return re.sub(r"'([\w.]+)'", r"\1", annotation)  # "'Tensor'" (a forward reference) -> Tensor
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _signature(obj, drop_self: bool, is_class: bool) -> str:
    """`(a, b=1) -> T` without parameter annotations (the docstrings give the types)."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return ""
    parameters = [
        p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()
        if not p.name.startswith("_")  # private keyword arguments (recursion helpers)
    ]
    if drop_self and parameters and parameters[0].name in ("self", "cls"):
        parameters = parameters[1:]
    text = str(signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty))
    if not is_class and signature.return_annotation is not inspect.Signature.empty:
        text += " -> " + _annotation(signature.return_annotation)
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)  # object reprs would change on every run


def _own_doc(owner, name: str, obj) -> str:
    """The member's docstring, else the one of the same member in a package base class."""
    target = obj.fget if isinstance(obj, property) else obj
    target = target.__func__ if isinstance(target, (classmethod, staticmethod)) else target
    doc = getattr(target, "__doc__", None) if callable(target) or isinstance(obj, property) else None
    if doc:
        return doc
    for base in owner.__mro__[1:]:
        if base.__module__.startswith("tinygrad_edu") and name in vars(base):
            return _own_doc(base, name, vars(base)[name])
    return ""


def _link(display: str):
    if display in LINKS:
        return LINKS[display]
    prefixes = [prefix for prefix in LINKS if prefix.endswith(".") or prefix.endswith("__")]
    for prefix in sorted(prefixes, key=len, reverse=True):
        if display.startswith(prefix):
            return LINKS[prefix]
    return None


def _public_bases(cls) -> list:
    """Direct bases, with private ones replaced by their own bases; `object` left out."""
    bases = []
    for base in cls.__bases__:
        if base is object:
            continue
        if base.__name__.startswith("_"):
            bases += _public_bases(base)
        else:
            bases.append(base)
    return bases


class _Writer:
    def __init__(self):
        self.lines: list = []
        self.names: dict = {}  # id(object) -> the first display name it was documented under
        self.missing: list = []
        self.fallbacks: list = []

    def summary(self, display: str, doc: str) -> str:
        text = _first_paragraph(doc)
        if not text and display in FALLBACK:
            self.fallbacks.append(display)
            text = FALLBACK[display]
        if not text:
            self.missing.append(display)
            text = "*(no docstring)*"
        page = _link(display)
        return _escape(text) + (f" See [{page}]({page})." if page else "")

    def entry(self, level: str, display: str, code: str, summary: str, note: str = "") -> None:
        self.lines += [f"{level} `{display}`", "", "```python", code, "```", ""]
        if note:
            self.lines += [note, ""]
        self.lines += [summary, ""]

    def base_names(self, cls) -> str:
        names = [self.names.get(id(base), base.__name__) for base in _public_bases(cls)]
        return ", ".join(f"`{name}`" for name in names)

    def document(self, display: str, obj, level: str = "###") -> None:
        if self.names.get(id(obj)) == display:
            return  # documented in a section of its own (tg.Tensor)
        if id(obj) in self.names:
            original = self.names[id(obj)]
            self.lines += [f"{level} `{display}`", "", f"An alias of `{original}`.", ""]
            return
        self.names[id(obj)] = display
        if inspect.isclass(obj):
            bases = self.base_names(obj)
            note = f"Subclass of {bases}." if bases else ""
            code = f"class {display}{_signature(obj, False, True)}"
            self.entry(level, display, code, self.summary(display, obj.__doc__), note)
            self.members(display, obj)
        elif callable(obj):
            self.entry(level, display, display + _signature(obj, False, False), self.summary(display, obj.__doc__))
        else:
            self.entry(level, display, f"{display} = {obj!r}", self.summary(display, ""))

    def members(self, display: str, cls, level: str = "####") -> None:
        dunders = TENSOR_DUNDERS if display == "tg.Tensor" else DUNDERS
        for name, member in vars(cls).items():
            if name.startswith("_") and name not in dunders:
                continue
            if self._overrides(cls, name):
                continue  # documented once, at the base class
            full = f"{display}.{name}"
            doc = _own_doc(cls, name, member)
            if isinstance(member, property):
                self.entry(level, full, f"{full}  # property", self.summary(full, doc))
            elif inspect.isfunction(member) or isinstance(member, (classmethod, staticmethod)):
                function = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                code = full + _signature(function, not isinstance(member, staticmethod), False)
                self.entry(level, full, code, self.summary(full, doc))
            elif type(member).__name__ == "member_descriptor":
                self.entry(level, full, f"{full}  # attribute", self.summary(full, doc))

    @staticmethod
    def _overrides(cls, name: str) -> bool:
        return any(
            name in vars(base) for base in cls.__mro__[1:] if base.__module__.startswith("tinygrad_edu")
        )


def generate() -> str:
    """The text of api.md for the package as it is now."""
    return _generate()[0]


def _generate():
    writer = _Writer()
    body = []
    contents = []
    for dotted, prefix, title, page in SECTIONS:
        target = _resolve(dotted)
        if target is None:
            continue
        writer.lines = []
        if inspect.isclass(target):
            writer.document(prefix, target)
            intro = "The array type. Its operations broadcast like NumPy and are recorded for `backward`."
        else:
            for name in _public_names(target):
                writer.document(f"{prefix}.{name}", getattr(target, name))
            intro = _first_paragraph(target.__doc__)
        if page:
            intro += f" Guide: [{page}]({page})."
        anchor = _anchor(title)
        contents.append(f"- [{title}](#{anchor})")
        body += [f"## {title}", "", intro, ""] + writer.lines
    text = "\n".join([HEADER, "## Contents", ""] + contents + [""] + body).rstrip("\n") + "\n"
    return text, writer


def _anchor(title: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", title.lower())
    return text.replace(" ", "-")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if api.md is out of date")
    args = parser.parse_args(argv)
    text, writer = _generate()
    if writer.missing:
        print("no docstring: " + ", ".join(writer.missing), file=sys.stderr)
    if writer.fallbacks:
        print("summary from gen_api.FALLBACK (no docstring): " + ", ".join(writer.fallbacks), file=sys.stderr)
    if args.check:
        current = API_MD.read_text(encoding="utf-8") if API_MD.exists() else ""
        if current != text:
            print(f"{API_MD} is out of date: run python docs/gen_api.py", file=sys.stderr)
            return 1
        return 0
    API_MD.write_text(text, encoding="utf-8")
    print(f"wrote {API_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # the package from this checkout, installed or not
    sys.exit(main())
