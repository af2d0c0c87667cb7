"""data/fineweb_edu.py under faults: a bad record, a bad file, a changed source, an unwritable or
full disk, a broken manifest, no network, Ctrl-C. Each stops with one line (or, with
--bad-records=skip, drops and counts the record), leaves no temp file, and a rerun resumes."""
import errno
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import atomic
from conftest import FINEWEB_SAMPLE, REPO_ROOT
from data import fineweb_edu
from data.shards import load_split
from tokenizer import get_tokenizer
from errors import UserError

SMALL = ["--val-tokens", "200", "--shard-tokens", "300", "--train-tokens", "all", "--workers", "1"]
GOOD = [json.dumps({"text": f"document {i}: " + "some words " * (i % 17), "id": i}) for i in range(60)]


def prepare(out, *files, flags=()):
    return fineweb_edu.main(["--data-files", *map(str, files), "--out", str(out), *SMALL, *flags])


def sha256s(manifest):
    return [(e["file"], e["sha256"]) for e in manifest["shards"]]


def write_lines(path, lines):
    path.write_bytes(b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n"
                             for line in lines))
    return path


# the bad record, at line 8 of 61, and the words the one-line error names it with
BAD_RECORDS = {
    "null text": ('{"text": null}', "'text' is null, not a string"),
    "missing text": ('{"body": "x"}', "no 'text' field \\(it has body"),
    "text not a string": ('{"text": 42}', "'text' is a number, not a string"),
    "invalid UTF-8": (b'{"text": "caf\xe9"}', "invalid UTF-8 \\(byte 14 of the line\\)"),
    "malformed JSON": ('{"text": "unterminated', "not valid JSON \\(Unterminated string"),
    "not an object": ('["text"]', "the record is an array, not an object"),
    # a JSON escape of half a UTF-16 pair: invalid text, like invalid UTF-8 (issue 21 §7)
    "lone surrogate": ('{"text": "a \\ud83d b"}',
                       r"invalid text: 'text' holds a lone UTF-16 surrogate \(\\ud83d at character 3\)"),
}


@pytest.mark.parametrize("kind", BAD_RECORDS)
def test_a_bad_record_stops_naming_file_and_line_or_is_skipped_and_counted(tmp_path, kind):
    line, problem = BAD_RECORDS[kind]
    src = write_lines(tmp_path / "docs.jsonl", GOOD[:7] + [line] + GOOD[7:])
    with pytest.raises(UserError, match=rf"^bad record: {src}, line 8: {problem}.*; fix or remove "
                                        rf"it, or rerun with --bad-records=skip"):
        prepare(tmp_path / "error", src)
    skipped = prepare(tmp_path / "error", src, flags=["--bad-records=skip"])  # resumes the same --out
    assert skipped["complete"] and skipped["bad_records"]["count"] == 1
    [listed] = skipped["bad_records"]["listed"]
    assert listed["record"] == 7 and listed["where"].startswith(f"{src}, line 8: ")
    clean = prepare(tmp_path / "clean", write_lines(tmp_path / "clean.jsonl", GOOD))
    assert sha256s(skipped) == sha256s(clean)  # the same shards as without the record
    again = prepare(tmp_path / "again", src, flags=["--bad-records=skip"])
    assert sha256s(again) == sha256s(clean) and again["bad_records"] == skipped["bad_records"]


def test_a_surrogate_pair_spelled_in_json_is_one_good_character():
    from data.sources import text_of
    assert text_of(json.loads('{"text": "\\ud83d\\ude00"}'), "text") == ("\U0001F600", None)


def empty(path):
    path.with_suffix(".jsonl").write_bytes(b"")
    return path.with_suffix(".jsonl")


def truncated_gzip(path):
    path.with_suffix(".jsonl.gz").write_bytes(gzip.compress("\n".join(GOOD).encode())[:-40])
    return path.with_suffix(".jsonl.gz")


def plain_named_gz(path):
    return write_lines(path.with_suffix(".jsonl.gz"), GOOD)


def gzip_named_jsonl(path):
    path.with_suffix(".jsonl").write_bytes(gzip.compress("\n".join(GOOD).encode()))
    return path.with_suffix(".jsonl")


