"""Checkpoints: `save` and `load` state dicts in a NumPy .npz archive, never with pickle.

The archive holds each array as a plain .npy entry plus one JSON manifest that describes
the nested structure (dicts, lists, tuples, numbers, strings). Loading reads only those, so
it cannot run code from the file. Saving writes a temporary file next to the target and
renames it into place, so a crash never leaves half a checkpoint over a good one.
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile

import numpy as np

from .tensor import Tensor

_FORMAT = "tinygrad_edu checkpoint"
_VERSION = 1
_MANIFEST = "__tinygrad_edu__"
_ZIP_MAGIC = b"PK\x03\x04"


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
    tree = _encode(obj, arrays, "obj")
    manifest = json.dumps({"format": _FORMAT, "version": _VERSION, "tree": tree})
    entries = {_MANIFEST: np.frombuffer(manifest.encode("utf-8"), dtype=np.uint8), **arrays}
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot save to {path}: the folder {folder} does not exist")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez(file, **entries)
            file.flush()
            os.fsync(file.fileno())  # on disk before the rename makes it the checkpoint
        # mkstemp makes the file private (0600); give it the mode a plain open() would have.
        os.chmod(temporary, os.stat(path).st_mode if os.path.exists(path) else 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read the umask is to set it, then put it back
    os.umask(mask)
    return mask


def load(path):
    """Read a checkpoint written by `save`: the same structure, arrays as NumPy arrays.

    Raises ValueError for a file that is not such a checkpoint (including any file that would
    need unpickling); nothing from the file is ever executed.
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        if file.read(4) != _ZIP_MAGIC:
            raise ValueError(f"{path} is not a tinygrad_edu checkpoint: it is not an .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as archive:
            if _MANIFEST not in archive.files:
                raise ValueError("the archive has no tinygrad_edu manifest (a plain np.savez file?)")
            manifest = json.loads(archive[_MANIFEST].tobytes().decode("utf-8"))
            if not isinstance(manifest, dict) or manifest.get("format") != _FORMAT:
                raise ValueError("its manifest does not describe a tinygrad_edu checkpoint")
            if manifest.get("version") != _VERSION:
                raise ValueError(f"format version {manifest.get('version')!r} is not {_VERSION}")
            return _decode(manifest["tree"], archive)
    except (ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as error:
        # ValueError covers NumPy refusing object (pickled) arrays and malformed JSON.
        raise ValueError(f"{path} is not a tinygrad_edu checkpoint: {error}") from None


def _encode(value, arrays: dict, where: str):
    """The manifest node for `value`; arrays go into `arrays` under fresh names."""
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
            items.append([key, _encode(item, arrays, f"{where}[{key!r}]")])
        return {"dict": items}
    if isinstance(value, (list, tuple)):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_encode(item, arrays, f"{where}[{i}]") for i, item in enumerate(value)]}
    hint = " (save its .state_dict() instead)" if hasattr(value, "state_dict") else ""
    raise TypeError(
        f"tg.save cannot store a {type(value).__name__} (at {where}){hint}: only dicts, lists, tuples, "
        "arrays, Tensors, numbers, strings and None"
    )


def _decode(node, archive):
    if not isinstance(node, dict) or len(node) != 1:
        raise ValueError(f"malformed manifest entry {node!r:.60}")
    ((kind, content),) = node.items()
    if kind in ("none", "bool", "int", "float", "str"):
        return content
    if kind == "array":
        return archive[content]
    if kind == "scalar":
        return archive[content][()]
    if kind == "dict":
        return {key: _decode(item, archive) for key, item in content}
    if kind == "list":
        return [_decode(item, archive) for item in content]
    if kind == "tuple":
        return tuple(_decode(item, archive) for item in content)
    raise ValueError(f"unknown manifest entry {kind!r}")
