"""tokenizer.py: any BPE tokenizer (tiktoken by name or ranks file, Hugging Face tokenizer.json),
exact and reference token bytes, and each going end to end: prepare, train both arms, resume,
probe. Offline: the test builds a >65,536-id tiktoken ranks file from GPT-2's ranks, and trains
a small byte-level BPE with the `tokenizers` library on the shared FineWeb-Edu sample."""
import base64
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
import torch

import train
from conftest import FINEWEB_EDU_SAMPLE
from data import fineweb_edu
from data.shards import GPT2_VOCAB_SHA256, open_shard, read_manifest, shard_info
from errors import UserError
from eval import robustness
from eval.typo_pairs import DEFAULT_PAIRS
from model import GPT
from tokenizer import GPT2_VOCAB, byte_level_decoder, get_tokenizer, main as tokenizer_main, truncate_utf8

N_FILLER = 16_000  # synthetic tokens that push the sample's own merged words above id 65,535


def sample_texts(n=400):
    with open(FINEWEB_EDU_SAMPLE) as f:
        return [json.loads(line)["text"] for line, _ in zip(f, range(n))]


@pytest.fixture(scope="module")
def big_tiktoken(tmp_path_factory):
    """A ranks file: GPT-2's 50,256 ranks, N_FILLER random byte tokens, then every word of the
    sample that GPT-2 splits in two (so those words get ids above 65,535), then <|endoftext|>."""
    gpt2 = get_tokenizer("gpt2")
    ranks = dict(tiktoken_ranks(gpt2))
    rng = np.random.default_rng(0)
    while len(ranks) < 50_256 + N_FILLER:
        ranks.setdefault(bytes(rng.integers(0, 256, 6).tolist()), len(ranks))
    for text in sample_texts():
        for word in re.findall(r" ?[A-Za-z]{6,}", text):
            ids = gpt2.encode_ordinary(word)
            if len(ids) == 2:
                ranks.setdefault(word.encode(), len(ranks))
    path = tmp_path_factory.mktemp("tok") / "big.tiktoken"
    path.write_text("".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in ranks.items()))
    return str(path)


def tiktoken_ranks(tok):
    return ((tok.decode_single_token_bytes(i), i) for i in range(tok.n_vocab) if i != tok.eot_id)


