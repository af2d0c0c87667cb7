"""export_hf.py, sample.py, scripts/lm_eval.sh and eval/downstream.py (issue 20), offline.

Checkpoints are trained here (train.py, 2 steps of a 1-block GPT on FineWeb-Edu text): every arm
of train_config.ARMS with a small byte-level BPE tokenizer.json (1,000 ids, padded to 1,024: cheap,
and the "other tokenizer" path), and GPT-2's tokenizer for bpe without biases and for kronecker
(50,257 ids padded to 50,304). Each is exported and loaded back with transformers alone: its logits
on held-out text and its greedy generations are ours, its tokenizer encodes as ours, lm-eval's
Python API scores it as eval/hellaswag.py does, sample.py is seeded, and each bad input is one
line. The transformers import and the training make the module slow; the plumbing tests are fast.
"""
import functools
import json
import os
import shutil
import subprocess
import sys
from contextlib import nullcontext

import numpy as np
import pytest
import torch

import export_hf
import sample
import train
from conftest import REPO_ROOT
from data.shards import write_shard
from eval import downstream, hellaswag, summarize
from model import GPT
from test_eval import write_run
from test_hellaswag import EXAMPLES
from test_probes import run_cli, tiny_checkpoint
from test_tokenizer import hf_json, sample_texts  # noqa: F401 (hf_json is a fixture)
from tokenizer import get_tokenizer
from train_config import ARMS

BLOCK = 32
TOLERANCE = 1e-4  # the bound on |logit difference| in float32
HARD_TEXT = "Teh quick brwon fox <|endoftext|>naïve café, Zürich 東京 😀\n\n  2024-12-31 e^(iπ)=-1"
GPT2_RUNS = {"gpt2_bpe_nobias": dict(arm="bpe", bias=False), "gpt2_kronecker": dict(arm="kronecker")}


def needs(module):
    """Skip unless an optional package of requirements-eval.txt is installed (.ci/run installs it)."""
    return pytest.importorskip(module, reason="optional: pip install -r requirements-eval.txt")


def train_tiny(tmp, tok_spec, texts, name, **overrides):
    """Train a 2-step checkpoint (train.py) on texts tokenized with tok_spec; returns its path."""
    tok = get_tokenizer(tok_spec)
    data = tmp / f"data_{tok.identity()['vocab_sha256'][:8]}"
    if not data.exists():
        data.mkdir()
        ids = np.array([i for text in texts for i in [tok.eot_id] + tok.encode_ordinary(text)], dtype=np.uint16)
        write_shard(data / "val_000000.bin", ids[:1000])
        write_shard(data / "train_000001.bin", ids[1000:])
    args = dict(data_dir=data, out_dir=tmp / "out", log_dir=tmp / "runs", run_name=name, tokenizer=tok_spec,
                n_layer=1, n_head=2, n_embd=32, block_size=BLOCK, micro_batch_size=2, total_batch_tokens=64,
                max_steps=2, warmup_steps=1, max_lr=3e-3, eval_interval=2, val_tokens=256, device="cpu",
                compile=False)
    train.main([f"--{k}={v}" for k, v in {**args, **overrides}.items()])
    return tmp / "out" / name / "ckpt_000002.pt"


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory, hf_json):  # noqa: F811
    """{name: checkpoint}: every named arm (small tokenizer.json) and the GPT2_RUNS."""
    tmp, texts = tmp_path_factory.mktemp("train"), sample_texts(40)
    found = {arm: train_tiny(tmp, hf_json, texts, arm, arm=arm) for arm in ARMS}
    found.update({name: train_tiny(tmp, "gpt2", texts, name, **run) for name, run in GPT2_RUNS.items()})
    return found


@pytest.fixture(scope="module")
def exports(ckpts, tmp_path_factory):
    """{name: export folder}, written through export_hf.py's command line."""
    needs("transformers")
    tmp = tmp_path_factory.mktemp("hf")
    for name, ckpt in ckpts.items():
        export_hf.main(["--ckpt", str(ckpt), "--out", str(tmp / name)])
    return {name: tmp / name for name in ckpts}


def tokenizer_of(ckpt):
    return get_tokenizer(torch.load(ckpt, weights_only=True, mmap=True)["train_config"]["tokenizer"])


