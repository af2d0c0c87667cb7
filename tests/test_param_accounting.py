"""eval/param_accounting.py: the table vs Kronecker parameter and memory arithmetic."""
import pytest

from conftest import REPO_ROOT
from eval import param_accounting as acc
from model import GPT, GPTConfig


def test_reproduces_the_papers_38_6m_to_3_1m_at_gpt2_124m():
    assert acc.table_params(50_304, 768) == 38_633_472
    assert acc.projection_params(768, pos_dim=16) == 3_145_728
    assert acc.percent_saved(50_304, 768, 16) == pytest.approx(100 * (1 - 3_145_728 / 38_633_472))


def test_reproduces_the_papers_4_5_mb_vs_2_15_gb_at_vocabulary_131072():
    # byte buffer at pos_dim 32 (V x 34 bytes) vs an fp32 table at d = 4096, decimal units
    assert acc.byte_buffer_bytes(131_072, 32) == 4_456_448
    assert round(acc.byte_buffer_bytes(131_072, 32) / 1e6, 1) == 4.5
    assert acc.table_bytes(131_072, 4_096, 4) == 2_147_483_648
    assert round(acc.table_bytes(131_072, 4_096, 4) / 1e9, 2) == 2.15


@pytest.mark.parametrize("embedding, pos_dim", [("bpe", 16), ("kronecker", 16), ("kronecker", 32)])
def test_formulas_match_the_models_own_parameter_count(embedding, pos_dim):
    config = GPTConfig(block_size=8, n_layer=1, n_head=2, n_embd=32, embedding=embedding, pos_dim=pos_dim)
    counted = GPT(config).param_counts()["input_trainable"]
    expected = (acc.projection_params(32, pos_dim) if embedding == "kronecker"
                else acc.table_params(config.vocab_size, 32))
    assert counted == expected


def test_committed_report_is_what_the_script_writes(tmp_path):
    acc.main(["--out", str(tmp_path)])
    written = (tmp_path / "param_accounting.md").read_text()
    assert "| GPT-2 124M (this repo, V padded to 50,304) | 50,304 | 768 | 38.6M | 3.1M |" in written
    assert written == (REPO_ROOT / "results" / "param_accounting.md").read_text()
