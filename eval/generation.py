"""Generation with misspelled and byte-novel words, and the paper's "echo" count.

Per arm, greedy and sampled (temperature 0.7, top-p 0.9 by default) completions of:
- pair prompts: the first --per-category pairs of each category of the typo-pair file, in clean
  and in misspelled form; the probe word is the one word that differs;
- forced out-of-vocabulary prompts: a byte-novel word (--word, repeatable; default a list of
  made-up words) put into --template. The Kronecker arm gets the word as ONE position through
  `embed_bytes`; the BPE arms get it as their usual several tokens.
A completion "echoes" when it repeats the probe word (clean word, typo or novel word) verbatim.
Echo counts per arm, kind and decoding, and every completion, go to <out>/generation.{json,md}.
Each completion is sampled with its own generator seeded with --seed, so results do not depend
on the order of prompts or arms.

    python -m eval.generation --ckpt bpe=out/bpe_s0/ckpt_004000.pt --ckpt kronecker=out/kronecker_s0/ckpt_004000.pt
    python -m eval.generation --ckpt kronecker=PATH --word " glorptastic" --template "I love {word} because"
"""
import argparse
import os

import torch

from devices import resolve_device
from errors import UserError, run_main
from eval.probe_common import (add_common_args, arms_markdown, decode, load_arms, md_cell,
                               write_report)
from eval.runs import markdown_table
from eval.typo_pairs import DEFAULT_PAIRS, changed_word, load_pairs
from tokenizer import get_encoding

DEFAULT_WORDS = ("flombertine", "zorblaxian", "quindlewarp", "snerfiplex", "grobnacious", "vextrolium",
                 "plimbosk", "drazzlewick")
DEFAULT_TEMPLATE = "My new friend is called {word}. Everyone calls him"
KINDS = ("clean", "typo", "oov")


# ----------------------------------------------------------------------------- prompts

def split_template(template):
    """(prefix, suffix, space): the text around {word}; a space before {word} travels with the word."""
    if template.count("{word}") != 1:
        raise UserError(f"--template {template!r} must contain {{word}} exactly once")
    prefix, suffix = template.split("{word}")
    space = prefix.endswith(" ")
    return (prefix[:-1] if space else prefix), suffix, space


def word_bytes(word, space):
    return ((" " if space else "") + word.strip()).encode("utf-8")


def pair_prompts(pairs, per_category):
    """Clean and typo prompt of the first `per_category` pairs of each category."""
    taken, prompts = {}, []
    for pair in pairs:
        if taken.get(pair["category"], 0) >= per_category:
            continue
        taken[pair["category"]] = taken.get(pair["category"], 0) + 1
        clean_word, typo_word = changed_word(pair["clean"], pair["typo"])
        prompts.append(dict(kind="clean", category=pair["category"], text=pair["clean"], word=clean_word))
        prompts.append(dict(kind="typo", category=pair["category"], text=pair["typo"], word=typo_word))
    return prompts


def oov_prompts(enc, words, template):
    prefix, suffix, space = split_template(template)
    prompts = []
    for word in words:
        piece = word_bytes(word, space)
        prompts.append(dict(kind="oov", category="oov", text=template.replace("{word}", word.strip()),
                            word=word.strip(), prefix=prefix, suffix=suffix, word_bytes=piece.decode("utf-8"),
                            bpe_tokens=len(enc.encode_ordinary(piece.decode("utf-8")))))
    return prompts


def check_fits(model, piece):
    if len(piece) > model.config.pos_dim:
        raise UserError(f"word {piece!r} is {len(piece)} bytes but the kronecker codec keeps "
                        f"pos_dim={model.config.pos_dim}; pick a shorter --word")


@torch.no_grad()
def forced_word_embedding(model, enc, prefix, piece, suffix, device):
    """(1, T, n_embd) prompt embedding with `piece` (bytes) as a single position via embed_bytes."""
    check_fits(model, piece)
    parts = []
    for text in (prefix, suffix):
        ids = torch.tensor([enc.encode_ordinary(text)], dtype=torch.long, device=device)
        parts.append(model.token_embedding(ids))
    word = model.embed_bytes([piece]).unsqueeze(0).to(parts[0].dtype)
    return torch.cat([parts[0], word, parts[1]], dim=1)


# ----------------------------------------------------------------------------- generation

@torch.no_grad()
def complete(model, device, max_new_tokens, temperature, top_p, seed, ids=None, tok_emb=None):
    """New token ids after a prompt given as ids or as token embeddings; temperature 0 is greedy."""
    generator = torch.Generator(device=device).manual_seed(seed)
    if tok_emb is None:
        idx = torch.tensor([ids], dtype=torch.long, device=device)
    else:
        idx = torch.empty((1, 0), dtype=torch.long, device=device)
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_p=top_p if temperature else None,
                         generator=generator, tok_emb=tok_emb)
    return out[0, -max_new_tokens:].tolist()


def echoes(completion, word):
    """Does the completion repeat the probe word verbatim (case-sensitive)?"""
    return word in completion


