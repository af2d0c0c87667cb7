"""The checkpoint probes (eval/robustness.py, eval/generation.py, eval/neighbors.py) and their data.

Metric definitions are checked on hand-made log-probabilities and vectors; the command lines run
on tiny random GPT models (1 block, n_embd 32, the real GPT-2 vocabulary) saved as checkpoints.
"""
import dataclasses
import json
import math

import pytest
import torch

from checkpoint import save_checkpoint
from errors import UserError, run_main
from eval import generation, neighbors, robustness
from eval.typo_pairs import DEFAULT_PAIRS, changed_word, edit_distance, load_pairs
from model import GPT, GPTConfig
from tokenizer import GPT2_VOCAB, get_encoding

TINY = dict(block_size=64, n_layer=1, n_head=2, n_embd=32)


def tiny_checkpoint(folder, embedding):
    """A random 1-block model of one arm saved by train.py's checkpoint writer; returns its path."""
    torch.manual_seed(0)
    config = GPTConfig(embedding=embedding, **TINY)
    state = dict(model=GPT(config).state_dict(), model_config=dataclasses.asdict(config), train_config={}, step=3)
    return save_checkpoint(state, folder / embedding)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpts")
    return {emb: tiny_checkpoint(folder, emb) for emb in ("bpe", "kronecker")}


@pytest.fixture(scope="module")
def kronecker_model(ckpts):
    return GPT.from_checkpoint(ckpts["kronecker"])


def write_pairs(path, pairs):
    path.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    return path


TWO_PAIRS = [dict(category="facts", clean="The capital of France is", typo="The capital of Frnace is"),
             dict(category="animals", clean="A baby cat is called a", typo="A baby cta is called a")]


# ----------------------------------------------------------------------------- the pair file

def test_shipped_pair_file_has_110_pairs_in_11_categories_of_10():
    pairs = load_pairs(DEFAULT_PAIRS)
    categories = [p["category"] for p in pairs]
    assert len(pairs) == 110
    assert {c: categories.count(c) for c in set(categories)} == dict.fromkeys(set(categories), 10)
    assert len(set(categories)) == 11


def test_every_shipped_typo_is_one_or_two_edits_inside_one_word():
    for line in DEFAULT_PAIRS.read_text().splitlines():
        pair = json.loads(line)
        assert set(pair) == {"category", "clean", "typo"}
        assert pair["clean"] != pair["typo"]
        assert 1 <= edit_distance(pair["clean"], pair["typo"]) <= 2, pair
        assert changed_word(pair["clean"], pair["typo"]) is not None, pair
    assert len({json.loads(line)["clean"] for line in DEFAULT_PAIRS.read_text().splitlines()}) == 110


@pytest.mark.parametrize("a, b, distance", [
    ("France", "Frnace", 1),  # swap of neighbours
    ("Japan", "Japn", 1),  # drop
    ("gold", "goldd", 1),  # double
    ("cat", "cot", 1),  # substitute
    ("abc", "cab", 2),
    ("same", "same", 0),
])
def test_edit_distance_counts_swap_drop_double_and_substitute_as_one(a, b, distance):
    assert edit_distance(a, b) == distance


@pytest.mark.parametrize("bad, problem", [
    (dict(category="x", clean="The capital of France is", typo="The capital of Fcanre is Paris"), "one word"),
    (dict(category="x", clean="The capital of France is", typo="The capitel of Frnace is"), "one word"),
    (dict(category="x", clean="The capital of France is", typo="The capital of Fnarcx is"), "character edits"),
    (dict(category="x", clean="Same", typo="Same"), "identical"),
    (dict(clean="a b", typo="a c"), "non-empty string fields"),
])
def test_load_pairs_names_the_bad_line(tmp_path, bad, problem):
    path = write_pairs(tmp_path / "pairs.jsonl", [TWO_PAIRS[0], bad])
    with pytest.raises(UserError, match=f"pairs.jsonl:2: .*{problem}"):
        load_pairs(path)


# ----------------------------------------------------------------------------- robustness metrics

def test_identical_distributions_have_zero_kl_a_top1_match_and_no_drop():
    logp = torch.log_softmax(torch.tensor([0.5, 2.0, -1.0]), dim=0)
    m = robustness.compare_next_token(logp, logp.clone())
    assert m["top1_clean"] == m["top1_typo"] == 1 and m["top1_match"]
    assert m["kl"] == pytest.approx(0.0, abs=1e-7) and m["logprob_drop"] == 0.0


def test_kl_and_logprob_drop_on_hand_made_logits():
    logp_clean = torch.log_softmax(torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64), dim=0)
    logp_typo = torch.log_softmax(torch.tensor([0.0, 2.0, 0.0], dtype=torch.float64), dim=0)
    m = robustness.compare_next_token(logp_clean, logp_typo)
    assert (m["top1_clean"], m["top1_typo"], m["top1_match"]) == (0, 1, False)
    # same normaliser, so log p_clean - log p_typo = [2, -2, 0]
    assert m["logprob_drop"] == pytest.approx(2.0)
    e2 = math.exp(2)
    assert m["kl"] == pytest.approx(2 * (e2 - 1) / (e2 + 2))


