"""data/shards.py: the llm.c .bin shard format, and one clear error for each kind of bad data."""
import hashlib

import numpy as np
import pytest

from data.shards import (HEADER_BYTES, MAGIC, VERSION, list_shards, load_split, open_shard,
                         read_header, scan_shard, shard_info, write_shard)
from errors import UserError


def test_write_then_open_round_trips_in_llm_c_layout(tmp_path):
    tokens = np.array([50256, 15496, 995, 0, 65535], dtype=np.uint16)
    sha = write_shard(tmp_path / "val_000000.bin", tokens)
    raw = (tmp_path / "val_000000.bin").read_bytes()
    header = np.frombuffer(raw[:HEADER_BYTES], dtype="<i4")
    assert list(header[:3]) == [MAGIC, VERSION, 5] and not header[3:].any()
    assert np.frombuffer(raw[HEADER_BYTES:], dtype=np.uint16).tolist() == tokens.tolist()
    assert sha == hashlib.sha256(raw).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == ["val_000000.bin"]  # no temp file left
    assert read_header(tmp_path / "val_000000.bin") == 5
    shard = open_shard(tmp_path / "val_000000.bin")
    assert isinstance(shard, np.memmap) and shard.dtype == np.uint16
    assert shard.tolist() == tokens.tolist()


def test_uint32_shards_use_llm_c_llama3_header_and_round_trip(tmp_path):
    tokens = np.array([128000, 65536, 200018, 7], dtype=np.uint32)  # ids past uint16
    write_shard(tmp_path / "train_000001.bin", tokens)
    raw = (tmp_path / "train_000001.bin").read_bytes()
    assert np.frombuffer(raw[:12], dtype="<i4").tolist() == [20240801, 7, 4]
    assert len(raw) == HEADER_BYTES + 4 * 4
    assert shard_info(tmp_path / "train_000001.bin") == (4, "uint32")
    assert open_shard(tmp_path / "train_000001.bin").tolist() == tokens.tolist()
    assert scan_shard(tmp_path / "train_000001.bin")[1] == 200018


def test_a_uint32_header_with_uint16_version_is_refused(tmp_path):
    path = tmp_path / "train_000001.bin"
    write_shard(path, np.arange(10, dtype=np.uint32))
    raw = bytearray(path.read_bytes())
    raw[4:8] = np.int32(1).tobytes()  # llm.c's Llama-3 magic with GPT-2's version
    path.write_bytes(bytes(raw))
    with pytest.raises(UserError, match=r"unsupported shard version 1 \(expected 7\)"):
        open_shard(path)


def test_load_split_returns_a_splits_shards_in_order(tmp_path):
    for i in (2, 1):
        write_shard(tmp_path / f"train_{i:06d}.bin", np.full(3, i, dtype=np.uint16))
    write_shard(tmp_path / "val_000000.bin", np.zeros(4, dtype=np.uint16))
    (tmp_path / "train_000003.bin.tmp").write_bytes(b"half-written")
    (tmp_path / "manifest.json").write_text("{}")
    assert [p.name for p in list_shards(tmp_path, "train")] == ["train_000001.bin",
                                                                "train_000002.bin"]
    assert [s.tolist() for s in load_split(tmp_path, "train")] == [[1, 1, 1], [2, 2, 2]]
    assert [len(s) for s in load_split(tmp_path, "val")] == [4]


def test_missing_folder_and_missing_shards_say_how_to_prepare(tmp_path):
    with pytest.raises(UserError, match=r"folder .*nope not found.*python data/fineweb_edu.py"):
        list_shards(tmp_path / "nope", "train")
    write_shard(tmp_path / "val_000000.bin", np.zeros(4, dtype=np.uint16))
    with pytest.raises(UserError, match=r"no train shards .*python data/fineweb_edu.py --out"):
        load_split(tmp_path, "train")


def _set_header(index, value):
    def corrupt(raw):
        header = np.frombuffer(raw[:HEADER_BYTES], dtype="<i4").copy()
        header[index] = value
        return header.tobytes() + raw[HEADER_BYTES:]
    return corrupt


BAD_SHARDS = {
    "wrong magic number 7": _set_header(0, 7),
    "unsupported shard version 2": _set_header(1, 2),
    "truncated: 1038 bytes but its header says 10 tokens": lambda raw: raw[:-6],
    "oversized: 1046 bytes": lambda raw: raw + b"\0\0",
    "truncated .*smaller than the 1024-byte header": lambda raw: raw[:100],
    "header says 0 tokens": _set_header(2, 0),
}


@pytest.mark.parametrize("problem", BAD_SHARDS)
def test_each_bad_shard_stops_with_one_line_naming_the_file_and_fix(tmp_path, problem):
    path = tmp_path / "train_000001.bin"
    write_shard(path, np.arange(10, dtype=np.uint16))
    path.write_bytes(BAD_SHARDS[problem](path.read_bytes()))
    with pytest.raises(UserError, match=problem) as err:
        load_split(tmp_path, "train")
    message = str(err.value)
    assert "\n" not in message and message.startswith(str(path))
    assert f"rerun `python data/fineweb_edu.py --out {tmp_path}`" in message
