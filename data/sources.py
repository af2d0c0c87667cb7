"""Where data/fineweb_edu.py's documents come from, record by record, with each record's place.

A source is local files (JSON lines, a JSON array, or parquet; .gz for the JSON ones) or a
Hugging Face hub dataset. `records` yields one (text, problem) pair per record, in order:
(str, None) for a good document, (None, "where: what is wrong") for a bad one, so the
preparer can stop on it or skip and count it, and a record's index in the stream is the same
whatever the policy (resume relies on it). A file that cannot be read at all (empty, truncated
gzip, not the format its name says) counts as one bad record in its place.

    for text, problem in records(source):
        ...

`fingerprint` says what the source is now (file sizes and head/tail hashes, or the hub
commit), so a resumed preparation can refuse a source that changed under it.
"""
import gzip
import hashlib
import itertools
import json
import os
import re
import zlib
from pathlib import Path

from errors import UserError, one_line

GZIP_MAGIC, PARQUET_MAGIC = b"\x1f\x8b", b"PAR1"
FINGERPRINT_BYTES = 1 << 20  # hash the first and last MiB: cheap on TB of files, catches edits
HUB_TIMEOUT_S = 10  # one hub request, not datasets' retries (~25 s) when the network is gone
JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number",
              float: "a number", bool: "a boolean", type(None): "null"}
# A JSON string may spell half a UTF-16 pair ("\ud83d"), which no UTF-8 text holds: invalid text,
# like invalid UTF-8 bytes (the tokenizer would make it U+FFFD without a word)
LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def text_of(row, field):
    """(text, None) if row[field] is a string of valid text, else (None, what is wrong)."""
    if not isinstance(row, dict):
        return None, f"the record is {JSON_TYPES[type(row)]}, not an object"
    if field not in row:
        return None, (f"no {field!r} field (it has {', '.join(map(str, row)) or 'none'}; "
                      f"set --text-field if the text is elsewhere)")
    if not isinstance(row[field], str):
        return None, f"{field!r} is {JSON_TYPES.get(type(row[field]), 'not text')}, not a string"
    lone = LONE_SURROGATE.search(row[field])
    if lone:
        return None, (f"invalid text: {field!r} holds a lone UTF-16 surrogate "
                      f"(\\u{ord(lone[0]):04x} at character {lone.start() + 1})")
    return row[field], None


def sniff(path, compressed):
    """What is wrong with a file judged by its first bytes, or None."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "empty file"
    if compressed and head[:2] != GZIP_MAGIC:
        return "not gzip-compressed although its name ends in .gz"
    if not compressed and head[:2] == GZIP_MAGIC:
        return "gzip-compressed although its name does not end in .gz; rename it to *.gz"
    if head == PARQUET_MAGIC:
        return "a parquet file, not JSON; rename it to *.parquet"
    return None


def json_records(path, field):
    """Records of a JSON-lines file (or a file holding one JSON array), optionally gzipped."""
    compressed = path.suffix == ".gz"
    problem = sniff(path, compressed)
    if problem:
        yield None, f"{path}: {problem}"
        return
    line = 0
    try:
        with (gzip.open if compressed else open)(path, "rb") as f:
            first = f.peek(1)[:1] if hasattr(f, "peek") else b""
            if first == b"[":  # one JSON array, as datasets' json loader also accepts
                yield from json_array_records(path, f.read(), field)
                return
            for line, raw in enumerate(f, start=1):
                if not raw.strip():
                    continue
                try:
                    row = json.loads(raw.decode("utf-8").rstrip("\r\n"))
                except UnicodeDecodeError as err:
                    yield None, f"{path}, line {line}: invalid UTF-8 (byte {err.start + 1} of the line)"
                    continue
                except json.JSONDecodeError as err:
                    yield None, f"{path}, line {line}: not valid JSON ({err.msg}, column {err.colno})"
                    continue
                text, problem = text_of(row, field)
                yield text, problem and f"{path}, line {line}: {problem}"
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        yield None, f"{path}: damaged or truncated gzip after line {line} ({err})"
        return
    if line == 0:
        yield None, f"{path}: empty file (no records)"


def json_array_records(path, data, field):
    """Records of a file holding one JSON array (data: its bytes), numbered from 1."""
    try:
        rows = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        yield None, f"{path}: not a valid JSON array ({err})"
        return
    if not rows:
        yield None, f"{path}: empty JSON array (no records)"
    for i, row in enumerate(rows, start=1):
        text, problem = text_of(row, field)
        yield text, problem and f"{path}, record {i}: {problem}"


def parquet_records(path, field):
    """Records of a parquet file's `field` column, rows numbered from 1."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        parquet = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        yield None, f"{path}: not a readable parquet file ({err})"
        return
    if field not in parquet.schema_arrow.names:
        raise UserError(f"{path} has no {field!r} column (it has "
                        f"{', '.join(parquet.schema_arrow.names)}); set --text-field")
    row = 0
    try:
        for batch in parquet.iter_batches(columns=[field], batch_size=1024):
            for text in batch.column(0).to_pylist():
                row += 1
                ok = isinstance(text, str)
                yield (text, None) if ok else (None, f"{path}, row {row}: {field!r} is "
                                                     f"{JSON_TYPES.get(type(text), 'not text')}, not a string")
    except (pa.ArrowException, OSError) as err:
        yield None, f"{path}: damaged parquet after row {row} ({err})"
        return
    if row == 0:
        yield None, f"{path}: empty file (no rows)"