def test_next_token_distribution_ignores_padding_ids():
    logits = torch.zeros(50304)
    logits[50300], logits[7] = 100.0, 5.0  # a padding id would win without the cut
    logp = robustness.real_vocab_logprobs(logits)
    assert logp.shape == (GPT2_VOCAB,) and int(logp.argmax()) == 7
    assert float(logp.double().exp().sum()) == pytest.approx(1.0, abs=1e-5)


def test_win_tie_loss_counts_categories_against_the_reference():
    ref = dict(a=dict(kl_mean=1.0), b=dict(kl_mean=1.0), c=dict(kl_mean=1.0))
    other = dict(a=dict(kl_mean=0.5), b=dict(kl_mean=1.0), c=dict(kl_mean=2.0))
    assert robustness.win_tie_loss(ref, other, "kl_mean", higher_is_better=False) == dict(win=1, tie=1, loss=1)
    assert robustness.win_tie_loss(ref, other, "kl_mean", higher_is_better=True) == dict(win=1, tie=1, loss=1)


# ----------------------------------------------------------------------------- neighbour classes

@pytest.mark.parametrize("neighbour, cls", [
    ("Run", "typographic"), (" run", "typographic"), (".run", "typographic"), (" RUN", "typographic"),
    (" running", "morphological"), ("ran", "morphological"), (" Runner", "morphological"),
    (" rune", "other"), (" sprint", "other"),
])
def test_neighbour_classification(neighbour, cls):
    assert neighbors.classify(neighbour, "run", neighbors.FAMILIES["run"]) == cls


def test_probe_words_are_single_gpt2_tokens():
    families = {word for word, _, _ in neighbors.query_tokens()}
    assert families == set(neighbors.FAMILIES)
    assert len(neighbors.pair_tokens()) == len(neighbors.BYTE_SIMILAR_PAIRS)


def test_centred_geometry_matches_brute_force_and_excludes_the_query():
    torch.manual_seed(0)
    table = torch.randn(7, 3)
    geometry = neighbors.centred_geometry(lambda ids: [table[ids]], query_ids=[0, 4], pair_ids=[(1, 2)], k=3,
                                          device="cpu", n_vocab=7, chunk=2)[0]
    unit = torch.nn.functional.normalize(table - table.mean(0), dim=1)
    cos = unit @ unit.T
    for row, q in enumerate([0, 4]):
        others = cos[q].clone()
        others[q] = -math.inf
        assert geometry["neighbour_ids"][row] == others.topk(3).indices.tolist()
        assert q not in geometry["neighbour_ids"][row]
    assert geometry["pair_cos"][0] == pytest.approx(float(cos[1, 2]), abs=1e-6)


# ----------------------------------------------------------------------------- byte-novel words

def test_embed_bytes_agrees_with_the_token_path_for_an_in_vocabulary_word(kronecker_model):
    token_id = get_encoding().encode_ordinary(" Paris")
    assert len(token_id) == 1
    with torch.no_grad():
        by_bytes = kronecker_model.embed_bytes([b" Paris"])
        by_id = kronecker_model.token_embedding(torch.tensor([token_id]))[0]
    torch.testing.assert_close(by_bytes, by_id, rtol=1e-5, atol=1e-6)


def test_forced_single_position_prompt_equals_the_token_prompt_for_an_in_vocabulary_word(kronecker_model):
    enc = get_encoding()
    prefix, suffix, space = generation.split_template("The capital is {word}. It is")
    forced = generation.forced_word_embedding(kronecker_model, enc, prefix, generation.word_bytes("Paris", space),
                                              suffix, "cpu")
    ids = torch.tensor([enc.encode_ordinary("The capital is Paris. It is")])
    with torch.no_grad():
        torch.testing.assert_close(kronecker_model(tok_emb=forced)[0], kronecker_model(ids)[0], rtol=1e-5, atol=1e-5)


def test_default_novel_words_are_several_bpe_tokens_and_fit_the_codec():
    for prompt in generation.oov_prompts(get_encoding(), generation.DEFAULT_WORDS, generation.DEFAULT_TEMPLATE):
        assert prompt["bpe_tokens"] >= 3
        assert len(prompt["word_bytes"].encode("utf-8")) <= GPTConfig.pos_dim


def test_seeded_sampling_is_reproducible(kronecker_model):
    ids = get_encoding().encode_ordinary("The capital of France is")
    runs = [generation.complete(kronecker_model, "cpu", 5, 0.7, 0.9, 42, ids=ids) for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0]) == 5


# ----------------------------------------------------------------------------- command lines

