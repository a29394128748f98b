"""Checkpoints: `save` and `load` state dicts in a NumPy .npz archive, never with pickle.

The archive holds each array as a plain .npy entry plus one JSON manifest that describes
the nested structure (dicts, lists, tuples, numbers, strings). Loading reads only those, so
it cannot run code from the file, and it checks every size the file declares before it
allocates anything, so a small hostile file cannot ask for gigabytes. Saving goes through
`atomic_write`, so a crash never leaves half a checkpoint over a good one.
"""
from __future__ import annotations

import io
import json
import math
import os
import re
import stat
import struct
import zipfile
import zlib

import numpy as np

from ._files import atomic_write
from .tensor import Tensor

_FORMAT = "tinygrad_edu checkpoint"
_VERSION = 1
_MANIFEST = "__tinygrad_edu__"
_ZIP_MAGIC = b"PK\x03\x04"
_MEMBER = re.compile(r"^(__tinygrad_edu__|array[0-9]{1,9})\.npy$")
MAX_BYTES = 1 << 30
"""Default cap (1 GiB) on the array bytes `load` will read from one file; raise it with `max_bytes`."""
MAX_DEPTH = 100
"""Deepest nesting of dicts/lists/tuples `load` accepts (a state dict needs about 4)."""


def save(obj, path) -> None:
    """Write `obj` (nested dicts/lists/tuples of arrays, Tensors, numbers, strings) to `path`.

    The file is written at exactly `path` (no suffix added), atomically: a temporary file
    in the same folder is renamed over the target only once it is complete.

    >>> import os, tempfile, numpy as np, tinygrad_edu as tg
    >>> path = os.path.join(tempfile.mkdtemp(), "model.npz")
    >>> tg.save({"0.weight": np.ones((2, 3)), "epoch": 5}, path)
    >>> tg.load(path)["epoch"]
    5
    """
    arrays: dict = {}
    tree = _encode(obj, arrays, "obj", 0)
    manifest = json.dumps({"format": _FORMAT, "version": _VERSION, "tree": tree})
    entries = {_MANIFEST: np.frombuffer(manifest.encode("utf-8"), dtype=np.uint8), **arrays}
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save to {path}: the folder {folder} does not exist")
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot save to {path}: it is a folder; give a file name, e.g. "
                                f"{os.path.join(path, 'model.npz')}")
    with atomic_write(path) as file:
        np.savez(file, **entries)


def load(path, max_bytes: int = MAX_BYTES):
    """Read a checkpoint written by `save`: the same structure, arrays as NumPy arrays. It never
    unpickles and checks the file before allocating, so files from others are safe to try: it
    refuses with ValueError a path that is not a regular file, anything but .npy arrays with a
    tinygrad_edu manifest, object arrays, more than `max_bytes` of arrays (1 GiB), a manifest
    nested deeper than `MAX_DEPTH` (100) or with mistyped leaves, and any corruption.

    Why each: a FIFO would block forever and a device never ends; object arrays would need
    pickle, which runs code; a 500 KB zip can declare gigabytes (deflate shrinks zeros ~1000:1,
    and a .npy header can claim any shape), so the sizes in the zip directory and in every .npy
    header are checked against `max_bytes` and against each other first (raise `max_bytes` for
    a large file you trust); deep nesting would exhaust Python's recursion. Encrypted members,
    compressions other than deflate, truncation and flipped bytes all give the same ValueError.

    Raises FileNotFoundError or PermissionError when the path cannot be opened.

    >>> import os, tempfile, numpy as np, tinygrad_edu as tg
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "notes.npz"), "wb") as file:
    ...     _ = file.write(b"PK\\x03\\x04 not really a zip")
    >>> try:
    ...     tg.load(os.path.join(folder, "notes.npz"))
    ... except ValueError as error:
    ...     print(str(error).split(": ", 1)[1])
    File is not a zip file
    """
    path = os.fspath(path)
    # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever.
    handle = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    if not stat.S_ISREG(os.fstat(handle).st_mode):  # checked before open(): a folder would fail there
        os.close(handle)
        raise ValueError(f"{path} is not a tinygrad_edu checkpoint: not a regular file")
    with open(handle, "rb") as file:
        try:
            if file.read(4) != _ZIP_MAGIC:
                raise ValueError("it is not an .npz (zip) archive")
            with zipfile.ZipFile(file) as archive:
                reader = _ArrayReader(archive, max_bytes)
                manifest = json.loads(reader.read(_MANIFEST).tobytes().decode("utf-8"))
                if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
                    raise ValueError("its manifest does not describe a tinygrad_edu checkpoint")
                if manifest.get("version") != _VERSION:
                    raise ValueError(f"format version {manifest.get('version')!r} is not {_VERSION}")
                return _decode(manifest.get("tree"), reader, 0)
        except (ValueError, KeyError, TypeError, EOFError, OSError, OverflowError, RuntimeError,
                NotImplementedError, struct.error, zlib.error, zipfile.BadZipFile) as error:
            # A corrupted zip fails in many ways inside zipfile (seeks, CRCs, headers, deep JSON as
            # RecursionError); to the caller they all mean one thing: not a checkpoint we can read.
            raise ValueError(f"{path} is not a tinygrad_edu checkpoint: {error}") from None


