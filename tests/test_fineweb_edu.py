"""data/fineweb_edu.py: every document comes back, EOT first; workers, crashes and reruns
never change the bytes; misuse stops with one clear line."""
import gzip
import json
import random
import shutil
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import FINEWEB_EDU_SAMPLE, FINEWEB_SAMPLE, REPO_ROOT
from data import fineweb_edu
from data.shards import data_differences, data_identity, load_split, open_shard
from errors import UserError
from tokenizer import EOT_ID, get_encoding

SMALL = ["--val-tokens", "500", "--shard-tokens", "1e3", "--train-tokens", "all"]


@pytest.fixture(scope="module")
def texts():
    """120 documents: words, unicode, an empty one, a literal <|endoftext|>, a very long one."""
    rng = random.Random(0)
    words = ["the", "cat", "sat", "naïve", "日本語", "🙂", "spelling", "Kronecker", "\n", "42,"]
    docs = [" ".join(rng.choices(words, k=rng.randint(1, 150))) for _ in range(120)]
    docs[5], docs[17] = "", "text with <|endoftext|> inside is ordinary text"
    docs[40] = " ".join(rng.choices(words, k=2500))  # spans several shards
    return docs


@pytest.fixture(scope="module")
def jsonl(texts, tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(texts)))
    return path


def prepare(out, src, *flags):
    return fineweb_edu.main(["--data-files", str(src), "--out", str(out), "--workers", "1",
                             *SMALL, *flags])


def documents_in(out):
    """Split a prepared folder's tokens (val then train) at EOT: one token list per document."""
    tokens = np.concatenate(load_split(out, "val") + load_split(out, "train"))
    assert tokens[0] == EOT_ID
    starts = np.flatnonzero(tokens == EOT_ID)
    return [tokens[a + 1:b].tolist() for a, b in zip(starts, list(starts[1:]) + [len(tokens)])]


def sha256s(manifest):
    return [(e["file"], e["sha256"]) for e in manifest["shards"]]


def test_every_document_comes_back_in_order_each_after_eot(tmp_path, jsonl, texts):
    manifest = prepare(tmp_path, jsonl)
    enc = get_encoding()
    docs = documents_in(tmp_path)
    assert [enc.decode(d) for d in docs] == texts
    assert docs == [enc.encode_ordinary(t) for t in texts]
    sizes = [len(open_shard(tmp_path / e["file"])) for e in manifest["shards"]]
    assert sizes == [e["tokens"] for e in manifest["shards"]]
    assert sizes[0] == 500 and set(sizes[1:-1]) == {1000} and 0 < sizes[-1] <= 1000
    assert manifest["total_tokens"] == sum(sizes) == len(texts) + sum(map(len, docs))
    assert manifest["docs"] == sum(e["docs"] for e in manifest["shards"]) == len(texts)
    assert manifest["complete"] and manifest["source_exhausted"]
    assert manifest["settings"]["eot_placement"] == "before every document"
    assert json.loads((tmp_path / "manifest.json").read_text()) == manifest


def test_train_tokens_caps_the_train_split_exactly(tmp_path, jsonl):
    manifest = prepare(tmp_path, jsonl, "--train-tokens", "2_500")
    assert [e["tokens"] for e in manifest["shards"]] == [500, 1000, 1000, 500]
    assert manifest["train_tokens"] == 2500 and not manifest["source_exhausted"]


def test_workers_and_input_format_do_not_change_the_bytes(tmp_path, jsonl, texts):
    reference = sha256s(prepare(tmp_path / "w1", jsonl))
    assert sha256s(prepare(tmp_path / "w2", jsonl, "--workers", "2")) == reference
    gz = tmp_path / "docs.jsonl.gz"
    gz.write_bytes(gzip.compress(jsonl.read_bytes()))
    assert sha256s(prepare(tmp_path / "gz", gz)) == reference
    parquet = tmp_path / "docs.parquet"
    pq.write_table(pa.table({"text": texts}), parquet, row_group_size=7)
    assert sha256s(prepare(tmp_path / "pq", parquet)) == reference


@pytest.mark.parametrize("stop_after", [1, 3])
def test_interrupted_run_resumes_to_identical_shards(tmp_path, jsonl, stop_after):
    reference = sha256s(prepare(tmp_path / "ref", jsonl))
    out = tmp_path / "out"
    partial = prepare(out, jsonl, "--stop-after-shards", str(stop_after))
    assert not partial["complete"] and len(partial["shards"]) == stop_after
    last = out / partial["shards"][-1]["file"]
    kept_mtime = last.stat().st_mtime_ns
    (out / f"train_{stop_after:06d}.bin.tmp").write_bytes(b"killed while writing")
    assert sha256s(prepare(out, jsonl)) == reference
    assert last.stat().st_mtime_ns == kept_mtime  # kept, not rewritten
    assert not list(out.glob("*.tmp"))
    assert prepare(out, jsonl)["complete"]  # a finished folder: nothing to do


