"""Report files of the eval scripts: atomic writes (atomic.py) that fail with one clear line.

A read-only --out, an --out that names a file, or a full disk is a UserError naming the path,
not a traceback.
Not a script; import it: `from eval.outputs import write_text, write_json, report_file`.
"""
from contextlib import contextmanager

from atomic import atomic_open, atomic_write_json, atomic_write_text
from errors import UserError


def cannot_write(path, err):
    return UserError(f"cannot write {path}: {err.strerror or err}; pass --out a folder you can write to")


@contextmanager
def report_file(path):
    """atomic_open(path) (a binary file handle) with OSError turned into one UserError line."""
    try:
        with atomic_open(path) as f:
            yield f
    except OSError as err:
        raise cannot_write(path, err) from None


def write_text(path, text):
    try:
        atomic_write_text(path, text)
    except OSError as err:
        raise cannot_write(path, err) from None


def write_json(path, obj):
    try:
        atomic_write_json(path, obj)
    except OSError as err:
        raise cannot_write(path, err) from None