# a file that cannot be read as what its name says: one bad "record" in its place
BAD_FILES = {
    "empty file": (empty, "empty file"),
    "truncated gzip": (truncated_gzip, "damaged or truncated gzip after line"),
    ".gz that is not gzip": (plain_named_gz, "not gzip-compressed although its name ends in .gz"),
    ".jsonl that is gzip": (gzip_named_jsonl, "gzip-compressed although its name does not end"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
def test_a_bad_file_stops_naming_it_or_is_skipped_as_one_bad_record(tmp_path, kind):
    make, problem = BAD_FILES[kind]
    good = write_lines(tmp_path / "good.jsonl", GOOD)
    bad = make(tmp_path / "bad")
    with pytest.raises(UserError, match=rf"^bad record: {bad}: {problem}"):
        prepare(tmp_path / "error", bad, good)
    skipped = prepare(tmp_path / "skip", bad, good, flags=["--bad-records=skip"])
    assert skipped["complete"] and skipped["bad_records"]["count"] == 1
    assert problem in skipped["bad_records"]["listed"][0]["where"]


def test_a_parquet_file_that_is_not_parquet_is_a_bad_file(tmp_path):
    fake = write_lines(tmp_path / "docs.parquet", GOOD)
    with pytest.raises(UserError, match=rf"bad record: {fake}: not a readable parquet file"):
        prepare(tmp_path / "out", fake)


def test_only_bad_records_say_so_instead_of_lower_val_tokens(tmp_path):
    src = write_lines(tmp_path / "docs.jsonl", ['{"text": null}'] * 3)
    with pytest.raises(UserError, match=r"no usable documents; 3 bad records were skipped, the "
                                        r"first: .*docs.jsonl, line 1: 'text' is null"):
        prepare(tmp_path / "out", src, flags=["--bad-records=skip"])


def test_a_changed_local_source_is_refused_on_resume(tmp_path):
    src = write_lines(tmp_path / "docs.jsonl", GOOD)
    prepare(tmp_path / "out", src, flags=["--stop-after-shards", "2"])
    write_lines(src, GOOD[:30] + ['{"text": "an edit"}'] + GOOD[31:])  # same size or not: refused
    with pytest.raises(UserError, match=rf"{src} changed since .* was prepared from it \(size or "
                                        rf"content\); restore it, or use another --out or add --overwrite"):
        prepare(tmp_path / "out", src)
    fingerprint = prepare(tmp_path / "out", src, flags=["--overwrite"])["source_fingerprint"]
    assert fingerprint["files"][0]["bytes"] == src.stat().st_size


def test_a_moved_hub_revision_is_refused_on_resume(tmp_path, monkeypatch):
    texts = [json.loads(line)["text"] for line in GOOD]
    monkeypatch.setattr(fineweb_edu, "records", lambda source, revision: ((t, None) for t in texts))
    monkeypatch.setattr(fineweb_edu, "hub_revision", lambda dataset: "a" * 40)
    hub = ["--out", str(tmp_path), *SMALL]
    partial = fineweb_edu.main(hub + ["--stop-after-shards", "1"])
    assert partial["source_fingerprint"] == {"revision": "a" * 40}
    monkeypatch.setattr(fineweb_edu, "hub_revision", lambda dataset: "b" * 40)
    with pytest.raises(UserError, match=f"now at revision {'b' * 40}, but .* prepared from revision "
                                        f"{'a' * 40}; use another --out or add --overwrite"):
        fineweb_edu.main(hub)


def test_a_failed_start_does_not_pin_its_settings(tmp_path):
    src = write_lines(tmp_path / "docs.jsonl", GOOD)
    with pytest.raises(UserError, match=r"ran out after 1,\d{3} tokens, before the validation shard "
                                        r"\(--val-tokens 1,000,000\) was full; lower --val-tokens to at most"):
        prepare(tmp_path / "out", src, flags=["--val-tokens", "1e6"])
    assert not list((tmp_path / "out").glob("*.bin"))
    assert prepare(tmp_path / "out", src)["complete"]  # other settings: no "different settings"


def test_a_start_killed_before_its_first_manifest_entry_does_not_pin_its_settings(tmp_path):
    # Killed between writing the val shard and listing it, with a temp file beside it: nothing in
    # the manifest, so other settings take the folder without --overwrite and leave no stray file.
    src = write_lines(tmp_path / "docs.jsonl", GOOD)
    out = tmp_path / "out"
    prepare(out, src, flags=["--stop-after-shards", "1"])
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "shards": []}))
    (out / "train_000001.bin.tmp").write_bytes(b"killed while writing")
    fresh = prepare(tmp_path / "fresh", src, flags=["--shard-tokens", "250"])
    assert sha256s(prepare(out, src, flags=["--shard-tokens", "250"])) == sha256s(fresh)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in (tmp_path / "fresh").iterdir())


