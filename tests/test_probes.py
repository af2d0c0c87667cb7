"""The checkpoint probes (eval/robustness.py, eval/generation.py, eval/neighbors.py) and their data.

Metric definitions are checked on hand-made log-probabilities and vectors; the command lines run
on tiny random GPT models (1 block, n_embd 32, the real GPT-2 vocabulary) saved as checkpoints.
"""
import dataclasses
import itertools
import json
import math
import re

import pytest
import torch

from checkpoint import save_checkpoint
from errors import UserError, run_main
from eval import generation, generation_prompts, neighbors, robustness
from eval.typo_pairs import DEFAULT_PAIRS, changed_span, changed_word, edit_distance, flags_text, load_pairs
from model import GPT, GPTConfig
from tokenizer import GPT2_VOCAB, get_encoding

TINY = dict(block_size=64, n_layer=1, n_head=2, n_embd=32)


def tiny_checkpoint(folder, embedding, seed=0, train_config=None):
    """A random 1-block model of one arm saved by train.py's checkpoint writer; returns its path."""
    torch.manual_seed(seed)
    config = GPTConfig(embedding=embedding, **TINY)
    state = dict(model=GPT(config).state_dict(), model_config=dataclasses.asdict(config),
                 train_config=train_config or {}, step=3)
    return save_checkpoint(state, folder / f"{embedding}_{seed}")


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpts")
    return {emb: tiny_checkpoint(folder, emb) for emb in ("bpe", "kronecker", "trigram_hash")}


def run_cli(main, argv, capsys):
    """Run a probe's main through run_main; (exit code, stderr)."""
    try:
        run_main(lambda: main(argv))
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    return code, capsys.readouterr().err


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
    """The strict check our own file passes: no pair is flagged (see the next tests for others' files)."""
    for line in DEFAULT_PAIRS.read_text().splitlines():
        pair = json.loads(line)
        assert set(pair) == {"category", "clean", "typo"}
        assert pair["clean"] != pair["typo"]
        assert 1 <= edit_distance(pair["clean"], pair["typo"]) <= 2, pair
        assert changed_word(pair["clean"], pair["typo"]) is not None, pair
    assert all(p["flags"] == [] for p in load_pairs(DEFAULT_PAIRS))
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


@pytest.mark.parametrize("unusual, flags", [
    (dict(category="x", clean="The capital of France is", typo="The capital of Fcanre is Paris"),
     ["multi-word", "over-2-edits"]),
    (dict(category="x", clean="The capital of France is", typo="The capitel of Frnace is"), ["multi-word"]),
    (dict(category="x", clean="The capital of France is", typo="The capital of Fnarcx is"), ["over-2-edits"]),
    (dict(category="x", clean="Same", typo="Same"), ["identical"]),
    (dict(category="x", clean="I live in New York", typo="I live in NewYork"), ["whitespace-only"]),
    (dict(category="x", clean="A cat sat", typo="A  cat sat"), ["whitespace-only"]),
])
def test_unusual_pairs_from_others_are_kept_and_flagged(tmp_path, unusual, flags):
    pairs = load_pairs(write_pairs(tmp_path / "pairs.jsonl", [TWO_PAIRS[0], unusual]))
    assert len(pairs) == 2 and pairs[0]["flags"] == [] and pairs[1]["flags"] == flags
    assert pairs[1]["edit_distance"] == edit_distance(unusual["clean"], unusual["typo"])
    assert flags_text(pairs).startswith("1 of 2 pairs are flagged and kept (")


def pair_file_shapes(tmp_path):
    """The same two pairs written in each accepted shape."""
    arrays = [[p["category"], p["clean"], p["typo"]] for p in TWO_PAIRS]
    shapes = {"objects.jsonl": "".join(json.dumps(p) + "\n" for p in TWO_PAIRS),
              "arrays.jsonl": "".join(json.dumps(a) + "\n" for a in arrays),
              "list.json": json.dumps(TWO_PAIRS, indent=2),
              "arrays.json": json.dumps(arrays),
              "results.json": json.dumps({"model": "x", "prompt_pairs": [dict(p, kl=0.1) for p in TWO_PAIRS]})}
    for name, text in shapes.items():
        (tmp_path / name).write_text(text)
    return [tmp_path / name for name in shapes]


