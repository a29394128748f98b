"""Write docs/api.md, the API reference, from the package's signatures and docstrings.

Run ``python docs/gen_api.py`` after changing a public name or a docstring; ``--check`` only
compares (exit status 1 if api.md is out of date). tests/test_docs.py fails while api.md
differs from what this script produces, so the reference cannot drift from the code.
A public name without a docstring fails both (exit status 1); a slot attribute, which cannot
carry one, is described in its class docstring's "Attributes" section instead.
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
    ("tinygrad_edu.nn.utils", "nn.utils", "`tinygrad_edu.nn.utils`", None),
    ("tinygrad_edu.optim", "optim", "`tinygrad_edu.optim`", None),
    ("tinygrad_edu.data", "tinygrad_edu.data", "`tinygrad_edu.data`", None),
    ("tinygrad_edu.viz", "tinygrad_edu.viz", "`tinygrad_edu.viz`", "viz.md"),
    ("tinygrad_edu.diagnostics", "tinygrad_edu.diagnostics", "`tinygrad_edu.diagnostics`",
     "diagnostics.md"),
    ("tinygrad_edu.gradcheck", "tinygrad_edu.gradcheck", "`tinygrad_edu.gradcheck`",
     "design_decisions.md"),
    ("tinygrad_edu.backprop_check", "tinygrad_edu.backprop_check", "`tinygrad_edu.backprop_check`",
     "check_backprop.md"),
]

# Modules that document only some of their public names (the rest are re-exported by `tg`).
ONLY = {"tinygrad_edu.gradcheck": ["numeric_grad"], "tinygrad_edu.backprop_check": ["BackpropRow"]}

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
    "tinygrad_edu.backprop_check.": "check_backprop.md",
}

# What an entry without a docstring says; `main` then fails, and so does tests/test_docs.py.
NO_DOCSTRING = "*(no docstring)*"

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


def _attributes(doc) -> dict:
    """The NumPy-style "Attributes" section of a class docstring: name -> (type, description).

    Entries are ``name : type`` lines at the section's indentation, each followed by its
    more-indented description; the section ends at the next underlined heading.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    found, inside, name = {}, False, None
    for line, below in zip(lines, lines[1:] + [""]):
        if below.strip() and set(below.strip()) == {"-"}:  # a heading: its underline is below it
            inside, name = line.strip() == "Attributes", None
        elif not inside or (line.strip() and set(line.strip()) == {"-"}):
            continue
        elif line and not line[0].isspace():
            name, _, kind = line.partition(":")
            name = name.strip()
            found[name] = (kind.strip(), [])
        elif name is not None:
            found[name][1].append(line.strip())
    return {key: (kind, "\n".join(text).strip()) for key, (kind, text) in found.items()}


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

    def summary(self, display: str, doc: str) -> str:
        text = _first_paragraph(doc)
        if text:
            text = _escape(text)
        else:
            self.missing.append(display)
            text = NO_DOCSTRING  # not escaped: tests/test_docs.py looks for this exact marker
        page = _link(display)
        return text + (f" See [{page}]({page})." if page else "")

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
            settable = isinstance(member, property) and member.fset is not None
            if settable and name in _attributes(cls.__doc__):
                member = None  # a property that reads and writes like an attribute: documented as one
            if isinstance(member, property):
                self.entry(level, full, f"{full}  # property", self.summary(full, doc))
            elif inspect.isfunction(member) or isinstance(member, (classmethod, staticmethod)):
                function = member.__func__ if isinstance(member, (classmethod, staticmethod)) else member
                code = full + _signature(function, not isinstance(member, staticmethod), False)
                self.entry(level, full, code, self.summary(full, doc))
            elif member is None or type(member).__name__ == "member_descriptor":
                # A slot cannot carry a docstring: its description is in the class's Attributes section.
                kind, doc = _attributes(cls.__doc__).get(name, ("", ""))
                code = f"{full}  # attribute" + (f": {kind}" if kind else "")
                self.entry(level, full, code, self.summary(full, doc))

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
    status = 0
    if args.check:
        current = API_MD.read_text(encoding="utf-8") if API_MD.exists() else ""
        if current != text:
            print(f"{API_MD} is out of date: run python docs/gen_api.py", file=sys.stderr)
            status = 1
    else:
        API_MD.write_text(text, encoding="utf-8")
        print(f"wrote {API_MD.relative_to(ROOT)}")
    if writer.missing:
        # Written anyway, so the "*(no docstring)*" entries show where; the exit status still fails.
        print(f"error: {len(writer.missing)} public name(s) have no docstring (a slot attribute needs an "
              "entry in its class's Attributes section): " + ", ".join(writer.missing), file=sys.stderr)
        status = 1
    return status


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # the package from this checkout, installed or not
    sys.exit(main())
