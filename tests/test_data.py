"""tinygrad_edu.data: datasets and batches, one_hot, train/test splits, .mat files and digits.

The .mat files are written here with scipy.io.savemat, in the layout of the first learner's
ex4data1.mat (X: m x 400 images, y: an (m, 1) column of labels 1..10, 10 meaning the digit 0).
"""
import sys

import numpy as np
import pytest
import scipy.io
from hypothesis import given
from hypothesis import strategies as st

import tinygrad_edu as tg
import tinygrad_edu.functional as F
from tinygrad_edu.data import (
    DataLoader, TensorDataset, load_digits, load_mat, one_hot, train_test_split,
)


def labels_seen(loader):
    """Every label of one epoch, in the order the batches gave them."""
    return np.concatenate([batch[-1].numpy() for batch in loader])


# ---- TensorDataset ----------------------------------------------------------------------------
def test_tensor_dataset_rows_and_indexing():
    X = np.arange(12.0).reshape(6, 2)
    y = tg.Tensor(np.arange(6))
    ds = TensorDataset(X, y)
    assert len(ds) == 6
    assert ds.tensors[0] is X and ds.tensors[1] is y  # kept as given, not copied
    x1, y1 = ds[1]
    assert isinstance(x1, tg.Tensor) and x1.tolist() == [2.0, 3.0] and y1.item() == 1
    assert [t.shape for t in ds[1:4]] == [(3, 2), (3,)]
    picked = ds[np.array([5, 0])]
    assert picked[0].tolist() == [[10.0, 11.0], [0.0, 1.0]] and picked[1].tolist() == [5, 0]
    assert ds[tg.Tensor(np.array([2]))][1].tolist() == [2]


def test_tensor_dataset_refuses_bad_arrays():
    with pytest.raises(ValueError, match=r"\(5, 3\).*\(4,\).*\(5,\)"):
        TensorDataset(np.zeros((5, 3)), np.zeros(4), np.zeros(5))
    with pytest.raises(ValueError, match="at least one"):
        TensorDataset()
    with pytest.raises(TypeError, match="list"):
        TensorDataset([1, 2, 3])
    with pytest.raises(ValueError, match="0-d"):
        TensorDataset(np.array(3.0))


# ---- DataLoader -------------------------------------------------------------------------------
@pytest.mark.parametrize("n, batch_size", [(10, 3), (9, 3), (2, 5), (7, 1), (0, 4)])
@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_counts_and_sizes(n, batch_size, drop_last):
    loader = DataLoader(TensorDataset(np.zeros((n, 2)), np.arange(n)), batch_size, drop_last=drop_last)
    sizes = [len(x) for x, _ in loader]
    full, rest = divmod(n, batch_size)
    expected = [batch_size] * full + ([rest] if rest and not drop_last else [])
    assert sizes == expected
    assert len(loader) == len(expected)


def test_without_shuffle_batches_follow_the_data_in_order():
    X = np.arange(20.0).reshape(10, 2)
    batches = list(DataLoader(TensorDataset(X, np.arange(10)), batch_size=4))
    np.testing.assert_array_equal(np.concatenate([x.numpy() for x, _ in batches]), X)
    assert all(isinstance(b, tuple) and len(b) == 2 for b in batches)


def test_shuffle_sees_every_sample_once_per_epoch_in_a_new_order():
    tg.manual_seed(0)
    X = np.arange(50.0)[:, None] * np.ones((1, 3))
    loader = DataLoader(TensorDataset(X, np.arange(50)), batch_size=8, shuffle=True)
    epochs = []
    for _ in range(2):
        xs, ys = zip(*loader)
        x, y = np.concatenate([t.numpy() for t in xs]), np.concatenate([t.numpy() for t in ys])
        assert sorted(y.tolist()) == list(range(50))
        np.testing.assert_array_equal(x[:, 0], y)  # rows stay with their labels
        epochs.append(y)
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[0], np.arange(50))


def test_manual_seed_makes_shuffled_epochs_reproducible():
    loader = DataLoader(TensorDataset(np.arange(30)), batch_size=7, shuffle=True)
    tg.manual_seed(123)
    first = [labels_seen(loader) for _ in range(3)]
    tg.manual_seed(123)
    again = [labels_seen(loader) for _ in range(3)]
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)