def test_a_partial_preparation_with_real_shards_keeps_its_settings(tmp_path):
    src = write_lines(tmp_path / "docs.jsonl", GOOD)
    out = tmp_path / "out"
    partial = prepare(out, src, flags=["--stop-after-shards", "2"])
    with pytest.raises(UserError, match=r"prepared with different settings \(shard_tokens\); use "
                                        r"another --out or add --overwrite to replace it"):
        prepare(out, src, flags=["--shard-tokens", "250"])
    assert prepare(out, src)["shards"][:2] == partial["shards"]  # the same command still resumes


def test_out_that_is_a_file_or_unwritable_stops_with_one_line(tmp_path, monkeypatch):
    src = write_lines(tmp_path / "docs.jsonl", GOOD)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="--out .*file is a file, not a folder"):
        prepare(tmp_path / "file", src)

    def read_only(path, mode="r", *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))
    monkeypatch.setattr(atomic, "open", read_only, raising=False)
    with pytest.raises(UserError, match=r"cannot write .*manifest.json \(Read-only file system\); "
                                        r"choose a writable --out"):
        prepare(tmp_path / "out", src)


def test_a_full_disk_says_so_leaves_no_temp_file_and_a_rerun_resumes(tmp_path, monkeypatch):
    src = write_lines(tmp_path / "docs.jsonl", GOOD)
    reference = sha256s(prepare(tmp_path / "ref", src))
    fsyncs, real_fsync = [], os.fsync

    def fill_up(fd):  # the disk fills during the 4th file written (manifest, val, manifest, train)
        fsyncs.append(fd)
        if len(fsyncs) == 4:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fill_up)
    with pytest.raises(UserError, match=r"disk full while writing .*train_000001.bin; free space.* "
                                        r"and rerun the same command"):
        prepare(tmp_path / "out", src)
    assert not list((tmp_path / "out").glob("*.tmp"))
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert sha256s(prepare(tmp_path / "out", src)) == reference


def test_a_truncated_or_settingless_manifest_stops_with_one_line(tmp_path):
    src = write_lines(tmp_path / "docs.jsonl", GOOD)
    prepare(tmp_path, src)
    text = (tmp_path / "manifest.json").read_text()
    (tmp_path / "manifest.json").write_text(text[:100])
    with pytest.raises(UserError, match="manifest.json is not valid JSON .*add --overwrite"):
        prepare(tmp_path, src)
    (tmp_path / "manifest.json").write_text(json.dumps({"shards": []}))
    with pytest.raises(UserError, match="manifest.json has no settings.*add --overwrite"):
        prepare(tmp_path, src)
    assert prepare(tmp_path, src, flags=["--overwrite"])["complete"]


@pytest.mark.parametrize("flag", ["--val-tokens", "--shard-tokens"])
def test_a_shard_larger_than_the_format_holds_is_refused_before_any_allocation(flag):
    with pytest.raises(UserError, match=rf"{flag} 1,000,000,000,000 is more than one shard can "
                                        rf"hold \(2,147,483,647 tokens\)"):
        fineweb_edu.get_args([flag, "1e12"])


