"""data/shards.check_data_dir: before any model is built, train.py trains only on data that is
what its manifest.json says, or stops with one line that names the problem and a fix that works."""
import json
import shlex
import shutil

import numpy as np
import pytest

import train
from data import fineweb_edu
from data.shards import check_data_dir, scan_shard, write_shard
from errors import UserError

VOCAB, VAL = 50304, 500  # GPT-2's padded vocabulary; the val shard prepared below


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A folder prepared by data/fineweb_edu.py: 500 val tokens and train shards of 1000."""
    src = tmp_path_factory.mktemp("src") / "docs.jsonl"
    src.write_text("".join(json.dumps({"text": f"document {i} " + "word " * (i % 50)}) + "\n"
                           for i in range(300)))
    out = tmp_path_factory.mktemp("prepared") / "data"
    fineweb_edu.main(["--data-files", str(src), "--out", str(out), "--val-tokens", str(VAL),
                      "--shard-tokens", "1000", "--train-tokens", "3000", "--workers", "1"])
    return out


@pytest.fixture
def data(prepared, tmp_path):
    """A private copy of the prepared folder, to damage."""
    return shutil.copytree(prepared, tmp_path / "data")


def edit_manifest(data, change):
    manifest = json.loads((data / "manifest.json").read_text())
    change(manifest)
    (data / "manifest.json").write_text(json.dumps(manifest))


def test_a_prepared_folder_passes_without_notes(data):
    assert check_data_dir(data, VOCAB, VAL) == []


def test_an_interrupted_preparation_stops_and_says_to_rerun_its_command(data):
    edit_manifest(data, lambda m: m.update(complete=False))
    with pytest.raises(UserError, match=r"only partly prepared .*complete: false.*; rerun `python "
                                        rf"data/fineweb_edu.py --data-files .* --out {data}` to finish"):
        check_data_dir(data, VOCAB, VAL)


def test_a_missing_or_resized_listed_shard_stops(data):
    shard = data / "train_000002.bin"
    tokens = np.fromfile(shard, dtype=np.uint16, offset=1024)
    write_shard(shard, tokens[:-7])  # a valid shard, but not the one listed
    with pytest.raises(UserError, match=r"train_000002.bin is 3,010 bytes but manifest.json lists "
                                        r"1,000 tokens \(3,024 bytes\); rerun `python"):
        check_data_dir(data, VOCAB, VAL)
    shard.unlink()
    with pytest.raises(UserError, match="train_000002.bin is listed in manifest.json but missing"):
        check_data_dir(data, VOCAB, VAL)


def test_a_shard_the_manifest_does_not_list_stops(data):
    write_shard(data / "train_000009.bin", np.zeros(50, dtype=np.uint16))
    with pytest.raises(UserError, match="train_000009.bin is not listed in .*move it out"):
        check_data_dir(data, VOCAB, VAL)


def replace_shard(data, name, tokens):
    """Someone else's tokens in a listed shard, with a manifest entry that matches them."""
    write_shard(data / name, np.asarray(tokens, dtype=np.uint16))
    sha, max_id = scan_shard(data / name)

    def update(manifest):
        entry = next(e for e in manifest["shards"] if e["file"] == name)
        entry.update(tokens=len(tokens), sha256=sha, max_token_id=max_id)
    edit_manifest(data, update)


def test_token_ids_beyond_vocab_size_or_in_gpt2_padding_stop_before_training(data):
    with pytest.raises(UserError, match=r"val_000000.bin holds token id 50256, but the model's "
                                        r"vocab_size is 50000; set vocab_size above 50256"):
        check_data_dir(data, 50000, VAL)
    replace_shard(data, "train_000001.bin", [1, 2, 50300, 3] * 250)  # padding: no GPT-2 token
    with pytest.raises(UserError, match=r"train_000001.bin holds token id 50300, but the tokenizer "
                                        r"\(tiktoken gpt2 encode_ordinary\) has only 50257 ids"):
        check_data_dir(data, VOCAB, VAL)


def test_a_short_val_shard_says_how_far_to_lower_val_tokens_or_to_prepare_more(data):
    with pytest.raises(UserError, match=r"holds 500 tokens, fewer than val_tokens=10,000; lower "
                                        r"val_tokens to at most 500 \(--val_tokens=500\) or prepare "
                                        r"a larger validation set \(.*--val-tokens 10000"):
        check_data_dir(data, VOCAB, 10_000, block_size=64)
    replace_shard(data, "val_000000.bin", [50256] * 39)  # shorter than one block: lowering is no fix
    with pytest.raises(UserError, match=r"holds 39 tokens, fewer than val_tokens=256 and than one "
                                        r"block of 65; prepare a larger") as err:
        check_data_dir(data, VOCAB, 256, block_size=64)
    assert "lower" not in str(err.value)


def test_a_truncated_or_settingless_manifest_stops(data):
    text = (data / "manifest.json").read_text()
    (data / "manifest.json").write_text(text[:len(text) // 2])
    with pytest.raises(UserError, match="manifest.json is not valid JSON .*truncated"):
        check_data_dir(data, VOCAB, VAL)
    (data / "manifest.json").write_text(json.dumps({"shards": []}))
    with pytest.raises(UserError, match="manifest.json has no settings"):
        check_data_dir(data, VOCAB, VAL)


def test_a_folder_without_manifest_is_used_unchecked_with_one_note(data):
    (data / "manifest.json").unlink()
    assert check_data_dir(data, VOCAB, VAL) == [
        f"note: {data} has no manifest.json (not made by data/fineweb_edu.py): its shards are "
        f"used unchecked (completeness, token ids < {VOCAB})"]
    with pytest.raises(UserError, match="fewer than val_tokens"):  # the header still counts
        check_data_dir(data, VOCAB, 10_000)


def test_an_old_manifest_loads_says_ids_are_unchecked_and_a_rerun_records_them(data, capsys):
    def make_old(manifest):  # as written before max_token_id and source fingerprints
        for key in ("n_vocab", "source_fingerprint", "bad_records"):
            del manifest[key]
        for entry in manifest["shards"]:
            del entry["max_token_id"], entry["bad_records"]
    edit_manifest(data, make_old)
    [note] = check_data_dir(data, VOCAB, VAL)
    assert note.startswith(f"note: {data}/manifest.json predates max_token_id: token ids are not "
                           f"checked against vocab_size; rerun `python data/fineweb_edu.py")
    fineweb_edu.main(shlex.split(note.split("`")[1])[2:])  # the rerun the note asks for
    assert "predates source fingerprints" in capsys.readouterr().out
    assert check_data_dir(data, VOCAB, VAL) == []
    assert check_data_dir(data, VOCAB, VAL) == []


def tiny_run(tmp_path, data):
    return [f"--data_dir={data}", f"--out_dir={tmp_path / 'out'}", f"--log_dir={tmp_path / 'runs'}",
            "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16", "--micro_batch_size=2",
            "--total_batch_tokens=64", "--max_steps=1", "--warmup_steps=1", "--val_tokens=64",
            "--device=cpu", "--compile=False"]


def test_train_stops_on_bad_data_before_any_model_is_built(tmp_path, data, monkeypatch):
    monkeypatch.setattr(train, "GPT", lambda *a, **k: pytest.fail("a model was built"))
    edit_manifest(data, lambda m: m.update(complete=False))
    with pytest.raises(UserError, match="only partly prepared"):
        train.main(tiny_run(tmp_path, data))
    edit_manifest(data, lambda m: m.update(complete=True))
    with pytest.raises(UserError, match="vocab_size is 256"):
        train.main(tiny_run(tmp_path, data) + ["--vocab_size=256"])
