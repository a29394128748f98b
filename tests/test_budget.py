"""Keeps the engine readable in one sitting: a line budget for autograd.py and the op conventions
(one-line math docstring with the local gradient rule, forward and backward side by side)."""
import ast
import inspect
import io
import pathlib
import tokenize

import tinygrad_edu
from tinygrad_edu import ops
from tinygrad_edu.autograd import Function

PACKAGE = pathlib.Path(tinygrad_edu.__file__).parent
# The style guide's 250, plus room for this round's PyTorch-style version counter (in-place writes,
# views sharing their base's version), which a learner needs to trust a second backward. At 260 the
# engine still reads in one sitting; a new feature has to make room before it raises this again.
# 262: the lock that lets backwards in several threads add into one leaf's .grad without losing
# a sum (PyTorch's guarantee), after one line was made room for.
# 264: tg.grad refusing fewer grad_outputs than outputs (zip had silently dropped the last outputs:
# a wrong gradient, not a feature).
# 266: leaves wait in a list until every node has run, instead of in the nodes' priority queue behind
# a (1, id) key (W3's step 0.973x in one process; docs/performance.md); the walk says what it does.
# 268: unbroadcast sums a gradient with one leading axis added (every bias of a batch) at once, without
# the general search; W3 0.96x. The alternative, ops summing their own bias, is what STYLE.md forbids.
ENGINE_LINE_BUDGET = 268


def code_lines(path: pathlib.Path) -> int:
    """Lines holding code: not blank, not only a comment, not part of a docstring."""
    source = path.read_text()
    docstring_lines = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr):
            if isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                docstring_lines.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = set()
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                              tokenize.DEDENT, tokenize.ENDMARKER):
            lines.update(range(token.start[0], token.end[0] + 1))
    return len(lines - docstring_lines)


def test_engine_fits_its_line_budget():
    used = code_lines(PACKAGE / "autograd.py")
    assert used <= ENGINE_LINE_BUDGET, f"autograd.py has {used} code lines, budget {ENGINE_LINE_BUDGET}"


def test_code_line_counter_ignores_docstrings_and_comments(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""doc\nstring"""\n# comment\n\ndef f():\n    """doc"""\n    return 1  # why\n')
    assert code_lines(sample) == 2


def primitives():
    return [
        cls for _, cls in inspect.getmembers(ops, inspect.isclass)
        if issubclass(cls, Function) and cls is not Function and cls.__module__ == ops.__name__
    ]


def test_every_primitive_states_its_gradient_rule_in_one_line():
    for cls in primitives():
        doc = cls.__doc__ or ""
        first_line = doc.strip().splitlines()[0] if doc.strip() else ""
        assert first_line.startswith("z = ") and ";" in first_line and "d" in first_line.split(";")[1], (
            f"{cls.__name__} needs a docstring like 'z = x * y;  dz/dx = y,  dz/dy = x'"
        )


def test_every_primitive_defines_forward_and_backward_itself():
    for cls in primitives():
        assert "forward" in vars(cls) and "backward" in vars(cls), cls.__name__


def test_primitive_count_stays_small():
    # About 30 elementary operations (arithmetic, elementwise, reductions, shape, products,
    # sin/cos, prod and cumsum, whose gradients a composite would get wrong or lose at zeros),
    # the fused losses (a composite would be slow, or, for clamped BCE, nan at p = 0 or 1),
    # Linear (its weight gradient in the weight's own layout: see its docstring), and the
    # windows/col2im pair, convolution and max-pooling of a CNN (a composite over kh*kw window
    # offsets would be a node per offset). 48 leaves room for a few more while keeping the list
    # readable in one sitting: a new primitive has to earn its place (style guide: compose in
    # functional.py unless a composite would be wrong or unstable).
    assert len(primitives()) <= 48, [cls.__name__ for cls in primitives()]
