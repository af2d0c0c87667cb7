"""The cross-model embedding probe (arXiv 2605.29459, Sections 6.1-6.4): do a model's trained input
embeddings put a word next to its typographic variants (`run` -> `Run`, ` run`, `RUN`) rather than
its morphological relatives (`runs`, `running`), and does the Kronecker codec (or the hashed trigrams)?

Models (`--models A B C`): Hugging Face hub ids or local folders, of which only the input-embedding
tensor is read (eval/hf_embedding.py: one shard downloaded, one tensor opened lazily), and this
repo's train.py checkpoints (`PATH.pt` or `NAME=PATH.pt`; the table `GPT.input_table()` gives for
any arm: the BPE table, or the codec + projection of every id). Each model is read with its own
tokenizer (tokenizer.json; a checkpoint's train_config tokenizer); a probe string of several
tokens is the mean of its token rows, and the report says which strings were multi-token.
Spaces, for every model:
  trained  the model's table (V, hidden);
  random   a table of the same shape, N(0, 1) entries seeded by --seed (the chance baseline);
  codec    the z-normalised Kronecker codec over that tokenizer's own token bytes (--pos-dim, 32 as
           the paper's cross-model runs), no projection; a probe string is the codec of its own
           bytes (--codec-strings bytes, as the authors' published kron_cos) or the mean of its
           tokens' codec rows (--codec-strings mean);
  trigram  the trigram_hash arm's fixed code over the same bytes, no learned table: each id's
           bucket counts (embeddings.TrigramHashEmbedding.incidence_rows at its defaults, 4,096
           buckets, 10 per trigram); a probe string as in the codec space (--codec-strings).
Metrics per space, over the real vocabulary (ids below V with bytes, special tokens aside):
  - top-k neighbours (--k) of every query (a family's word and its morphological relatives), the
    query's own token excluded, classified typographic (same canonical form: case, leading space,
    surrounding punctuation aside) / morphological (a listed relative's canonical form) / other,
    with the counts; in the centred space (the vocabulary mean subtracted) and the raw one;
  - the edit-distance table: anchor, variant, edit distance (eval/typo_pairs.edit_distance),
    bucket (self / typographic = same canonical form / morphological / unrelated), cosine raw and
    centred, and the mean per bucket;
  - the random-pair baseline (RANDOM_PAIRS seeded pairs of distinct real ids), raw and centred;
  - anisotropy (mean cosine over all pairs of distinct rows, exact), |mean row| and mean |row|.
Probe words: --probes FILE (eval/probe_words.py; default eval/data/cross_model_probes.jsonl).
Writes to --out (default results/cross_model): <model>.json, <model>.md and <model>_falloff.png
(cosine vs edit distance, one panel per space) per model, and summary.md / summary.json across
the models of the command (rows = models).

    python -m eval.cross_model --models HuggingFaceTB/SmolLM2-135M meta-llama/Llama-3.2-1B
    python -m eval.cross_model --models bpe=out/bpe_s1337/ckpt_000150.pt kronecker=out/kronecker_s1337/ckpt_000150.pt
    python -m eval.cross_model --models Qwen/Qwen3-32B --plan    # what would be downloaded, nothing else
"""
import argparse
import hashlib
import re
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from devices import resolve_device
from embeddings import KroneckerEmbedding, TrigramHashEmbedding
from errors import UserError, run_main
from eval import hf_embedding
from eval.geometry import CLASSES, classify, nearest, normalise, pair_cosines, vocabulary_stats
from eval.outputs import cannot_write
from eval.probe_common import load_arm, md_cell, write_report
from eval.probe_words import BUCKETS, DEFAULT_PROBES, load_families
from eval.runs import markdown_table
from tokenizer import get_tokenizer

DEFAULT_OUT = "results/cross_model"
REPO_ROOT = Path(__file__).resolve().parent.parent
SPACES = ("trained", "random", "codec", "trigram")
GEOMETRIES = ("centred", "raw")
RANDOM_PAIRS = 2000
RANDOM_BLOCK = 1024  # rows of the random table drawn per (seed, block): any row is the same whoever asks
CHUNK_ELEMENTS = 1 << 23  # floats per chunk of rows at most (32 MB in float32)
# A model's table may have more rows than its tokenizer has ids (padding to a round size: Qwen3 151,936
# rows for 151,669 ids, GPT-2 checkpoints 50,304 for 50,257). More unmatched rows than this means the
# tokenizer is not the model's.
MAX_UNMATCHED_SHARE, MAX_UNMATCHED_ROWS = 0.01, 128
CLASS_MARK = dict(typographic="ᵀ", morphological="ᴹ", other="")