class _ArrayReader:
    """Reads the archive's .npy members, checking each against the zip directory and the cap."""

    def __init__(self, archive: zipfile.ZipFile, max_bytes: int):
        self.archive, self.used = archive, set()
        if f"{_MANIFEST}.npy" not in archive.namelist():
            raise ValueError("the archive has no tinygrad_edu manifest (a plain np.savez file?)")
        total = 0
        for info in archive.infolist():
            if not _MEMBER.match(info.filename):
                raise ValueError(f"member {info.filename!r:.60} is not one of its .npy arrays")
            if info.flag_bits & 0x1:
                raise ValueError(f"member {info.filename!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ValueError(f"member {info.filename!r} uses an unsupported compression")
            total += info.file_size
        if total > max_bytes:
            raise ValueError(
                f"it holds {total:,} bytes of arrays, more than max_bytes={max_bytes:,}; "
                "pass a larger max_bytes to tg.load if you trust this file"
            )

    def read(self, name: str) -> np.ndarray:
        if not isinstance(name, str) or name in self.used:
            raise ValueError(f"the manifest names array {name!r:.60} twice or not as a string")
        self.used.add(name)
        data = self.archive.read(f"{name}.npy")  # at most the size checked above: zipfile stops there
        file = io.BytesIO(data)
        version = np.lib.format.read_magic(file)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(file)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(file)
        else:
            raise ValueError(f"array {name!r} has .npy format version {version}, not 1.0 or 2.0")
        if dtype.hasobject or dtype.itemsize == 0:
            raise ValueError(f"array {name!r} has dtype {dtype}, which is not a plain numeric array")
        if any(size < 0 for size in shape):
            raise ValueError(f"array {name!r} declares the negative shape {shape}")
        declared = math.prod(shape) * dtype.itemsize
        stored = len(data) - file.tell()
        if declared != stored:
            raise ValueError(f"array {name!r} declares shape {shape} of {dtype} ({declared:,} bytes) "
                             f"but stores {stored:,} bytes")
        array = np.frombuffer(data, dtype=dtype, offset=file.tell())
        return array.reshape(shape, order="F" if fortran_order else "C").copy()


def _encode(value, arrays: dict, where: str, depth: int):
    """The manifest node for `value`; arrays go into `arrays` under fresh names."""
    if depth > MAX_DEPTH:
        raise ValueError(f"tg.save: {where} is nested deeper than {MAX_DEPTH} levels, which tg.load refuses")
    if value is None:
        return {"none": None}
    if isinstance(value, (bool, np.bool_)):
        return {"bool": bool(value)}
    if isinstance(value, int) and not isinstance(value, np.generic):
        return {"int": int(value)}
    if isinstance(value, float) and not isinstance(value, np.generic):
        return {"float": float(value)}
    if isinstance(value, str):
        return {"str": str(value)}
    if isinstance(value, Tensor):
        value = value.data
    if isinstance(value, (np.ndarray, np.generic)):
        if value.dtype.hasobject:
            raise TypeError(f"tg.save cannot store an array of Python objects (at {where}): it would need pickle")
        name = f"array{len(arrays)}"
        arrays[name] = np.asarray(value)
        return {"array" if isinstance(value, np.ndarray) else "scalar": name}
    if isinstance(value, dict):
        items = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)):
                raise TypeError(f"tg.save needs str or int dict keys, got {type(key).__name__} {key!r} (at {where})")
            items.append([key, _encode(item, arrays, f"{where}[{key!r}]", depth + 1)])
        return {"dict": items}
    if isinstance(value, (list, tuple)):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_encode(item, arrays, f"{where}[{i}]", depth + 1) for i, item in enumerate(value)]}
    hint = " (save its .state_dict() instead)" if hasattr(value, "state_dict") else ""
    raise TypeError(
        f"tg.save cannot store a {type(value).__name__} (at {where}){hint}: only dicts, lists, tuples, "
        "arrays, Tensors, numbers, strings and None"
    )


def _decode(node, reader: _ArrayReader, depth: int):
    """The value a manifest node describes; every node is checked, nothing is trusted."""
    if depth > MAX_DEPTH:
        raise ValueError(f"its manifest is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"malformed manifest entry {node!r:.60}")
    ((kind, content),) = node.items()
    if kind in _LEAVES:
        if type(content) is not _LEAVES[kind]:
            raise ValueError(f"manifest entry {kind!r} holds a {type(content).__name__}, not a {kind}")
        return content
    if kind in ("array", "scalar"):
        array = reader.read(content)
        if kind == "scalar":
            if array.ndim != 0:
                raise ValueError(f"manifest scalar {content!r} is an array of shape {array.shape}")
            return array[()]
        return array
    if kind in ("list", "tuple", "dict") and not isinstance(content, list):
        raise ValueError(f"manifest entry {kind!r} holds a {type(content).__name__}, not a list")
    if kind == "dict":
        result = {}
        for pair in content:
            if not (isinstance(pair, list) and len(pair) == 2 and type(pair[0]) in (str, int)):
                raise ValueError(f"malformed dict item {pair!r:.60} in the manifest")
            result[pair[0]] = _decode(pair[1], reader, depth + 1)
        return result
    if kind == "list":
        return [_decode(item, reader, depth + 1) for item in content]
    if kind == "tuple":
        return tuple(_decode(item, reader, depth + 1) for item in content)
    raise ValueError(f"unknown manifest entry {kind!r:.60}")


_LEAVES = {"none": type(None), "bool": bool, "int": int, "float": float, "str": str}
