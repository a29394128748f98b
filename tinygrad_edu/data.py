"""Data for training: datasets, mini-batches, train/test splits, MATLAB .mat files, and digits.

Nothing here is differentiable: batches are constant Tensors that never require grad and keep
their arrays' dtype. Randomness follows `tg.manual_seed`. No file is ever unpickled.
"""
from __future__ import annotations

import math
import os
import struct
import zlib

import numpy as np

from .functional import _check_classes, _class_indices, one_hot_rows
from .random_generator import generator
from .tensor import Tensor, get_default_dtype

__all__ = ["TensorDataset", "DataLoader", "one_hot", "train_test_split", "load_mat", "load_digits"]


def _array_of(value, where: str) -> np.ndarray:
    """The ndarray behind an ndarray or a Tensor (no copy); anything else is refused."""
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, np.ndarray):
        return value
    raise TypeError(
        f"{where} must be a NumPy array or a Tensor, got {type(value).__name__}; "
        "convert it first, e.g. with np.asarray(...)"
    )


# ---- datasets and batches ---------------------------------------------------------------------
class TensorDataset:
    """Samples made of the rows (axis 0) of several arrays of the same length, as in PyTorch.

    Parameters
    ----------
    *tensors : ndarray or Tensor
        At least one; each keeps its dtype and is not copied (``.tensors`` gives them back).

    Examples
    --------
    >>> import numpy as np
    >>> ds = TensorDataset(np.zeros((5, 3)), np.arange(5))
    >>> len(ds)
    5
    >>> x, y = ds[1]
    >>> x.shape, y.item()
    ((3,), 1)
    >>> [t.shape for t in ds[np.array([0, 4])]]
    [(2, 3), (2,)]
    """

    def __init__(self, *tensors) -> None:
        if not tensors:
            raise ValueError("TensorDataset needs at least one array")
        arrays = [_array_of(t, f"TensorDataset argument {i}") for i, t in enumerate(tensors)]
        for i, array in enumerate(arrays):
            if array.ndim == 0:
                raise ValueError(f"TensorDataset argument {i} is 0-d: samples are taken along axis 0")
            if array.dtype.kind not in "biuf":
                raise TypeError(f"TensorDataset argument {i} holds {array.dtype}, not numbers or booleans")
        if len({len(a) for a in arrays}) > 1:
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise ValueError(f"TensorDataset needs arrays of one length along axis 0, got shapes {shapes}")
        self.tensors = tuple(tensors)

    def _arrays(self) -> list:
        # Read .data now, not at construction: a Tensor's data may be replaced after the fact.
        return [t.data if isinstance(t, Tensor) else t for t in self.tensors]

    def __len__(self) -> int:
        """The number of samples (the length of axis 0)."""
        return len(self._arrays()[0])

    def __getitem__(self, index) -> tuple:
        """One sample, or several for a slice or index array: a tuple of Tensors, one per array."""
        if isinstance(index, Tensor):
            index = index.data
        return tuple(Tensor(np.asarray(array[index])) for array in self._arrays())

    def __repr__(self) -> str:
        shapes = ", ".join(str(a.shape) for a in self._arrays())
        return f"TensorDataset({shapes})"


