"""tg.save / tg.load: round trips, exact paths, atomic writes, and files that must be refused.

Loading must never unpickle: the hostile-file tests plant a pickle that would create a marker
file when unpickled, check that plain unpickling really does create it, then check tg.load does not.
"""
import os
import pickle

import numpy as np
import pytest

import tinygrad_edu as tg
from tinygrad_edu import nn, optim


def assert_same_structure(loaded, original, where="obj"):
    """Same types all the way down (tuples stay tuples, int keys stay ints); arrays equal, dtype and shape."""
    if isinstance(original, (np.ndarray, tg.Tensor)):
        expected = np.asarray(original.data if isinstance(original, tg.Tensor) else original)
        assert type(loaded) is np.ndarray, f"{where}: {type(loaded).__name__} instead of ndarray"
        assert loaded.dtype == expected.dtype, f"{where}: dtype {loaded.dtype} instead of {expected.dtype}"
        assert loaded.shape == expected.shape, f"{where}: shape {loaded.shape} instead of {expected.shape}"
        np.testing.assert_array_equal(loaded, expected, err_msg=where)
        return
    got, wanted = type(loaded).__name__, type(original).__name__
    assert type(loaded) is type(original), f"{where}: {got} instead of {wanted}"
    if isinstance(original, dict):
        assert list(loaded) == list(original), f"{where}: keys {list(loaded)} instead of {list(original)}"
        key_types = [type(k) for k in loaded]
        assert key_types == [type(k) for k in original], f"{where}: key types changed to {key_types}"
        for key in original:
            assert_same_structure(loaded[key], original[key], f"{where}[{key!r}]")
    elif isinstance(original, (list, tuple)):
        assert len(loaded) == len(original), f"{where}: length {len(loaded)} instead of {len(original)}"
        for i, (a, b) in enumerate(zip(loaded, original)):
            assert_same_structure(a, b, f"{where}[{i}]")
    else:
        assert loaded == original, f"{where}: {loaded!r} instead of {original!r}"


def small_model():
    return nn.Sequential(nn.Linear(3, 5), nn.Tanh(), nn.Linear(5, 2))


def files_in(folder):
    return sorted(os.listdir(folder))


# ---- round trips ---------------------------------------------------------------------------
def test_model_state_dict_round_trip_gives_identical_outputs(tmp_path):
    tg.manual_seed(0)
    model, fresh = small_model(), small_model()
    x = tg.Tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    assert not np.array_equal(model(x).data, fresh(x).data)  # otherwise the test proves nothing

    path = tmp_path / "model.ckpt"
    tg.save(model.state_dict(), path)
    loaded = tg.load(path)
    assert_same_structure(loaded, model.state_dict())
    assert list(loaded) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    fresh.load_state_dict(loaded)
    np.testing.assert_array_equal(fresh(x).data, model(x).data)


def test_optimizer_state_dict_round_trip_continues_identically(tmp_path):
    tg.manual_seed(1)
    rng = np.random.default_rng(1)
    x = tg.Tensor(rng.standard_normal((8, 3)).astype(np.float32))
    y = tg.Tensor(rng.standard_normal((8, 2)).astype(np.float32))

    def train(model, optimizer, steps):
        for _ in range(steps):
            optimizer.zero_grad()
            (((model(x) - y) ** 2).mean()).backward()
            optimizer.step()

    model = small_model()
    optimizer = optim.Adam(model.parameters(), lr=0.05, betas=(0.8, 0.99))
    train(model, optimizer, 3)
    tg.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / "run.ckpt")
    checkpoint = tg.load(tmp_path / "run.ckpt")
    assert_same_structure(checkpoint["optimizer"], optimizer.state_dict())
    state = checkpoint["optimizer"]["state"]
    assert all(type(k) is int for k in state) and type(state[0]["step"]) is int
    assert type(checkpoint["optimizer"]["param_groups"][0]["betas"]) is tuple

    resumed = small_model()
    resumed.load_state_dict(checkpoint["model"])
    resumed_optimizer = optim.Adam(resumed.parameters())  # default options: the checkpoint restores them
    resumed_optimizer.load_state_dict(checkpoint["optimizer"])
    train(model, optimizer, 3)
    train(resumed, resumed_optimizer, 3)
    for (name, p), (_, q) in zip(model.named_parameters(), resumed.named_parameters()):
        np.testing.assert_array_equal(q.data, p.data, err_msg=name)