# ----------------------------------------------------------------------------- models

@dataclass
class Model:
    """One model's input table and tokenizer. table: (V, hidden) in its stored dtype (bf16, fp16,
    fp32); facts: what the report records about it (source, tensor, shard, V, hidden, tied ...)."""
    label: str
    table: torch.Tensor
    tokenizer: object
    facts: dict


def is_checkpoint(spec):
    return spec.partition("=")[2].endswith(".pt") or spec.endswith(".pt")


def load_checkpoint_model(spec, device):
    """A train.py checkpoint: its effective input table (GPT.input_table) and its tokenizer."""
    name, sep, path = spec.partition("=")
    if not sep:
        name, path = Path(spec).parent.name or Path(spec).stem, spec
    arm = load_arm(f"{name}={path}", device, flag="--models")
    model = arm.model
    with torch.no_grad():
        table = model.input_table().detach()
    tied = model.tied_head
    facts = dict(spec=spec, source="checkpoint", **arm.describe(), vocab=table.shape[0], hidden=table.shape[1],
                 dtype=str(table.dtype).removeprefix("torch."), tied=tied, tokenizer=arm.tokenizer)
    return Model(name, table, get_tokenizer(arm.tokenizer), facts)


def load_hf_model(spec, tensor, device):
    """A hub id or folder: only its input-embedding tensor (eval/hf_embedding.py)."""
    located = hf_embedding.locate(spec, tensor)
    print(f"{spec}: {located.tensor} {located.shape[0]:,} x {located.shape[1]:,} {located.dtype} "
          f"({located.table_bytes() / 1e6:,.1f} MB) from {Path(located.shard).name}")
    table = hf_embedding.read_table(located).to(device)
    facts = dict(located.describe(), tokenizer="tokenizer.json")
    return Model(spec, table, get_tokenizer(str(located.tokenizer)), facts)


def plan(spec, tensor):
    """Lines naming what --models would download for one hub model (sizes from the hub)."""
    if is_checkpoint(spec):
        return [f"{spec}: a local checkpoint, nothing to download"]
    located = hf_embedding.locate(spec, tensor, fetch=False)
    files = ", ".join(f"{name} ({size_text(size)})" for name, size in located.downloads)
    return [f"{spec}: {located.tensor} {located.shape[0]:,} x {located.shape[1]:,} {located.dtype} "
            f"({size_text(located.table_bytes())} in memory) from {located.shard}; files: {files}"]


def shown_path(path):
    """A path as reports show it: relative to the repo when inside it (no machine's folders)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def size_text(size):
    return "size unknown" if size is None else f"{size / 1e9:.2f} GB" if size >= 1e9 else f"{size / 1e6:.1f} MB"


def real_ids(model, where):
    """(ids (n,) int64 of the rows that are real tokens, token bytes of every row (list of V)).

    Raises UserError when the tokenizer is not the table's: an ordinary token with no row, or more
    rows without a token than padding explains (MAX_UNMATCHED_SHARE, MAX_UNMATCHED_ROWS)."""
    V = model.table.shape[0]
    tok = model.tokenizer
    table = tok.token_bytes(max(V, tok.n_vocab))
    special = set(tok.special.values())
    beyond = [i for i in range(V, tok.n_vocab) if table[i] and i not in special]
    defined = sum(1 for b in table[:V] if b)
    unmatched = V - defined
    if beyond or unmatched > max(MAX_UNMATCHED_ROWS, MAX_UNMATCHED_SHARE * V):
        raise UserError(f"{where}: the tokenizer ({tok.n_vocab:,} ids) does not match the table's {V:,} rows "
                        f"({len(beyond):,} tokens have no row, {unmatched:,} rows no token); give the model's own "
                        "tokenizer.json")
    ids = [i for i in range(V) if table[i] and i not in special]
    return torch.tensor(ids), table[:V]


# ----------------------------------------------------------------------------- probe strings

def encode_probes(tokenizer, texts, V):
    """{text: dict(ids, pieces)}: each probe string's token ids and their texts."""
    out = {}
    for text in dict.fromkeys(texts):
        ids = tokenizer.encode_ordinary(text)
        if not ids or max(ids) >= V:
            raise UserError(f"probe string {text!r} encodes to {ids}, which the table cannot hold")
        pieces = [tokenizer.decode_single_token_bytes(i).decode("utf-8", errors="replace") for i in ids]
        out[text] = dict(ids=ids, pieces=pieces)
    return out