def test_batches_keep_dtype_never_require_grad_and_are_copies():
    X = np.random.default_rng(0).standard_normal((6, 2))  # float64 stays float64
    labels = np.arange(6, dtype=np.int32)
    mask = np.array([True, False] * 3)
    weights = tg.Tensor(np.ones((6, 1), dtype=np.float32), requires_grad=True)
    for shuffle in (False, True):
        for x, y, m, w in DataLoader(TensorDataset(X, labels, mask, weights), batch_size=4, shuffle=shuffle):
            assert (x.dtype, y.dtype, m.dtype, w.dtype) == (np.float64, np.int32, np.bool_, np.float32)
            assert not any(t.requires_grad for t in (x, y, m, w))
            x.data[...] = 99.0
    assert not np.any(X == 99.0)


def test_tensor_datasets_are_batched_without_a_per_sample_loop(monkeypatch):
    def no_single_samples(self, index):
        raise AssertionError("DataLoader fetched samples one by one")

    monkeypatch.setattr(TensorDataset, "__getitem__", no_single_samples)
    loader = DataLoader(TensorDataset(np.zeros((9, 2)), np.arange(9)), batch_size=4, shuffle=True)
    assert sorted(labels_seen(loader).tolist()) == list(range(9))


class SquaresDataset:
    """Any object with __len__ and __getitem__: samples are (features, label) pairs."""

    def __len__(self):
        return 7

    def __getitem__(self, i):
        return np.array([i, i * i], dtype=np.float32), i


def test_other_datasets_have_their_samples_stacked():
    batches = list(DataLoader(SquaresDataset(), batch_size=3))
    assert [x.shape for x, _ in batches] == [(3, 2), (3, 2), (1, 2)]
    x, y = batches[1]
    assert x.dtype == np.float32 and x.tolist() == [[3, 9], [4, 16], [5, 25]]
    assert y.dtype == np.int64 and y.tolist() == [3, 4, 5]
    tg.manual_seed(1)
    assert sorted(labels_seen(DataLoader(SquaresDataset(), 2, shuffle=True)).tolist()) == list(range(7))


def test_single_field_samples_give_one_element_tuples():
    (batch,) = DataLoader([np.ones(2), np.zeros(2)], batch_size=2)
    assert isinstance(batch, tuple) and len(batch) == 1 and batch[0].tolist() == [[1, 1], [0, 0]]


def test_samples_of_different_shapes_are_named():
    with pytest.raises(ValueError, match=r"\(2,\).*\(3,\)"):
        list(DataLoader([np.ones(2), np.ones(3)], batch_size=2))


@pytest.mark.parametrize("batch_size", [0, -2, 2.5, True, "4", None])
def test_batch_size_must_be_a_positive_int(batch_size):
    with pytest.raises(ValueError, match="batch_size"):
        DataLoader(TensorDataset(np.zeros(4)), batch_size=batch_size)


def test_dataset_needs_len_and_getitem():
    with pytest.raises(TypeError, match="__len__"):
        DataLoader(iter(range(3)), batch_size=2)


# ---- one_hot ----------------------------------------------------------------------------------
def test_one_hot_values_shape_and_dtype():
    out = one_hot(np.array([2, 0, 1, 2]))
    assert isinstance(out, np.ndarray) and out.dtype == tg.get_default_dtype()
    np.testing.assert_array_equal(out, np.eye(3)[[2, 0, 1, 2]])
    assert one_hot([1, 0], num_classes=5).shape == (2, 5)
    assert one_hot(np.array([[0, 1], [2, 3]])).shape == (2, 2, 4)
    assert one_hot(np.array([0, 1]), dtype=np.int64).dtype == np.int64
    tg.set_default_dtype(np.float64)
    assert one_hot([0]).dtype == np.float64


def test_one_hot_accepts_tensors_and_whole_floats_like_functional():
    labels = np.array([3.0, 1.0, 0.0])  # labels loaded from MATLAB are doubles
    np.testing.assert_array_equal(one_hot(labels, 4), F.one_hot(labels, 4).numpy())
    np.testing.assert_array_equal(one_hot(tg.Tensor(np.array([1, 2]))), [[0, 1, 0], [0, 0, 1]])


