"""eval/val_loss.py: a checkpoint's validation loss equals the one train.py logged at that step."""
import json
import math

import numpy as np
import pytest

import train
from data.shards import write_shard
from errors import run_main
from eval import val_loss


def test_val_loss_of_a_checkpoint_matches_the_training_log(tmp_path, capsys):
    rng = np.random.default_rng(1)
    write_shard(tmp_path / "val_000000.bin", rng.integers(0, 128, 1000).astype(np.uint16))
    write_shard(tmp_path / "train_000001.bin", rng.integers(0, 128, 3000).astype(np.uint16))
    train.main([f"--data_dir={tmp_path}", f"--out_dir={tmp_path / 'out'}", f"--log_dir={tmp_path / 'runs'}",
                "--n_layer=1", "--n_head=2", "--n_embd=16", "--block_size=16", "--vocab_size=128",
                "--micro_batch_size=4", "--total_batch_tokens=64", "--max_steps=2", "--warmup_steps=1",
                "--val_tokens=300",
                "--device=cpu", "--run_name=r"])
    logged = json.loads((tmp_path / "runs" / "r" / "log.jsonl").read_text().splitlines()[-1])
    out = tmp_path / "val.json"
    val_loss.main([str(tmp_path / "out" / "r" / "ckpt_000002.pt"), "--device=cpu", f"--out={out}"])
    [result] = json.loads(out.read_text())
    assert result["step"] == 2 and result["embedding"] == "bpe" and result["val_tokens"] == 300
    assert abs(result["val_loss"] - logged["val_loss"]) < 1e-6
    assert math.isclose(result["perplexity"], math.exp(result["val_loss"]))
    assert "| checkpoint | embedding | seed | step | val loss | perplexity |" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--val-tokens", "0"], "--val-tokens must be >= 1, got 0"),
    (["--val-tokens", "-5"], "--val-tokens must be >= 1, got -5"),
    (["--batch-size", "0"], "--batch-size must be >= 1, got 0"),
])
def test_a_bad_size_is_one_line_before_any_checkpoint_is_read(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        run_main(lambda: val_loss.main(["missing.pt", *argv]))
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.count("\n") == 1 and message in err
