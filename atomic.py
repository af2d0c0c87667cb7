"""Atomic file writes: write a temp file beside the target, then rename it into place.

A crash leaves the old file (or none), never a half-written one; any failure removes the temp
file. A full disk (ENOSPC, EDQUOT) becomes a one-line UserError saying "disk full", also when
the disk fills mid-write inside a library that wraps the OSError in its own error (torch.save
raises RuntimeError "[enforce fail at inline_container.cc] ..." with the OSError as its
context). Every writer
of shards, manifests, checkpoints, logs' config/summary, reports and plots goes through here.

    from atomic import atomic_open, atomic_write_text
    with atomic_open("out/x.bin") as f:
        f.write(data)
"""
import errno
import json
import os
from contextlib import contextmanager
from pathlib import Path

from errors import UserError

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)


def is_disk_full(err):
    """Whether err, or an exception it was raised from or while handling (its __cause__ /
    __context__ chain), is an OSError ENOSPC / EDQUOT."""
    seen = set()
    while err is not None and id(err) not in seen:
        if isinstance(err, OSError) and err.errno in DISK_FULL_ERRNOS:
            return True
        seen.add(id(err))
        err = err.__cause__ or err.__context__
    return False


def disk_full_error(path):
    """The UserError for a write to `path` that failed with ENOSPC / EDQUOT."""
    return UserError(f"disk full while writing {path}; free space (or choose another folder) "
                     "and rerun the same command")


@contextmanager
def atomic_open(path):
    """Open path + '.tmp' for binary writing; on success fsync and rename it over path.

    Raises UserError("disk full ...") on ENOSPC / EDQUOT; on any failure the temp file is removed.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if is_disk_full(err):
            raise disk_full_error(path) from None
        raise


def atomic_write_text(path, text):
    with atomic_open(path) as f:
        f.write(text.encode("utf-8"))


def atomic_write_json(path, obj):
    """obj as indented JSON (non-ASCII text kept as is), one trailing newline."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