# ----------------------------------------------------------------------------- spaces

@dataclass
class Space:
    """One vector space over a model's vocabulary. rows: ids (n,) int64 -> (n, d) float32;
    strings: probe texts -> (n, d) float32, one vector per text."""
    name: str
    rows: Callable
    strings: Callable


def mean_of_rows(rows, encoded, device):
    """texts -> (n, d): the mean of each text's token rows (the paper's rule for multi-token strings)."""
    def strings(texts):
        return torch.stack([rows(torch.tensor(encoded[t]["ids"], device=device)).mean(0) for t in texts])
    return strings


def table_space(table, encoded, device):
    def rows(ids):
        return table[ids].float()
    return Space("trained", rows, mean_of_rows(rows, encoded, device))


def random_space(shape, seed, encoded, device):
    """N(0, 1) entries, RANDOM_BLOCK rows at a time from numpy's generator seeded [seed, block], so a
    row is the same whichever rows are asked for, and no (V, d) table is held."""
    d = shape[1]

    def rows(ids):
        ids = ids.cpu()
        blocks, which = torch.unique(ids // RANDOM_BLOCK, return_inverse=True)
        drawn = np.concatenate([np.random.default_rng([seed, b]).standard_normal((RANDOM_BLOCK, d), dtype=np.float32)
                                for b in blocks.tolist()])
        return torch.from_numpy(drawn)[which * RANDOM_BLOCK + ids % RANDOM_BLOCK].to(device)
    return Space("random", rows, mean_of_rows(rows, encoded, device))


def codec_space(token_bytes, pos_dim, encoded, whole_strings, device):
    """z, the z-normalised Kronecker codec of every id (model.KroneckerEmbedding.codec; no
    projection); a probe string is the codec of its own bytes, or the mean of its tokens' rows."""
    codec = KroneckerEmbedding(token_bytes, n_embd=1, pos_dim=pos_dim).to(device)

    def rows(ids):
        return codec.codec(ids)

    def strings(texts):
        own = KroneckerEmbedding([t.encode("utf-8") for t in texts], n_embd=1, pos_dim=pos_dim).to(device)
        return own.codec(torch.arange(len(texts), device=device))
    return Space("codec", rows, strings if whole_strings else mean_of_rows(rows, encoded, device))


def trigram_space(token_bytes, encoded, whole_strings, device):
    """The bucket counts of every id under the trigram_hash arm's hash at its defaults (the fixed
    matrix its learned table multiplies, TrigramHashEmbedding.incidence_rows); a probe string is
    the counts of its own bytes, or the mean of its tokens' rows."""
    hashed = TrigramHashEmbedding(token_bytes, n_embd=1).to(device)

    def strings(texts):
        own = TrigramHashEmbedding([t.encode("utf-8") for t in texts], n_embd=1).to(device)
        return own.incidence_rows(torch.arange(len(texts), device=device))
    rows = hashed.incidence_rows
    return Space("trigram", rows, strings if whole_strings else mean_of_rows(rows, encoded, device))


# ----------------------------------------------------------------------------- metrics of one space

def analyse(space, ids, families, encoded, token_text, k, seed):
    """Every metric of one space (module docstring), JSON-ready. ids: the real vocabulary rows."""
    # a power of two, so chunks of >= RANDOM_BLOCK rows start on a block of the random table
    chunk = 2 ** max(6, (CHUNK_ELEMENTS // space.rows(ids[:1]).shape[1]).bit_length() - 1)
    stats = vocabulary_stats(lambda part: [space.rows(part)], ids, chunk)[0]
    means = {"centred": stats["mean"], "raw": None}
    queries = [(fam, q) for fam in families for q in fam.queries]
    vectors = space.strings([q for _, q in queries])
    exclude = torch.tensor([encoded[q]["ids"][0] if len(encoded[q]["ids"]) == 1 else -1 for _, q in queries],
                           device=ids.device)
    found = nearest(lambda part: [space.rows(part)] * len(GEOMETRIES), [vectors] * len(GEOMETRIES), ids, k,
                    means=[means[g] for g in GEOMETRIES], exclude=exclude, chunk=chunk)
    a, b = random_pairs(ids, seed)
    ra, rb = space.rows(a), space.rows(b)
    pairs = [p for fam in families for p in fam.pairs()]
    anchors, variants = space.strings([p["anchor"] for p in pairs]), space.strings([p["variant"] for p in pairs])
    return dict(space=space.name, anisotropy=stats["anisotropy"], mean_norm=stats["mean_norm"],
                mean_row_norm=stats["mean_row_norm"],
                random_pair_cos={g: float(pair_cosines(ra, rb, means[g]).mean()) for g in GEOMETRIES},
                neighbours={g: classified(found[i], queries, token_text) for i, g in enumerate(GEOMETRIES)},
                pair_cos={g: pair_cosines(anchors, variants, means[g]).tolist() for g in GEOMETRIES})


def random_pairs(ids, seed):
    """Up to RANDOM_PAIRS pairs (a, b) of distinct ids, seeded: the same pairs in every space."""
    rng = np.random.default_rng(seed)
    a, b = (torch.from_numpy(rng.integers(0, len(ids), RANDOM_PAIRS)) for _ in range(2))
    keep = a != b
    return ids[a[keep].to(ids.device)], ids[b[keep].to(ids.device)]


def classified(found, queries, token_text):
    """[{query, family, neighbours: [{id, text, cos, cls}]}] for one geometry's top-k (cls from
    eval/geometry.classify against the query's family)."""
    values, ids = found
    out = []
    for (fam, query), row_ids, row_cos in zip(queries, ids.tolist(), values.tolist()):
        word = normalise(query)
        relatives = ({normalise(fam.word)} | fam.relatives()) - {word}
        neighbours = [dict(id=i, text=token_text[i], cos=c, cls=classify(token_text[i], word, relatives))
                      for i, c in zip(row_ids, row_cos)]
        out.append(dict(query=query, family=fam.word, neighbours=neighbours))
    return out


def class_shares(rows):
    """{class: share of all neighbours of all queries} and the neighbour count."""
    counts = dict.fromkeys(CLASSES, 0)
    for row in rows:
        for n in row["neighbours"]:
            counts[n["cls"]] += 1
    total = sum(counts.values())
    return {c: counts[c] / total for c in CLASSES}, total


def bucket_means(pairs, cos):
    """{bucket: mean cosine} over the edit-distance rows of each bucket present, in BUCKETS order."""
    means = {}
    for bucket in BUCKETS:
        values = [c for p, c in zip(pairs, cos) if p["bucket"] == bucket]
        if values:
            means[bucket] = sum(values) / len(values)
    return means


# ----------------------------------------------------------------------------- one model

def probe_model(model, families, args, device, shared):
    """The report (JSON-ready dict) of one model: its facts, probe strings, and every space.

    shared: {key: space result} across the models of one command. The random, codec and trigram spaces
    depend only on the tokenizer, the table's shape and the settings, so models that share those
    (the arms of one study) compute them once."""
    ids, token_bytes = real_ids(model, model.label)
    ids = ids.to(device)
    V, d = model.table.shape
    texts = [t for fam in families for t in fam.queries + [v for v, _ in fam.variants]]
    encoded = encode_probes(model.tokenizer, texts, V)
    token_text = [b.decode("utf-8", errors="replace") for b in token_bytes]
    vocab = model.tokenizer.identity()["vocab_sha256"]
    builders = {("trained", None): lambda: table_space(model.table, encoded, device),
                ("random", (vocab, V, d)): lambda: random_space((V, d), args.seed, encoded, device),
                ("codec", (vocab, V)): lambda: codec_space(token_bytes, args.pos_dim, encoded,
                                                           args.codec_strings == "bytes", device),
                ("trigram", (vocab, V)): lambda: trigram_space(token_bytes, encoded, args.codec_strings == "bytes",
                                                               device)}
    results = []
    for (name, key), build in builders.items():
        if (name, key) in shared:
            results.append(shared[name, key])
            continue
        print(f"{model.label}: {name} space")
        results.append(analyse(build(), ids, families, encoded, token_text, args.k, args.seed))
        if key is not None:
            shared[name, key] = results[-1]
    pairs = [p for fam in families for p in fam.pairs()]
    for r in results:
        r["bucket_means"] = {g: bucket_means(pairs, r["pair_cos"][g]) for g in GEOMETRIES}
        r["shares"] = {g: class_shares(r["neighbours"][g])[0] for g in GEOMETRIES}
    probes = [dict(text=t, **e, multi_token=len(e["ids"]) > 1,
                   codec_cut=len(t.encode("utf-8")) > args.pos_dim) for t, e in encoded.items()]
    return dict(model=dict(model.facts, label=model.label, tokenizer_kind=model.tokenizer.kind,
                           tokenizer_ids=model.tokenizer.n_vocab, real_ids=len(ids)),
                settings=dict(command=args.command, k=args.k, seed=args.seed, pos_dim=args.pos_dim,
                              codec_strings=args.codec_strings, random_pairs=RANDOM_PAIRS,
                              probes=shown_path(args.probes), probes_sha256=args.probes_sha256),
                probes=probes, pairs=pairs, spaces=results)


# ----------------------------------------------------------------------------- reports

def fmt(x):
    return f"{x:+.3f}"


def model_markdown(report):
    """The per-model report: facts, space metrics, bucket means, the edit-distance table,
    multi-token strings and the neighbour lists."""
    m, s, spaces = report["model"], report["settings"], report["spaces"]
    k, names = s["k"], [r["space"] for r in spaces]
    pieces = {q["text"]: q["pieces"] for q in report["probes"]}
    facts = markdown_table(
        ["source", "input tensor (checkpoint: embedding)", "V", "hidden", "dtype", "tied head", "tokenizer",
         "real ids"],
        [[m["source"], md_cell(m.get("tensor") or m.get("embedding", "")), f"{m['vocab']:,}", m["hidden"], m["dtype"],
          m["tied"], f"{m['tokenizer_kind']}, {m['tokenizer_ids']:,} ids", f"{m['real_ids']:,}"]])
    parts = [f"# Cross-model embedding probe: {m['label']}", facts,
             f"Top-{k} neighbours over the real vocabulary (ids below V with bytes, special tokens aside), the "
             f"query's own token excluded; `centred` subtracts the vocabulary mean, `raw` does not. Random table "
             f"seed {s['seed']}; codec pos_dim {s['pos_dim']}; trigram: the trigram_hash arm's bucket counts at its "
             f"defaults; probe strings as {s['codec_strings']} in both (`bytes`: the code of the whole string; "
             f"`mean`: of its tokens' rows); probe file "
             f"`{Path(s['probes']).name}` (sha256 {s['probes_sha256'][:12]}).",
             f"Command: `{s['command']}`",
             "## Spaces", markdown_table(
                 ["space", f"typographic@{k}", f"morph@{k}", f"other@{k}", f"raw typographic@{k}", f"raw morph@{k}",
                  "random-pair cos (centred)", "random-pair cos (raw)", "anisotropy", "\\|mean\\| / mean \\|row\\|"],
                 [[r["space"], *(f"{r['shares']['centred'][c]:.2f}" for c in CLASSES),
                   *(f"{r['shares']['raw'][c]:.2f}" for c in CLASSES[:2]), fmt(r["random_pair_cos"]["centred"]),
                   fmt(r["random_pair_cos"]["raw"]), fmt(r["anisotropy"]),
                   f"{r['mean_norm'] / max(r['mean_row_norm'], 1e-30):.3f}"] for r in spaces]),
             "## Edit-distance buckets (mean cosine, centred; raw in brackets)", markdown_table(
                 ["bucket", "pairs", *names],
                 [[b, sum(p["bucket"] == b for p in report["pairs"]),
                   *(f"{r['bucket_means']['centred'][b]:+.3f} ({r['bucket_means']['raw'][b]:+.3f})" for r in spaces)]
                  for b in BUCKETS if b in spaces[0]["bucket_means"]["centred"]]),
             "## Edit-distance table (cosine, centred)", markdown_table(
                 ["anchor", "variant", "edit distance", "bucket", "tokens (anchor, variant)", *names],
                 [[md_cell(p["anchor"]), md_cell(p["variant"]), p["edit_distance"], p["bucket"],
                   f"{len(pieces[p['anchor']])}, {len(pieces[p['variant']])}",
                   *(fmt(r["pair_cos"]["centred"][i]) for r in spaces)]
                  for i, p in enumerate(report["pairs"])]),
             "## Multi-token probe strings (the mean of their token rows)",
             ", ".join(f"{md_cell(q['text'])} = {' + '.join(md_cell(x) for x in q['pieces'])}"
                       for q in report["probes"] if q["multi_token"]) or "none: every probe string is one token",
             ]
    cut = [q["text"] for q in report["probes"] if q["codec_cut"]]
    if cut and s["codec_strings"] == "bytes":
        parts.append(f"Longer than pos_dim {s['pos_dim']} bytes, cut for the codec: "
                     + ", ".join(md_cell(t) for t in cut))
    parts.append(f"## Top-{k} neighbours (centred; ᵀ typographic variant, ᴹ morphological relative)")
    rows = zip(*(r["neighbours"]["centred"] for r in spaces))
    parts.append(markdown_table(["query", *names], [
        [md_cell(q[0]["query"]), *(" ".join(md_cell(n["text"]) + CLASS_MARK[n["cls"]] for n in x["neighbours"])
                                   for x in q)] for q in rows]))
    return "\n\n".join(parts)


def summary_rows(reports):
    """One JSON-ready row per model: its shape and, per space, the centred class shares, the
    centred bucket means and the random-pair baseline."""
    rows = []
    for rep in reports:
        m = rep["model"]
        rows.append(dict(model=m["label"], vocab=m["vocab"], hidden=m["hidden"], tied=m["tied"], spaces={
            r["space"]: dict(typographic=r["shares"]["centred"]["typographic"],
                             morphological=r["shares"]["centred"]["morphological"],
                             bucket_means=r["bucket_means"]["centred"],
                             random_pair_cos=r["random_pair_cos"]["centred"], anisotropy=r["anisotropy"])
            for r in rep["spaces"]}))
    return rows


def summary_markdown(rows, settings):
    k = settings["k"]
    shares = markdown_table(
        ["model", "V", "hidden", "tied", *(f"{s} {c}@{k}" for s in SPACES for c in ("typo", "morph"))],
        [[md_cell(r["model"]), f"{r['vocab']:,}", r["hidden"], r["tied"],
          *(f"{r['spaces'][s][c]:.2f}" for s in SPACES for c in ("typographic", "morphological"))] for r in rows])
    buckets = markdown_table(
        ["model", *(f"{s} {b}" for s in SPACES for b in ("typo", "morph", "unrel", "rand"))],
        [[md_cell(r["model"]), *(cell for s in SPACES for cell in bucket_cells(r["spaces"][s]))] for r in rows])
    return "\n\n".join([
        "# Cross-model embedding probe: summary",
        f"Per model: its trained input table, a random table of the same shape (seed {settings['seed']}), "
        f"the Kronecker codec over its tokenizer's bytes (pos_dim {settings['pos_dim']}) and the trigram_hash "
        "arm's fixed bucket counts over the same bytes. Per-model reports sit beside this file.", f"Command: `{settings['command']}`",
        f"## Top-{k} neighbour classes (share of all neighbours of all queries, centred cosine)", shares,
        "## Edit-distance bucket means (centred cosine): typographic, morphological, unrelated, random pair",
        buckets])


def bucket_cells(space):
    means = space["bucket_means"]
    return [*(fmt(means[b]) if b in means else "n/a" for b in ("typographic", "morphological", "unrelated")),
            fmt(space["random_pair_cos"])]


def plot_falloff(report, path):
    """Cosine (centred) vs edit distance, one panel per space: each pair coloured by bucket, and
    the mean per edit distance."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from eval.plot_curves import save
    pairs, spaces = report["pairs"], report["spaces"]
    colours = dict(self="black", typographic="tab:blue", morphological="tab:orange", unrelated="tab:gray",
                   unlabelled="tab:green")
    fig, axes = plt.subplots(1, len(spaces), figsize=(4.2 * len(spaces), 3.6), sharey=True, squeeze=False)
    for ax, space in zip(axes[0], spaces):
        cos = space["pair_cos"]["centred"]
        for bucket in BUCKETS:
            xs = [p["edit_distance"] for p in pairs if p["bucket"] == bucket]
            if xs:
                ax.scatter(xs, [c for p, c in zip(pairs, cos) if p["bucket"] == bucket], s=14, alpha=0.7,
                           color=colours[bucket], label=bucket)
        distances = sorted({p["edit_distance"] for p in pairs})
        ax.plot(distances, [np.mean([c for p, c in zip(pairs, cos) if p["edit_distance"] == d]) for d in distances],
                color="black", linewidth=1, label="mean")
        ax.axhline(space["random_pair_cos"]["centred"], color="tab:red", linestyle=":", label="random pair")
        ax.set_title(space["space"])
        ax.set_xlabel("edit distance to the anchor")
    axes[0][0].set_ylabel("cosine (centred)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(report["model"]["label"], fontsize=10)
    save(fig, path)


# ----------------------------------------------------------------------------- command line

def slug(label):
    return re.sub(r"[^A-Za-z0-9._-]+", "--", label).strip("-.") or "model"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", required=True, metavar="MODEL",
                   help="hub ids (owner/name[@revision]), model folders, train.py checkpoints ([NAME=]PATH.pt)")
    p.add_argument("--probes", default=str(DEFAULT_PROBES), help="probe word file, JSON or JSONL (default: ours)")
    p.add_argument("--k", type=int, default=5, help="neighbours per query (default: %(default)s, as the paper)")
    p.add_argument("--pos-dim", type=int, default=32, help="bytes per token of the codec space (default: %(default)s)")
    p.add_argument("--codec-strings", choices=("bytes", "mean"), default="bytes",
                   help="a probe string in the codec and trigram spaces: the code of its bytes, or the mean of "
                        "its tokens' rows (default: %(default)s)")
    p.add_argument("--seed", type=int, default=1337, help="random table and random pairs (default: %(default)s)")
    p.add_argument("--tensor", help="name of the input-embedding tensor, where the usual names do not find it")
    p.add_argument("--out", default=DEFAULT_OUT, help="report folder (default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N (default: %(default)s)")
    p.add_argument("--plan", action="store_true", help="print what each hub model needs downloaded, then stop")
    args = p.parse_args(argv)
    if args.k < 1 or args.pos_dim < 1 or args.seed < 0:
        raise UserError(f"need --k >= 1, --pos-dim >= 1 and --seed >= 0; got {args.k}, {args.pos_dim}, {args.seed}")
    return args


def load_model(spec, args, device):
    return load_checkpoint_model(spec, device) if is_checkpoint(spec) else load_hf_model(spec, args.tensor, device)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.command = " ".join(["python -m eval.cross_model", *map(shlex.quote, argv)])
    if args.plan:
        for spec in args.models:
            print("\n".join(plan(spec, args.tensor)))
        return
    device = resolve_device(args.device)
    families = load_families(args.probes)
    args.probes_sha256 = hashlib.sha256(Path(args.probes).read_bytes()).hexdigest()
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise cannot_write(out, err) from None
    reports, names, shared = [], {"summary"}, {}
    for spec in args.models:
        model = load_model(spec, args, device)
        name = slug(model.label)
        if name in names:
            raise UserError(f"--models {spec} would write {name}.json, which another report of this command "
                            "writes; name checkpoints NAME=PATH")
        names.add(name)
        report = probe_model(model, families, args, device, shared)
        del model  # one table in memory at a time
        write_report(out, name, report, model_markdown(report))
        plot_falloff(report, out / f"{name}_falloff.png")
        reports.append(report)
        for r in report["spaces"]:
            shares = r["shares"]["centred"]
            print(f"{report['model']['label']} {r['space']}: typographic@{args.k} {shares['typographic']:.2f}, "
                  f"morph@{args.k} {shares['morphological']:.2f}")
    rows = summary_rows(reports)
    settings = reports[0]["settings"]
    paths = write_report(out, "summary", dict(settings=settings, models=rows), summary_markdown(rows, settings))
    print(f"wrote {len(reports)} model report(s) and {paths[1]} in {out}")


if __name__ == "__main__":
    run_main(main)