def held_out(ckpt):
    """Two context windows of FineWeb-Edu text no checkpoint was trained on, (2, BLOCK), in its tokens."""
    ids = tokenizer_of(ckpt).encode_ordinary(" ".join(sample_texts(60)[50:]))
    return torch.tensor([ids[:BLOCK], ids[BLOCK:2 * BLOCK]])


def hf_load(folder, **kwargs):
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(folder, **kwargs).eval()


@functools.lru_cache(maxsize=None)
def ours(ckpt):
    """Our model of a checkpoint, loaded once per test session (the tests only read it)."""
    return GPT.from_checkpoint(ckpt)


@torch.no_grad()
def logit_gap(hf_model, model, ids):
    logits, _ = model(ids, targets=torch.zeros_like(ids))  # with targets: every position
    return (hf_model(ids).logits - logits).abs().max().item()


# ----------------------------------------------------------------------------- the export

@pytest.mark.slow
def test_every_arm_exports_to_a_plain_gpt2_with_our_logits_on_held_out_text(ckpts, exports):
    assert set(ARMS) <= set(exports)
    for name, folder in exports.items():
        hf_model, model, tok = hf_load(folder), ours(ckpts[name]), tokenizer_of(ckpts[name])
        assert type(hf_model).__name__ == "GPT2LMHeadModel", name
        assert logit_gap(hf_model, model, held_out(ckpts[name])) <= TOLERANCE, name
        tied = model.param_counts()["output_head"] == 0  # the arm's own accounting says whether it ties
        assert hf_model.config.tie_word_embeddings == tied, name
        assert (hf_model.lm_head.weight.data_ptr() == hf_model.transformer.wte.weight.data_ptr()) == tied, name
        info = json.loads((folder / "export_hf.json").read_text())
        padding = model.config.vocab_size - tok.n_vocab
        assert padding > 0 and hf_model.config.vocab_size == model.config.vocab_size, name  # padded rows kept
        assert (info["padding_ids"], info["step"], info["arm"]) == (padding, 2, GPT2_RUNS.get(name, dict(arm=name))["arm"])
        assert info["check"]["max_abs_logit_diff"] <= TOLERANCE and "--ckpt" in info["command"]
        card = (folder / "README.md").read_text()
        assert f"Arm `{info['arm']}`" in card and f"{padding} padding rows" in card and "validation loss" in card
        assert ("is the exact (V, d) table" in card) == model.config.kronecker, name
    biases = [p for n, p in hf_load(exports["gpt2_bpe_nobias"]).named_parameters() if n.endswith(".bias")]
    assert biases and all(not b.any() for b in biases)  # bias=False: GPT-2's biases are zero


@pytest.mark.slow
def test_greedy_generations_of_the_export_are_ours(ckpts, exports):
    for name, folder in exports.items():
        hf_model, model, prompt = hf_load(folder), ours(ckpts[name]), held_out(ckpts[name])[:1, :8]
        mine = model.generate(prompt, 8, temperature=0.0, n_vocab=tokenizer_of(ckpts[name]).n_vocab)
        theirs = hf_model.generate(prompt, attention_mask=torch.ones_like(prompt), do_sample=False, max_new_tokens=8)
        assert theirs.shape[1] > prompt.shape[1] + 1, name
        assert theirs.tolist() == mine[:, :theirs.shape[1]].tolist(), name  # transformers stops after end-of-text


