"""Parameter and memory accounting: a learned (V, d) input table vs the Kronecker embedding.

For GPT-2 124M and public frontier shapes (vocabulary V x hidden size d) it tabulates:
- input-side trainable parameters: the table's V*d vs the Kronecker projection's
  256*pos_dim*d, at pos_dim 16 and 32, and the percent saved (the trigram_hash arm's bucket
  table at its default 256*pos_dim rows has the projection's count exactly);
- memory: the table in fp32 (4 bytes) and bf16 (2 bytes) vs the Kronecker byte buffer,
  V x (pos_dim + 2) bytes (pos_dim byte slots per token plus a 2-byte length).
Sizes are decimal (1 MB = 1e6 bytes, 1 GB = 1e9 bytes). No checkpoint needed.
For the tiktoken tokenizers it also reads the real byte table (tokenizer.get_tokenizer) where it
loads: the share of tokens that fit pos_dim 16 and 32 bytes, the longest token, and the ids whose
input is identical to another id's by construction (collisions): the same codec input (the same
bytes once cut to pos_dim) and the same trigram buckets (trigram_hash at its defaults: the same
multiset of buckets), with the bytes of the trigram arm's stored incidence. A tokenizer
whose files are not cached and cannot be downloaded (cl100k_base, o200k_base offline) falls back
to its shape (the id count tiktoken defines) and says so.

    python -m eval.param_accounting                 # writes results/param_accounting.{md,json}
    python -m eval.param_accounting --out /tmp/acc --tokenizers gpt2 cl100k_base
"""
import argparse
from collections import Counter

from embeddings import TrigramHashEmbedding
from errors import UserError, run_main
from eval.probe_common import write_report
from eval.runs import markdown_table
from tokenizer import VOCAB_MULTIPLE, get_tokenizer, truncate_utf8

CODEC_BYTES = 256  # one-hot width per byte position
LENGTH_BYTES = 2  # per-token length in the byte buffer
POS_DIMS = (16, 32)
SHAPES = [  # (name, vocabulary incl. padding, hidden size)
    ("GPT-2 124M (this repo, V padded to 50,304)", 50_304, 768),
    ("SmolLM2-135M", 49_152, 576),
    ("Llama-3.2-1B", 128_256, 2_048),
    ("Llama-3-8B", 128_256, 4_096),
    ("Gemma-3-1B", 262_144, 1_152),
    ("Qwen3-32B", 151_936, 5_120),
    ("DeepSeek-V3", 129_280, 7_168),
    ("gpt-oss-120b", 201_088, 2_880),
    ("V = 131,072, d = 4,096", 131_072, 4_096),
]
# tiktoken encodings and their ids (tiktoken_ext/openai_public.py: explicit_n_vocab, or the last
# special token + 1), the shape used when the byte table cannot be loaded
TOKENIZERS = (("gpt2", 50_257), ("r50k_base", 50_257), ("p50k_base", 50_281),
              ("cl100k_base", 100_277), ("o200k_base", 200_019))


def table_params(vocab, d):
    return vocab * d


def projection_params(d, pos_dim):
    return CODEC_BYTES * pos_dim * d


def percent_saved(vocab, d, pos_dim):
    return 100.0 * (1 - projection_params(d, pos_dim) / table_params(vocab, d))


def table_bytes(vocab, d, bytes_per_param):
    return table_params(vocab, d) * bytes_per_param


def byte_buffer_bytes(vocab, pos_dim):
    return vocab * (pos_dim + LENGTH_BYTES)


def shape_row(name, vocab, d, pos_dims=POS_DIMS):
    return dict(
        model=name, vocab=vocab, d=d, table_params=table_params(vocab, d),
        projection_params={p: projection_params(d, p) for p in pos_dims},
        percent_saved={p: percent_saved(vocab, d, p) for p in pos_dims},
        table_bytes=dict(fp32=table_bytes(vocab, d, 4), bf16=table_bytes(vocab, d, 2)),
        byte_buffer_bytes={p: byte_buffer_bytes(vocab, p) for p in pos_dims},
    )