def test_pair_files_load_from_objects_arrays_json_lists_and_results_json(tmp_path):
    expected = [dict(p, edit_distance=1, flags=[]) for p in TWO_PAIRS]
    for path in pair_file_shapes(tmp_path):
        assert load_pairs(path) == expected, path.name


def test_two_field_arrays_and_objects_without_category_get_the_category_all(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('["A baby cat is", "A baby cta is"]\n{"clean": "Hot tea", "typo": "Hot tae"}\n')
    assert [p["category"] for p in load_pairs(path)] == ["all", "all"]


def test_changed_span_finds_the_words_an_edit_touches():
    assert changed_span("I live in New York", "I live in NewYork") == ("New York", "NewYork")
    assert changed_span("The capital of France is", "The capital of Frnace is") == ("France", "Frnace")
    assert changed_span("Same", "Same") == ("", "")


@pytest.mark.parametrize("content, message", [
    (b"\x00\x01\x02binary", "is a binary file"),
    ('{"category": "x", "clean": "caf\u00e9", "typo": "cafe"}\n'.encode("latin-1"), "is not UTF-8 text"),
    (b'{"clean": "a b", "typo": ""}\n', "needs non-empty strings clean and typo"),
    (b'{"category": "x", "clean": "a"\n{"clean": "b"}\n', "not valid JSON"),
    (b"42\n", "not a pair"),
    (b"\n\n", "holds no pairs"),
])
def test_a_pair_file_that_cannot_be_read_is_one_line(tmp_path, capsys, content, message):
    path = tmp_path / "pairs.jsonl"
    path.write_bytes(content)
    code, err = run_cli(robustness.main, ["--ckpt", "a=missing.pt", "--pairs", str(path)], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err, err


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
    assert float(logp.double().exp().sum()) == pytest.approx(1.0, abs=1e-4)  # float32 log-softmax over 50,257


def diff(mean, low, high, seed_low=None, seed_high=None):
    return dict(mean=mean, low=low, high=high, seed_low=seed_low, seed_high=seed_high)


@pytest.mark.parametrize("d, tolerance, higher_is_better, expected", [
    (diff(0.2, 0.1, 0.3, 0.15, 0.25), 0.05, True, "win"),
    (diff(0.2, 0.1, 0.3, 0.15, 0.25), 0.05, False, "loss"),
    (diff(0.2, 0.1, 0.3), 0.05, True, "tie"),  # one seed per arm: no interval over seeds
    (diff(0.2, -0.1, 0.3, 0.15, 0.25), 0.05, True, "tie"),  # prompt interval contains 0
    (diff(0.2, 0.1, 0.3, -0.1, 0.5), 0.05, True, "tie"),  # seed interval contains 0
    (diff(0.04, 0.01, 0.07, 0.02, 0.06), 0.05, True, "tie"),  # within the tolerance
])
def test_a_category_is_won_only_when_beyond_tolerance_and_both_intervals_exclude_zero(d, tolerance,
                                                                                     higher_is_better, expected):
    assert robustness.verdict(d, tolerance, higher_is_better) == expected


def test_mcnemar_table_counts_concordant_and_discordant_units():
    def rows(matches):
        return [dict(top1_match=m) for m in matches]
    table = robustness.mcnemar_table([(rows([1, 1, 0, 0, 1]), rows([1, 0, 1, 1, 1]))])
    assert {k: table[k] for k in ("both", "only_a", "only_b", "neither", "n")} == dict(
        both=2, only_a=1, only_b=2, neither=0, n=5)
    assert table["p"] == pytest.approx(1.0)


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
    prefix, suffix, space = generation_prompts.split_template("The capital is {word}. It is")
    piece = generation_prompts.word_bytes("Paris", space)
    forced = generation.forced_word_embedding(kronecker_model, enc, prefix, piece, suffix, "cpu")
    ids = torch.tensor([enc.encode_ordinary("The capital is Paris. It is")])
    with torch.no_grad():
        torch.testing.assert_close(kronecker_model(tok_emb=forced)[0], kronecker_model(ids)[0], rtol=1e-5, atol=1e-5)


def test_default_novel_words_are_several_bpe_tokens_and_fit_the_codec():
    for prompt in generation_prompts.oov_prompts(get_encoding(), generation_prompts.DEFAULT_WORDS,
                                                 generation_prompts.DEFAULT_TEMPLATE):
        assert prompt["bpe_tokens"] >= 3
        assert len(prompt["word_bytes"].encode("utf-8")) <= GPTConfig.pos_dim


def test_greedy_fallback_breaks_runs_longer_than_the_repeat_limit(ckpts):
    model = GPT.from_checkpoint(ckpts["bpe"])  # this untrained model repeats one token greedily
    ids = get_encoding().encode_ordinary("The capital of France is")
    greedy = generation.complete(model, "cpu", 12, 0.0, None, 42, ids=ids)
    assert len(set(greedy)) < 4
    new, fallbacks = generation.complete_greedy_fallback(model, "cpu", 12, 2, 50, 0.7, 42, ids=ids)
    runs = [len(list(group)) for _, group in itertools.groupby(new)]
    assert max(runs) <= 2 and fallbacks >= 1
    assert new[:2] == greedy[:2]  # greedy until the first repeat
    same, none = generation.complete_greedy_fallback(model, "cpu", 12, 13, 50, 0.7, 42, ids=ids)
    assert same == greedy and none == 0  # the limit is never reached: plain greedy


def test_prompt_files_take_strings_prompt_objects_and_oov_words(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('"The capital of France is"\n{"prompt": "I saw a zorblax", "word": "zorblax"}\n'
                    '{"oov": "flombertine", "template": "Hello {word} and"}\n')
    prompts = generation_prompts.load_prompt_file(path, get_encoding(), "{word}").prompts
    assert [(p["kind"], p["word"]) for p in prompts] == [("prompt", ""), ("prompt", "zorblax"),
                                                         ("oov", "flombertine")]
    assert prompts[2]["text"] == "Hello flombertine and"
    (tmp_path / "prompts.json").write_text(json.dumps(["a", {"prompt": "b"}]))
    assert len(generation_prompts.load_prompt_file(tmp_path / "prompts.json", get_encoding(), "{word}").prompts) == 2
    (tmp_path / "bad.jsonl").write_text('{"text": "no prompt key"}\n')
    with pytest.raises(UserError, match="bad.jsonl:1: not a prompt"):
        generation_prompts.load_prompt_file(tmp_path / "bad.jsonl", get_encoding(), "{word}")


def test_seeded_sampling_is_reproducible(kronecker_model):
    ids = get_encoding().encode_ordinary("The capital of France is")
    runs = [generation.complete(kronecker_model, "cpu", 5, 0.7, 0.9, 42, ids=ids) for _ in range(2)]
    assert runs[0] == runs[1] and len(runs[0]) == 5


# ----------------------------------------------------------------------------- command lines


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
    (comparison,) = data["comparisons"]
    assert comparison["categories_won_tied_lost"]["kl"] == dict(win=0, tie=2, loss=0)
    assert comparison["mcnemar"]["only_a"] == comparison["mcnemar"]["only_b"] == 0
    assert comparison["mcnemar"]["p"] == 1.0 and comparison["kl_diff"]["mean"] == 0
    assert data["summary"]["a"]["overall"] == data["summary"]["b"]["overall"]
    md = (tmp_path / "robustness.md").read_text()
    assert "| b | 1 (None) | 2 |" not in md and "| b | 1 (?) | 2 |" in md


def test_robustness_cli_scores_the_trigram_arm_against_the_reference_arm(ckpts, tmp_path, capsys):
    pairs = write_pairs(tmp_path / "pairs.jsonl", TWO_PAIRS)
    argv = ["--ckpt", f"bpe={ckpts['bpe']}", "--ckpt", f"tri={ckpts['trigram_hash']}", "--pairs", str(pairs),
            "--out", str(tmp_path), "--device", "cpu"]
    assert run_cli(robustness.main, argv, capsys)[0] == 0
    data = json.loads((tmp_path / "robustness.json").read_text())
    assert [c["embedding"] for c in data["checkpoints"]] == ["bpe", "trigram_hash"]
    assert [len(rows) for rows in data["pairs"].values()] == [2, 2]
    assert all(r["kl"] >= 0 for r in data["pairs"]["tri"])
    (comparison,) = data["comparisons"]
    assert (comparison["a"], comparison["b"]) == ("bpe", "tri") and comparison["mcnemar"]["n"] == 2


def test_two_untrained_models_of_one_arm_tie_in_every_category(tmp_path, capsys):
    """Different seeds of one untrained arm differ by chance alone; no category may be called won."""
    a = tiny_checkpoint(tmp_path, "bpe", seed=0, train_config=dict(seed=0))
    b = tiny_checkpoint(tmp_path, "bpe", seed=1, train_config=dict(seed=1))
    pairs = [p for p in load_pairs(DEFAULT_PAIRS) if p["category"] in ("facts", "animals", "time")]
    path = write_pairs(tmp_path / "pairs.jsonl", [{k: p[k] for k in ("category", "clean", "typo")} for p in pairs])
    argv = ["--ckpt", f"a={a}", "--ckpt", f"b={b}", "--pairs", str(path), "--out", str(tmp_path), "--device", "cpu"]
    assert run_cli(robustness.main, argv, capsys)[0] == 0
    (comparison,) = json.loads((tmp_path / "robustness.json").read_text())["comparisons"]
    assert comparison["categories_won_tied_lost"] == dict(stability=dict(win=0, tie=3, loss=0),
                                                          kl=dict(win=0, tie=3, loss=0))
    assert comparison["matched_by"] == "order"
    md = (tmp_path / "robustness.md").read_text()
    # every rate comes with its n and interval, and the report says what one seed cannot tell
    assert re.search(r"\| a \| 1 \(0\) \| 30 \| [0-9.]+% \[[0-9.]+, [0-9.]+\] \| [0-9.]+ \[", md)
    assert "| b vs a | 0 | 30 |" in md and "n/a (1 seed)" in md and "one seed per arm cannot give" in md


def test_several_checkpoints_per_arm_are_matched_by_seed_and_averaged(tmp_path, capsys):
    ckpt = {(emb, seed): tiny_checkpoint(tmp_path, emb, seed=seed, train_config=dict(seed=seed))
            for emb in ("bpe", "kronecker") for seed in (0, 1)}
    pairs = write_pairs(tmp_path / "pairs.jsonl", TWO_PAIRS)
    argv = ["--ckpt", f"bpe={ckpt[('bpe', 0)]}", "--ckpt", f"bpe={ckpt[('bpe', 1)]}",
            "--ckpt", f"kron={ckpt[('kronecker', 1)]}", "--ckpt", f"kron={ckpt[('kronecker', 0)]}",
            "--pairs", str(pairs), "--out", str(tmp_path), "--device", "cpu"]
    assert run_cli(robustness.main, argv, capsys)[0] == 0
    data = json.loads((tmp_path / "robustness.json").read_text())
    assert list(data["pairs"]) == ["bpe s0", "bpe s1", "kron s1", "kron s0"]
    bpe = data["summary"]["bpe"]
    assert bpe["seeds"] == [0, 1] and bpe["overall"]["n_checkpoints"] == 2
    mean_kl = sum(r["kl"] for label in ("bpe s0", "bpe s1") for r in data["pairs"][label]) / 4
    assert bpe["overall"]["kl_mean"]["mean"] == pytest.approx(mean_kl)
    (comparison,) = data["comparisons"]
    assert comparison["matched_by"] == "seed" and comparison["seeds"] == [0, 1]
    assert comparison["mcnemar"]["n"] == 4  # 2 seeds x 2 prompt pairs
    assert comparison["kl_diff"]["seed_low"] is not None  # two seeds give an interval over seeds


def test_the_same_checkpoint_twice_under_one_arm_is_refused(ckpts, tmp_path, capsys):
    argv = ["--ckpt", f"a={ckpts['bpe']}", "--ckpt", f"a={ckpts['bpe']}", "--out", str(tmp_path)]
    code, err = run_cli(robustness.main, argv, capsys)
    assert code == 2 and "given twice" in err


def test_prompts_longer_than_the_context_are_cut_and_the_report_says_so(ckpts, tmp_path, capsys):
    long = " ".join(["the cat sat on the mat"] * 20)  # 120 tokens > block_size 64
    pairs = write_pairs(tmp_path / "pairs.jsonl", [dict(category="long", clean=long + " France is",
                                                        typo=long + " Frnace is")])
    argv = ["--ckpt", f"k={ckpts['kronecker']}", "--pairs", str(pairs), "--out", str(tmp_path), "--device", "cpu"]
    assert run_cli(robustness.main, argv, capsys)[0] == 0
    (row,) = json.loads((tmp_path / "robustness.json").read_text())["pairs"]["k"]
    assert row["cut_clean"] == row["tokens_clean"] - 64 > 0
    assert "were cut to their last 64 tokens" in (tmp_path / "robustness.md").read_text()


def test_generation_cli_feeds_the_novel_word_as_one_position_to_the_byte_arms_only(ckpts, tmp_path, capsys):
    pairs = write_pairs(tmp_path / "pairs.jsonl", TWO_PAIRS[:1])
    argv = ["--ckpt", f"bpe={ckpts['bpe']}", "--ckpt", f"kron={ckpts['kronecker']}",
            "--ckpt", f"tri={ckpts['trigram_hash']}", "--pairs", str(pairs), "--word", "zorblaxian",
            "--max-new-tokens", "3", "--out", str(tmp_path), "--device", "cpu"]
    assert run_cli(generation.main, argv, capsys)[0] == 0
    data = json.loads((tmp_path / "generation.json").read_text())
    oov = {(r["arm"], r["decoding"]): r for r in data["completions"] if r["kind"] == "oov"}
    forced = {arm: oov[(arm, "greedy")]["forced_single_position"] for arm in ("bpe", "kron", "tri")}
    assert forced == dict(bpe=False, kron=True, tri=True)
    bpe_word_tokens = len(get_encoding().encode_ordinary(" zorblaxian"))
    positions = {arm: oov[(arm, "greedy")]["prompt_positions"] for arm in ("bpe", "kron", "tri")}
    assert positions["bpe"] - positions["kron"] == positions["bpe"] - positions["tri"] == bpe_word_tokens - 1
    assert data["echo_counts"]["kron"]["typo/sampled"]["n"] == 1
    assert sum(c["n"] for c in data["echo_counts"]["bpe"].values()) == 6  # (clean, typo, oov) x 2 decodings


def test_generation_cli_with_a_prompt_file_and_greedy_fallback(ckpts, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    long = " ".join(["the cat sat on the mat"] * 20)
    prompts.write_text(json.dumps({"prompt": long, "word": "cat"}) + "\n" + json.dumps({"oov": "zorblaxian"}) + "\n")
    argv = ["--ckpt", f"kron={ckpts['kronecker']}", "--prompts", str(prompts), "--decoding", "greedy_fallback",
            "--repeat-limit", "2", "--max-new-tokens", "3", "--out", str(tmp_path), "--device", "cpu"]
    assert run_cli(generation.main, argv, capsys)[0] == 0
    data = json.loads((tmp_path / "generation.json").read_text())
    assert [(r["kind"], r["decoding"]) for r in data["completions"]] == [("prompt", "greedy_fallback"),
                                                                         ("oov", "greedy_fallback")]
    assert data["completions"][0]["prompt_cut"] == 120 - 64 and data["prompts_cut_to_context"] == 1
    assert data["completions"][0]["prompt_positions"] == 64
    assert "cut to their last 64 tokens" in (tmp_path / "generation.md").read_text()
    assert "our reading of the authors' decoding" in (tmp_path / "generation.md").read_text()


# The authors' published generation results (their probes/data/generation_probe_results.json) in
# its shape, with prompts of our own: a `results` list of one record per prompt, condition and arm.
SETTINGS = {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 30, "seed": 42}


def results_record(prompt_id, text, condition, arm, completion, tokens, flag, oov_target=None):
    return {"prompt_id": prompt_id, "prompt_text": text, "condition": condition, "arm": arm, "oov_target": oov_target,
            "bpe_oov_equivalence_flag": False, "input_token_count": len(text.split()), "input_tokens": [1, 2],
            "completion": completion, "completion_tokens": tokens, "greedy_completion": " x" if flag else None,
            "gibberish_flag": flag, "settings": SETTINGS}


@pytest.fixture
def results_file(tmp_path):
    records = []
    for arm in ("bpe", "kron"):
        records += [
            results_record(0, "The river runs through the", "normal", arm, " town and the river", [1, 2, 3, 4], False),
            results_record(0, "The rivr runs through the", "misspelled", arm, " rivr rivr rivr rivr", [5, 5, 5, 5],
                           arm == "kron"),
            results_record(1, "Blorptastic is a word for", "normal", arm, " a thing", [6, 7], False),
            results_record(1, "Blorptastic is a wrod for", "misspelled", arm, " words", [8], False),
            results_record(1, "Blorptastic is a word for", "forced_oov", arm, " Blorptastic again", [9, 10],
                           arm == "bpe", oov_target="blorptastic")]
    path = tmp_path / "generation_probe_results.json"
    path.write_text(json.dumps({"results": records, "sanity": {}, "settings": SETTINGS}))
    return path


def test_the_authors_results_file_gives_each_condition_once_with_its_probe_word(results_file):
    loaded = generation_prompts.load_prompt_file(results_file, get_encoding(), "{word}")
    assert [(p["kind"], p["text"], p["word"]) for p in loaded.prompts] == [
        ("normal", "The river runs through the", "river"), ("misspelled", "The rivr runs through the", "rivr"),
        ("normal", "Blorptastic is a word for", "word"), ("misspelled", "Blorptastic is a wrod for", "wrod"),
        ("forced_oov", "Blorptastic is a word for", "Blorptastic")]  # the target as the text spells it
    forced = loaded.prompts[-1]
    assert (forced["prefix"], forced["word_bytes"], forced["suffix"]) == ("", "Blorptastic", " is a word for")
    assert loaded.settings == SETTINGS and len(loaded.reference) == 10


def test_probe_words_are_the_words_a_typo_changes():
    assert generation_prompts.probe_words("Hot tea in a cup.", "Hot tae in a cpu.") == (["tea", "cup"], ["tae", "cpu"])
    assert generation_prompts.probe_words("New York is big", "NewYork is big") == (["New York"], ["NewYork"])
    assert generation.echoes(" a cpu and", ["tae", "cpu"]) and not generation.echoes(" a cup", [])


def test_the_authors_prompt_list_and_bad_records(tmp_path):
    enc = get_encoding()
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps([{"normal": "I saw a quokka today", "misspelled": "I saw a qukoka today",
                                 "oov_target": "quokka"}, {"normal": "Two and two", "misspelled": "Tow and two",
                                                           "oov_target": None}]))
    prompts = generation_prompts.load_prompt_file(path, enc, "{word}").prompts
    assert [(p["kind"], p["word"]) for p in prompts] == [
        ("normal", "quokka"), ("misspelled", "qukoka"), ("forced_oov", "quokka"), ("normal", "Two"),
        ("misspelled", "Tow")]
    assert (prompts[2]["prefix"], prompts[2]["word_bytes"], prompts[2]["suffix"]) == ("I saw a", " quokka", " today")
    for record, message in (({"prompt_text": "a b", "condition": "typo"}, "condition 'typo' is none of normal"),
                            ({"prompt_text": "a b", "condition": "forced-OOV", "oov_target": "zz"},
                             "oov_target 'zz' is not in its prompt 'a b'")):
        path.write_text(json.dumps({"results": [record]}))
        with pytest.raises(UserError, match=message):
            generation_prompts.load_prompt_file(path, enc, "{word}")


def test_gibberish_is_a_completion_with_under_half_of_its_tokens_distinct():
    assert generation.gibberish([5, 5, 5, 5], 0.5) and generation.gibberish([5, 5, 5, 6, 5], 0.5)
    assert not generation.gibberish([5, 5, 6, 6], 0.5) and not generation.gibberish([], 0.5)


def test_generation_cli_runs_the_authors_results_file_by_condition_with_its_settings(ckpts, results_file, tmp_path,
                                                                                     capsys):
    argv = ["--ckpt", f"bpe={ckpts['bpe']}", "--ckpt", f"kron={ckpts['kronecker']}", "--prompts", str(results_file),
            "--max-new-tokens", "4", "--out", str(tmp_path), "--device", "cpu"]
    assert run_cli(generation.main, argv, capsys)[0] == 0
    data = json.loads((tmp_path / "generation.json").read_text())
    settings = data["settings"]  # the file's settings, but the command line's --max-new-tokens
    assert [settings[k] for k in ("temperature", "top_p", "seed", "max_new_tokens")] == [0.7, 0.9, 42, 4]
    assert settings["decodings"] == ["sampled"]  # the file's completions are sampled
    assert {k: v["n"] for k, v in data["echo_counts"]["kron"].items()} == {
        "normal/sampled": 2, "misspelled/sampled": 2, "forced_oov/sampled": 1}
    forced = {r["arm"]: r for r in data["completions"] if r["kind"] == "forced_oov"}
    assert forced["kron"]["forced_single_position"] and not forced["bpe"]["forced_single_position"]
    # the file's own completions: echo by our rule, gibberish by its flag and by ours
    assert data["reference_counts"]["kron"]["misspelled"] == dict(echo=1, gibberish_flag=1, gibberish=1, both=1, n=2)
    assert data["reference_counts"]["bpe"]["forced_oov"] == dict(echo=1, gibberish_flag=1, gibberish=0, both=0, n=1)
    md = (tmp_path / "generation.md").read_text()
    assert "temperature 0.7, top_p 0.9, seed 42: the prompt file's settings" in md
    assert "## The file's own completions" in md


@pytest.mark.parametrize("argv, message", [
    (["--codec-pos-dim", "0"], "--codec-pos-dim must be in 1..128"),
    (["--codec-pos-dim", "100000"], "--codec-pos-dim must be in 1..128"),
])
def test_neighbors_refuses_a_codec_without_byte_slots(ckpts, tmp_path, capsys, argv, message):
    code, err = run_cli(neighbors.main, ["--ckpt", f"x={ckpts['bpe']}", "--out", str(tmp_path), *argv], capsys)
    assert code == 2 and err.count("\n") == 1 and message in err


def test_an_out_that_cannot_be_written_is_one_line_for_the_probes(ckpts, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    pairs = write_pairs(tmp_path / "pairs.jsonl", TWO_PAIRS[:1])
    argv = ["--ckpt", f"k={ckpts['kronecker']}", "--pairs", str(pairs), "--out", str(blocker / "x"), "--device", "cpu"]
    code, err = run_cli(robustness.main, argv, capsys)
    assert code == 2 and err.count("\n") == 1 and "cannot write" in err


@pytest.mark.slow
def test_neighbors_cli_scores_every_arm_layer_the_codec_and_the_trigram_buckets(ckpts, tmp_path, capsys):
    argv = ["--ckpt", f"kron={ckpts['kronecker']}", "--k", "3", "--layers", "0", "1", "--out", str(tmp_path),
            "--device", "cpu"]
    assert run_cli(neighbors.main, argv, capsys)[0] == 0
    spaces = json.loads((tmp_path / "neighbors.json").read_text())["spaces"]
    assert [s["space"] for s in spaces] == ["kron", "kron after block 1", neighbors.CODEC_SPACE,
                                            neighbors.TRIGRAM_SPACE]
    for s in spaces:
        assert s["typographic_at_k"] + s["morph_at_k"] + s["other_at_k"] == pytest.approx(1.0)
        assert all(len(q["neighbours"]) == 3 for q in s["queries"])
    codec, trigrams = spaces[-2:]
    # the raw codec puts byte-similar words close: compute/commute share 5 of 7 bytes in place;
    # " compute" and " commute" share 5 of their 8 marked trigrams
    assert codec["pairs"][0]["a"] == "compute" and codec["pairs"][0]["cos"] > 0.5
    assert trigrams["pairs"][0]["a"] == "compute" and trigrams["pairs"][0]["cos"] > 0.4


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