class DataLoader:
    """Iterate over a dataset in mini-batches, optionally in a new random order each epoch.

    Parameters
    ----------
    dataset : TensorDataset or any object with ``__len__`` and ``__getitem__``
        A TensorDataset is batched with one fancy index per array (no loop over samples).
        Any other dataset's samples (a tuple of arrays / Tensors / numbers, or one of those)
        are stacked field by field.
    batch_size : int
        Samples per batch (positive); the last batch is shorter unless ``drop_last``.
    shuffle : bool
        Draw a new permutation at every iteration (epoch) from the package's generator,
        so ``tg.manual_seed`` makes the epochs reproducible.
    drop_last : bool
        Leave out a last batch that would be shorter than ``batch_size``.

    Notes
    -----
    Each batch is a tuple of constant Tensors (never requiring grad), even for a single field.
    Batches keep the data's dtype: float64 arrays give float64 batches. Cast the arrays once,
    e.g. ``X.astype(np.float32)``, if the model is float32. Batches are copies, so changing
    one never changes the dataset.

    Examples
    --------
    >>> import numpy as np, tinygrad_edu as tg
    >>> loader = DataLoader(TensorDataset(np.ones((10, 2)), np.arange(10)), batch_size=4)
    >>> len(loader)
    3
    >>> [x.shape for x, y in loader]
    [(4, 2), (4, 2), (2, 2)]
    >>> _ = tg.manual_seed(0)
    >>> labels = [y.tolist() for _, y in DataLoader(loader.dataset, 5, shuffle=True)]
    >>> sorted(labels[0] + labels[1])
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
    """

    def __init__(self, dataset, batch_size: int = 1, shuffle: bool = False, drop_last: bool = False) -> None:
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader needs a dataset with __len__ and __getitem__, got {type(dataset).__name__}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)

    def __len__(self) -> int:
        """The number of batches in one epoch."""
        if self.drop_last:
            return len(self.dataset) // self.batch_size
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        """The batches of one epoch, each a tuple of Tensors (in a new order each time if `shuffle`)."""
        # The order is drawn here, not lazily in the generator, so that iter(loader) fixes the epoch.
        n = len(self.dataset)
        order = generator().permutation(n) if self.shuffle else np.arange(n)
        return self._batches(order)

    def _batches(self, order: np.ndarray):
        stop = len(self) * self.batch_size
        for start in range(0, min(stop, len(order)), self.batch_size):
            yield self._batch(order[start:start + self.batch_size])

    def _batch(self, indices: np.ndarray) -> tuple:
        if isinstance(self.dataset, TensorDataset):
            return tuple(Tensor(array[indices]) for array in self.dataset._arrays())
        return _collate([self.dataset[int(i)] for i in indices])

    def __repr__(self) -> str:
        return (
            f"DataLoader({len(self.dataset)} samples, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, drop_last={self.drop_last})"
        )


def _collate(samples: list) -> tuple:
    """Stack a list of samples field by field into a tuple of Tensors."""
    if isinstance(samples[0], (tuple, list)):
        lengths = {len(sample) for sample in samples}
        if len(lengths) > 1:
            raise ValueError(f"DataLoader: the samples have different numbers of fields: {sorted(lengths)}")
        fields = list(zip(*samples))
    else:
        fields = [samples]
    batch = []
    for k, field in enumerate(fields):
        items = [np.asarray(item.data if isinstance(item, Tensor) else item) for item in field]
        shapes = {item.shape for item in items}
        if len(shapes) > 1:
            raise ValueError(f"DataLoader: field {k} of the samples has different shapes {sorted(shapes)}")
        batch.append(Tensor(np.stack(items)))
    return tuple(batch)


# ---- labels and splits ------------------------------------------------------------------------
def one_hot(labels, num_classes: int | None = None, dtype=None) -> np.ndarray:
    """Rows of zeros with a 1 at each label, as a NumPy array of shape ``labels.shape + (C,)``.

    Parameters
    ----------
    labels : array_like of int
        Class indices in ``[0, C)``; floats holding whole numbers (e.g. from a .mat file) are accepted.
    num_classes : int, optional
        ``C``; by default ``max(labels) + 1``.
    dtype : dtype, optional
        Of the result; by default ``tg.get_default_dtype()`` (float32 unless changed).

    Returns
    -------
    ndarray
        For a Tensor, use ``tinygrad_edu.functional.one_hot``.

    Examples
    --------
    >>> one_hot([0, 2, 1])
    array([[1., 0., 0.],
           [0., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    >>> one_hot([[1], [0]], num_classes=2).shape
    (2, 1, 2)
    """
    labels = _class_indices(labels, "one_hot")
    if num_classes is None:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    elif isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 0:
        raise ValueError(f"one_hot: num_classes must be a non-negative int, got {num_classes!r}")
    _check_classes(labels, num_classes, "one_hot")
    return one_hot_rows(labels, num_classes, get_default_dtype() if dtype is None else dtype)


