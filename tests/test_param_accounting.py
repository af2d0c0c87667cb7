"""eval/param_accounting.py: the table vs Kronecker parameter and memory arithmetic."""
import pytest

from conftest import REPO_ROOT
from errors import UserError
from eval import param_accounting as acc
from model import GPT, GPTConfig
from tokenizer import get_tokenizer

OFFLINE = {"gpt2", "r50k_base"}  # what the repo's tiktoken cache (../shared/tiktoken_cache) holds
MACHINE_PATH = "/home/someone/tiktoken_cache"  # a folder of one machine, in the loading error


@pytest.fixture
def offline(monkeypatch):
    """Only the cached tokenizers load, as on CI without network, whatever this machine reaches."""
    def cached_only(name):
        if name not in OFFLINE:
            raise UserError(f"cannot load the {name} tokenizer: its files are not in "
                            f"TIKTOKEN_CACHE_DIR={MACHINE_PATH} and the download failed")
        return get_tokenizer(name)
    monkeypatch.setattr(acc, "get_tokenizer", cached_only)


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


def test_gpt2_row_comes_from_its_real_byte_table(offline):
    row = acc.tokenizer_row("gpt2", 50_257)
    assert (row["source"], row["n_vocab"], row["vocab"], row["longest"]) == ("byte table", 50_257, 50_304, 128)
    # 72 GPT-2 tokens are longer than 16 bytes, 14 longer than 32 (python tokenizer.py)
    assert row["percent_fit"][16] == pytest.approx(100 * (1 - 72 / 50_257))
    assert row["percent_fit"][32] == pytest.approx(100 * (1 - 14 / 50_257))
    assert row["percent_saved"][16] == pytest.approx(acc.percent_saved(50_304, 768, 16))
    # identical inputs: the 72 cut tokens are the only candidates for a codec collision at pos_dim 16
    assert 0 < row["same_codec"][32]["ids"] < row["same_codec"][16]["ids"] <= 72


def test_collisions_count_the_ids_whose_input_equals_another_ids():
    assert acc.shared_inputs([b"a", b"b", b"a", b"c", b"a", b"b"]) == dict(ids=5, groups=2)
    # a set of trigrams cannot count a repeated byte: "----" and "--------" get the same buckets
    figures = acc.trigram_figures([b"----", b"--------", b"---", b"ab", b"ba", b"", b""])
    assert figures["same_trigram"] == dict(ids=3, groups=1)  # padding (no bytes) is not an id with an input
    assert figures["trigram_state_bytes"] > 0


@pytest.mark.parametrize("name, n_vocab, vocab", [("cl100k_base", 100_277, 100_288),
                                                   ("o200k_base", 200_019, 200_064)])
def test_a_tokenizer_that_cannot_load_falls_back_to_its_shape_and_says_so(offline, name, n_vocab, vocab):
    row = acc.tokenizer_row(name, n_vocab)
    assert (row["source"], row["n_vocab"], row["vocab"]) == ("shape", n_vocab, vocab)
    assert "longest" not in row and "could not be downloaded" in row["reason"]
    assert MACHINE_PATH not in row["reason"]  # the report is committed (issue 21 §7)
    assert row["percent_saved"][32] == pytest.approx(100 * (1 - 256 * 32 / vocab))
    line = next(r for r in acc.tokenizers_table([row], acc.POS_DIMS).splitlines() if r.startswith(f"| {name}"))
    assert "shape only (cannot load here)" in line and "—" in line


def test_committed_report_is_what_the_script_writes(tmp_path, offline):
    acc.main(["--out", str(tmp_path)])
    written = (tmp_path / "param_accounting.md").read_text()
    assert "| GPT-2 124M (this repo, V padded to 50,304) | 50,304 | 768 | 38.6M | 3.1M |" in written
    assert "| gpt2 | byte table | 50,257 | 50,304 | 128 bytes | 99.857% | 99.972% |" in written
    assert written == (REPO_ROOT / "results" / "param_accounting.md").read_text()
    # and the JSON: no folder of the machine that ran it, so a rerun leaves git status clean
    assert (tmp_path / "param_accounting.json").read_text() == \
        (REPO_ROOT / "results" / "param_accounting.json").read_text()