@pytest.mark.slow
def test_the_native_kronecker_export_keeps_the_codec_and_our_logits(ckpts, tmp_path, capsys):
    needs("transformers")
    kronecker = [name for name, ckpt in ckpts.items() if ours(ckpt).config.kronecker]
    assert {"kronecker", "kronecker_shuffled", "gpt2_kronecker"} <= set(kronecker)
    for name in kronecker:
        export_hf.export(ckpts[name], tmp_path / name, native=True)
        hf_model, model = hf_load(tmp_path / name, trust_remote_code=True), ours(ckpts[name])
        assert "transformer.wte.weight" not in hf_model.state_dict()  # no (V, d) table: the codec
        assert logit_gap(hf_model, model, held_out(ckpts[name])) <= TOLERANCE, name
        word = " glorptastic".encode()  # byte-novel: no GPT-2 token, one position through the codec
        rows = torch.zeros(1, model.config.pos_dim, dtype=torch.uint8)
        rows[0, :len(word)] = torch.tensor(list(word))
        with torch.no_grad():
            theirs = hf_model.transformer.wte.embed_byte_rows(rows, torch.tensor([len(word)]))
            assert torch.allclose(theirs, model.embed_bytes([word]), atol=1e-5)
    code, err = run_cli(export_hf.main, ["--ckpt", str(ckpts["bpe"]), "--out", str(tmp_path / "x"),
                                         "--kronecker-native"], capsys)
    assert code == 2 and "--kronecker-native needs the byte codec" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_the_gpt2_tokenizer_round_trips_and_encodes_as_tiktoken(exports):
    from tiktoken.load import read_file_cached
    from transformers import AutoTokenizer
    folder = exports["gpt2_kronecker"]
    tok, hf_tok = get_tokenizer("gpt2"), AutoTokenizer.from_pretrained(folder)
    ids = hf_tok.encode(HARD_TEXT, add_special_tokens=False)
    assert hf_tok.decode(ids) == HARD_TEXT
    # a literal <|endoftext|> is the end-of-text id (as the hub's gpt2); split_special_tokens reads it as text
    before, after = HARD_TEXT.split("<|endoftext|>")
    assert ids == tok.encode_ordinary(before) + [tok.eot_id] + tok.encode_ordinary(after)
    assert hf_tok(HARD_TEXT, split_special_tokens=True, add_special_tokens=False)["input_ids"] == \
        tok.encode_ordinary(HARD_TEXT)
    for text in sample_texts(20):
        assert hf_tok.encode(text, add_special_tokens=False) == tok.encode_ordinary(text)
    assert (hf_tok.eos_token, hf_tok.eos_token_id, hf_tok.model_max_length) == ("<|endoftext|>", 50256, BLOCK)
    # vocab.json is OpenAI's encoder.json, as tiktoken's cache holds it (the hub's gpt2 has the same)
    encoder = read_file_cached("https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json")
    assert json.loads((folder / "vocab.json").read_text()) == json.loads(encoder)
    assert (folder / "merges.txt").is_file()


@pytest.mark.slow
def test_a_tokenizer_json_is_exported_as_it_is(ckpts, exports, hf_json):  # noqa: F811
    from transformers import AutoTokenizer
    tok, hf_tok = get_tokenizer(hf_json), AutoTokenizer.from_pretrained(exports["kronecker"])
    for text in [HARD_TEXT.replace("<|endoftext|>", ""), *sample_texts(60)[50:55]]:
        ids = tok.encode_ordinary(text)
        assert hf_tok.encode(text, add_special_tokens=False) == ids
        assert hf_tok.decode(ids) == tok.decode(ids)
    assert hf_tok.encode("a<|endoftext|>b", add_special_tokens=False)[1] == tok.eot_id
    assert not (exports["kronecker"] / "vocab.json").exists()  # its own tokenizer.json, no GPT-2 pair


@pytest.mark.slow
def test_an_export_that_differs_from_the_checkpoint_is_refused(ckpts, tmp_path, monkeypatch, capsys):
    needs("transformers")
    # an arm whose input is not GPT.input_table() (here: a vector added after the token embedding;
    # a constant shift would not do, LayerNorm removes it)
    shifted = GPT._input
    monkeypatch.setattr(GPT, "_input", lambda self, idx, tok_emb, table=None: shifted(self, idx, tok_emb, table)
                        + torch.linspace(-1, 1, self.config.n_embd))
    code, err = run_cli(export_hf.main, ["--ckpt", str(ckpts["kronecker"]), "--out", str(tmp_path / "x")], capsys)
    assert code == 2 and "the export does not reproduce checkpoint" in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []  # no folder, no temp folder left


# ----------------------------------------------------------------------------- one-line errors

