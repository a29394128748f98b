"""One way to write a file: `atomic_write`, used by every writer in the package.

A file is written whole or not at all. The bytes go to a new temporary file in the target's
folder, which is flushed to disk and then renamed over the target; a crash or an error at any
point leaves the old file as it was. This module imports nothing from the package, so any
module (serialization, viz, diagnostics, the command line) can use it.
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import time

__all__ = ["atomic_write"]

# Temporaries are named `.<target name>.<16 hex digits>.tgtmp`: unique, hidden, and easy to
# recognise as ours when a killed process (SIGKILL skips every cleanup) leaves one behind.
_TEMPORARY = re.compile(r"^\..*\.[0-9a-f]{16}\.tgtmp$")
# A temporary this old belongs to no save still running (the mtime moves with every write),
# so the next save into that folder removes it.
STALE_SECONDS = 3600.0


@contextlib.contextmanager
def atomic_write(path, text: bool = False, stale_seconds: float = STALE_SECONDS):
    """Open a temporary file beside `path` for writing; on success it replaces `path`.

    Yields a binary file object (a text one with ``text=True``, UTF-8). When the block ends
    without error the file is fsynced, renamed over `path` (a symlink at `path` is replaced,
    never followed) and the folder is fsynced, so the rename itself survives a power cut. On
    any error, KeyboardInterrupt included, the temporary is removed and `path` is untouched.
    A read-only file at `path` is refused (PermissionError), as ``open(path, "w")`` would.

    The new file gets the mode any new file gets (0o666 less the umask, e.g. 0o644). Writers
    that want a path rather than a file object (matplotlib, graphviz) write to the file object:
    ``figure.savefig(file, format="png")``, ``file.write(graph.pipe(format="svg"))``.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> with atomic_write(path, text=True) as file:
    ...     _ = file.write("hello")
    >>> open(path).read()
    'hello'
    """
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path}: the folder {folder} does not exist")
    # Checked first: the rename would fail only at the end, naming our temporary, not the folder.
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give the name of a file inside it")
    # The rename would replace a file its owner made read-only, which open(path, "w") refuses.
    if os.path.isfile(path) and not os.path.islink(path) and not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, f"cannot write {path}: the file is read-only (make it "
                                            "writable, e.g. chmod u+w, to replace it)")
    _remove_stale_temporaries(folder, stale_seconds)
    # O_EXCL: never open a file someone else made (or planted); O_NOFOLLOW: never write through a link.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    while True:
        temporary = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tgtmp")
        try:
            handle = os.open(temporary, flags, 0o666)  # the kernel applies the umask, as for any new file
            break
        except FileExistsError:
            continue
        except OSError as error:  # no permission, a read-only disk: name the user's file, not ours
            raise type(error)(error.errno, f"cannot write {path}: cannot create a file in the folder "
                                           f"{folder} ({error.strerror})") from None
    try:
        with open(handle, "w" if text else "wb", **({"encoding": "utf-8"} if text else {})) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the rename makes them the file
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)


def _fsync_folder(folder: str) -> None:
    """Make the rename durable. Some systems (Windows) cannot open a folder: nothing to do there."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _remove_stale_temporaries(folder: str, stale_seconds: float) -> None:
    """Remove our own temporaries (by name pattern) that are older than `stale_seconds`."""
    oldest_kept = time.time() - stale_seconds
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if not _TEMPORARY.match(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
            # Only plain files of this user: a planted link or another user's file is not ours to remove.
            mine = info.st_uid == os.getuid() if hasattr(os, "getuid") else True
            if stat.S_ISREG(info.st_mode) and info.st_mtime < oldest_kept and mine:
                os.unlink(entry.path)
        except OSError:
            continue  # gone already, or not ours to remove