def hub_records(source, revision):
    """Records of a hub dataset at `revision`, streamed, numbered from 1.

    The dataset is opened now (so a hub that cannot be reached stops the preparer before it
    starts, with one line), its rows are read as the iterator is consumed. Raises UserError
    when it cannot be opened, lacks the text field, or the connection is lost mid-stream (after
    datasets' own retries).
    """
    import datasets  # slow to import; only the hub path needs it
    try:
        ds = datasets.load_dataset(source["dataset"], name=source["name"], split=source["split"],
                                   streaming=True, revision=revision)
    except Exception as err:  # no network, offline mode, an unknown config: datasets' ConnectionError & co.
        raise hub_error(source["dataset"], one_line(err)) from None
    field = source["text_field"]
    if ds.features is not None and field not in ds.features:
        raise UserError(f"the source has no {field!r} field (it has {', '.join(ds.features)}); "
                        f"set --text-field")
    return hub_rows(iter(ds.select_columns([field])), source["dataset"], field)


def hub_rows(rows, dataset, field):
    """(text, problem) of each streamed row; a read that fails (the network went away) is one line."""
    for i in itertools.count(1):
        try:
            row = next(rows)
        except StopIteration:
            return
        except Exception as err:  # datasets retried already; its errors vary with the transport
            raise UserError(f"lost the Hugging Face hub while streaming {dataset} after record "
                            f"{i - 1:,} ({one_line(err)}); rerun the same command to resume after "
                            f"the shards already written") from None
        text, problem = text_of(row, field)
        yield text, problem and f"{dataset} record {i}: {problem}"


def records(source, revision=None):
    """An iterator of (text, None) or (None, problem) for every record of the source, in order.

    source: the preparer's settings["source"] (data_files + format, or dataset + name);
    revision: the hub commit to read (see hub_revision). Raises UserError for a text field a
    parquet file or hub dataset does not have, and for a hub dataset that cannot be opened
    (at once) or read (as it is consumed).
    """
    if "data_files" not in source:
        return hub_records(source, revision)
    return local_records(source)


def local_records(source):
    """Records of the source's data_files, file after file."""
    for path in map(Path, source["data_files"]):
        if source["format"] == "parquet":
            yield from parquet_records(path, source["text_field"])
        else:
            yield from json_records(path, source["text_field"])


def hub_error(dataset, why):
    return UserError(f"cannot get {dataset} from the Hugging Face hub ({why}); connect to the "
                     f"internet (and unset HF_HUB_OFFLINE and HF_DATASETS_OFFLINE), or prepare "
                     f"local files with --data-files PATH ...")


def hub_revision(dataset):
    """The commit (40-hex sha) the hub's default branch of `dataset` resolves to now.

    One request with a HUB_TIMEOUT_S timeout (datasets' own requests retry for ~25 s); raises
    UserError naming the fix (network, offline mode, or local files through --data-files) when
    the hub cannot be reached or datasets' offline mode (HF_DATASETS_OFFLINE, else
    HF_HUB_OFFLINE) is on: streaming always needs the hub.
    """
    import datasets.config
    from huggingface_hub import HfApi
    if datasets.config.HF_HUB_OFFLINE:
        raise hub_error(dataset, "offline mode is on: HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set")
    try:
        return HfApi().dataset_info(dataset, timeout=HUB_TIMEOUT_S).sha
    except Exception as err:  # no network, unknown dataset: all say the same fix
        raise hub_error(dataset, one_line(err)) from None


def file_fingerprint(path):
    """{"bytes": size, "head_tail_sha256": sha256 of the size, first and last MiB}."""
    size = os.path.getsize(path)
    sha = hashlib.sha256(str(size).encode())
    with open(path, "rb") as f:
        sha.update(f.read(FINGERPRINT_BYTES))
        if size > FINGERPRINT_BYTES:
            f.seek(max(FINGERPRINT_BYTES, size - FINGERPRINT_BYTES))
            sha.update(f.read())
    return {"bytes": size, "head_tail_sha256": sha.hexdigest()}


def fingerprint(source, revision=None):
    """What the source is now: per local file its size and head/tail hash, or the hub commit."""
    if "data_files" in source:
        return {"files": [file_fingerprint(p) for p in source["data_files"]]}
    return {"revision": revision}
