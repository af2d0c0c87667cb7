"""The benchmarks run at toy sizes and print their tables; the sparse and vocab Kronecker modes
never allocate a (tokens x D) or (V x D) tensor. No timing asserts (gpu_check: tests/test_gpu_check.py)."""
import json
import sys

import numpy as np
import pytest
import torch

from conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import bench_embedding  # noqa: E402
import bench_train  # noqa: E402
import bench_common  # noqa: E402
from bench_common import AllocationTracker  # noqa: E402
from embeddings import KRONECKER_MODES, KroneckerEmbedding, TrigramHashEmbedding  # noqa: E402


@pytest.fixture
def tokens_file(tmp_path):
    """A .npy of GPT-2 token ids, as gpu_check carries (no tiktoken needed to read it)."""
    path = tmp_path / "tokens.npy"
    np.save(path, np.random.default_rng(0).integers(0, 50257, size=20_000, dtype=np.uint16))
    return str(path)


def allocations(module, ids):
    """The AllocationTracker of one forward + backward: what new tensors it made."""
    with AllocationTracker(exclude=[*module.parameters(), *module.buffers(), ids]) as tracker:
        module(ids).sum().backward()
    return tracker


def test_sparse_and_vocab_never_allocate_anything_of_size_tokens_x_D_or_V_x_D():
    rng = np.random.default_rng(0)
    token_bytes = [bytes(rng.integers(0, 256, size=rng.integers(0, 9)).tolist()) for _ in range(4096)]
    V, d, pos_dim, N = len(token_bytes), 16, 8, 1024
    D = 256 * pos_dim
    ids = torch.from_numpy(rng.integers(0, V, size=(2, N // 2)))
    embs = {mode: KroneckerEmbedding(token_bytes, d, pos_dim, mode) for mode in ("sparse", "vocab", "dense", "cached")}
    made = {mode: allocations(emb, ids) for mode, emb in embs.items()}
    for mode in ("sparse", "vocab"):
        assert not made[mode].made_matrix(N, D) and not made[mode].made_matrix(V, D), mode
    assert made["sparse"].largest[0] <= (D + 2) * d  # the bag table of W's columns, or W's gradient
    assert made["vocab"].largest[0] <= max(V, D + 1) * d  # the (V, d) table or its gradient, W's bag table
    assert made["dense"].made_matrix(N, D)  # the check sees the reference way's (tokens x D) codec
    assert made["cached"].made_matrix(N, D)  # and cached's gathered codec rows,
    assert embs["cached"].codec_table.shape == (V, D)  # from its (V x D) table, a buffer built once
    assert not made["cached"].made_matrix(V, D)


def test_the_trigram_arm_never_allocates_anything_of_size_tokens_x_buckets_or_V_x_buckets():
    rng = np.random.default_rng(0)
    token_bytes = [bytes(rng.integers(0, 256, size=rng.integers(0, 9)).tolist()) for _ in range(4096)]
    V, d, m, N = len(token_bytes), 16, 2048, 1024
    emb = TrigramHashEmbedding(token_bytes, d, buckets=m)
    made = allocations(emb, torch.from_numpy(rng.integers(0, V, size=(2, N // 2))))
    assert not made.made_matrix(N, m) and not made.made_matrix(V, m)
    # the (V, d) table, the (trigrams, d) table, the backward's partial sums (a row per chunk of a column)
    assert made.largest[0] <= 2 * max(V, len(emb.trigram_codes), m) * d


@pytest.mark.slow
def test_bench_embedding_prints_time_ratio_and_memory_of_every_mode(tokens_file, tmp_path, capsys):
    out = tmp_path / "emb.json"
    bench_embedding.main(["--device", "cpu", "--shapes", "tiny", "--repeats", "1", "--warmup", "1", "--load", "1",
                          "--tokens-file", tokens_file, "--json", str(out)])
    printed = capsys.readouterr().out
    assert "1 other busy process(es)" in printed and json.loads(out.read_text())["load"] == 1
    for mode in bench_embedding.MODES:
        assert mode in printed
    assert "faster than dense" in printed and "vocab / sparse time" in printed and "trigram_hash / vocab" in printed
    rows = {r["mode"]: r for r in json.loads(out.read_text())["results"][0]["rows"]}
    assert rows["nn.Embedding"]["vs_embedding"] == 1.0
    assert not rows["sparse"]["big_matrix"] and not rows["vocab"]["big_matrix"] and rows["dense"]["big_matrix"]
    assert not rows["trigram_hash"]["big_matrix"] and rows["trigram_hash"]["params_mb"] == rows["sparse"]["params_mb"]
    assert rows["nn.Embedding"]["params_mb"] > 20 * rows["sparse"]["params_mb"]  # V x d table vs D x d W
    # byte table, byte columns and input_table's sparse matrix (7.7 MB here, 9.9 MB at 124M) vs a V x D table
    assert rows["sparse"]["buffers_mb"] < 10 < 300 < rows["cached"]["buffers_mb"]
    assert all(r["ms"] > 0 and r["peak_mb"] > 0 for r in rows.values())


def test_busy_cores_spin_during_the_block_and_are_gone_after_it():
    with bench_common.busy_cores(1) as spinners:
        assert len(spinners) == 1 and spinners[0].poll() is None
    assert spinners[0].poll() is not None
    with pytest.raises(RuntimeError):  # an error inside the block still stops them
        with bench_common.busy_cores(1) as spinners:
            raise RuntimeError("bench failed")
    assert spinners[0].poll() is not None


def test_bench_embedding_skips_cached_where_its_table_is_too_big(tokens_file, capsys):
    rows = bench_embedding.main(["--device", "cpu", "--shapes", "tiny", "--modes", "sparse", "cached",
                                 "--repeats", "1", "--warmup", "0", "--tokens-file", tokens_file,
                                 "--max-table-gb", "0.01"])[0]["rows"]
    assert "skipped" in {r["mode"]: r for r in rows}["cached"]
    assert "skipped: V x D table" in capsys.readouterr().out


def test_frontier_byte_table_pads_gpt2_with_random_strings_of_gpt2_lengths():
    table = bench_common.token_bytes(60_000)
    assert len(table) == 60_000 and table[50256] == b"<|endoftext|>"
    assert all(1 <= len(b) <= 128 for b in table[50304:])
    assert table[50304:] == bench_common.token_bytes(60_000)[50304:]  # seeded


@pytest.mark.slow
def test_bench_train_times_every_arm_against_bpe(tokens_file, tmp_path, capsys):
    out = tmp_path / "train.json"
    rows = bench_train.main(["--device", "cpu", "--preset", "tiny", "--steps", "2", "--warmup", "1",
                             "--kronecker-modes", "auto", "sparse", "vocab",
                             "--tokens-file", tokens_file, "--json", str(out)])
    assert [r["label"] for r in rows] == ["bpe", "bpe_untied", "kronecker[sparse]", "kronecker[vocab]"]  # auto = sparse
    assert rows[0]["vs_bpe"] == 1.0 and all(r["tokens_per_s"] > 0 for r in rows)
    assert "kronecker[vocab]" in capsys.readouterr().out
    written = json.loads(out.read_text())
    assert written["rows"][2]["param_counts"]["input_trainable"] == 32 * 4096
    assert {"load_average_before", "load_average_after"} <= set(written)
    table, kron = rows[0]["input_side_bytes"], rows[3]["input_side_bytes"]
    assert table["weights"] == 50304 * 32 * 4 and table["training"] >= 4 * table["weights"]  # + grad, AdamW's two
    assert kron["weights"] == 32 * 4096 * 4 and kron["buffers"] > 0  # W; the byte table and its matrix


@pytest.mark.slow
def test_kronecker_model_compiles_without_graph_breaks_or_recompiles(tokens_file):
    rows = bench_train.main(["--device", "cpu", "--preset", "tiny", "--arms", "kronecker", "--steps", "3",
                             "--warmup", "1", "--compile", "true", "--compile-backend", "aot_eager",
                             "--tokens-file", tokens_file])
    assert rows[0]["graphs"] == 1 and rows[0]["graph_breaks"] == 0
    assert rows[0]["recompiles_during_timed_steps"] == 0


def test_the_benches_take_their_modes_from_embeddings_py():
    concrete = [m for m in KRONECKER_MODES if m != "auto"]  # auto is one of them on each device
    assert bench_embedding.MODES == ("nn.Embedding", *concrete, "trigram_hash")
    assert bench_train.get_args(["--device=cpu", "--kronecker-mode=cached"]).kronecker_modes == ["cached"]
    assert bench_train.get_args(["--device=cpu", "--kronecker-modes=all"]).kronecker_modes == concrete
    assert bench_train.get_args(["--device=cpu", "--kronecker-modes", "auto", "sparse"]).kronecker_modes == ["sparse"]
    with pytest.raises(SystemExit):  # argparse's choices: exactly embeddings.KRONECKER_MODES
        bench_train.get_args(["--device=cpu", "--kronecker-mode=fast"])
    assert bench_train.PRESETS["frontier"]["vocab_size"] == 2**17 and bench_train.PRESETS["frontier"]["pos_dim"] == 32


@pytest.mark.slow
def test_bench_train_runs_every_mode_at_every_batch_size_and_profiles_the_first(tmp_path):
    """gpu_check's ratio, micro-batch and paper-shape phases, at toy size: one arm per Kronecker
    mode, arms built afresh per batch size, a profile per arm naming the input side's ops."""
    tokens_file = tmp_path / "ids.npy"  # ids of a 1,024-token vocabulary: a small cached table
    np.save(tokens_file, np.random.default_rng(0).integers(0, 1024, size=2_000, dtype=np.uint16))
    rows = bench_train.main(["--device", "cpu", "--preset", "tiny", "--vocab-size", "1024", "--pos-dim", "4",
                             "--arms", "bpe", "kronecker",
                             "--kronecker-modes", "all", "--batch-sizes", "1", "2", "--steps", "1", "--warmup", "0",
                             "--profile", "1", "--profile-dir", str(tmp_path), "--tokens-file", str(tokens_file)])
    labels = ["bpe", *(f"kronecker[{m}]" for m in KRONECKER_MODES if m != "auto")]
    assert [(r["label"], r["batch_size"]) for r in rows] == [(l, b) for b in (1, 2) for l in labels]
    first = rows[:len(labels)]
    assert all(0 <= r["profile"]["input_side_share"] <= 1 and r["profile"]["top"] for r in first)
    assert "profile" not in rows[-1] and len(list(tmp_path.glob("profile_*_b1.txt"))) == len(labels)
    sparse = next(r for r in first if r["label"] == "kronecker[sparse]")
    assert any("sparse_embed" in k["name"] for k in sparse["profile"]["input_side"])
    assert first[0]["input_side_bytes"]["weights"] == 1024 * 32 * 4  # the table (also the tied head)
    assert sparse["input_side_bytes"]["weights"] == 256 * 4 * 32 * 4  # W: D x d float32
    assert sparse["input_side_bytes"]["training"] == 4 * sparse["input_side_bytes"]["weights"] \
        + sparse["input_side_bytes"]["buffers"]
    assert all(r["max_memory_allocated_gib"] is None for r in rows)  # measured on CUDA only


def test_bench_train_changes_the_preset_to_the_frontier_shape():
    args = bench_train.get_args(["--device=cpu", "--preset=124m", "--n-layer=2", "--vocab-size=131072",
                                 "--pos-dim=32"])
    assert bench_train.model_config(args) == dict(n_layer=2, n_head=12, n_embd=768, block_size=1024,
                                                  vocab_size=131072, pos_dim=32)