@pytest.mark.slow
def test_export_errors_are_one_line(ckpts, exports, tmp_path, monkeypatch, capsys):
    def fails(argv, *messages):
        code, err = run_cli(export_hf.main, argv, capsys)
        assert code == 2 and all(m in err for m in messages) and len(err.strip().splitlines()) == 1, err
    ckpt = str(ckpts["bpe"])
    # an unknown arm: a checkpoint written by a model.py with an input this one does not know
    state = torch.load(tiny_checkpoint(tmp_path, "bpe"), weights_only=True)
    state["model_config"]["embedding"] = "byte_lstm"
    torch.save(state, tmp_path / "future.pt")
    fails(["--ckpt", str(tmp_path / "future.pt"), "--out", str(tmp_path / "a")],
          "does not fit this model.py (embedding='byte_lstm' is not one of")
    (tmp_path / "afile").write_text("x")
    fails(["--ckpt", ckpt, "--out", str(tmp_path / "afile" / "export")], "cannot write the export folder")
    fails(["--ckpt", ckpt, "--out", str(exports["bpe"])], "already exists; pass --force")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    fails(["--ckpt", ckpt, "--out", str(tmp_path / "mine"), "--force"], "is not an export_hf.py folder")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if not installed
    fails(["--ckpt", ckpt, "--out", str(tmp_path / "b")], "export_hf.py needs the transformers package",
          "pip install -r requirements-eval.txt")


@pytest.mark.slow
def test_force_replaces_an_earlier_export(ckpts, exports, tmp_path):
    shutil.copytree(exports["bpe"], tmp_path / "hf")
    export_hf.export(ckpts["kronecker"], tmp_path / "hf", force=True)
    assert json.loads((tmp_path / "hf" / "export_hf.json").read_text())["embedding"] == "kronecker"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]  # no temp or replaced folder left


# ----------------------------------------------------------------------------- sample.py

def run_sample(argv, capsys):
    sample.main(argv)
    out = capsys.readouterr()
    return out.out, out.err


@pytest.mark.slow
def test_sample_is_seeded_cuts_long_prompts_and_works_for_every_arm(ckpts, tmp_path, capsys):
    for name, ckpt in ckpts.items():
        out, _ = run_sample(["--ckpt", str(ckpt), "--num_samples=2", "--max_new_tokens=3"], capsys)
        assert out.count(sample.SEPARATOR + "\n") == 2, name
    argv = ["--out_dir", str(ckpts["gpt2_bpe_nobias"].parent), "--start=The cat", "--num_samples=3",
            "--max_new_tokens=6"]
    first, _ = run_sample(argv + ["--seed=7"], capsys)
    again, _ = run_sample(argv + ["--seed=7"], capsys)
    other, _ = run_sample(argv + ["--seed=8"], capsys)
    assert first == again and first != other and first.startswith("The cat")
    samples = first.split(sample.SEPARATOR + "\n")[:3]
    assert len(set(samples)) > 1  # one generator across samples: they differ
    (tmp_path / "prompt.txt").write_text(" ".join(["word"] * 100))
    out, err = run_sample(["--ckpt", str(ckpts["gpt2_bpe_nobias"]), "--start=FILE:" + str(tmp_path / "prompt.txt"),
                           "--num_samples=1", "--max_new_tokens=2", "--temperature=0"], capsys)
    assert f"the prompt is 100 tokens, longer than the checkpoint's context; it was cut to its last {BLOCK}" in err
    assert out.startswith(" word" * BLOCK)  # the kept end of the prompt, then the sample


def test_sample_errors_are_one_line(tmp_path, capsys):
    for argv, message in [(["--out_dir", str(tmp_path)], "holds no ckpt_*.pt"),
                          (["--ckpt", str(tmp_path / "nope.pt")], "checkpoint not found"),
                          (["--ckpt", "x.pt", "--start=FILE:" + str(tmp_path / "nope.txt")], "cannot read it"),
                          (["--ckpt", "x.pt", "--temperature=-1"], "need --temperature >= 0")]:
        code, err = run_cli(sample.main, argv, capsys)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


# ----------------------------------------------------------------------------- lm-eval

def write_task(folder, examples=EXAMPLES):
    """A HellaSwag-format local task for lm-eval: a JSONL of examples and its task YAML."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "examples.jsonl").write_text("".join(json.dumps(e) + "\n" for e in examples))
    (folder / "tiny_hellaswag.yaml").write_text(f"""task: tiny_hellaswag
dataset_path: json
dataset_kwargs:
  data_files:
    validation: {folder / "examples.jsonl"}
validation_split: validation
output_type: multiple_choice
doc_to_text: "{{{{ctx}}}}"
doc_to_choice: "{{{{endings}}}}"
doc_to_target: "{{{{label}}}}"
target_delimiter: " "
metric_list:
  - metric: acc
  - metric: acc_norm
metadata:
  version: 1.0
