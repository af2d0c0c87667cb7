"""Tokenizers and the exact bytes behind every token id: the one module that owns both.

A tokenizer is named by one string (`--tokenizer` of the preparer, `tokenizer` of TrainConfig):
- a tiktoken encoding name: gpt2 (the default), r50k_base, p50k_base, cl100k_base, o200k_base;
- a tiktoken ranks file `*.tiktoken` (lines "base64(token bytes) rank", as tiktoken and Llama 3's
  tokenizer.model store them); an optional sidecar `<file>.json` gives {"pat_str": ...,
  "special_tokens": {"<|endoftext|>": id, ...}}, else GPT-2's split pattern and one
  <|endoftext|> after the last rank;
- a Hugging Face `tokenizer.json` (or a folder holding one), read with the `tokenizers` library;
- a Hugging Face hub name such as meta-llama/Meta-Llama-3-8B (downloaded into the hub cache).

tiktoken's files are read from TIKTOKEN_CACHE_DIR; when it is unset and a `shared/tiktoken_cache`
folder sits beside the repo (`../shared/tiktoken_cache`, the offline cache the quickstart uses),
that folder is used: every entry point (train.py, the preparer, the eval scripts, the sweep and
probes) finds it, wherever it is run from.

The Kronecker embedding reads a token's bytes, so this module decides what they are
(`token_bytes`, mode "exact", the default):
- tiktoken: `decode_single_token_bytes` (partial UTF-8 fragments stay raw bytes, never U+FFFD);
- byte-level BPE (GPT-2 style tokenizer.json): the piece through the inverse of the
  byte-to-unicode map;
- SentencePiece-style BPE: "<0xNN>" byte-fallback pieces to that byte, "▁" to a space;
- special (added) tokens: their literal text; ids the tokenizer does not define (gaps in
  cl100k_base, the padding up to vocab_size): b"".
Mode "reference" reproduces the authors' package (kronecker_embeddings 0.1.1,
tokenizer_utils.token_id_to_bytes): each id is decoded to text and re-encoded as UTF-8, so a
partial-UTF-8 token becomes U+FFFD (b"\\xef\\xbf\\xbd"); specials and <0xNN> stay as above.

    tok = get_tokenizer("gpt2")
    tok.encode_ordinary("Hello"), tok.eot_id, tok.token_bytes(50304)

`python tokenizer.py --tokenizer NAME` prints the share of the vocabulary that fits in
pos_dim 16 and 32 bytes, and the longest token.
"""
import argparse
import base64
import functools
import hashlib
import json
import os
import socket
import sys
from pathlib import Path

import tiktoken

from errors import UserError, one_line, run_main

DEFAULT_TOKENIZER = "gpt2"
TOKEN_BYTES_MODES = ("exact", "reference")
VOCAB_MULTIPLE = 64  # vocab_size is padded to a multiple of 64 for efficient matmuls (50257 -> 50304)
EOT_ID = 50256  # GPT-2's <|endoftext|>
GPT2_VOCAB = 50257  # GPT-2's ids; ids >= this are padding
# The token put before every document, in order of preference: end-of-text, then BOS tokens
# (Llama 3, Llama 2/Mistral, Gemma, DeepSeek V3 with its full-width bars), then end-of-sequence tokens.
DOC_SEPARATORS = ("<|endoftext|>", "<|begin_of_text|>", "<s>", "<bos>", "<\uff5cbegin\u2581of\u2581sentence\uff5c>",
                  "<|end_of_text|>", "</s>", "<eos>", "<\uff5cend\u2581of\u2581sentence\uff5c>")
DOWNLOAD_TIMEOUT_S = 10
# The offline tiktoken cache beside the repo (../shared/tiktoken_cache), used when
# TIKTOKEN_CACHE_DIR is unset: the one place that looks for it
SHARED_TIKTOKEN_CACHE = Path(__file__).resolve().parent.parent / "shared" / "tiktoken_cache"
SPIECE_SPACE = "\u2581"  # SentencePiece's "▁"