@pytest.fixture(scope="module")
def hf_json(tmp_path_factory):
    """A 1,000-token byte-level BPE trained on the sample, saved as tokenizer.json."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(sample_texts(200), trainers.BpeTrainer(
        vocab_size=1000, special_tokens=["<|endoftext|>"], show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    path = tmp_path_factory.mktemp("hf") / "tokenizer.json"
    tok.save(str(path))
    return str(path)


# ----------------------------------------------------------------------------- token bytes

def test_gpt2_by_name_keeps_its_ids_eot_and_vocab_hash():
    tok = get_tokenizer("gpt2")
    assert (tok.n_vocab, tok.eot_id, tok.padded_vocab_size(), tok.dtype) == (50257, 50256, 50304, "uint16")
    assert tok.identity()["vocab_sha256"] == GPT2_VOCAB_SHA256  # what older manifests are assumed to be
    table = tok.token_bytes(50304)
    assert table[50256] == b"<|endoftext|>" and table[50257:] == [b""] * 47
    assert table[tok.encode_ordinary(" the")[0]] == b" the"


def test_reference_bytes_turn_partial_utf8_into_replacement_characters():
    exact, ref = (get_tokenizer("gpt2").token_bytes(mode=m) for m in ("exact", "reference"))
    changed = [i for i in range(len(exact)) if exact[i] != ref[i]]
    # the numbers: 344 ids collapse to 15 byte strings, 254 of them to U+FFFD alone
    assert len(changed) == 344 and len({ref[i] for i in changed}) == 15
    assert sum(ref[i] == "\ufffd".encode() for i in changed) == 254


class TransformersLike:
    """The slice of a transformers tokenizer the reference package reads, over one of ours."""

    def __init__(self, tok):
        self.tok, self.all_special_ids = tok, list(tok.special.values())
        to_char = {b: c for c, b in byte_level_decoder().items()}
        self.pieces = ["".join(to_char[b] for b in tok.decode_single_token_bytes(i))
                       for i in range(tok.n_vocab)]

    def get_vocab(self):
        return {p: i for i, p in enumerate(self.pieces)}

    def convert_ids_to_tokens(self, i):
        return self.pieces[i]

    def decode(self, ids, **kwargs):
        return self.tok.decode(ids)


@pytest.mark.parametrize("pos_dim", [16, 32])
def test_reference_mode_equals_the_reference_packages_byte_buffer(pos_dim):
    reference = pytest.importorskip("kronecker_embeddings.tokenizer_utils",
                                    reason="test-only oracle: pip install --no-deps kronecker-embeddings==0.1.1")
    tok = get_tokenizer("gpt2")
    byte_buffer, length_buffer = reference.build_byte_buffer(TransformersLike(tok), pos_dim=pos_dim)
    ours = [truncate_utf8(b, pos_dim) for b in tok.token_bytes(mode="reference")]
    assert length_buffer.tolist() == [len(b) for b in ours]
    assert all(bytes(byte_buffer[i, :len(b)].tolist()) == b for i, b in enumerate(ours))


def test_a_ranks_file_goes_past_65536_ids_and_keeps_gpt2s_bytes(big_tiktoken):
    tok, gpt2 = get_tokenizer(big_tiktoken), get_tokenizer("gpt2")
    assert tok.n_vocab > 66_000 and tok.dtype == "uint32" and tok.eot_id == tok.n_vocab - 1
    assert tok.token_bytes()[:50256] == gpt2.token_bytes()[:50256]
    assert max(tok.encode_ordinary(sample_texts(1)[0])) > 65_535  # words GPT-2 splits in two


def test_hf_byte_level_bytes_are_what_the_tokenizer_decodes(hf_json):
    tok = get_tokenizer(hf_json)
    assert tok.kind == "hf-byte-level" and tok.eot_text == "<|endoftext|>" and tok.dtype == "uint16"
    text = "Ünïcode and plain text, 2024."
    ids = tok.encode_ordinary(text)
    assert b"".join(tok.token_bytes()[i] for i in ids) == text.encode()


def test_sentencepiece_style_pieces_map_to_their_bytes(tmp_path):
    from tokenizers import Tokenizer, decoders, models
    vocab = {"<s>": 0, "<0x0A>": 1, "<0xE2>": 2, "▁the": 3, "▁": 4, "t": 5, "h": 6, "e": 7, "th": 8,
             "▁th": 9}
    tok = Tokenizer(models.BPE(vocab, [("t", "h"), ("▁", "th"), ("▁th", "e")], byte_fallback=True))
    tok.add_special_tokens(["<s>"])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(),
                                     decoders.Fuse()])
    tok.save(str(tmp_path / "tokenizer.json"))
    spm = get_tokenizer(str(tmp_path))  # a folder holding tokenizer.json
    assert spm.kind == "hf-spm" and spm.eot_text == "<s>"
    assert spm.token_bytes()[:5] == [b"<s>", b"\n", b"\xe2", b" the", b" "]
    assert spm.token_bytes(mode="reference")[2] == b"\xe2"  # <0xNN> stays a byte, as in the package


def test_bad_tokenizer_names_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match=r"unknown tokenizer 'gpt3'; give a tiktoken name"):
        get_tokenizer("gpt3")
    with pytest.raises(UserError, match=r"tokenizer file .*nope.tiktoken not found"):
        get_tokenizer(str(tmp_path / "nope.tiktoken"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(UserError, match=r"cannot load tokenizer .*bad.json"):
        get_tokenizer(str(tmp_path / "bad.json"))
    with pytest.raises(UserError, match=r"vocab_size 50000 is below the 50257 ids of tokenizer gpt2"):
        get_tokenizer("gpt2").token_bytes(50000)


def test_a_hub_tokenizer_offline_comes_from_the_hub_cache_or_is_one_line(tmp_path, hf_json, monkeypatch):
    # Offline, hub downloads retry for ~25 s: one request decides, then the cache or the error.
    from huggingface_hub import constants
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    snapshot = tmp_path / "models--someone--cached-bpe" / "snapshots" / ("c" * 40)
    snapshot.mkdir(parents=True)
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("c" * 40)
    (snapshot / "tokenizer.json").write_bytes(Path(hf_json).read_bytes())
    assert get_tokenizer("someone/cached-bpe").identity()["vocab_sha256"] == \
        get_tokenizer(hf_json).identity()["vocab_sha256"]
    with pytest.raises(UserError, match=r"^cannot load tokenizer someone/not-cached: the Hugging Face hub "
                                        r"did not answer \(OfflineModeIsEnabled: .*\) and the hub cache "
                                        r"has no copy; .* give a tokenizer.json path"):
        get_tokenizer("someone/not-cached")


def test_unset_tiktoken_cache_dir_finds_the_shared_cache_beside_the_repo(tmp_path, monkeypatch):
    """Issue 21 §7, §9: the quickstart's offline cache, ../shared/tiktoken_cache, is found by
    tokenizer.py itself, so train.py, the preparer, the sweep and the probes all load GPT-2 offline."""
    import tiktoken.registry
    import tokenizer
    cache = Path(os.environ.get("TIKTOKEN_CACHE_DIR") or tokenizer.SHARED_TIKTOKEN_CACHE)
    if not cache.is_dir():
        pytest.skip("no offline tiktoken cache here")
    beside_repo = tmp_path / "shared" / "tiktoken_cache"
    shutil.copytree(cache, beside_repo)
    monkeypatch.setattr(tokenizer, "SHARED_TIKTOKEN_CACHE", beside_repo)
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})  # nothing loaded in this process yet
    monkeypatch.setattr(requests, "get", no_network)
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    get_tokenizer.cache_clear()
    try:
        assert get_tokenizer("gpt2").n_vocab == GPT2_VOCAB
        assert os.environ["TIKTOKEN_CACHE_DIR"] == str(beside_repo)  # children (torchrun ranks) too
        monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))  # an explicit one wins
        get_tokenizer.cache_clear()
        monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
        with pytest.raises(UserError, match=f"not in TIKTOKEN_CACHE_DIR={tmp_path / 'empty'}"):
            get_tokenizer("gpt2")
    finally:
        get_tokenizer.cache_clear()


def no_network(*args, **kwargs):
    raise requests.exceptions.ConnectionError("Name or service not known")


def test_cli_reports_coverage_at_pos_dim_16_and_32(capsys):
    tokenizer_main(["--tokenizer", "gpt2"])
    out = capsys.readouterr().out
    assert "longest token 128 bytes" in out
    assert "pos_dim 16: 99.857% fit, 72 tokens" in out and "pos_dim 32: 99.972% fit, 14 tokens" in out


# ----------------------------------------------------------------------------- end to end

def prepare(tmp_path, spec):
    out = tmp_path / "data"
    fineweb_edu.main(["--data-files", str(FINEWEB_EDU_SAMPLE), "--out", str(out), "--tokenizer", spec,
                      "--val-tokens", "3000", "--shard-tokens", "20000", "--train-tokens", "20000",
                      "--workers", "2"])
    return out


def train_args(tmp_path, data, spec, embedding, **overrides):
    args = dict(data_dir=data, out_dir=tmp_path / "out", log_dir=tmp_path / "runs", run_name=embedding,
                tokenizer=spec, embedding=embedding, n_layer=1, n_head=2, n_embd=32, block_size=32,
                micro_batch_size=2, total_batch_tokens=64, max_steps=2, warmup_steps=1,
                eval_interval=2, val_tokens=512, device="cpu", compile=False)
    args.update(overrides)
    return [f"--{k}={v}" for k, v in args.items()]


@pytest.mark.slow
@pytest.mark.parametrize("which", ["big_tiktoken", "hf_json"])
def test_a_tokenizer_goes_end_to_end(tmp_path, which, request):
    spec = request.getfixturevalue(which)
    tok = get_tokenizer(spec)
    data = prepare(tmp_path, spec)
    manifest = read_manifest(data, fix="")
    assert manifest["settings"]["dtype"] == tok.dtype and manifest["n_vocab"] == tok.n_vocab
    assert manifest["settings"]["vocab_sha256"] == tok.identity()["vocab_sha256"]
    assert shard_info(data / "train_000001.bin")[1] == tok.dtype
    val = open_shard(data / "val_000000.bin")
    assert val[0] == tok.eot_id  # the tokenizer's own EOT opens every document
    if which == "big_tiktoken":
        assert max(e["max_token_id"] for e in manifest["shards"]) > 65_535
    for embedding in ("kronecker", "bpe"):
        train.main(train_args(tmp_path, data, spec, embedding))
        train.main(train_args(tmp_path, data, spec, embedding, max_steps=3,
                              allow_change="max_steps"))  # resumes at step 2, the change recorded
        log = [json.loads(line) for line in (tmp_path / "runs" / embedding / "log.jsonl").open()]
        assert log[-1]["step"] == 3
    ckpt = torch.load(tmp_path / "out" / "kronecker" / "ckpt_000003.pt", weights_only=False)
    assert ckpt["model_config"]["vocab_size"] == tok.padded_vocab_size()
    model = GPT.from_checkpoint(ckpt)  # no tokenizer needed: the byte table is in the checkpoint
    ids = tok.encode_ordinary(sample_texts(1)[0])
    assert model.transformer.wte.byte_lengths[ids].tolist() == [len(tok.token_bytes()[i]) for i in ids]
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(line for line, _ in zip(open(DEFAULT_PAIRS), range(4))))
    robustness.main(["--ckpt", f"kronecker={tmp_path}/out/kronecker/ckpt_000003.pt", "--pairs", str(pairs),
                     "--ckpt", f"bpe={tmp_path}/out/bpe/ckpt_000003.pt", "--out", str(tmp_path / "probes")])
    report = json.loads((tmp_path / "probes" / "robustness.json").read_text())
    first = report["pairs"][next(iter(report["pairs"]))][0]
    assert first["tokens_clean"] == len(tok.encode_ordinary(first["clean"]))  # its own tokenizer
    with pytest.raises(UserError, match=rf"{data} was tokenised with .* but this run's tokenizer is "
                                        rf"gpt2 .*; set tokenizer="):
        train.main(train_args(tmp_path, data, "gpt2", "bpe", run_name="wrong"))