@pytest.mark.parametrize(
    "labels, num_classes, message",
    [
        ([0, -1, 2, -3], None, r"-3, -1"),
        ([0, 5, 12], 10, r"\[0, 10\).*12"),
        ([0.5, 1.0, 2.25], None, r"0\.5, 2\.25"),
        ([0.0, np.nan], None, "nan"),
        (["a", "b"], None, "integers"),
        ([0, 1], -1, "num_classes"),
    ],
)
def test_one_hot_names_bad_labels(labels, num_classes, message):
    with pytest.raises(ValueError, match=message):
        one_hot(np.array(labels), num_classes)


# ---- train_test_split -------------------------------------------------------------------------
def rows_of(part):
    return [tuple(np.atleast_1d(row).tolist()) for row in np.asarray(part)]


@pytest.mark.parametrize("test_size, n_test", [(0.25, 3), (0.3, 3), (0.7, 7), (0.05, 1), (4, 4), (9, 9)])
def test_split_sizes(test_size, n_test):
    X_train, X_test = train_test_split(np.arange(10), test_size=test_size, seed=0)
    assert (len(X_train), len(X_test)) == (10 - n_test, n_test)


def test_split_is_disjoint_complete_and_keeps_rows_together():
    X = np.arange(40).reshape(20, 2)
    y = np.arange(20) * 10
    ids = tg.Tensor(np.arange(20, dtype=np.int32))
    X_train, X_test, y_train, y_test, id_train, id_test = train_test_split(X, y, ids, seed=3)
    assert isinstance(X_train, np.ndarray) and isinstance(id_test, tg.Tensor)
    assert id_test.dtype == np.int32 and not id_test.requires_grad
    all_ids = id_train.tolist() + id_test.tolist()
    assert sorted(all_ids) == list(range(20)) and len(id_test) == 5
    for Xs, ys, idx in ((X_train, y_train, id_train), (X_test, y_test, id_test)):
        np.testing.assert_array_equal(Xs, X[idx.numpy()])
        np.testing.assert_array_equal(ys, y[idx.numpy()])
    assert all_ids != list(range(20))  # shuffled


def test_split_seed_reproducible_and_default_follows_manual_seed():
    X = np.arange(100)
    same = [train_test_split(X, seed=7)[1] for _ in range(2)]
    np.testing.assert_array_equal(*same)
    assert not np.array_equal(same[0], train_test_split(X, seed=8)[1])
    tg.manual_seed(5)
    first = train_test_split(X)[1]
    tg.manual_seed(5)
    np.testing.assert_array_equal(first, train_test_split(X)[1])


def test_stratify_keeps_class_proportions():
    y = np.repeat([0, 1, 2], [60, 30, 10])
    X = np.arange(100)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, seed=0, stratify=y)
    assert np.bincount(y_test).tolist() == [12, 6, 2]
    assert np.bincount(y_train).tolist() == [48, 24, 8]
    np.testing.assert_array_equal(y[X_test], y_test)


def test_stratify_gives_small_classes_a_row_on_each_side():
    y = np.array(["big"] * 40 + ["pair"] * 2 + ["trio"] * 3)
    _, y_test = train_test_split(y, test_size=0.1, seed=0, stratify=y)
    assert sorted(set(y_test.tolist())) == ["big", "pair", "trio"]
    y_train, _ = train_test_split(y, test_size=0.9, seed=0, stratify=y)
    assert sorted(set(y_train.tolist())) == ["big", "pair", "trio"]


@given(
    labels=st.lists(st.integers(0, 4), min_size=2, max_size=60),
    fraction=st.floats(0.05, 0.95),
    seed=st.integers(0, 2**16),
)
def test_stratified_split_properties(labels, fraction, seed):
    y = np.array(labels)
    n = len(y)
    n_test = min(max(int(np.ceil(round(fraction * n, 9))), 1), n - 1)
    y_train, y_test, rows_train, rows_test = train_test_split(y, np.arange(n), test_size=n_test, seed=seed, stratify=y)
    assert len(y_test) == n_test and len(y_train) == n - n_test
    assert sorted(rows_train.tolist() + rows_test.tolist()) == list(range(n))
    counts = np.bincount(y, minlength=5)
    test_counts = np.bincount(y_test, minlength=5)
    shared = counts >= 2
    if shared.sum() <= n_test <= n - shared.sum():  # room for one row of each such class per side
        assert np.all(test_counts[shared] >= 1) and np.all(test_counts[shared] <= counts[shared] - 1)
    ideal = counts * n_test / n
    if np.all((ideal >= 1) | ~shared) and np.all((ideal <= counts - 1) | ~shared):
        assert np.all(np.abs(test_counts - ideal) < 1)