def byte_level_decoder():
    """GPT-2's byte-to-unicode map, inverted: {printable char: byte} (openai/gpt-2 encoder.py)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    chars, n = {}, 0
    for b in range(256):
        if b in printable:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + n)
            n += 1
    return {c: b for b, c in chars.items()}


def byte_fallback(piece):
    """The byte of a SentencePiece byte-fallback piece such as "<0x0A>", else None."""
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        try:
            return bytes([int(piece[3:5], 16)])
        except ValueError:
            return None
    return None


class Tokenizer:
    """One tokenizer behind tiktoken's interface (encode_ordinary, decode,
    decode_single_token_bytes, n_vocab, eot_token), whatever library reads it.

    name: the spec it was loaded from; n_vocab: ids 0..n_vocab-1 (gaps included);
    eot_id: the end-of-text/BOS id the preparer puts before every document; eot_text: its text;
    backend: the library object behind it (a tiktoken.Encoding for kind "tiktoken", else a
    tokenizers.Tokenizer), which export_hf.py turns into Hugging Face tokenizer files.
    """

    def __init__(self, name, kind, n_vocab, special, exact, encode, decode, literal_ids=(), backend=None):
        self.name, self.kind, self.n_vocab, self.backend = name, kind, n_vocab, backend
        self.special = special  # {text: id}
        self._exact = exact  # exact bytes by id (list, b"" where the tokenizer has no id)
        # ids whose bytes the reference package also takes as they are: specials, <0xNN>
        self._literal_ids = set(special.values()) | set(literal_ids)
        self._encode, self._decode = encode, decode
        eot = next((t for t in DOC_SEPARATORS if t in special), None)
        if eot is None:
            raise UserError(f"tokenizer {name} has none of the special tokens "
                            f"{', '.join(DOC_SEPARATORS)} to put before each document; add one "
                            f"(as a special token) to the tokenizer file")
        self.eot_text, self.eot_id = eot, special[eot]

    @property
    def eot_token(self):
        return self.eot_id

    def encode_ordinary(self, text):
        """A text's token ids (list of int), special-token text encoded as ordinary text."""
        return self._encode(text)

    def decode(self, ids):
        """Text of a list of ids (partial UTF-8 shown as U+FFFD)."""
        return self._decode(list(ids))

    def decode_single_token_bytes(self, token_id):
        return self._exact[token_id]

    @property
    def dtype(self):
        """The shard dtype that holds every id: "uint16" up to 65,536 ids, else "uint32"."""
        return "uint16" if self.n_vocab <= 2**16 else "uint32"

    def padded_vocab_size(self):
        """n_vocab rounded up to a multiple of VOCAB_MULTIPLE (GPT-2: 50257 -> 50304)."""
        return -(-self.n_vocab // VOCAB_MULTIPLE) * VOCAB_MULTIPLE

    def token_bytes(self, vocab_size=None, mode="exact"):
        """The bytes of every id in [0, vocab_size) (default n_vocab), padding ids as b"".

        mode: "exact" or "reference" (module docstring). Raises UserError if vocab_size is
        below n_vocab (the model could not see every token) or mode is unknown.
        """
        vocab_size = self.n_vocab if vocab_size is None else vocab_size
        if vocab_size < self.n_vocab:
            raise UserError(f"vocab_size {vocab_size} is below the {self.n_vocab} ids of tokenizer "
                            f"{self.name}; set vocab_size to at least {self.n_vocab} (or leave it "
                            f"unset: {self.padded_vocab_size()})")
        if mode not in TOKEN_BYTES_MODES:
            raise UserError(f"token_bytes={mode!r} is not one of {', '.join(TOKEN_BYTES_MODES)}")
        table = list(self._exact) if mode == "exact" else self._reference_bytes()
        return table + [b""] * (vocab_size - self.n_vocab)

    def _reference_bytes(self):
        return [exact if i in self._literal_ids or not exact else self._decode([i]).encode()
                for i, exact in enumerate(self._exact)]

    def identity(self):
        """What the manifest and the checkpoint record: name, kind, n_vocab, eot and a sha256
        of the exact byte table (length-prefixed), so a renamed file still matches itself."""
        sha = hashlib.sha256()
        for b in self._exact:
            sha.update(len(b).to_bytes(4, "little") + b)
        return {"name": self.name, "kind": self.kind, "n_vocab": self.n_vocab,
                "eot_id": self.eot_id, "eot_text": self.eot_text, "vocab_sha256": sha.hexdigest()}


def from_tiktoken(name, enc):
    """Tokenizer around a tiktoken Encoding."""
    special = dict(enc._special_tokens)
    by_id = {i: t.encode() for t, i in special.items()}
    exact = []
    for i in range(enc.n_vocab):
        if i in by_id:
            exact.append(by_id[i])
            continue
        try:
            exact.append(enc.decode_single_token_bytes(i))
        except KeyError:  # a gap in the ids (cl100k_base has some before its specials)
            exact.append(b"")
    return Tokenizer(name, "tiktoken", enc.n_vocab, special, exact, enc.encode_ordinary, enc.decode,
                     backend=enc)


def load_ranks_file(path):
    """A tiktoken Encoding from a `.tiktoken` ranks file and its optional `.json` sidecar."""
    ranks = {}
    for n, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError:
            raise UserError(f"{path}, line {n}: not 'base64-token rank'; give a tiktoken ranks "
                            f"file") from None
    sidecar = path.with_name(path.name + ".json")
    extra = json.loads(sidecar.read_text()) if sidecar.is_file() else {}
    from tiktoken_ext.openai_public import r50k_pat_str
    return tiktoken.Encoding(name=path.stem, pat_str=extra.get("pat_str", r50k_pat_str),
                             mergeable_ranks=ranks,
                             special_tokens=extra.get("special_tokens",
                                                      {"<|endoftext|>": max(ranks.values()) + 1}))


def _has_type(node, kind):
    """True if a tokenizer.json component (dict, maybe a Sequence of them) is or holds `kind`."""
    if isinstance(node, dict):
        return node.get("type") == kind or any(_has_type(v, kind) for v in node.values())
    if isinstance(node, list):
        return any(_has_type(v, kind) for v in node)
    return False


def from_hf(name, tok):
    """Tokenizer around a `tokenizers.Tokenizer` (byte-level or SentencePiece-style BPE)."""
    spec = json.loads(tok.to_str())
    model = spec.get("model", {})
    if model.get("type") != "BPE":
        raise UserError(f"tokenizer {name} is a {model.get('type')} tokenizer; only BPE tokenizers "
                        f"(byte-level or SentencePiece-style) are supported")
    byte_level = _has_type(spec.get("pre_tokenizer"), "ByteLevel") or \
        _has_type(spec.get("decoder"), "ByteLevel")
    added = {t["content"]: t["id"] for t in spec.get("added_tokens", [])}
    vocab = tok.get_vocab(with_added_tokens=True)
    n_vocab = max(vocab.values()) + 1
    unbyte = byte_level_decoder()
    exact, fallback_ids = [b""] * n_vocab, []
    for piece, i in vocab.items():
        if piece in added:
            exact[i] = piece.encode()
        elif byte_level:
            exact[i] = bytes(unbyte[c] for c in piece)
        elif byte_fallback(piece) is not None:
            exact[i] = byte_fallback(piece)
            fallback_ids.append(i)
        else:
            exact[i] = piece.replace(SPIECE_SPACE, " ").encode()
    special = {t["content"]: t["id"] for t in spec.get("added_tokens", []) if t.get("special")}
    return Tokenizer(name, "hf-byte-level" if byte_level else "hf-spm", n_vocab, special, exact,
                     lambda text: tok.encode(text, add_special_tokens=False).ids,
                     lambda ids: tok.decode(ids, skip_special_tokens=False), fallback_ids, backend=tok)


@functools.lru_cache(maxsize=8)
def get_tokenizer(name=DEFAULT_TOKENIZER):
    """The Tokenizer a spec names (module docstring), loaded once per process.

    A download (tiktoken's files, a hub tokenizer) times out after DOWNLOAD_TIMEOUT_S. Raises
    UserError (one line) for an unknown name, a missing or unreadable file, a non-BPE
    tokenizer, or tokenizer files that are not cached and cannot be downloaded.
    """
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # tiktoken's download has no timeout of its own
    try:
        return _load(name)
    finally:
        socket.setdefaulttimeout(old)


def use_shared_tiktoken_cache():
    """Point tiktoken at SHARED_TIKTOKEN_CACHE when TIKTOKEN_CACHE_DIR is unset and the folder
    exists (tiktoken reads the variable on every load; child processes inherit it). An explicit
    TIKTOKEN_CACHE_DIR, even empty (tiktoken's "no cache"), is left alone."""
    if "TIKTOKEN_CACHE_DIR" not in os.environ and SHARED_TIKTOKEN_CACHE.is_dir():
        os.environ["TIKTOKEN_CACHE_DIR"] = str(SHARED_TIKTOKEN_CACHE)


def _load(name):
    path = Path(name)
    if name in tiktoken.list_encoding_names():
        use_shared_tiktoken_cache()
        try:
            enc = tiktoken.get_encoding(name)
        except Exception as err:  # requests' ConnectionError, a timeout, an unreadable cache
            cache = os.environ.get("TIKTOKEN_CACHE_DIR")
            where = f"TIKTOKEN_CACHE_DIR={cache}" if cache else \
                f"tiktoken's default cache (and there is no {SHARED_TIKTOKEN_CACHE})"
            shown = "GPT-2" if name == "gpt2" else name
            raise UserError(f"cannot load the {shown} tokenizer: its files are not in {where} and the "
                            f"download failed ({type(err).__name__}); set TIKTOKEN_CACHE_DIR to a "
                            f"folder holding tiktoken's {name} files (copied from a machine "
                            f"online)") from None
        return from_tiktoken(name, enc)
    if path.is_dir() and (path / "tokenizer.json").is_file():
        path = path / "tokenizer.json"
    if path.suffix in (".tiktoken", ".json") and not path.is_file():
        raise UserError(f"tokenizer file {path} not found")
    if path.suffix == ".tiktoken":
        return from_tiktoken(name, load_ranks_file(path))
    if path.suffix != ".json" and not (name.count("/") == 1 and not path.exists()):
        raise UserError(f"unknown tokenizer {name!r}; give a tiktoken name "
                        f"({', '.join(tiktoken.list_encoding_names())}), a *.tiktoken ranks file, "
                        f"a tokenizer.json path, or a Hugging Face hub name (owner/name)")
    from tokenizers import Tokenizer as HFTokenizer  # only Hugging Face tokenizers need it
    try:
        tok = HFTokenizer.from_file(str(path)) if path.suffix == ".json" else hub_tokenizer(name)
    except UserError:
        raise
    except Exception as err:  # a damaged file, not on the hub
        raise UserError(f"cannot load tokenizer {name} ({one_line(err)}); give a readable "
                        f"tokenizer.json path (offline: copy it from a machine online)") from None
    return from_hf(name, tok)


def hub_tokenizer(name):
    """The `tokenizers.Tokenizer` of hub repo `name`: one request (DOWNLOAD_TIMEOUT_S) asks the
    hub first, because a download that cannot connect retries for ~25 s; without the hub (no
    network, HF_HUB_OFFLINE) the cached tokenizer.json is used, else UserError."""
    from huggingface_hub import HfApi, try_to_load_from_cache
    from tokenizers import Tokenizer as HFTokenizer
    try:
        HfApi().model_info(name, timeout=DOWNLOAD_TIMEOUT_S)
    except Exception as err:  # offline, or no such repo: the hub cache may still hold it
        cached = try_to_load_from_cache(name, "tokenizer.json")
        if isinstance(cached, str):
            return HFTokenizer.from_file(cached)
        raise UserError(f"cannot load tokenizer {name}: the Hugging Face hub did not answer "
                        f"({one_line(err)}) and the hub cache has no copy; check the name and the "
                        f"network, or give a tokenizer.json path (offline: copy it from a machine "
                        f"online)") from None
    return HFTokenizer.from_pretrained(name)


def get_encoding():
    """GPT-2's tokenizer (kept for callers that only ever meant GPT-2)."""
    return get_tokenizer(DEFAULT_TOKENIZER)


def gpt2_token_bytes(vocab_size=50304):
    """GPT-2's exact bytes of every id in [0, vocab_size), padding ids as b""."""
    tok = get_encoding()
    return tok.token_bytes(max(vocab_size, tok.n_vocab))[:vocab_size]


def truncate_utf8(token, max_bytes):
    """Cut `token` to at most `max_bytes` bytes, never splitting a character of valid UTF-8.

    Bytes that are not valid UTF-8 (GPT-2 has tokens that are fragments of a character) are
    cut at exactly `max_bytes`.
    """
    if len(token) <= max_bytes:
        return token
    try:
        token.decode("utf-8")
    except UnicodeDecodeError:
        return token[:max_bytes]
    end = max_bytes
    while end > 0 and (token[end] & 0xC0) == 0x80:  # token[end] continues the previous char
        end -= 1
    return token[:end]


def coverage(tok, pos_dims=(16, 32)):
    """Lines: the vocabulary's size, its longest token, and per pos_dim the share that fits."""
    table = tok.token_bytes()
    lengths = [len(b) for b in table]
    longest = max(range(len(table)), key=lambda i: lengths[i])
    lines = [f"{tok.name}: {tok.n_vocab:,} ids ({tok.kind}), end-of-text {tok.eot_text!r} = "
             f"{tok.eot_id}, longest token {lengths[longest]} bytes (id {longest}: "
             f"{table[longest][:40]!r})"]
    for pos_dim in pos_dims:
        longer = sum(n > pos_dim for n in lengths)
        lines.append(f"pos_dim {pos_dim}: {100 * (1 - longer / len(lengths)):.3f}% fit, "
                     f"{longer:,} tokens are truncated")
    return lines


def main(argv=None):
    p = argparse.ArgumentParser(description="Share of a tokenizer's vocabulary that fits in "
                                            "pos_dim bytes, and its longest token.")
    p.add_argument("--tokenizer", default=DEFAULT_TOKENIZER,
                   help="tiktoken name, *.tiktoken file, tokenizer.json path or hub name")
    p.add_argument("--pos-dim", type=int, nargs="+", default=[16, 32])
    args = p.parse_args(argv)
    print("\n".join(coverage(get_tokenizer(args.tokenizer), args.pos_dim)))


if __name__ == "__main__":
    sys.exit(run_main(main))