NESTED = {
    "layers.0.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
    "float64": np.linspace(-1.0, 1.0, 5),
    "int64": np.array([-(2**40), 0, 7], dtype=np.int64),
    "bool": np.array([[True, False], [False, True]]),
    "zero_d": np.array(3.25),
    "zero_d_int": np.array(-4, dtype=np.int64),
    "empty": np.zeros((0, 3), dtype=np.float32),
    "strided_view": np.arange(12.0).reshape(3, 4).T[::2],
    "tensor": tg.Tensor(np.array([[1.5, -2.0]], dtype=np.float32), requires_grad=True),
    "tensor64": tg.Tensor(np.array([0.25, 0.5])),
    0: "int key",
    7: {"deep": [1, (2.5, None), [True, False], {3: ()}]},
    "tuple": (1, "two", 3.0, None, (np.ones(2, dtype=np.float32),)),
    "list": [np.zeros(1, dtype=bool), [], {}, ()],
    "none": None,
    "true": True,
    "false": False,
    "int": -12345678901,
    "float": 0.1,
    "inf": float("inf"),
    "string": "héllo wörld ✓",
    "empty_string": "",
}


def test_nested_structure_round_trip_keeps_types_dtypes_and_shapes(tmp_path):
    tg.save(NESTED, tmp_path / "nested.bin")
    assert_same_structure(tg.load(tmp_path / "nested.bin"), NESTED)


def test_int_and_str_keys_that_look_alike_stay_apart(tmp_path):
    obj = {1: "int one", "1": "str one", "a": {2: np.ones(2), "2": np.zeros(3)}}
    tg.save(obj, tmp_path / "keys.bin")
    assert_same_structure(tg.load(tmp_path / "keys.bin"), obj)


@pytest.mark.parametrize("top_level", [[1, 2.0, "three"], (np.ones(3),), np.eye(2), 5, None, "text"])
def test_top_level_object_need_not_be_a_dict(tmp_path, top_level):
    tg.save(top_level, tmp_path / "top.bin")
    assert_same_structure(tg.load(tmp_path / "top.bin"), top_level)


def test_loaded_arrays_are_independent_of_the_saved_ones(tmp_path):
    weights = np.ones(3)
    tg.save({"w": weights}, tmp_path / "w.bin")
    weights[:] = 5.0
    loaded = tg.load(tmp_path / "w.bin")["w"]
    np.testing.assert_array_equal(loaded, np.ones(3))
    loaded[0] = 2.0  # writable
    assert loaded[0] == 2.0


# ---- where the file goes -------------------------------------------------------------------
@pytest.mark.parametrize("name", ["model.pt", "model.ckpt", "model", "model.npz", "model.tar.gz"])
def test_file_is_written_exactly_at_the_given_path(tmp_path, name):
    tg.save({"w": np.ones(2)}, tmp_path / name)
    assert files_in(tmp_path) == [name]
    assert_same_structure(tg.load(tmp_path / name), {"w": np.ones(2)})


def test_string_paths_work_and_overwrite(tmp_path):
    path = str(tmp_path / "weights.chk")
    tg.save({"w": np.ones(2)}, path)
    tg.save({"w": np.zeros(3)}, path)
    assert files_in(tmp_path) == ["weights.chk"]
    assert_same_structure(tg.load(path), {"w": np.zeros(3)})