def padded(n_vocab):
    """Ids rounded up to a multiple of VOCAB_MULTIPLE, as training pads vocab_size."""
    return -(-n_vocab // VOCAB_MULTIPLE) * VOCAB_MULTIPLE


def tokenizer_row(name, n_vocab, pos_dims=POS_DIMS):
    """One tokenizer's input-side numbers from its real byte table, or from its shape alone.

    Returns dict(tokenizer, source "byte table" | "shape", n_vocab, vocab (padded),
    percent_saved {pos_dim: %}, and from a byte table: longest (bytes), percent_fit {pos_dim: %}
    of the ids (gaps and specials included) whose bytes fit; from a shape: why it did not load).
    """
    row = dict(tokenizer=name, n_vocab=n_vocab)
    try:
        tok = get_tokenizer(name)
    except UserError as err:  # not cached and no network: the shape is all we know
        # the report is committed: its reason names no folder of this machine (the line does)
        print(f"note: {name}: {err}; its shape only")
        row.update(source="shape", reason="its files are not in the tiktoken cache here and could "
                                          "not be downloaded")
    else:
        table = tok.token_bytes()
        lengths = [len(b) for b in table]
        row.update(source="byte table", n_vocab=tok.n_vocab, longest=max(lengths),
                   percent_fit={p: 100.0 * sum(n <= p for n in lengths) / len(lengths) for p in pos_dims},
                   same_codec={p: shared_inputs(truncate_utf8(b, p) for b in table if b) for p in pos_dims},
                   **trigram_figures(table))
    vocab = padded(row["n_vocab"])
    row.update(vocab=vocab, percent_saved={p: 100.0 * (1 - CODEC_BYTES * p / vocab) for p in pos_dims})
    return row


def shared_inputs(keys):
    """dict(ids, groups): how many of the keys (one per id) equal another id's, in how many groups."""
    sizes = [n for n in Counter(keys).values() if n > 1]
    return dict(ids=sum(sizes), groups=len(sizes))


def trigram_figures(table):
    """The trigram_hash arm at its defaults over a byte table: the ids sharing their multiset of
    buckets (hence their input) with another id, and the bytes of its stored incidence."""
    hashed = TrigramHashEmbedding(table, n_embd=1)
    buckets = hashed.trigram_buckets.long()[hashed.token_trigrams.long()]  # (pairs, k)
    offsets = hashed.token_offsets.tolist()
    keys = (tuple(sorted(buckets[offsets[i]:offsets[i + 1]].reshape(-1).tolist())) for i, b in enumerate(table) if b)
    state = sum(t.numel() * t.element_size() for name, t in hashed.state_dict().items() if name != "weight")
    return dict(same_trigram=shared_inputs(keys), trigram_state_bytes=state)


def tokenizers_table(rows, pos_dims):
    header = ["tokenizer", "from", "ids", "V (padded)", "longest token"]
    header += [f"fit pos_dim {p}" for p in pos_dims] + [f"saved ({p})" for p in pos_dims]
    header += [f"same codec ({p})" for p in pos_dims] + ["same trigram buckets", "trigram state"]
    body = []
    for r in rows:
        real = r["source"] == "byte table"
        cells = [r["tokenizer"], "byte table" if real else "shape only (cannot load here)",
                 f"{r['n_vocab']:,}", f"{r['vocab']:,}", f"{r['longest']} bytes" if real else "—"]
        cells += [f"{r['percent_fit'][p]:.3f}%" if real else "—" for p in pos_dims]
        cells += [f"{r['percent_saved'][p]:.1f}%" for p in pos_dims]
        shared = [r["same_codec"][p] for p in pos_dims] + [r["same_trigram"]] if real else []
        cells += [f"{s['ids']} ids ({s['groups']} groups)" for s in shared] or ["—"] * (len(pos_dims) + 1)
        cells.append(human_bytes(r["trigram_state_bytes"]) if real else "—")
        body.append(cells)
    return markdown_table(header, body)


def millions(n):
    return f"{n / 1e6:,.1f}M"


def human_bytes(n):
    return f"{n / 1e9:,.2f} GB" if n >= 1e9 else f"{n / 1e6:,.1f} MB"


def params_table(rows, pos_dims):
    header = ["model", "V", "d", "table V·d"]
    for p in pos_dims:
        header += [f"Kronecker pos_dim {p}", f"saved ({p})"]
    body = []
    for r in rows:
        cells = [r["model"], f"{r['vocab']:,}", f"{r['d']:,}", millions(r["table_params"])]
        for p in pos_dims:
            cells += [millions(r["projection_params"][p]), f"{r['percent_saved'][p]:.1f}%"]
        body.append(cells)
    return markdown_table(header, body)


def memory_table(rows, pos_dims):
    header = ["model", "table fp32", "table bf16"] + [f"byte buffer pos_dim {p}" for p in pos_dims]
    body = [[r["model"], human_bytes(r["table_bytes"]["fp32"]), human_bytes(r["table_bytes"]["bf16"])]
            + [human_bytes(r["byte_buffer_bytes"][p]) for p in pos_dims] for r in rows]
    return markdown_table(header, body)


def paper_check():
    """The paper's two headline numbers and the settings that reproduce them."""
    gpt2 = shape_row(*SHAPES[0])
    big = shape_row("V = 131,072", 131_072, 4_096)
    return dict(
        gpt2_table_params=gpt2["table_params"], gpt2_projection_params=gpt2["projection_params"][16],
        v131k_byte_buffer_bytes_pos_dim_32=big["byte_buffer_bytes"][32],
        v131k_table_bytes_fp32_d4096=big["table_bytes"]["fp32"],
    )


def report_markdown(rows, pos_dims, check, tokenizer_rows):
    return "\n\n".join([
        "# Input-side parameters and memory: learned table vs Kronecker embedding",
        "Generated by `python -m eval.param_accounting` (pure arithmetic, no checkpoint). "
        "Table = a learned (V, d) input embedding; Kronecker = its only trainable input-side "
        f"tensor, the projection Linear({CODEC_BYTES}·pos_dim → d), which the trigram_hash arm's bucket table "
        f"({CODEC_BYTES}·pos_dim rows × d at its default) matches exactly. Byte buffer = the fixed "
        f"V × (pos_dim + {LENGTH_BYTES}) bytes (pos_dim byte slots + a {LENGTH_BYTES}-byte length per token). "
        "M = 1e6 parameters; MB/GB are decimal (1e6/1e9 bytes).",
        "## Input-side trainable parameters",
        params_table(rows, pos_dims),
        "## Memory of the input side",
        memory_table(rows, pos_dims),
        "## Tokenizers: real byte tables where they load",
        "Each tiktoken encoding's byte table (tokenizer.py, exact bytes) where its files load "
        "here; otherwise only its shape (the ids tiktoken defines). Fit = the share of ids whose "
        "bytes fit pos_dim bytes (longer ones are cut, UTF-8-safely); saved = 1 − 256·pos_dim / V "
        "at the padded V, whatever d. Same codec / same trigram buckets = the ids (of those with bytes) "
        "whose input equals another id's by construction, and in how many groups: the same bytes once cut "
        "to pos_dim, or the same multiset of buckets under the trigram_hash arm's hash at its defaults "
        "(4,096 buckets, 10 per trigram, 2 of them lowercase, seed 0); trigram state = the incidence that "
        "arm stores (trigrams, their buckets, each id's trigrams). Offline with the repo's cache only gpt2 "
        "and r50k_base load; pre-seed TIKTOKEN_CACHE_DIR (docs/data.md, Other tokenizers) for the rest.",
        tokenizers_table(tokenizer_rows, pos_dims),
        "## The paper's numbers",
        f"- GPT-2 124M: table {check['gpt2_table_params']:,} ({millions(check['gpt2_table_params'])}, "
        f"V = 50,304 × 768) → projection {check['gpt2_projection_params']:,} "
        f"({millions(check['gpt2_projection_params'])}, pos_dim 16): the paper's 38.6M → 3.1M "
        f"(the unpadded 50,257 × 768 = {table_params(50_257, 768):,} rounds the same).\n"
        f"- V = 131,072: byte buffer {check['v131k_byte_buffer_bytes_pos_dim_32']:,} bytes "
        f"({human_bytes(check['v131k_byte_buffer_bytes_pos_dim_32'])}) needs pos_dim 32 "
        f"(pos_dim 16 gives {human_bytes(byte_buffer_bytes(131_072, 16))}); the table "
        f"{check['v131k_table_bytes_fp32_d4096']:,} bytes ({human_bytes(check['v131k_table_bytes_fp32_d4096'])}) "
        "is fp32 at d = 4,096 (bf16 at d = 4,096 is 1.07 GB): the paper's 4.5 MB vs 2.15 GB.\n"
        f"- This repo's model.py stores each length in 1 byte (uint8), so its buffer is V × (pos_dim + 1): "
        f"{human_bytes(50_304 * 17)} for GPT-2 at pos_dim 16.",
    ])


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="results", help="report folder (default: %(default)s)")
    p.add_argument("--tokenizers", nargs="+", default=[name for name, _ in TOKENIZERS],
                   choices=[name for name, _ in TOKENIZERS], metavar="NAME",
                   help="tiktoken encodings to read (default: all of %(default)s)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    rows = [shape_row(*shape) for shape in SHAPES]
    check = paper_check()
    ids = dict(TOKENIZERS)
    tokenizer_rows = [tokenizer_row(name, ids[name]) for name in args.tokenizers]
    data = dict(pos_dims=list(POS_DIMS), length_bytes=LENGTH_BYTES, shapes=rows, paper_check=check,
                tokenizers=tokenizer_rows)
    paths = write_report(args.out, "param_accounting", data,
                         report_markdown(rows, POS_DIMS, check, tokenizer_rows))
    print(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    run_main(main)