def train_test_split(*arrays, test_size: float | int = 0.25, seed: int | None = None, stratify=None) -> list:
    """Split arrays into random train and test parts, keeping their rows together (as scikit-learn).

    Parameters
    ----------
    *arrays : ndarray or Tensor
        Of one length along axis 0; each part has the type of its input (Tensors come back as
        new constant Tensors, arrays as new arrays).
    test_size : float or int
        A fraction in (0, 1) (the test part gets ``ceil(test_size * n)`` rows) or a row count.
        Both parts must end up non-empty.
    seed : int, optional
        Shuffle with ``np.random.default_rng(seed)``; by default with the package's generator,
        which ``tg.manual_seed`` seeds.
    stratify : array_like, optional
        One label per row (any values ``np.unique`` can sort). Each class is split in the same
        proportion as the whole, and each class with at least 2 rows gets at least one row in
        each part whenever the part sizes allow it.

    Returns
    -------
    list
        ``[a_train, a_test, b_train, b_test, ...]``.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = np.arange(20).reshape(10, 2), np.arange(10)
    >>> X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, seed=0)
    >>> X_train.shape, X_test.shape
    ((7, 2), (3, 2))
    >>> bool(np.all(X_test[:, 0] == 2 * y_test))
    True
    """
    if not arrays:
        raise ValueError("train_test_split needs at least one array")
    data = [_array_of(a, f"train_test_split argument {i}") for i, a in enumerate(arrays)]
    if any(d.ndim == 0 for d in data) or len({len(d) for d in data}) > 1:
        shapes = ", ".join(str(d.shape) for d in data)
        raise ValueError(f"train_test_split needs arrays of one length along axis 0, got shapes {shapes}")
    n = len(data[0])
    n_test = _test_count(test_size, n)
    rng = np.random.default_rng(seed) if seed is not None else generator()
    if stratify is None:
        order = rng.permutation(n)
        train, test = order[n_test:], order[:n_test]
    else:
        train, test = _stratified(_class_of_each_row(stratify, n), n_test, rng)
    parts = []
    for original, array in zip(arrays, data):
        for indices in (train, test):
            part = array[indices]
            parts.append(Tensor(part) if isinstance(original, Tensor) else part)
    return parts


def _test_count(test_size, n: int) -> int:
    if isinstance(test_size, bool) or not isinstance(test_size, (int, float, np.integer, np.floating)):
        raise ValueError(f"test_size must be a fraction in (0, 1) or a row count, got {test_size!r}")
    if isinstance(test_size, (float, np.floating)):
        if not 0.0 < test_size < 1.0:
            raise ValueError(f"test_size as a fraction must lie in (0, 1), got {test_size}")
        # round first: 0.7 * 10 is 7.000000000000001 in floating point, and ceil would give 8
        n_test = math.ceil(round(float(test_size) * n, 9))
    else:
        n_test = int(test_size)
    if not 1 <= n_test <= n - 1:
        raise ValueError(
            f"test_size={test_size!r} with {n} rows gives {n_test} test and {n - n_test} training rows; "
            "both parts need at least one"
        )
    return n_test


def _class_of_each_row(stratify, n: int) -> np.ndarray:
    labels = np.asarray(stratify.data if isinstance(stratify, Tensor) else stratify)
    if labels.shape != (n,):
        hint = " (a column of labels? pass labels.ravel())" if labels.shape == (n, 1) else ""
        raise ValueError(f"stratify needs one label per row, shape ({n},), got shape {labels.shape}{hint}")
    return np.unique(labels, return_inverse=True)[1].reshape(n)


def _stratified(classes: np.ndarray, n_test: int, rng: np.random.Generator) -> tuple:
    """Train and test row indices with each class split in proportion."""
    counts = np.bincount(classes)
    ideal = counts * n_test / len(classes)
    # Largest remainders: floors first, then one more row for the classes with the largest
    # fractional parts (ties broken at random, so no class is favoured by its label).
    take = np.floor(ideal).astype(np.int64)
    by_remainder = np.lexsort((rng.random(len(counts)), -(ideal - take)))
    take[by_remainder[: n_test - take.sum()]] += 1
    # Classes with 2+ rows keep one row on each side, if the part sizes allow it for all of them.
    low = np.where(counts >= 2, 1, 0)
    high = np.where(counts >= 2, counts - 1, counts)
    low = low if low.sum() <= n_test else np.zeros_like(counts)
    high = high if high.sum() >= n_test else counts
    take = np.clip(take, low, high)
    while take.sum() > n_test:
        room = np.where(take > low, take - ideal, -np.inf)
        take[np.argmax(room)] -= 1
    while take.sum() < n_test:
        room = np.where(take < high, ideal - take, -np.inf)
        take[np.argmax(room)] += 1
    train, test = [], []
    for label, count in enumerate(take):
        rows = rng.permutation(np.flatnonzero(classes == label))
        test.append(rows[:count])
        train.append(rows[count:])
    return rng.permutation(np.concatenate(train)), rng.permutation(np.concatenate(test))