def run_prompt(arm, enc, prompt, decoding, args, device):
    forced = prompt["kind"] == "oov" and arm.kronecker
    if forced:
        tok_emb = forced_word_embedding(arm.model, enc, prompt["prefix"], prompt["word_bytes"].encode("utf-8"),
                                        prompt["suffix"], device)
        positions, ids = tok_emb.size(1), None
    else:
        tok_emb, ids = None, enc.encode_ordinary(prompt["text"])
        positions = len(ids)
    temperature = 0.0 if decoding == "greedy" else args.temperature
    new_ids = complete(arm.model, device, args.max_new_tokens, temperature, args.top_p, args.seed, ids, tok_emb)
    text = decode(new_ids)
    return dict(arm=arm.name, kind=prompt["kind"], category=prompt["category"], decoding=decoding,
                prompt=prompt["text"], word=prompt["word"], forced_single_position=forced,
                prompt_positions=positions, completion=text, echo=echoes(text, prompt["word"]))


def echo_counts(rows, arm_names):
    """arm -> 'kind/decoding' -> dict(echo, n)."""
    counts = {a: {} for a in arm_names}
    for r in rows:
        c = counts[r["arm"]].setdefault(f"{r['kind']}/{r['decoding']}", dict(echo=0, n=0))
        c["echo"] += r["echo"]
        c["n"] += 1
    return counts


# ----------------------------------------------------------------------------- report

def report_markdown(arms, rows, counts, prompts, args):
    keys = [f"{k}/{d}" for k in KINDS for d in ("greedy", "sampled")]
    keys = [k for k in keys if any(k in c for c in counts.values())]
    oov = [p for p in prompts if p["kind"] == "oov"]
    parts = [
        "# Generation with misspelled and byte-novel words", arms_markdown(arms),
        f"{args.max_new_tokens} new tokens; greedy, and sampled at temperature {args.temperature}, top-p "
        f"{args.top_p}, seed {args.seed} (a fresh generator per completion). Echo = the completion repeats "
        "the probe word verbatim: the clean word, the typo, or the byte-novel word.",
        "## Echo counts (echoed / completions)",
        markdown_table(["arm"] + keys, [[a] + [f"{c[k]['echo']}/{c[k]['n']}" if k in c else "-" for k in keys]
                                        for a, c in counts.items()]),
    ]
    if oov:
        parts += [f"## Byte-novel words in `{args.template}`",
                  "Kronecker arms read the word as one position through `embed_bytes`; BPE arms read its tokens.",
                  markdown_table(["word", "BPE tokens"], [[md_cell(p["word_bytes"]), p["bpe_tokens"]] for p in oov])]
    parts += ["## All completions",
              markdown_table(["arm", "kind", "decoding", "prompt", "completion", "echo"],
                             [[r["arm"], r["kind"], r["decoding"], md_cell(r["prompt"]), md_cell(r["completion"]),
                               "yes" if r["echo"] else ""] for r in rows])]
    return "\n\n".join(parts)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--pairs", default=os.path.relpath(DEFAULT_PAIRS), help="JSONL of category/clean/typo (default: %(default)s)")
    p.add_argument("--per-category", type=int, default=1, help="pairs taken per category (default: %(default)s)")
    p.add_argument("--word", action="append", help="byte-novel word; repeat for several (default: a built-in list)")
    p.add_argument("--template", default=DEFAULT_TEMPLATE, help="prompt around {word} (default: %(default)r)")
    p.add_argument("--max-new-tokens", type=int, default=30)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--top-p", type=float, default=0.9)
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)
    if args.per_category < 0 or args.max_new_tokens < 1 or args.temperature <= 0 or not 0 < args.top_p <= 1:
        raise UserError("need --per-category >= 0, --max-new-tokens >= 1, --temperature > 0 and 0 < --top-p <= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    enc = get_encoding()
    prompts = pair_prompts(load_pairs(args.pairs), args.per_category) + oov_prompts(
        enc, args.word or DEFAULT_WORDS, args.template)
    device = resolve_device(args.device)
    arms = load_arms(args.ckpt, device)
    for arm in (a for a in arms if a.kronecker):
        for prompt in (p for p in prompts if p["kind"] == "oov"):
            check_fits(arm.model, prompt["word_bytes"].encode("utf-8"))
    rows = [run_prompt(arm, enc, prompt, decoding, args, device)
            for arm in arms for prompt in prompts for decoding in ("greedy", "sampled")]
    counts = echo_counts(rows, [a.name for a in arms])
    data = dict(settings=dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                              seed=args.seed, template=args.template, pairs_file=args.pairs,
                              per_category=args.per_category),
                arms=[a.describe() for a in arms], echo_counts=counts, completions=rows)
    paths = write_report(args.out, "generation", data, report_markdown(arms, rows, counts, prompts, args))
    for name, c in counts.items():
        print(f"{name}: " + ", ".join(f"{k} echo {v['echo']}/{v['n']}" for k, v in c.items()))
    print(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    run_main(main)