def test_no_tokenizer_cache_offline_says_to_set_tiktoken_cache_dir(tmp_path, monkeypatch):
    import requests
    import tiktoken.registry

    def offline(*args, **kwargs):
        raise requests.exceptions.ConnectionError("Name or service not known")
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})  # nothing loaded in this process yet
    get_tokenizer.cache_clear()
    monkeypatch.setattr(requests, "get", offline)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    with pytest.raises(UserError, match=rf"cannot load the GPT-2 tokenizer: its files are not in "
                                        rf"TIKTOKEN_CACHE_DIR={tmp_path} and the download failed "
                                        rf"\(ConnectionError\); set TIKTOKEN_CACHE_DIR"):
        prepare(tmp_path / "out", write_lines(tmp_path / "docs.jsonl", GOOD))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_without_the_hub_one_line_names_data_files(tmp_path):
    run = subprocess.run([sys.executable, "data/fineweb_edu.py", "--out", str(tmp_path / "out")],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 2 and len(run.stderr.splitlines()) == 1
    assert run.stderr.startswith("error: cannot get HuggingFaceFW/fineweb-edu from the Hugging "
                                 "Face hub (offline mode is on: HF_HUB_OFFLINE or HF_DATASETS_OFFLINE")
    assert "--data-files PATH" in run.stderr and not (tmp_path / "out").exists()


def hub_prepare(out):
    """The preparer on its default source, FineWeb-Edu on the hub."""
    return fineweb_edu.main(["--out", str(out), *SMALL])


def test_datasets_offline_mode_stops_before_any_request(tmp_path, monkeypatch):
    import datasets.config
    from huggingface_hub import HfApi
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # HF_DATASETS_OFFLINE=1 sets it
    monkeypatch.setattr(HfApi, "dataset_info", lambda *a, **k: pytest.fail("no request offline"))
    with pytest.raises(UserError, match=r"^cannot get HuggingFaceFW/fineweb-edu from the Hugging Face "
                                        r"hub \(offline mode is on: .*--data-files PATH"):
        hub_prepare(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_hub_dataset_that_cannot_be_opened_is_one_line_before_any_manifest(tmp_path, monkeypatch):
    # The hub answered hub_revision's request, then datasets' own requests fail (they retry ~25 s).
    import datasets

    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'HuggingFaceFW/fineweb-edu' on the Hub (LocalEntryNotFoundError)")
    monkeypatch.setattr(fineweb_edu, "hub_revision", lambda dataset: "a" * 40)
    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(UserError, match=r"^cannot get HuggingFaceFW/fineweb-edu from the Hugging Face "
                                        r"hub \(ConnectionError: Couldn't reach .*--data-files PATH"):
        hub_prepare(tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []  # no manifest: any settings may start here


class HubStream:
    """What datasets.load_dataset(..., streaming=True) returns, streaming `texts`; with `drops`,
    the connection is lost after them."""
    features = None

    def __init__(self, texts, drops):
        self.texts, self.drops = texts, drops

    def select_columns(self, columns):
        yield from ({"text": text} for text in self.texts)
        if self.drops:
            raise ConnectionError("Server disconnected")


def test_a_hub_stream_lost_midway_is_one_line_and_the_rerun_resumes(tmp_path, monkeypatch):
    import datasets
    texts = [json.loads(line)["text"] for line in GOOD]
    monkeypatch.setattr(fineweb_edu, "hub_revision", lambda dataset: "a" * 40)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: HubStream(texts[:30], drops=True))
    with pytest.raises(UserError, match=r"^lost the Hugging Face hub while streaming "
                                        r"HuggingFaceFW/fineweb-edu after record 30 \(ConnectionError: "
                                        r"Server disconnected\); rerun the same command to resume"):
        hub_prepare(tmp_path / "out")
    written = json.loads((tmp_path / "out" / "manifest.json").read_text())["shards"]
    assert written  # the shards before the loss are kept
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: HubStream(texts, drops=False))
    resumed = hub_prepare(tmp_path / "out")
    local = prepare(tmp_path / "local", write_lines(tmp_path / "docs.jsonl", GOOD))
    assert resumed["shards"][:len(written)] == written and sha256s(resumed) == sha256s(local)


@pytest.mark.slow
def test_ctrl_c_with_two_workers_exits_at_once_leaves_no_process_and_the_rerun_resumes(tmp_path):
    if not FINEWEB_SAMPLE.exists():
        pytest.skip(f"{FINEWEB_SAMPLE} not present")
    flags = ["--data-files", str(FINEWEB_SAMPLE), "--val-tokens", "5e4", "--shard-tokens", "1e5",
             "--train-tokens", "8e5"]  # 6 shards still to write after the last interrupt
    reference = sha256s(fineweb_edu.main([*flags, "--out", str(tmp_path / "ref"), "--workers", "1"]))
    for trial in range(3):  # interrupt while the val shard, the 1st, the 2nd train shard are written
        out = tmp_path / f"out{trial}"
        cmd = [sys.executable, "data/fineweb_edu.py", *flags, "--out", str(out), "--workers", "2"]
        run = subprocess.Popen(cmd, cwd=REPO_ROOT, start_new_session=True, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        written = out / ("val_000000.bin" if trial == 0 else f"train_{trial:06d}.bin")
        while not written.exists() and run.poll() is None:
            time.sleep(0.01)
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C does: the whole process group
        _, stderr = run.communicate(timeout=20)  # a hang detector, not a speed assertion
        assert run.returncode == 130, stderr
        assert stderr.splitlines()[-1] == ("interrupted; rerun the same command to resume after "
                                           "the shards already written")
        time.sleep(0.5)  # give the killed workers time to be reaped
        with pytest.raises(ProcessLookupError):  # no worker left behind in the group
            os.killpg(run.pid, 0)
        assert not list(out.glob("*.tmp"))
        assert sha256s(fineweb_edu.main([*flags, "--out", str(out), "--workers", "2"])) == reference
        assert np.array_equal(np.concatenate(load_split(out, "train")),
                              np.concatenate(load_split(tmp_path / "ref", "train")))
        shutil.rmtree(out)