def test_damaged_shard_is_caught_by_the_reader_and_rewritten_by_a_rerun(tmp_path, jsonl):
    reference = sha256s(prepare(tmp_path, jsonl))
    shard = tmp_path / "train_000004.bin"
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(UserError, match="train_000004.bin: truncated"):
        load_split(tmp_path, "train")
    assert sha256s(prepare(tmp_path, jsonl)) == reference


def test_other_settings_stop_unless_overwrite(tmp_path, jsonl):
    prepare(tmp_path, jsonl)
    with pytest.raises(UserError, match=r"different settings \(shard_tokens\).*--overwrite"):
        prepare(tmp_path, jsonl, "--shard-tokens", "2000")
    manifest = prepare(tmp_path, jsonl, "--shard-tokens", "2000", "--overwrite")
    assert manifest["settings"]["shard_tokens"] == 2000
    assert sorted(p.name for p in tmp_path.glob("*.bin")) == [e["file"] for e in
                                                              sorted(manifest["shards"],
                                                                     key=lambda e: e["file"])]
    (tmp_path / "manifest.json").unlink()
    with pytest.raises(UserError, match="holds shards but no manifest.json"):
        prepare(tmp_path, jsonl)


def test_bad_inputs_stop_with_a_clear_error(tmp_path, jsonl):
    with pytest.raises(UserError, match="ran out after .* lower --val-tokens"):
        prepare(tmp_path / "a", jsonl, "--val-tokens", "1e9")
    with pytest.raises(UserError, match="no 'body' field .*--text-field"):
        prepare(tmp_path / "b", jsonl, "--text-field", "body")
    with pytest.raises(UserError, match="--data-files must all be .json, .jsonl or .parquet"):
        prepare(tmp_path / "c", tmp_path / "docs.txt")


@pytest.mark.parametrize("arg", ["0", "-3", "1.5", "1e-3", "ten", "all", "inf", ""])
def test_token_counts_must_be_positive_whole_numbers(arg):
    with pytest.raises(UserError, match="bad token count"):
        fineweb_edu.token_count(arg)


def test_token_counts_accept_scientific_and_underscored_forms():
    assert fineweb_edu.token_count("1e8") == fineweb_edu.token_count("100_000_000") == 10**8
    assert fineweb_edu.token_count("all", allow_all=True) is None


def test_cli_prints_one_line_and_exits_2():
    run = subprocess.run([sys.executable, "data/fineweb_edu.py", "--shard-tokens", "1.5"],
                         cwd=REPO_ROOT, capture_output=True, text=True)
    assert run.returncode == 2
    assert run.stderr.splitlines() == ["error: bad token count '1.5': give a positive whole "
                                       "number such as 1e8 or 100_000_000"]


def read_texts(path):
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


@pytest.mark.parametrize("sample", [FINEWEB_EDU_SAMPLE, FINEWEB_SAMPLE], ids=["edu", "fineweb"])
def test_real_sample_round_trips(tmp_path, sample):
    if not sample.exists():
        pytest.skip(f"{sample} not present")
    manifest = fineweb_edu.main(["--data-files", str(sample), "--out", str(tmp_path),
                                 "--val-tokens", "20_000", "--shard-tokens", "50_000",
                                 "--train-tokens", "130_000", "--workers", "2"])
    assert [e["tokens"] for e in manifest["shards"]] == [20_000, 50_000, 50_000, 30_000]
    enc = get_encoding()
    docs, texts = documents_in(tmp_path), read_texts(sample)
    assert [enc.decode(d) for d in docs[:-1]] == texts[:len(docs) - 1]
    assert docs[-1] == enc.encode_ordinary(texts[len(docs) - 1])[:len(docs[-1])]  # cut at the cap


def test_the_data_identity_is_its_content_whatever_the_path(tmp_path, jsonl, texts):
    """Issue 21 item 3: train.py and the sweep name data by the manifest's content, not its path."""
    sizes = ["--val-tokens", "500", "--shard-tokens", "1e3", "--train-tokens", "2000"]
    prepare(tmp_path / "a", jsonl, *sizes)
    other_source = tmp_path / "other" / jsonl.name  # same file name, other documents
    other_source.parent.mkdir()
    other_source.write_text("".join(json.dumps({"text": t}) + "\n" for t in reversed(texts)))
    prepare(tmp_path / "b", other_source, *sizes)
    a, b = data_identity(tmp_path / "a"), data_identity(tmp_path / "b")
    assert a["shards"] == b["shards"] == {"val_000000.bin": 500, "train_000001.bin": 1000, "train_000002.bin": 1000}
    assert data_differences(a, b) == [
        "source local files docs.jsonl != local files docs.jsonl (same names, other content)",
        "content (same shard sizes, other tokens: content sha256 and sample sha256 differ)"]
    shutil.copytree(tmp_path / "a", tmp_path / "moved")
    (tmp_path / "link").symlink_to(tmp_path / "moved")
    assert data_identity(f"{tmp_path / 'link'}/") == a  # moved, linked, a trailing slash: the same data
    (tmp_path / "moved" / "manifest.json").unlink()  # someone else's copy of the shards
    bare = data_identity(tmp_path / "moved")
    assert bare["content_sha256"] is None and data_differences(a, bare) == []