def run_cli(main, argv, capsys):
    """Run a probe's main through run_main; (exit code, stderr)."""
    try:
        run_main(lambda: main(argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


def test_robustness_cli_reports_every_pair_and_identical_arms_tie(ckpts, tmp_path, capsys):
    pairs = write_pairs(tmp_path / "pairs.jsonl", TWO_PAIRS)
    argv = ["--ckpt", f"a={ckpts['kronecker']}", "--ckpt", f"b={ckpts['kronecker']}", "--pairs", str(pairs),
            "--out", str(tmp_path), "--device", "cpu"]
    assert run_cli(robustness.main, argv, capsys)[0] == 0
    data = json.loads((tmp_path / "robustness.json").read_text())
    assert [len(rows) for rows in data["pairs"].values()] == [2, 2]
    row = data["pairs"]["a"][0]
    enc = get_encoding()
    assert (row["tokens_clean"], row["tokens_typo"]) == (len(enc.encode_ordinary(TWO_PAIRS[0]["clean"])),
                                                         len(enc.encode_ordinary(TWO_PAIRS[0]["typo"])))
    assert -1 <= row["cos"] <= 1 and row["kl"] >= 0 and row["top1_match"] == (row["top1_clean"] == row["top1_typo"])
    assert data["summary"]["b"]["vs_first"]["kl_mean"] == dict(win=0, tie=2, loss=0)
    assert data["summary"]["a"]["overall"] == data["summary"]["b"]["overall"]
    assert "| b | 2 |" in (tmp_path / "robustness.md").read_text()


def test_generation_cli_feeds_the_novel_word_as_one_position_to_kronecker_only(ckpts, tmp_path, capsys):
    pairs = write_pairs(tmp_path / "pairs.jsonl", TWO_PAIRS[:1])
    argv = ["--ckpt", f"bpe={ckpts['bpe']}", "--ckpt", f"kron={ckpts['kronecker']}", "--pairs", str(pairs),
            "--word", "zorblaxian", "--max-new-tokens", "3", "--out", str(tmp_path), "--device", "cpu"]
    assert run_cli(generation.main, argv, capsys)[0] == 0
    data = json.loads((tmp_path / "generation.json").read_text())
    oov = {(r["arm"], r["decoding"]): r for r in data["completions"] if r["kind"] == "oov"}
    assert oov[("kron", "greedy")]["forced_single_position"] and not oov[("bpe", "greedy")]["forced_single_position"]
    bpe_word_tokens = len(get_encoding().encode_ordinary(" zorblaxian"))
    positions = {arm: oov[(arm, "greedy")]["prompt_positions"] for arm in ("bpe", "kron")}
    assert positions["bpe"] - positions["kron"] == bpe_word_tokens - 1
    assert data["echo_counts"]["kron"]["typo/sampled"]["n"] == 1
    assert sum(c["n"] for c in data["echo_counts"]["bpe"].values()) == 6  # (clean, typo, oov) x 2 decodings


@pytest.mark.slow
def test_neighbors_cli_scores_every_arm_layer_and_the_codec(ckpts, tmp_path, capsys):
    argv = ["--ckpt", f"kron={ckpts['kronecker']}", "--k", "3", "--layers", "0", "1", "--out", str(tmp_path),
            "--device", "cpu"]
    assert run_cli(neighbors.main, argv, capsys)[0] == 0
    spaces = json.loads((tmp_path / "neighbors.json").read_text())["spaces"]
    assert [s["space"] for s in spaces] == ["kron", "kron after block 1", neighbors.CODEC_SPACE]
    for s in spaces:
        assert s["typographic_at_k"] + s["morph_at_k"] + s["other_at_k"] == pytest.approx(1.0)
        assert all(len(q["neighbours"]) == 3 for q in s["queries"])
    codec = spaces[-1]
    # the raw codec puts byte-similar words close: compute/commute share 5 of 7 bytes in place
    assert codec["pairs"][0]["a"] == "compute" and codec["pairs"][0]["cos"] > 0.5


def test_unreadable_checkpoints_fail_with_one_line_naming_the_arm(ckpts, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    mismatched = tmp_path / "mismatched.pt"
    state = torch.load(ckpts["bpe"], weights_only=False)
    torch.save(dict(state, model_config=dict(state["model_config"], n_embd=64, n_head=2)), mismatched)
    cases = [(f"x={tmp_path / 'missing.pt'}", "not found"), (f"x={corrupt}", "cannot be read"),
             (f"x={mismatched}", "do not match"), ("no-path-given", "not ARM=PATH")]
    for spec, message in cases:
        code, err = run_cli(robustness.main, ["--ckpt", spec, "--out", str(tmp_path)], capsys)
        assert code == 2 and message in err and err.count("\n") == 1, err
    code, err = run_cli(neighbors.main, ["--ckpt", f"x={ckpts['bpe']}", "--layers", "2", "--out", str(tmp_path)],
                        capsys)
    assert code == 2 and "has 1 blocks" in err