""")
    return folder


@pytest.mark.slow
def test_lm_eval_scores_the_export_as_eval_hellaswag_scores_the_checkpoint(ckpts, exports, tmp_path, monkeypatch):
    import datasets
    lm_eval = needs("lm_eval")
    from lm_eval.tasks import TaskManager
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # the task's local JSONL only, never the hub
    tasks = TaskManager(include_path=str(write_task(tmp_path / "task")), include_defaults=False)
    model = ours(ckpts["gpt2_kronecker"])  # eval/hellaswag.py reads GPT-2's tokens by default
    result = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={exports['gpt2_kronecker']},dtype=float32",
                                     tasks=["tiny_hellaswag"], task_manager=tasks, device="cpu", batch_size=1,
                                     log_samples=True)
    scores, acc_chars = result["results"]["tiny_hellaswag"], []
    for doc in sorted(result["samples"]["tiny_hellaswag"], key=lambda s: s["doc_id"]):
        example = EXAMPLES[doc["doc_id"]]
        tokens, mask, _ = hellaswag.render_example(example, get_tokenizer("gpt2"), BLOCK)
        total, _ = hellaswag.ending_losses(model, tokens, mask, nullcontext())
        theirs = torch.tensor([r[0] for r in doc["filtered_resps"]])
        assert torch.allclose(theirs, -total, atol=TOLERANCE)  # the same log-likelihood of every ending
        per_char = theirs / torch.tensor([float(len(e)) for e in example["endings"]])
        acc_chars.append(int(per_char.argmax()) == example["label"])
    ours_ = hellaswag.hellaswag_accuracy(model, EXAMPLES, "cpu")
    assert scores["acc,none"] == pytest.approx(ours_["acc"])  # summed log-likelihood: the same metric
    assert scores["acc_norm,none"] == pytest.approx(sum(acc_chars) / len(EXAMPLES))  # lm-eval: per character
    # lm-eval's results JSON, as scripts/lm_eval.sh leaves it, makes the downstream table
    out = tmp_path / "lm_eval" / "kronecker_s1337"
    (out / "model").mkdir(parents=True)
    (out / "model" / "results_2026-01-01T00-00-00.json").write_text(json.dumps(result, default=str))
    (out / "export_hf.json").write_text((exports["gpt2_kronecker"] / "export_hf.json").read_text())
    table = downstream.downstream_section(tmp_path / "lm_eval")
    assert f"| tiny_hellaswag | acc | {scores['acc,none']:.4f} ± n/a (n=1) |" in table


# ----------------------------------------------------------------------------- scripts/lm_eval.sh

FAKE_LM_EVAL = """#!/usr/bin/env bash
# records its arguments and writes a results file where lm_eval would
echo "$@" >> "$FAKE_LOG"
while [ $# -gt 0 ]; do [ "$1" = --output_path ] && out=$2; shift; done
mkdir -p "$out/model" && echo '{"results": {"hellaswag": {"acc,none": 0.3}}}' > "$out/model/results_2026-01-01T00-00-00.json"
"""


def run_script(args, tmp_path, path_dirs, **env):
    env = dict(os.environ, PATH=os.pathsep.join(map(str, path_dirs)), DEVICE="cpu", OUT=str(tmp_path / "results"),
               FAKE_LOG=str(tmp_path / "calls.txt"), **env)
    return subprocess.run(["bash", str(REPO_ROOT / "scripts" / "lm_eval.sh"), *map(str, args)], env=env,
                          capture_output=True, text=True)


def test_lm_eval_sh_runs_lm_eval_on_each_export_and_keeps_its_identity(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "lm_eval").write_text(FAKE_LM_EVAL)
    (bin_dir / "lm_eval").chmod(0o755)
    plain, native = tmp_path / "kronecker_s1", tmp_path / "native_s1"
    for folder, config in [(plain, {"model_type": "gpt2"}), (native, {"auto_map": {}})]:
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(config))
        (folder / "export_hf.json").write_text(json.dumps(dict(arm="kronecker", seed=1, checkpoint=str(folder))))
    done = run_script([plain, native], tmp_path, [bin_dir, "/usr/bin", "/bin"])
    assert done.returncode == 0, done.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert calls[0].startswith(f"--model hf --model_args pretrained={plain},dtype=float32 --tasks "
                               "hellaswag,arc_easy,arc_challenge,piqa,winogrande,lambada_openai --num_fewshot 0")
    assert f"pretrained={native},dtype=float32,trust_remote_code=True" in calls[1]
    assert (tmp_path / "results" / "kronecker_s1" / "export_hf.json").is_file()
    assert len(downstream.load_results(tmp_path / "results")) == 2
    missing = run_script([plain], tmp_path, [tmp_path / "empty", "/usr/bin", "/bin"])
    assert missing.returncode == 2 and missing.stderr == "error: lm_eval is not installed; pip install -r requirements-eval.txt\n"
    (tmp_path / "notanexport").mkdir()
    wrong = run_script([tmp_path / "notanexport"], tmp_path, [bin_dir, "/usr/bin", "/bin"])
    assert wrong.returncode == 2 and "has no config.json: not an export folder" in wrong.stderr


# ----------------------------------------------------------------------------- eval/downstream.py

def write_results(folder, stamp, results, info=None, model_name="model"):
    (folder / model_name).mkdir(parents=True, exist_ok=True)
    (folder / model_name / f"results_{stamp}.json").write_text(json.dumps(dict(results=results, model_name=model_name)))
    if info:
        (folder / "export_hf.json").write_text(json.dumps(info))


def test_downstream_table_has_each_arm_over_seeds_and_the_references_with_sources(tmp_path):
    root = tmp_path / "lm_eval"
    for arm, seed, acc in [("bpe", 1, 0.30), ("bpe", 2, 0.32), ("kronecker", 1, 0.35)]:
        write_results(root / f"{arm}_s{seed}", "2026-01-01T00-00-00",
                      {"hellaswag": {"alias": "hellaswag", "acc,none": acc, "acc_stderr,none": 0.01,
                                     "acc_norm,none": acc + 0.01, "sample_len": 10042}},
                      dict(arm=arm, seed=seed, checkpoint=f"out/{arm}_s{seed}/ckpt_000010.pt"))
    # a later rerun of one export wins for its tasks
    write_results(root / "kronecker_s1", "2026-02-01T00-00-00", {"hellaswag": {"acc,none": 0.36, "acc_norm,none": 0.37}})
    write_results(root / "gpt2", "2026-01-01T00-00-00", {"lambada_openai": {"acc,none": 0.33}},
                  model_name="openai-community__gpt2")
    table = downstream.downstream_section(root)
    assert "| task | metric | bpe | kronecker | openai-community__gpt2 | GPT-2 124M | paper |" in table
    assert "| hellaswag | acc_norm | 0.3200 ± 0.0141 (n=2) | 0.3700 ± n/a (n=1) |  | 0.3114 [a] | not reported |" in table
    assert "| hellaswag | acc | 0.3100 ± 0.0141 (n=2) | 0.3600 ± n/a (n=1) |  | 0.2892 [a] | not reported |" in table
    assert "| lambada_openai | acc |  |  | 0.3300 ± n/a (n=1) | 0.3256 [b] | not reported |" in table
    assert "[a] https://github.com/karpathy/build-nanogpt" in table and "sample_len" not in table
    assert "[b] https://github.com/EleutherAI/lm-evaluation-harness/issues/2159" in table
    assert downstream.downstream_section(tmp_path / "none") == ""


def test_summarize_appends_the_downstream_table_when_lm_eval_results_exist(tmp_path, capsys):
    write_results(tmp_path / "lm_eval" / "bpe_s1", "2026-01-01T00-00-00", {"piqa": {"acc,none": 0.6}},
                  dict(arm="bpe", seed=1))
    write_run(tmp_path / "runs", "bpe", 1, [10, 5, 4, 3.5, 3.0])
    summarize.main(["--runs", str(tmp_path / "runs"), "--out", str(tmp_path)])
    text = (tmp_path / "summary.md").read_text()
    assert "## Downstream benchmarks (lm-evaluation-harness)" in text and "| piqa | acc | 0.6000 ± n/a (n=1) |" in text


@pytest.mark.slow  # a fresh interpreter importing torch
def test_training_and_the_entry_points_never_import_the_eval_extras():
    code = ("import sys, train, sample, export_hf, eval.summarize, eval.downstream; "
            "print(sorted(m for m in ('transformers', 'lm_eval', 'safetensors', 'accelerate') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"  # imported only inside the functions that need them