@pytest.mark.parametrize("test_size", [0, 1.0, 0.0, 1.5, 10, -1, True, "0.2", 0.95])
def test_split_refuses_bad_test_size(test_size):
    with pytest.raises(ValueError, match="test_size"):
        train_test_split(np.arange(10), test_size=test_size)


def test_split_refuses_bad_arrays_and_labels():
    with pytest.raises(ValueError, match=r"\(10,\).*\(9,\)"):
        train_test_split(np.arange(10), np.arange(9))
    with pytest.raises(ValueError, match=r"ravel"):
        train_test_split(np.arange(10), stratify=np.zeros((10, 1)))
    with pytest.raises(TypeError, match="list"):
        train_test_split([1, 2, 3, 4])


# ---- load_mat ---------------------------------------------------------------------------------
@pytest.fixture
def ex4_like(tmp_path):
    """A small ex4data1.mat: 50 images of 20x20 pixels, labels 1..10 in a float (50, 1) column."""
    rng = np.random.default_rng(0)
    X = rng.random((50, 400))
    y = np.tile(np.arange(1, 11), 5).reshape(50, 1).astype(np.float64)
    path = tmp_path / "ex4data1.mat"
    scipy.io.savemat(path, {"X": X, "y": y})
    return path, X, y


def test_load_mat_reads_the_ex4data1_layout_with_flat_labels(ex4_like):
    path, X, y = ex4_like
    X_loaded, y_loaded = load_mat(path)
    assert X_loaded.dtype == np.float64 and X_loaded.shape == (50, 400)
    assert y_loaded.dtype == np.int64 and y_loaded.shape == (50,)
    np.testing.assert_array_equal(X_loaded, X)
    np.testing.assert_array_equal(y_loaded, y.ravel())
    # The first learner's bug: the raw column compared with flat predictions is (50, 50).
    raw = scipy.io.loadmat(path)["y"]
    assert raw.shape == (50, 1) and (y_loaded == y_loaded[::-1]).shape == (50,)


def test_load_mat_ten_is_zero(ex4_like):
    path, _, y = ex4_like
    _, digits = load_mat(str(path), ten_is_zero=True)
    expected = y.ravel().astype(np.int64) % 10
    np.testing.assert_array_equal(digits, expected)
    assert digits.min() == 0 and digits.max() == 9


def test_load_mat_custom_keys_row_labels_and_other_formats(tmp_path):
    features = np.arange(12, dtype=np.uint8).reshape(4, 3)
    for i, kwargs in enumerate([{}, {"format": "4"}, {"do_compression": True}]):
        path = tmp_path / f"custom{i}.mat"
        scipy.io.savemat(path, {"images": features, "labels": np.array([3, 1, 0, 2])}, **kwargs)
        X, y = load_mat(path, x_key="images", y_key="labels")  # 1-D labels are saved as a (1, 4) row
        assert X.dtype == np.float64 and X.tolist() == features.tolist()
        assert y.dtype == np.int64 and y.tolist() == [3, 1, 0, 2]


def test_load_mat_missing_key_lists_the_variables(ex4_like):
    path, _, _ = ex4_like
    with pytest.raises(KeyError, match=r"'images'.*\['X', 'y'\]"):
        load_mat(path, x_key="images")
    with pytest.raises(KeyError, match=r"'labels'.*\['X', 'y'\]"):
        load_mat(path, y_key="labels")


def test_load_mat_missing_file(tmp_path):
    path = tmp_path / "nowhere.mat"
    with pytest.raises(FileNotFoundError, match="nowhere.mat"):
        load_mat(path)


def test_load_mat_refuses_files_that_are_not_mat(tmp_path, ex4_like):
    text = tmp_path / "notes.mat"
    text.write_text("X = [1 2; 3 4]\ny = [1; 2]\n" * 20)
    noise = tmp_path / "noise.mat"
    noise.write_bytes(np.random.default_rng(0).bytes(512))
    truncated = tmp_path / "truncated.mat"
    truncated.write_bytes(ex4_like[0].read_bytes()[:200])
    for path in (text, noise, truncated):
        with pytest.raises(ValueError, match="not a MATLAB .mat file: .*" + path.name):
            load_mat(path)


