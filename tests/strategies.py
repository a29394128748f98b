"""Hypothesis strategies for the op table: shapes, axes, matmul pairs, indices, arrays.

Everything stays tiny (at most 3 dims, at most 4 per side) so that the table tests run in
seconds, but the corners are drawn on purpose: 0-d arrays, size-1 and size-0 sides, negative
axes and permutations, exact zeros where an op has a special point, and large magnitudes
where an op can overflow. Nothing here imports tinygrad_edu: these are NumPy inputs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

MAX_DIMS = 3
MAX_SIDE = 4
GAP = 0.05  # how far values stay from an avoided point (a kink, a clip bound)


# ---------------------------------------------------------------- shapes and axes


def shapes(min_dims=0, max_dims=MAX_DIMS, min_side=None, max_side=MAX_SIDE):
    """One small shape; 0-d (``()``) is drawn unless ``min_dims`` > 0.

    By default about half the draws may hold size-0 sides (MyGrad draws ``min_side=0`` too:
    an empty axis is where reductions and shape logic break); ``min_side=1`` rules them out.
    """
    if min_side is None:
        return st.one_of(shapes(min_dims, max_dims, 1, max_side), shapes(min_dims, max_dims, 0, max_side))
    return hnp.array_shapes(
        min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    )


def broadcastable_shapes(num_shapes, min_dims=0, max_dims=MAX_DIMS, max_side=MAX_SIDE, min_side=None):
    """A tuple of ``num_shapes`` shapes that broadcast together, as in NumPy (size-0 sides
    in about half the draws unless ``min_side=1``)."""
    if min_side is None:
        return st.one_of(
            broadcastable_shapes(num_shapes, min_dims, max_dims, max_side, 1),
            broadcastable_shapes(num_shapes, min_dims, max_dims, max_side, 0),
        )
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, min_side=min_side, max_side=max_side
    ).map(lambda drawn: drawn.input_shapes)


def signed(axis, ndim):
    """``axis`` (non-negative) written positive or negative at random."""
    return st.sampled_from([axis, axis - ndim])


@st.composite
def permutations(draw, ndim):
    """A permutation of ``range(ndim)``, each entry written positive or negative at random."""
    order = draw(st.permutations(range(ndim)))
    return tuple(draw(signed(a, ndim)) for a in order)


def axes(ndim, none=True, tuples=True):
    """A valid ``axis`` for an ``ndim``-d array: None, an int (maybe negative) or a tuple.

    Tuples hold distinct axes, each written positive or negative at random. For a 0-d
    array: None, or the ints 0 and -1, which NumPy's sum/prod/max/min accept there (reducing
    nothing) and its mean/var/std refuse; the op must do the same as NumPy.
    """
    if ndim == 0:
        return st.sampled_from([None, 0, -1]) if none else st.sampled_from([0, -1])
    options = [st.integers(-ndim, ndim - 1)]
    if none:
        options.append(st.none())
    if tuples:
        distinct = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)
        options.append(
            distinct.flatmap(lambda picked: st.tuples(*[signed(a, ndim) for a in picked]))
        )
    return st.one_of(options)


@st.composite
def matmul_shapes(draw):
    """Operand shapes for ``np.matmul``: 1-D/2-D mixes and batched N-D with broadcasting."""
    kind = draw(st.sampled_from(["1d@1d", "1d@2d", "2d@1d", "2d@2d", "batched"]))
    side = st.integers(1, 3 if kind == "batched" else MAX_SIDE)
    m, n, p = draw(side), draw(side), draw(side)
    if kind == "1d@1d":
        return (n,), (n,)
    if kind == "1d@2d":
        return (n,), (n, p)
    if kind == "2d@1d":
        return (m, n), (n,)
    if kind == "2d@2d":
        return (m, n), (n, p)
    batch_left, batch_right = draw(broadcastable_shapes(2, max_dims=2, max_side=3))
    left, right = batch_left + (m, n), batch_right + (n, p)
    vector_side = draw(st.sampled_from([None, "left", "right"]))
    if vector_side == "left":  # (n,) @ (..., n, p): a vector against a stack
        left = (n,)
    elif vector_side == "right":
        right = (n,)
    return left, right


# ---------------------------------------------------------------- indices


def basic_index(shape):
    """Ints (negative too), slices with steps, None and Ellipsis, as NumPy allows."""
    return hnp.basic_indices(shape, allow_newaxis=True, allow_ellipsis=True)


@st.composite
def integer_index(draw, shape):
    """Integer-array index for ``shape`` (ndim >= 1), with repeated entries.

    One array, or several broadcasting arrays on consecutive axes, after a run of
    full slices; values may be negative. The first array repeats an entry whenever
    it has two or more, so the backward pass must add gradients up.
    """
    ndim = len(shape)
    count = draw(st.integers(1, ndim))
    start = draw(st.integers(0, ndim - count))
    if count == 1:  # two or more entries, so the forced repeat below always happens
        index_shapes = [draw(shapes(min_dims=1, max_dims=2, min_side=2, max_side=3))]
    else:
        index_shapes = draw(broadcastable_shapes(count, min_dims=1, max_dims=2, max_side=3, min_side=1))
    arrays = []
    for axis, index_shape in zip(range(start, start + count), index_shapes):
        side = shape[axis]
        values = draw(hnp.arrays(np.intp, index_shape, elements=st.integers(-side, side - 1)))
        arrays.append(values)
    if arrays[0].size >= 2:
        arrays[0].flat[-1] = arrays[0].flat[0]  # at least one repeated index
    if count == 1 and start == 0 and draw(st.booleans()):
        return arrays[0]
    return (slice(None),) * start + tuple(arrays)


@st.composite
def bool_mask(draw, shape):
    """Boolean mask over the leading ``k`` axes of ``shape`` (k >= 1)."""
    k = draw(st.integers(1, len(shape)))
    return draw(hnp.arrays(np.bool_, shape[:k]))


def any_index(shape):
    """Basic, integer-array or mask index for ``shape`` (ndim >= 1)."""
    return st.one_of(basic_index(shape), integer_index(shape), bool_mask(shape))


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class Domain:
    """Where an input's values live.

    kind: "float" (becomes a Tensor; differentiated), "const" (a float ndarray given
    as is, never differentiated) or "bool" (a boolean ndarray, e.g. a condition).
    avoid: points kept at least GAP away (kinks, clip bounds).
    zeros: about a third of the elements are exactly 0 (an op's special point: x**0,
    0**y, sqrt, log, abs, a product with one or two zeros), even when 0 is avoided.
    distinct: every element at least ~(hi - lo) / (2 * size) from every other (no ties).
    grid: values are exactly ``integer + grid``; two inputs on grids 0.0 and 0.5 never
    tie, and two on the same grid tie often (for ``==``).
    """

    lo: float = -3.0
    hi: float = 3.0
    avoid: tuple = ()
    distinct: bool = False
    grid: float | None = None
    kind: str = "float"
    zeros: bool = False


def _intervals(domain):
    """The parts of [lo, hi] at least GAP away from every avoided point."""
    edges = [domain.lo] + [x for p in sorted(domain.avoid) for x in (p - GAP, p + GAP)]
    edges.append(domain.hi)
    pairs = zip(edges[::2], edges[1::2])
    return [(a, b) for a, b in pairs if a < b]


@st.composite
def _distinct_values(draw, domain, shape):
    size = math.prod(shape)
    order = np.array(draw(st.permutations(range(size))), dtype=np.float64)
    jitter = draw(hnp.arrays(np.float64, size, elements=st.floats(0.0, 0.5)))
    step = (domain.hi - domain.lo) / max(size, 1)
    return (domain.lo + (order + jitter) * step).reshape(shape)


def arrays(domain, shape, dtype=np.float64):
    """An ndarray of ``shape`` with values in ``domain`` (float64 or float32)."""
    if domain.kind == "bool":
        return hnp.arrays(np.bool_, shape)
    if domain.grid is not None:
        lo, hi = math.ceil(domain.lo - domain.grid), math.floor(domain.hi - domain.grid)
        ints = hnp.arrays(np.int64, shape, elements=st.integers(lo, hi))
        return ints.map(lambda a: (a + domain.grid).astype(dtype))
    if domain.distinct:
        return _distinct_values(domain, shape).map(lambda a: a.astype(dtype))
    elements = st.one_of([st.floats(a, b) for a, b in _intervals(domain)] + [st.just(0.0)] * domain.zeros)
    # Drawn in float64 and cast, so bounds need not be exact float32 numbers.
    return hnp.arrays(np.float64, shape, elements=elements).map(lambda a: a.astype(dtype))