# ---- atomic writes -------------------------------------------------------------------------
def fail_on_second_array_write(monkeypatch):
    """Let the first array reach the temporary file, then fail: a write that stops part-way."""
    real_write_array = np.lib.format.write_array
    calls = []

    def write_array(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise OSError("disk full (simulated)")
        return real_write_array(*args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_array)
    return OSError


def fail_on_replace(monkeypatch):
    def replace(*args, **kwargs):
        raise OSError("rename failed (simulated)")

    monkeypatch.setattr(os, "replace", replace)
    return OSError


def fail_on_unsupported_value(monkeypatch):
    return TypeError  # the bad value sits after several good arrays in the object below


@pytest.mark.parametrize(
    "make_it_fail", [fail_on_second_array_write, fail_on_replace, fail_on_unsupported_value]
)
def test_failed_save_leaves_the_old_checkpoint_and_no_temporary_file(tmp_path, monkeypatch, make_it_fail):
    path = tmp_path / "good.ckpt"
    tg.save({"w": np.arange(4.0), "step": 3}, path)
    good_bytes = path.read_bytes()

    new = {"a": np.ones(1000), "b": np.zeros((30, 30)), "c": np.full(5, 2.0)}
    if make_it_fail is fail_on_unsupported_value:
        new["d"] = {1, 2}
    expected_error = make_it_fail(monkeypatch)
    with pytest.raises(expected_error):
        tg.save(new, path)
    monkeypatch.undo()

    assert files_in(tmp_path) == ["good.ckpt"]
    assert path.read_bytes() == good_bytes
    assert_same_structure(tg.load(path), {"w": np.arange(4.0), "step": 3})


def test_failed_first_save_creates_no_file(tmp_path, monkeypatch):
    fail_on_replace(monkeypatch)
    with pytest.raises(OSError):
        tg.save({"w": np.ones(3)}, tmp_path / "new.ckpt")
    assert files_in(tmp_path) == []


# ---- what cannot be saved ------------------------------------------------------------------
@pytest.mark.parametrize(
    "value, type_name",
    [
        (nn.Linear(2, 2), "Linear"),
        (lambda x: x, "function"),
        (np.array([1, "a", None], dtype=object), "object"),
        ({1, 2}, "set"),
    ],
    ids=["module", "lambda", "object-array", "set"],
)
def test_unsupported_objects_raise_type_error_naming_type_and_place(tmp_path, value, type_name):
    with pytest.raises(TypeError, match=type_name) as info:
        tg.save({"model": {"good": np.ones(2), "culprit": value}}, tmp_path / "bad.ckpt")
    assert "culprit" in str(info.value)
    assert files_in(tmp_path) == []


# ---- what cannot be loaded -----------------------------------------------------------------
class CreatesMarker:
    """Unpickling this object calls os.mkdir(marker): any code execution on load leaves a folder."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def write_random_bytes(path):
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes())


def write_empty(path):
    path.write_bytes(b"")


def write_plain_npz(path):
    with open(path, "wb") as f:
        np.savez(f, weight=np.ones((2, 2)), bias=np.zeros(2))


def write_pickle(path):
    with open(path, "wb") as f:
        pickle.dump({"weight": np.ones((2, 2))}, f)


def write_npz_with_object_array(path):
    with open(path, "wb") as f:
        np.savez(f, weight=np.array([{"a": 1}, None], dtype=object))


def write_a_single_npy(path):
    with open(path, "wb") as f:
        np.save(f, np.ones(3))


@pytest.mark.parametrize(
    "write",
    [
        write_random_bytes, write_empty, write_plain_npz, write_pickle, write_npz_with_object_array,
        write_a_single_npy,
    ],
)
def test_loading_a_file_that_is_not_a_checkpoint_raises_value_error(tmp_path, write):
    path = tmp_path / "foreign.ckpt"
    write(path)
    with pytest.raises(ValueError, match="not a tinygrad_edu checkpoint"):
        tg.load(path)


def write_hostile_pickle(path, marker):
    with open(path, "wb") as f:
        pickle.dump({"weight": CreatesMarker(marker)}, f)


def write_hostile_npz(path, marker):
    with open(path, "wb") as f:
        np.savez(f, weight=np.array([CreatesMarker(marker)], dtype=object))


def unpickle_plainly(path):
    with open(path, "rb") as f:
        if path.name.endswith("npz.ckpt"):
            np.load(f, allow_pickle=True)["weight"]
        else:
            pickle.load(f)


@pytest.mark.parametrize(
    "write, name", [(write_hostile_pickle, "pickle.ckpt"), (write_hostile_npz, "npz.ckpt")]
)
def test_loading_never_runs_code_from_the_file(tmp_path, write, name):
    marker = tmp_path / "code_ran"
    path = tmp_path / name
    write(path, marker)
    unpickle_plainly(path)  # the payload works: plain unpickling does create the marker
    assert marker.exists()
    marker.rmdir()

    with pytest.raises(ValueError, match="not a tinygrad_edu checkpoint"):
        tg.load(path)
    assert not marker.exists()


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        tg.load(tmp_path / "nowhere.ckpt")


def test_saving_into_a_missing_folder_names_the_path_given(tmp_path):
    target = tmp_path / "missing" / "model.npz"
    with pytest.raises(FileNotFoundError, match="missing"):
        tg.save({"a": np.zeros(2)}, target)
    assert not (tmp_path / "missing").exists()


# ---- hostile and corrupted files -----------------------------------------------------------
def checkpoint_bytes(tmp_path):
    tg.manual_seed(0)
    path = tmp_path / "good.npz"
    tg.save({"model": small_model().state_dict(), "epoch": 3, "notes": (1.5, "x", None, True)}, path)
    return path.read_bytes()


def test_every_corruption_of_a_checkpoint_is_a_value_error(tmp_path):
    """Flipped bytes and truncations: each either loads or raises ValueError, nothing else escapes."""
    original = checkpoint_bytes(tmp_path)
    rng = np.random.default_rng(15)
    path = tmp_path / "corrupted.npz"
    outcomes = {"loaded": 0, "refused": 0}
    for case in range(400):
        data = bytearray(original)
        if case % 5 == 0:
            data = data[: rng.integers(len(data))]
        else:
            for position in rng.integers(len(data), size=rng.integers(1, 3)):
                data[position] = rng.integers(256)
        path.write_bytes(bytes(data))
        try:
            tg.load(path)
            outcomes["loaded"] += 1
        except ValueError as error:
            assert "not a tinygrad_edu checkpoint" in str(error)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 200  # the corruptions really were noticed


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need POSIX")
def test_a_fifo_is_refused_at_once_instead_of_waiting_for_a_writer(tmp_path):
    import subprocess
    import sys

    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    code = (f"import tinygrad_edu as tg\ntry:\n    tg.load({str(fifo)!r})\n"
            "except ValueError as error:\n    print(error)")
    # In a subprocess: if load blocked, the timeout ends it instead of hanging the suite.
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert "not a regular file" in done.stdout, done.stderr


def write_zip(path, members, compression=None):
    import zipfile

    with zipfile.ZipFile(path, "w", compression or zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def npy_bytes(array):
    import io

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def manifest_bytes(tree):
    import json

    text = json.dumps({"format": "tinygrad_edu checkpoint", "version": 1, "tree": tree})
    return npy_bytes(np.frombuffer(text.encode(), dtype=np.uint8))


def test_a_small_file_declaring_a_huge_array_is_refused_before_allocating(tmp_path):
    import tracemalloc

    # A .npy header that declares 512 MiB of float64 over 80 bytes of data.
    import io

    buffer = io.BytesIO()
    declared = {"descr": "<f8", "fortran_order": False, "shape": (1 << 26,)}
    np.lib.format.write_array_header_1_0(buffer, declared)
    lying = buffer.getvalue() + bytes(80)
    write_zip(tmp_path / "lying.npz", {"__tinygrad_edu__.npy": manifest_bytes({"array": "array0"}),
                                       "array0.npy": lying})
    # Zeros deflate about 1000:1: a 64 KiB file that really holds 64 MiB.
    import zipfile

    write_zip(tmp_path / "bomb.npz", {"__tinygrad_edu__.npy": manifest_bytes({"array": "array0"}),
                                      "array0.npy": npy_bytes(np.zeros(8 << 20))}, zipfile.ZIP_DEFLATED)
    assert (tmp_path / "bomb.npz").stat().st_size < 200_000
    for name, cap, message in [("lying.npz", tg.serialization.MAX_BYTES, "declares shape"),
                               ("bomb.npz", 1 << 20, "more than max_bytes")]:
        tracemalloc.start()
        try:
            with pytest.raises(ValueError, match=message):
                tg.load(tmp_path / name, max_bytes=cap)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 4 << 20, f"{name}: {peak:,} bytes allocated before refusing"
    assert tg.load(tmp_path / "bomb.npz", max_bytes=1 << 27).shape == (8 << 20,)  # trusted: raise the cap


@pytest.mark.parametrize(
    "tree, message",
    [
        ({"int": "5"}, "holds a str, not a int"),
        ({"bool": 1}, "holds a int, not a bool"),
        ({"str": None}, "not a str"),
        ({"list": {"a": 1}}, "not a list"),
        ({"dict": [[[1], {"none": None}]]}, "malformed dict item"),
        ({"array": "array7"}, "not a tinygrad_edu checkpoint"),
        ({"array": "__tinygrad_edu__"}, "twice"),
        ({"scalar": "array0"}, "is an array of shape"),
        ({"eval": "os.system"}, "unknown manifest entry"),
    ],
)
def test_manifest_leaves_are_type_checked(tmp_path, tree, message):
    path = tmp_path / "crafted.npz"
    write_zip(path, {"__tinygrad_edu__.npy": manifest_bytes(tree), "array0.npy": npy_bytes(np.ones(2))})
    with pytest.raises(ValueError, match=message):
        tg.load(path)


@pytest.mark.parametrize("depth", [150, 100_000])
def test_manifest_nesting_depth_is_bounded(tmp_path, depth):
    path = tmp_path / "deep.npz"
    body = '{"list": [' * depth + '{"none": null}' + "]}" * depth
    text = '{"format": "tinygrad_edu checkpoint", "version": 1, "tree": ' + body + "}"
    write_zip(path, {"__tinygrad_edu__.npy": npy_bytes(np.frombuffer(text.encode(), dtype=np.uint8))})
    with pytest.raises(ValueError, match="not a tinygrad_edu checkpoint"):
        tg.load(path)


def test_saving_deeper_than_load_accepts_is_refused_up_front(tmp_path):
    deep = []
    for _ in range(tg.serialization.MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(ValueError, match="nested deeper"):
        tg.save(deep, tmp_path / "deep.npz")


@pytest.mark.parametrize(
    "members, message",
    [
        ({"notes.txt": b"hello"}, "not one of its .npy arrays"),
        ({"../escape.npy": npy_bytes(np.ones(2))}, "not one of its .npy arrays"),
        ({"array0.npy": b"just text, not an npy file"}, "not a tinygrad_edu checkpoint"),
    ],
)
def test_members_that_are_not_npy_arrays_are_refused(tmp_path, members, message):
    path = tmp_path / "crafted.npz"
    write_zip(path, {"__tinygrad_edu__.npy": manifest_bytes({"array": "array0"}), **members})
    with pytest.raises(ValueError, match=message):
        tg.load(path)


def test_an_object_array_named_by_a_valid_manifest_is_refused_without_unpickling(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "crafted.npz"
    payload = npy_bytes(np.array([CreatesMarker(marker)], dtype=object))
    write_zip(path, {"__tinygrad_edu__.npy": manifest_bytes({"array": "array0"}), "array0.npy": payload})
    with pytest.raises(ValueError, match="not a plain numeric array"):
        tg.load(path)
    assert not marker.exists()