def test_load_mat_explains_v73_files(tmp_path):
    path = tmp_path / "hdf5.mat"
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116) + bytes(8) + b"\x00\x02IM"
    path.write_bytes(header.ljust(512, b"\x00"))
    with pytest.raises(ValueError, match="v7.3"):
        load_mat(path)


@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.zeros((2, 2, 2)), np.ones((2, 1)), r"2-D numeric.*\(2, 2, 2\)"),
        (np.zeros((3, 2)), np.array([[1.0], [2.5], [3.0]]), r"whole numbers.*2\.5"),
        (np.zeros((3, 2)), np.ones((3, 2)), r"vector.*\(3, 2\)"),
        (np.zeros((4, 2)), np.ones((3, 1)), r"4 rows.*\(4, 2\).*3 labels.*\(3, 1\)"),
        (np.zeros((2, 3)), np.ones((3, 1)), "transposed"),
        (np.array(["ab", "cd"]), np.ones((2, 1)), "numeric"),
    ],
)
def test_load_mat_names_bad_contents(tmp_path, X, y, message):
    path = tmp_path / "bad.mat"
    scipy.io.savemat(path, {"X": X, "y": y})
    with pytest.raises(ValueError, match=message):
        load_mat(path)


def test_ten_is_zero_refuses_labels_that_already_hold_zero(tmp_path):
    path = tmp_path / "both.mat"
    scipy.io.savemat(path, {"X": np.zeros((3, 2)), "y": np.array([[0], [10], [4]])})
    assert load_mat(path)[1].tolist() == [0, 10, 4]
    with pytest.raises(ValueError, match="both 0 and 10"):
        load_mat(path, ten_is_zero=True)


def flipped(original: bytes, position: int, value: int) -> bytes:
    data = bytearray(original)
    data[position] = value
    return bytes(data)


def corruptions(original: bytes, count: int):
    """(position, value) pairs that change one byte after the 128-byte header, reproducibly."""
    rng = np.random.default_rng(15)
    return [(int(rng.integers(128, len(original))), int(rng.integers(256))) for _ in range(count)]


def first_case_that_crashes_scipy(folder, original: bytes, cases) -> int:
    """Load the corruptions one by one with SciPy in a child process; the index that killed it."""
    import subprocess

    script = (
        "import io, sys, warnings, numpy as np, scipy.io\n"
        "warnings.simplefilter('ignore')\n"
        "original = open(sys.argv[1], 'rb').read()\n"
        "for index, (position, value) in enumerate(eval(sys.argv[2])):\n"
        "    data = bytearray(original); data[position] = value\n"
        "    print(index, flush=True)\n"
        "    try:\n"
        "        scipy.io.loadmat(io.BytesIO(bytes(data)))\n"
        "    except Exception:\n"
        "        pass\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(folder / "good.mat"), repr(cases)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode < 0, "no corruption crashed SciPy's reader: the test has nothing to show"
    return int(done.stdout.split()[-1])


def test_load_mat_survives_files_that_crash_scipys_reader(tmp_path):
    """SciPy segfaults on some corrupted v5 files: the caller still gets a ValueError and lives on."""
    contents = {"X": np.arange(12.0).reshape(4, 3), "y": np.array([[1], [2], [3], [4]])}
    scipy.io.savemat(tmp_path / "good.mat", contents)
    original = (tmp_path / "good.mat").read_bytes()
    cases = corruptions(original, 2000)
    crash = first_case_that_crashes_scipy(tmp_path, original, cases)
    path = tmp_path / "corrupted.mat"
    for position, value in [cases[crash]] + cases[:6]:
        path.write_bytes(flipped(original, position, value))
        try:
            X, y = load_mat(path)
        except ValueError as error:
            assert str(path) in str(error)
        else:
            assert X.shape == (4, 3) and y.shape == (4,)  # a harmless byte, e.g. inside a number
    path.write_bytes(flipped(original, *cases[crash]))
    with pytest.raises(ValueError, match="crashed with SIGSEGV|corrupted|not a MATLAB"):
        load_mat(path)


# ---- load_digits ------------------------------------------------------------------------------
def test_load_digits():
    pytest.importorskip("sklearn", reason="load_digits needs scikit-learn, from the examples extra")
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert sorted(set(y.tolist())) == list(range(10))


def test_load_digits_without_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"scikit-learn: pip install tinygrad_edu\[examples\]"):
        load_digits()