# ---- files and bundled data -------------------------------------------------------------------
def load_mat(path, x_key: str = "X", y_key: str = "y", ten_is_zero: bool = False) -> tuple:
    """Read a features matrix and its labels from a MATLAB/Octave .mat file (v4 to v7), in a child
    process: a corrupted file that crashes SciPy's reader gives a ValueError, not a dead interpreter.

    MATLAB has no 1-D arrays, so labels arrive as an (m, 1) column. Comparing such a column
    with (m,) predictions broadcasts to an (m, m) matrix, which is the bug that kept the first
    learner's accuracy at 10%. Here the labels come back as a flat (m,) vector.

    Parameters
    ----------
    path : str or os.PathLike
        The file. It is read by ``scipy.io.loadmat`` (which never unpickles) in a separate
        Python process: SciPy's reader can crash the whole interpreter (a segmentation fault)
        on some corrupted files, and a .mat file from the internet is untrusted input.
    x_key, y_key : str
        Names of the features and labels variables in the file.
    ten_is_zero : bool
        Map label 10 to 0: the Coursera convention of ``ex4data1.mat`` (X: 5000 x 400, 20x20
        images; y in 1..10, where 10 stands for the digit 0, a relic of MATLAB's 1-based indexing).

    Returns
    -------
    X : ndarray of float64, shape (m, n)
    y : ndarray of int64, shape (m,)

    Raises
    ------
    FileNotFoundError
        No file at ``path``.
    ValueError
        Not a .mat file scipy can read (including files that crash or exhaust its reader),
        or X / y of the wrong shape or kind.
    KeyError
        A variable is missing; the message lists those in the file.

    Examples
    --------
    >>> import os, tempfile, numpy as np, scipy.io
    >>> path = os.path.join(tempfile.mkdtemp(), "digits.mat")
    >>> scipy.io.savemat(path, {"X": np.ones((3, 4)), "y": np.array([[10], [1], [2]])})
    >>> X, y = load_mat(path, ten_is_zero=True)
    >>> X.shape, y
    ((3, 4), array([0, 1, 2]))
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"no such .mat file: {path}")
    if not os.path.isfile(path):  # a FIFO would keep the reader waiting for a writer
        raise ValueError(f"not a MATLAB .mat file: {path} is not a regular file (a folder, FIFO or device)")
    return _load_mat_in_a_subprocess(path, x_key, y_key, ten_is_zero)


# The child process runs `_read_mat` and sends back two .npy arrays on stdout (no pickle), or
# one JSON line naming the error on stderr. Anything else (a signal, a hang) means a bad file.
_MAT_CHILD = "import sys; from tinygrad_edu.data import _mat_child; _mat_child(sys.argv[1:])"
_MAT_ERRORS = {error.__name__: error for error in (FileNotFoundError, PermissionError, IsADirectoryError,
                                                     KeyError, ValueError)}
_MAT_TIMEOUT_SECONDS = 600


def _load_mat_in_a_subprocess(path: str, x_key: str, y_key: str, ten_is_zero: bool) -> tuple:
    import io
    import json
    import signal
    import subprocess
    import sys

    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    search_path = [package_parent] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(search_path))  # the child imports this very copy
    command = [sys.executable, "-c", _MAT_CHILD, path, x_key, y_key, str(int(ten_is_zero))]
    try:
        child = subprocess.run(command, capture_output=True, env=env, stdin=subprocess.DEVNULL,
                               timeout=_MAT_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        raise ValueError(f"not a MATLAB .mat file: {path} (SciPy's reader did not finish "
                         f"in {_MAT_TIMEOUT_SECONDS} s)") from None
    if child.returncode == 0:
        answer = io.BytesIO(child.stdout)
        X = np.lib.format.read_array(answer, allow_pickle=False)
        return X, np.lib.format.read_array(answer, allow_pickle=False)
    try:
        kind, message = json.loads(child.stderr.decode("utf-8", "replace").strip().splitlines()[-1])
    except (ValueError, IndexError):
        if child.returncode < 0:
            reason = f"SciPy's reader crashed with {signal.Signals(-child.returncode).name}"
        else:
            reason = child.stderr.decode("utf-8", "replace").strip()[-300:]
            reason = reason or f"exit status {child.returncode}"
        raise ValueError(f"not a MATLAB .mat file: {path} ({reason}; the file is probably corrupted)") \
            from None
    if kind in _MAT_ERRORS:
        raise _MAT_ERRORS[kind](message)
    raise ValueError(f"not a MATLAB .mat file: {path} ({kind}: {message})")


def _mat_child(argv: list) -> None:
    """The subprocess's side of `load_mat`: read, check, and answer on stdout / stderr."""
    import json
    import sys

    path, x_key, y_key, ten_is_zero = argv
    try:
        X, y = _read_mat(path, x_key, y_key, ten_is_zero == "1")
    except BaseException as error:  # MemoryError too: the parent turns it into a ValueError
        message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
        print(json.dumps([type(error).__name__, message]), file=sys.stderr)
        sys.exit(1)
    np.lib.format.write_array(sys.stdout.buffer, X, allow_pickle=False)
    np.lib.format.write_array(sys.stdout.buffer, y, allow_pickle=False)


