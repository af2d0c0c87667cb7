"""Shared test setup: paths to the shared data samples, Ctrl-C, and a disk that fills mid-write.
(The offline tiktoken files beside the repo, ../shared/tiktoken_cache, are found by tokenizer.py
itself.)"""
import errno
import os
import signal
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = REPO_ROOT.parent / "shared"
FINEWEB_EDU_SAMPLE = SHARED / "data" / "fineweb_edu_sample" / "sample.jsonl"
FINEWEB_SAMPLE = SHARED / "data" / "fineweb_sample" / "train.jsonl.gz"

# A shell starts a background job (`pytest ... &`, nohup, some CI runners) with SIGINT ignored, and
# an ignored signal stays ignored in every child: the Ctrl-C tests would then test nothing. Python's
# own handler here makes SIGINT a KeyboardInterrupt in this process and the default in children.
signal.signal(signal.SIGINT, signal.default_int_handler)


class FillingDisk:
    """A stand-in for open() in atomic.py (monkeypatch.setattr(atomic, "open", ..., raising=False))
    whose files with `name_part` in their path hold only `room` more bytes in all, then fail with
    ENOSPC part-way through a write: a disk that fills mid-write, as on a small tmpfs."""

    def __init__(self, room, name_part):
        self.room, self.name_part = room, name_part

    def __call__(self, path, mode="r", *args, **kwargs):
        f = open(path, mode, *args, **kwargs)
        return _FillingFile(f, self) if self.name_part in str(path) else f


class _FillingFile:
    def __init__(self, f, disk):
        self.f, self.disk = f, disk

    def write(self, data):
        n = memoryview(data).nbytes
        if n > self.disk.room:
            self.f.write(memoryview(data).cast("B")[:self.disk.room])
            self.disk.room = 0
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.disk.room -= n
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()
