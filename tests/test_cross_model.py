"""eval/cross_model.py, eval/hf_embedding.py, eval/probe_words.py: the cross-model embedding probe.

Tiny Hugging Face checkpoints are built here (single-file and sharded, Llama-style and GPT-2-style
tensor names, bf16 / fp16 / fp32, tied and untied heads) with a byte-level BPE tokenizer.json and a
SentencePiece-style one; known answers come from a planted table; the memory test reads a shard
whose other tensor is 128 MB and checks the process never grew by it.
"""
import json
import math
import re
from pathlib import Path

import pytest
import torch

from errors import UserError
from eval import cross_model, hf_embedding
from eval.geometry import normalise
from eval.probe_words import DEFAULT_PROBES, Family, load_families
from tests.test_probes import run_cli, tiny_checkpoint

WORDS = [w for fam in load_families() for w, _ in fam.variants]
HIDDEN = 16


# ----------------------------------------------------------------------------- tiny HF models

def train_tokenizer(path, sentencepiece):
    """A BPE tokenizer.json trained on the default probe words: byte-level (GPT-2 style) or
    SentencePiece-style (Metaspace pieces, "▁" for a space)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    if sentencepiece:
        tok.pre_tokenizer, tok.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
        special, alphabet = "<s>", []
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        special, alphabet = "<|endoftext|>", pre_tokenizers.ByteLevel.alphabet()
    corpus = [" ".join(WORDS[i:] + WORDS[:i]) for i in range(0, len(WORDS), 7)] * 3
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=420, special_tokens=[special],
                                                        initial_alphabet=alphabet, show_progress=False))
    tok.save(str(path))
    return tok.get_vocab_size()


def write_model(folder, tokenizer_json, names, dtype=torch.float32, shards=1, tied=True, vocab=None, config=None):
    """A Hugging Face model folder: config.json, tokenizer.json and safetensors weights whose input
    table is `names["embedding"]` (V x HIDDEN, row i = i + N(0, 1) noise so rows are tellable), a
    decoy layer, and an untied head when tied=False; returns the table written."""
    from safetensors.torch import save_file
    folder.mkdir(parents=True)
    V = vocab or json.loads(Path(tokenizer_json).read_text())["model"]["vocab"].__len__() + 1
    table = torch.randn(V, HIDDEN, generator=torch.Generator().manual_seed(0)).to(dtype)
    tensors = {names["embedding"]: table, names["layer"]: torch.ones(HIDDEN, HIDDEN, dtype=dtype)}
    if not tied:
        tensors[names["head"]] = torch.zeros(V, HIDDEN, dtype=dtype)
    if shards == 1:
        save_file(tensors, str(folder / "model.safetensors"))
    else:
        weight_map = {}
        for i, name in enumerate(tensors):
            shard = f"model-{i % shards + 1:05d}-of-{shards:05d}.safetensors"
            save_file({name: tensors[name]} | {k: v for k, v in tensors.items() if weight_map.get(k) == shard},
                      str(folder / shard))
            weight_map[name] = shard
        (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (folder / "config.json").write_text(json.dumps(config or {names["vocab_key"]: V, names["hidden_key"]: HIDDEN}))
    (folder / "tokenizer.json").write_bytes(Path(tokenizer_json).read_bytes())
    return table


LLAMA = dict(embedding="model.embed_tokens.weight", layer="model.layers.0.mlp.down_proj.weight", head="lm_head.weight",
             vocab_key="vocab_size", hidden_key="hidden_size")
GPT2 = dict(embedding="wte.weight", layer="h.0.attn.c_attn.weight", head="lm_head.weight", vocab_key="vocab_size",
            hidden_key="n_embd")


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizers")
    return {kind: (folder / f"{kind}.json", train_tokenizer(folder / f"{kind}.json", kind == "spm"))
            for kind in ("byte", "spm")}


def vocab_size(tokenizer_json):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(str(tokenizer_json)).get_vocab_size(with_added_tokens=True)


@pytest.mark.parametrize("style, tok, dtype, shards, tied", [
    ("llama", "spm", torch.bfloat16, 1, True),
    ("llama", "byte", torch.float32, 3, False),
    ("gpt2", "byte", torch.float16, 1, True),
    ("gpt2", "spm", torch.float32, 2, False),
])
def test_the_table_is_found_and_read_as_stored(tmp_path, tokenizers, style, tok, dtype, shards, tied):
    names = LLAMA if style == "llama" else GPT2
    path = tokenizers[tok][0]
    table = write_model(tmp_path / "m", path, names, dtype, shards, tied, vocab=vocab_size(path))
    located = hf_embedding.locate(str(tmp_path / "m"))
    assert (located.tensor, located.shape, located.tied) == (names["embedding"], tuple(table.shape), tied)
    read = hf_embedding.read_table(located)
    assert read.dtype == dtype and torch.equal(read, table)


def test_a_model_with_unusual_names_is_found_by_config_shape_or_named_with_tensor(tmp_path, tokenizers):
    path, V = tokenizers["byte"][0], vocab_size(tokenizers["byte"][0])
    odd = dict(LLAMA, embedding="backbone.token_table", head="backbone.output.weight")
    write_model(tmp_path / "m", path, odd, tied=False, vocab=V)
    assert hf_embedding.locate(str(tmp_path / "m")).tensor == "backbone.token_table"  # the head is not a candidate
    assert hf_embedding.locate(str(tmp_path / "m"), tensor="backbone.output.weight").tensor == "backbone.output.weight"


def peak_growth_mb(read):
    """How far this process's peak resident memory rose above its current size during read()
    (Linux: writing 5 to /proc/self/clear_refs resets the peak, VmHWM)."""
    def status(field):
        return int(re.search(rf"{field}:\s+(\d+) kB", Path("/proc/self/status").read_text()).group(1))
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak resident memory")
    before = status("VmRSS")
    result = read()
    return (status("VmHWM") - before) / 1024, result


def test_the_probe_reads_only_the_embedding_tensor_of_its_shard(tmp_path, tokenizers, monkeypatch):
    """From a shard that also holds a 128 MB tensor, only the table is asked of safetensors, and
    reading it (every value touched) raises the peak resident memory by far less than 128 MB; the
    control, a whole-shard read, raises it by more."""
    import safetensors
    from safetensors.torch import load_file, save_file
    path, V = tokenizers["byte"][0], vocab_size(tokenizers["byte"][0])
    table = write_model(tmp_path / "m", path, LLAMA, vocab=V)
    shard = tmp_path / "m" / "model.safetensors"
    save_file({LLAMA["embedding"]: table, "model.layers.0.big": torch.ones(32 * 2**20)}, str(shard))
    located = hf_embedding.locate(str(tmp_path / "m"))
    asked, real_open = [], safetensors.safe_open

    class Spy:
        def __init__(self, *args, **kwargs):
            self.handle = real_open(*args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return self.handle.__exit__(*exc)

        def __getattr__(self, name):
            if name in ("get_tensor", "get_slice"):
                return lambda key: asked.append(key) or getattr(self.handle, name)(key)
            return getattr(self.handle, name)

    monkeypatch.setattr(safetensors, "safe_open", Spy)
    grown, total = peak_growth_mb(lambda: hf_embedding.read_table(located).float().sum())
    assert asked == [LLAMA["embedding"]] and total == pytest.approx(table.sum().item(), rel=1e-5)
    assert grown < 32, f"reading the table raised the peak by {grown:.0f} MB"
    grown, _ = peak_growth_mb(lambda: [t.sum() for t in load_file(str(shard)).values()])
    assert grown > 100  # the measurement sees a whole-shard read


# ----------------------------------------------------------------------------- one-line errors

def test_a_folder_without_an_embedding_tensor_is_one_line(tmp_path, tokenizers):
    path = tokenizers["byte"][0]
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "config.json").write_text("{}")
    with pytest.raises(UserError, match=r"has neither model.safetensors.index.json nor model.safetensors"):
        hf_embedding.locate(str(tmp_path / "empty"))
    odd = dict(LLAMA, embedding="backbone.table_of_tokens")
    write_model(tmp_path / "m", path, odd, vocab=vocab_size(path), config={"vocab_size": 7, "hidden_size": HIDDEN})
    with pytest.raises(UserError, match=r"no input-embedding tensor: none is named like one .* --tensor$"):
        hf_embedding.locate(str(tmp_path / "m"))


def test_an_unknown_tensor_layout_is_one_line(tmp_path, tokenizers):
    path, V = tokenizers["byte"][0], vocab_size(tokenizers["byte"][0])
    write_model(tmp_path / "t", path, LLAMA, vocab=V, config={"vocab_size": V, "hidden_size": HIDDEN + 1})
    with pytest.raises(UserError, match=r"unknown tensor layout: model.embed_tokens.weight has shape "
                                        rf"\({V}, {HIDDEN}\), not \(vocab, hidden = {HIDDEN + 1}\)"):
        hf_embedding.locate(str(tmp_path / "t"))
    two = dict(LLAMA, embedding="a.table", layer="b.table")  # two unnamed (V, hidden) tensors
    write_model(tmp_path / "two", path, two, vocab=V)
    from safetensors.torch import save_file
    save_file({"a.table": torch.zeros(V, HIDDEN), "b.table": torch.zeros(V, HIDDEN)},
              str(tmp_path / "two" / "model.safetensors"))
    with pytest.raises(UserError, match=r"unknown tensor layout: 2 tensors have config.json's shape"):
        hf_embedding.locate(str(tmp_path / "two"))


def test_a_tokenizer_that_does_not_match_the_table_is_one_line(tmp_path, tokenizers, capsys):
    path, V = tokenizers["byte"][0], vocab_size(tokenizers["byte"][0])
    write_model(tmp_path / "short", path, LLAMA, vocab=V - 20)  # ordinary tokens without a row
    write_model(tmp_path / "long", path, LLAMA, vocab=V + 500)  # 500 rows without a token: not padding
    for name, rows in (("short", V - 20), ("long", V + 500)):
        argv = ["--models", str(tmp_path / name), "--out", str(tmp_path / "out")]
        code, err = run_cli(cross_model.main, argv, capsys)
        assert code == 2 and f"does not match the table's {rows:,} rows" in err and len(err.splitlines()) == 1


def test_a_probe_file_that_is_not_utf8_is_one_line(tmp_path):
    (tmp_path / "p.jsonl").write_bytes('{"word": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(UserError, match=r"p.jsonl is not UTF-8 text \(byte 13\); save it as UTF-8"):
        load_families(tmp_path / "p.jsonl")


def test_a_hub_model_offline_comes_from_the_hub_cache_or_names_what_to_pre_seed(tmp_path, tokenizers, monkeypatch):
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    snapshot = tmp_path / "hub" / "models--someone--tiny" / "snapshots" / ("c" * 40)
    table = write_model(snapshot, tokenizers["byte"][0], LLAMA, shards=2, vocab=vocab_size(tokenizers["byte"][0]))
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("c" * 40)
    located = hf_embedding.locate("someone/tiny")
    assert located.source == "hub" and torch.equal(hf_embedding.read_table(located), table)
    (snapshot / "model-00001-of-00002.safetensors").unlink()  # the shard holding the table
    with pytest.raises(UserError, match=r"^cannot read someone/tiny: offline mode is on: HF_HUB_OFFLINE is set and "
                                        r"the hub cache has no model-00001-of-00002.safetensors .*`hf download "
                                        r"someone/tiny config.json tokenizer.json model.safetensors.index.json "
                                        r"model-00001-of-00002.safetensors`"):
        hf_embedding.locate("someone/tiny")


def test_a_hub_model_online_downloads_only_the_shard_that_holds_the_table(tmp_path, tokenizers, monkeypatch):
    """The hub's answers (file list, one shard's header, downloads) come from a local folder here."""
    import huggingface_hub
    from huggingface_hub import constants
    from types import SimpleNamespace
    folder = tmp_path / "remote"
    table = write_model(folder, tokenizers["byte"][0], LLAMA, shards=3, tied=False,
                        vocab=vocab_size(tokenizers["byte"][0]))
    downloaded = []

    class FakeApi:
        def model_info(self, repo, revision=None, timeout=None, files_metadata=False):
            siblings = [SimpleNamespace(rfilename=p.name, size=p.stat().st_size) for p in folder.iterdir()]
            return SimpleNamespace(sha="f" * 40, siblings=siblings)

        def parse_safetensors_file_metadata(self, repo, name, revision=None, timeout=None):
            header = hf_embedding.read_header(folder / name)
            return SimpleNamespace(tensors={k: SimpleNamespace(shape=list(s), dtype=d) for k, (s, d) in header.items()})

    def fake_download(repo, name, revision=None, local_files_only=False):
        assert (repo, revision, local_files_only) == ("someone/tiny", "f" * 40, False)
        downloaded.append(name)
        return str(folder / name)

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    located = hf_embedding.locate("someone/tiny")
    shard = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"][LLAMA["embedding"]]
    assert sorted(downloaded) == sorted(["config.json", "model.safetensors.index.json", "tokenizer.json", shard])
    assert located.revision == "f" * 40 and located.tied is False
    assert torch.equal(hf_embedding.read_table(located), table)
    lines = cross_model.plan("someone/tiny", None)
    assert f"from {shard}" in lines[0] and "tokenizer.json" in lines[0]


# ----------------------------------------------------------------------------- probe words

def test_other_peoples_probe_lists_load_as_they_are(tmp_path):
    (tmp_path / "pairs.jsonl").write_text('{"anchor": "run", "variant": "runs", "bucket": "morph"}\n'
                                          '["run", "RUN"]\n["run", "kitchen", "control"]\n["run", "ruin"]\n')
    (tmp_path / "families.json").write_text('{"run": ["runs", "ran"], "act": []}')
    (tmp_path / "words.json").write_text('["run", "compute"]')
    run = load_families(tmp_path / "pairs.jsonl")[0]
    assert run.variants == [("run", "self"), ("runs", "morphological"), ("RUN", "typographic"),
                            ("kitchen", "unrelated"), ("ruin", "unlabelled")]
    assert run.queries == ["run", "runs"]
    assert [(f.word, f.queries) for f in load_families(tmp_path / "families.json")] == \
        [("run", ["run", "runs", "ran"]), ("act", ["act"])]
    assert [f.word for f in load_families(tmp_path / "words.json")] == ["run", "compute"]
    (tmp_path / "bad.jsonl").write_text('{"word": "run"}\n{"morphological": ["runs"]}\n')
    with pytest.raises(UserError, match=r"bad.jsonl:2: 'word' must be a non-empty string; fix that record"):
        load_families(tmp_path / "bad.jsonl")


def test_the_default_probe_set_has_every_bucket_and_its_typographic_variants_are_canonical_forms():
    families = load_families(DEFAULT_PROBES)
    buckets = {b for fam in families for _, b in fam.variants}
    assert buckets == {"self", "typographic", "morphological", "unrelated"}
    for fam in families:
        for text, bucket in fam.variants:
            assert (normalise(text) == normalise(fam.word)) == (bucket in ("self", "typographic")), text


# ----------------------------------------------------------------------------- known answers

PLANTED = {  # token text -> its row: e0 plus a little of its own axis; kitchen and fillers orthogonal
    "run": 0.0, "Run": 0.2, " run": 0.3, "runs": 0.6, "running": 0.8, "rune": 1.0}


def planted_space():
    texts = list(PLANTED) + ["kitchen"] + [f"x{i}" for i in range(9)]
    table = torch.zeros(len(texts), len(texts) + 1)
    for i, text in enumerate(texts):
        table[i, i + 1] = PLANTED.get(text, 1.0)
        table[i, 0] = 1.0 if text in PLANTED else 0.0
    encoded = {t: dict(ids=[i], pieces=[t]) for i, t in enumerate(texts)}
    family = Family("run", [("run", "self")])
    for text, bucket in (("Run", None), (" run", None), ("runs", "morphological"), ("running", "morphological"),
                         ("rune", "unrelated"), ("kitchen", "unrelated")):
        family.add(text, bucket)
    family.queries = ["run", "runs", "running"]
    return table, texts, encoded, family


def test_neighbour_classes_and_bucket_means_on_a_planted_table():
    table, texts, encoded, family = planted_space()
    result = cross_model.analyse(cross_model.table_space(table, encoded, "cpu"), torch.arange(len(texts)),
                                 [family], encoded, texts, k=3, seed=0)
    raw = result["neighbours"]["raw"]
    assert [[n["text"] for n in q["neighbours"]] for q in raw] == \
        [["Run", " run", "runs"], ["run", "Run", " run"], ["run", "Run", " run"]]
    assert [[n["cls"] for n in q["neighbours"]] for q in raw] == \
        [["typographic", "typographic", "morphological"]] + [["morphological"] * 3] * 2
    shares, total = cross_model.class_shares(raw)
    assert total == 9 and shares == pytest.approx(dict(typographic=2 / 9, morphological=7 / 9, other=0))
    cos = {t: 1 / math.sqrt(1 + a * a) for t, a in PLANTED.items()}  # cosine of e0 + a e_i with e0
    means = cross_model.bucket_means(family.pairs(), result["pair_cos"]["raw"])
    assert means == pytest.approx(dict(self=1.0, typographic=(cos["Run"] + cos[" run"]) / 2,
                                       morphological=(cos["runs"] + cos["running"]) / 2,
                                       unrelated=(cos["rune"] + 0.0) / 2), abs=1e-6)
    assert [p["edit_distance"] for p in family.pairs()] == [0, 1, 1, 1, 4, 1, 6]  # run/kitchen: 6, as the authors'
    assert result["anisotropy"] == pytest.approx(
        ((torch.nn.functional.normalize(table, dim=1).sum(0).norm() ** 2 - 16) / (16 * 15)).item(), abs=1e-6)


def test_centred_neighbours_match_brute_force():
    table, texts, encoded, family = planted_space()
    result = cross_model.analyse(cross_model.table_space(table, encoded, "cpu"), torch.arange(len(texts)),
                                 [family], encoded, texts, k=4, seed=0)
    unit = torch.nn.functional.normalize(table - table.mean(0), dim=1)
    for query in result["neighbours"]["centred"]:
        q = texts.index(query["query"])
        cos = unit @ unit[q]
        cos[q] = -math.inf
        assert [n["id"] for n in query["neighbours"]] == cos.topk(4).indices.tolist()


def test_random_rows_do_not_depend_on_which_rows_are_asked_for():
    space = cross_model.random_space((3000, 8), 1337, {}, "cpu")
    every = space.rows(torch.arange(3000))
    some = torch.tensor([2999, 5, 1024, 5])
    assert torch.equal(space.rows(some), every[some])
    assert not torch.equal(cross_model.random_space((3000, 8), 1, {}, "cpu").rows(some), every[some])


def test_the_codec_space_embeds_a_whole_string_as_its_bytes():
    texts = ["run", "runs", "kitchen", "road"]
    encoded = {t: dict(ids=[i], pieces=[t]) for i, t in enumerate(texts)}
    space = cross_model.codec_space([t.encode() for t in texts], 32, encoded, True, "cpu")
    assert torch.allclose(space.strings(texts), space.rows(torch.arange(4)), atol=1e-6)
    run, runs, kitchen = space.strings(["run", "runs", "kitchen"])
    cos = torch.nn.functional.cosine_similarity
    # 3 of 4 bytes shared at the same positions: sqrt(3/4) (the authors' kron_cos for run/runs, 0.8660)
    assert cos(run, runs, dim=0).item() == pytest.approx(math.sqrt(3 / 4), abs=1e-3)
    assert abs(cos(run, kitchen, dim=0).item()) < 1e-2  # no byte at the same position


def test_the_trigram_space_counts_the_buckets_of_a_whole_strings_marked_trigrams():
    texts = ["run", "runs", "Run", "kitchen"]
    encoded = {t: dict(ids=[i], pieces=[t]) for i, t in enumerate(texts)}
    space = cross_model.trigram_space([t.encode() for t in texts], encoded, True, "cpu")
    assert torch.equal(space.strings(texts), space.rows(torch.arange(4)))
    run, runs, Run, kitchen = space.rows(torch.arange(4))
    assert run.sum() == 3 * 10 and runs.sum() == 4 * 10  # ^ru run un$ / ^ru run uns ns$, 10 buckets each
    cos = torch.nn.functional.cosine_similarity
    # run and runs share 2 of their 3 and 4 trigrams: about 2 / sqrt(3 * 4), up to hash collisions
    assert cos(run, runs, dim=0).item() == pytest.approx(2 / math.sqrt(12), abs=0.05)
    # Run shares only un$ with run, plus 2 lowercase buckets of each other trigram (^Ru, Run)
    assert cos(run, Run, dim=0).item() == pytest.approx((10 + 2 * 2) / 30, abs=0.05)
    assert cos(run, kitchen, dim=0).item() < 0.05


# ----------------------------------------------------------------------------- the command

def test_the_command_probes_a_hugging_face_folder(tmp_path, tokenizers, capsys):
    path = tokenizers["spm"][0]
    write_model(tmp_path / "m", path, LLAMA, torch.bfloat16, vocab=vocab_size(path))
    (tmp_path / "p.jsonl").write_text('{"word": "run", "typographic": ["Run"], "morphological": ["runnable"], '
                                      '"unrelated": ["kitchen"]}\n')  # runnable: not in the tokenizer's corpus
    out = tmp_path / "out"
    argv = ["--models", str(tmp_path / "m"), "--probes", str(tmp_path / "p.jsonl"), "--pos-dim", "4", "--k", "3",
            "--out", str(out)]
    code, err = run_cli(cross_model.main, argv, capsys)
    assert code == 0, err
    name = cross_model.slug(str(tmp_path / "m"))
    report = json.loads((out / f"{name}.json").read_text())
    assert [s["space"] for s in report["spaces"]] == list(cross_model.SPACES)
    assert report["model"]["tied"] is True and report["model"]["tokenizer_kind"] == "hf-spm"
    assert {p["text"]: p["multi_token"] for p in report["probes"]} == \
        dict(run=False, runnable=True, Run=False, kitchen=False)
    assert "`runnable` = " in (out / f"{name}.md").read_text()  # the report names the multi-token strings
    for space in report["spaces"]:
        assert [len(q["neighbours"]) for q in space["neighbours"]["centred"]] == [3, 3]  # run, runnable
        assert set(space["bucket_means"]["raw"]) == {"self", "typographic", "morphological", "unrelated"}
    summary = json.loads((out / "summary.json").read_text())["models"]
    assert [r["model"] for r in summary] == [str(tmp_path / "m")]
    assert (out / f"{name}_falloff.png").stat().st_size > 0
    assert "trained typo@3" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_the_command_compares_our_bpe_and_kronecker_checkpoints(tmp_path, capsys):
    """Trained BPE vs trained Kronecker in one command: each checkpoint's effective input table
    (GPT.input_table), GPT-2's tokenizer from the checkpoint, the codec over GPT-2's bytes."""
    specs = [f"{emb}={tiny_checkpoint(tmp_path, emb, train_config=dict(tokenizer='gpt2'))}"
             for emb in ("bpe", "kronecker")]
    (tmp_path / "p.jsonl").write_text('{"word": "run", "typographic": ["Run"], "morphological": ["runs"]}\n')
    argv = ["--models", *specs, "--probes", str(tmp_path / "p.jsonl"), "--pos-dim", "4", "--k", "2",
            "--out", str(tmp_path / "out")]
    code, err = run_cli(cross_model.main, argv, capsys)
    assert code == 0, err
    rows = json.loads((tmp_path / "out" / "summary.json").read_text())["models"]
    assert [(r["model"], r["vocab"], r["hidden"], r["tied"]) for r in rows] == \
        [("bpe", 50304, 32, True), ("kronecker", 50304, 32, False)]
    report = json.loads((tmp_path / "out" / "kronecker.json").read_text())
    assert report["model"]["real_ids"] == 50256  # GPT-2's ids less <|endoftext|>; the padding rows are not tokens