def _read_mat(path: str, x_key: str, y_key: str, ten_is_zero: bool) -> tuple:
    """`load_mat`'s work, in whatever process runs it."""
    import scipy.io  # here, not at the top: it costs import time and only this function needs it
    import scipy.sparse
    from scipy.io.matlab import MatReadError

    try:
        contents = scipy.io.loadmat(path, appendmat=False)
    except (PermissionError, IsADirectoryError):
        raise
    except NotImplementedError:
        raise ValueError(
            f"{path} is a MATLAB v7.3 (HDF5) .mat file, which scipy.io.loadmat cannot read: "
            "save it again with save(..., '-v7') or read it with h5py"
        ) from None
    except (ValueError, TypeError, IndexError, KeyError, OverflowError, EOFError, OSError,
            MatReadError, struct.error, zlib.error) as error:
        # Truncated or foreign files fail in many ways inside scipy; all mean the same thing.
        raise ValueError(f"not a MATLAB .mat file: {path} ({type(error).__name__}: {error})") from None

    variables = sorted(name for name in contents if not name.startswith("__"))
    for key in (x_key, y_key):
        if key not in contents:
            raise KeyError(f"{path} has no variable {key!r}; its variables are {variables}")
    X, y = (contents[key] for key in (x_key, y_key))
    X, y = (v.toarray() if scipy.sparse.issparse(v) else np.asarray(v) for v in (X, y))

    if X.dtype.kind not in "biuf" or X.ndim != 2:
        raise ValueError(f"{x_key!r} in {path} must be a 2-D numeric matrix, got {X.dtype} of shape {X.shape}")
    if y.dtype.kind not in "biuf" or (y.ndim == 2 and 1 not in y.shape) or y.ndim > 2:
        raise ValueError(
            f"{y_key!r} in {path} must be a numeric vector, (m,), (m, 1) or (1, m), got {y.dtype} of shape {y.shape}"
        )
    labels = _class_indices(y.reshape(-1), f"load_mat {y_key!r}").astype(np.int64, copy=False)
    if len(labels) != len(X):
        hint = f" (is {x_key!r} transposed? its columns match)" if X.shape[1] == len(labels) else ""
        raise ValueError(
            f"{x_key!r} has {len(X)} rows (shape {X.shape}) but {y_key!r} has {len(labels)} labels "
            f"(shape {y.shape}){hint}"
        )
    if ten_is_zero:
        if np.any(labels == 0) and np.any(labels == 10):
            raise ValueError(f"ten_is_zero=True, but {y_key!r} holds both 0 and 10: mapping 10 to 0 would merge them")
        labels = np.where(labels == 10, 0, labels)
    return X.astype(np.float64), labels


def load_digits() -> tuple:
    """scikit-learn's bundled 8x8 handwritten digits: 1797 images, no download.

    Needs scikit-learn (the ``examples`` extra).

    Returns
    -------
    X : ndarray of float64, shape (1797, 64)
        Pixel intensities scaled from 0..16 to [0, 1]; reshape a row to (8, 8) to see it.
    y : ndarray of int64, shape (1797,)
        The digits 0..9.

    Examples
    --------
    >>> X, y = load_digits()
    >>> X.shape, y.shape, float(X.max()), sorted(set(y.tolist())) == list(range(10))
    ((1797, 64), (1797,), 1.0, True)
    """
    try:
        from sklearn.datasets import load_digits as sklearn_load_digits
    except ImportError as error:
        raise ImportError(
            "load_digits needs scikit-learn: pip install tinygrad_edu[examples] (or pip install scikit-learn)"
        ) from error
    X, y = sklearn_load_digits(return_X_y=True)
    return X.astype(np.float64) / 16.0, y.astype(np.int64)
