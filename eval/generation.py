"""Generation with misspelled and byte-novel words, and the paper's "echo" count.

Per arm, completions (--decoding, repeatable; default greedy and sampled) of:
- pair prompts: the first --per-category pairs of each category of the typo-pair file, in clean
  and in misspelled form; the probe word is the word (or words) that differ;
- forced out-of-vocabulary prompts: a byte-novel word (--word, repeatable; default a list of
  made-up words) put into --template. The Kronecker arm gets the word as ONE position through
  `embed_bytes`; the BPE arms get it as their usual several tokens;
- or, with --prompts FILE, the prompts and forced-OOV words of that file instead (JSON list or
  JSONL; each record a string (a prompt), {"prompt": text, "word": probe word (optional),
  "category": (optional)}, or {"oov": word, "template": text with {word} (optional)}).
Decodings: greedy; sampled (--temperature, --top-p); greedy_fallback, our reading of the
authors' "greedy with a fallback after N repeated tokens": greedy, except that once the last
--repeat-limit generated tokens are one and the same id, the next single token is sampled by
top-k (--fallback-top-k, at --temperature) with that id excluded; greedy then resumes.
A completion "echoes" when it repeats the probe word (clean word, typo or novel word) verbatim.
Echo counts per arm, kind and decoding, and every completion, go to <out>/generation.{json,md}.
Each completion is sampled with its own generator seeded with --seed, so results do not depend
on the order of prompts or arms. A prompt longer than the context is cut to its last
block_size positions, and the report says so.

    python -m eval.generation --ckpt bpe=out/bpe_s0/ckpt_004000.pt --ckpt kronecker=out/kronecker_s0/ckpt_004000.pt
    python -m eval.generation --ckpt kronecker=PATH --word " glorptastic" --template "I love {word} because"
    python -m eval.generation --ckpt kronecker=PATH --prompts my_prompts.jsonl --decoding greedy_fallback --repeat-limit 3
"""
import argparse
import json
import os
from pathlib import Path

import torch

from devices import resolve_device
from errors import UserError, run_main
from eval.probe_common import (add_common_args, arms_markdown, context_note, decode, fit_context, load_arms,
                               arms_tokenizer, md_cell, write_report)
from eval.runs import markdown_table
from eval.typo_pairs import DEFAULT_PAIRS, changed_span, load_pairs, read_text
from model import sample_next
from tokenizer import GPT2_VOCAB

DEFAULT_WORDS = ("flombertine", "zorblaxian", "quindlewarp", "snerfiplex", "grobnacious", "vextrolium",
                 "plimbosk", "drazzlewick")
DEFAULT_TEMPLATE = "My new friend is called {word}. Everyone calls him"
KINDS = ("clean", "typo", "prompt", "oov")
DECODINGS = ("greedy", "sampled", "greedy_fallback")
PROMPTS_HINT = ('a JSON list or JSONL of prompts: strings, {"prompt": ..., "word": ...} or '
                '{"oov": ..., "template": ...} objects')


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
        clean_word, typo_word = changed_span(pair["clean"], pair["typo"])
        prompts.append(dict(kind="clean", category=pair["category"], text=pair["clean"], word=clean_word))
        prompts.append(dict(kind="typo", category=pair["category"], text=pair["typo"], word=typo_word))
    return prompts


def oov_prompt(enc, word, template):
    prefix, suffix, space = split_template(template)
    piece = word_bytes(word, space)
    return dict(kind="oov", category="oov", text=template.replace("{word}", word.strip()), word=word.strip(),
                prefix=prefix, suffix=suffix, word_bytes=piece.decode("utf-8"),
                bpe_tokens=len(enc.encode_ordinary(piece.decode("utf-8"))))


def oov_prompts(enc, words, template):
    return [oov_prompt(enc, word, template) for word in words]


def file_prompt(enc, record, where, template):
    """One prompt dict from a --prompts record (see the module doc)."""
    if isinstance(record, str):
        record = dict(prompt=record)
    if isinstance(record, dict) and isinstance(record.get("oov"), str) and record["oov"].strip():
        return oov_prompt(enc, record["oov"], record.get("template", template))
    if not isinstance(record, dict) or not isinstance(record.get("prompt"), str) or not record["prompt"]:
        raise UserError(f"{where}: not a prompt; --prompts takes {PROMPTS_HINT}")
    word = record.get("word") or ""
    if not isinstance(word, str):
        raise UserError(f"{where}: 'word' must be a string")
    return dict(kind="prompt", category=str(record.get("category", "prompt")), text=record["prompt"], word=word)


def load_prompts(path, enc, template):
    """The prompts of a --prompts file (JSON list or JSONL), in file order."""
    path = Path(path)
    text = read_text(path)
    try:
        doc = json.loads(text)
        records = ([(f"{path} item {i}", r) for i, r in enumerate(doc, start=1)] if isinstance(doc, list)
                   else [(f"{path}:1", doc)])
    except json.JSONDecodeError:
        records = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append((f"{path}:{n}", json.loads(line)))
                except json.JSONDecodeError as err:
                    raise UserError(f"{path}:{n}: not valid JSON ({err.msg}); --prompts takes {PROMPTS_HINT}") from None
    prompts = [file_prompt(enc, record, where, template) for where, record in records]
    if not prompts:
        raise UserError(f"{path} holds no prompts; --prompts takes {PROMPTS_HINT}")
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

def prompt_embedding(model, ids, tok_emb, device):
    """(1, T, n_embd) token embeddings of a prompt given as ids or as embeddings."""
    if tok_emb is not None:
        return tok_emb
    return model.token_embedding(torch.tensor([ids], dtype=torch.long, device=device))


@torch.no_grad()
def complete(model, device, max_new_tokens, temperature, top_p, seed, ids=None, tok_emb=None, n_vocab=GPT2_VOCAB):
    """New token ids (< n_vocab) after a prompt given as ids or as token embeddings; temperature 0 is greedy."""
    generator = torch.Generator(device=device).manual_seed(seed)
    idx = torch.empty((1, 0), dtype=torch.long, device=device)
    out = model.generate(idx, max_new_tokens, temperature=temperature, top_p=top_p if temperature else None,
                         generator=generator, tok_emb=prompt_embedding(model, ids, tok_emb, device), n_vocab=n_vocab)
    return out[0, -max_new_tokens:].tolist()


def repeating(new_ids, repeat_limit):
    """The id repeated as the last repeat_limit generated tokens, or None."""
    tail = new_ids[-repeat_limit:]
    return tail[0] if len(tail) == repeat_limit and len(set(tail)) == 1 else None


@torch.no_grad()
def complete_greedy_fallback(model, device, max_new_tokens, repeat_limit, top_k, temperature, seed, ids=None,
                             tok_emb=None, n_vocab=GPT2_VOCAB):
    """(new ids, fallbacks): greedy decoding, except that after repeat_limit identical consecutive
    generated tokens the next token is sampled by top-k (at temperature) with the repeated id excluded."""
    generator = torch.Generator(device=device).manual_seed(seed)
    emb = prompt_embedding(model, ids, tok_emb, device)
    new_ids, fallbacks = [], 0
    for _ in range(max_new_tokens):
        logits = model(tok_emb=emb[:, -model.config.block_size:])[0][:, -1, :n_vocab].float()
        stuck = repeating(new_ids, repeat_limit)
        if stuck is None:
            next_id = logits.argmax(dim=-1, keepdim=True)
        else:
            logits[:, stuck] = float("-inf")
            next_id = sample_next(logits, temperature, top_k=top_k, generator=generator)
            fallbacks += 1
        new_ids.append(int(next_id))
        emb = torch.cat((emb, model.token_embedding(next_id)), dim=1)
    return new_ids, fallbacks


def echoes(completion, word):
    """Does the completion repeat the probe word verbatim (case-sensitive)? Never for an empty word."""
    return bool(word) and word in completion


def run_prompt(arm, enc, prompt, decoding, args, device):
    forced = prompt["kind"] == "oov" and arm.kronecker
    if forced:
        tok_emb, ids = forced_word_embedding(arm.model, enc, prompt["prefix"], prompt["word_bytes"].encode("utf-8"),
                                             prompt["suffix"], device), None
        tok_emb, cut = fit_context(tok_emb, arm.model.config.block_size)
        positions = tok_emb.size(1)
    else:
        ids, cut = fit_context(enc.encode_ordinary(prompt["text"]), arm.model.config.block_size)
        tok_emb, positions = None, len(ids)
    fallbacks = None
    if decoding == "greedy_fallback":
        new_ids, fallbacks = complete_greedy_fallback(arm.model, device, args.max_new_tokens, args.repeat_limit,
                                                      args.fallback_top_k, args.temperature, args.seed, ids, tok_emb,
                                                      enc.n_vocab)
    else:
        temperature = 0.0 if decoding == "greedy" else args.temperature
        new_ids = complete(arm.model, device, args.max_new_tokens, temperature, args.top_p, args.seed, ids, tok_emb,
                           enc.n_vocab)
    text = decode(new_ids, enc.name)
    return dict(arm=arm.name, kind=prompt["kind"], category=prompt["category"], decoding=decoding,
                prompt=prompt["text"], word=prompt["word"], forced_single_position=forced,
                prompt_positions=positions, prompt_cut=cut, fallbacks=fallbacks, completion=text,
                echo=echoes(text, prompt["word"]))


def echo_counts(rows, arm_names):
    """arm -> 'kind/decoding' -> dict(echo, n)."""
    counts = {a: {} for a in arm_names}
    for r in rows:
        c = counts[r["arm"]].setdefault(f"{r['kind']}/{r['decoding']}", dict(echo=0, n=0))
        c["echo"] += r["echo"]
        c["n"] += 1
    return counts


# ----------------------------------------------------------------------------- report

def decoding_text(args):
    texts = dict(greedy="greedy", sampled=f"sampled at temperature {args.temperature}, top-p {args.top_p}",
                 greedy_fallback=f"greedy with a fallback (after {args.repeat_limit} identical consecutive tokens, "
                                 f"one token sampled by top-{args.fallback_top_k} at temperature {args.temperature} "
                                 "without the repeated id; our reading of the authors' decoding)")
    return "; ".join(texts[d] for d in args.decoding)


def report_markdown(arms, rows, counts, prompts, args):
    keys = [f"{k}/{d}" for k in KINDS for d in DECODINGS]
    keys = [k for k in keys if any(k in c for c in counts.values())]
    oov = [p for p in prompts if p["kind"] == "oov"]
    cut = sum(bool(r["prompt_cut"]) for r in rows)
    parts = [
        "# Generation with misspelled and byte-novel words", arms_markdown(arms),
        f"Prompts from `{args.prompts or args.pairs}`. {args.max_new_tokens} new tokens; {decoding_text(args)}; "
        f"seed {args.seed} (a fresh generator per completion). Echo = the completion repeats "
        "the probe word verbatim: the clean word, the typo, or the byte-novel word.",
        context_note(cut, min(a.model.config.block_size for a in arms)),
        "## Echo counts (echoed / completions)",
        markdown_table(["arm"] + keys, [[a] + [f"{c[k]['echo']}/{c[k]['n']}" if k in c else "-" for k in keys]
                                        for a, c in counts.items()]),
    ]
    if oov:
        parts += [f"## Byte-novel words in `{args.template}`",
                  "Kronecker arms read the word as one position through `embed_bytes`; BPE arms read its tokens.",
                  markdown_table(["word", "BPE tokens"], [[md_cell(p["word_bytes"]), p["bpe_tokens"]] for p in oov])]
    parts += ["## All completions",
              markdown_table(["arm", "kind", "decoding", "prompt", "completion", "echo", "fallbacks"],
                             [[r["arm"], r["kind"], r["decoding"], md_cell(r["prompt"]), md_cell(r["completion"]),
                               "yes" if r["echo"] else "", "" if r["fallbacks"] is None else r["fallbacks"]]
                              for r in rows])]
    return "\n\n".join(filter(None, parts))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--pairs", default=os.path.relpath(DEFAULT_PAIRS),
                   help="pair file, JSON or JSONL (see eval/typo_pairs.py; default: %(default)s)")
    p.add_argument("--prompts", help="prompts and forced-OOV words from this file instead of --pairs and the "
                                     "default words (JSON list or JSONL; see above)")
    p.add_argument("--decoding", action="append", choices=DECODINGS,
                   help="decoding; repeat for several (default: greedy and sampled)")
    p.add_argument("--repeat-limit", type=int, default=3,
                   help="greedy_fallback: identical consecutive tokens before one sampled token (default: %(default)s)")
    p.add_argument("--fallback-top-k", type=int, default=50,
                   help="greedy_fallback: k of the top-k fallback sample (default: %(default)s)")
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
    if args.repeat_limit < 1 or args.fallback_top_k < 1:
        raise UserError("need --repeat-limit >= 1 and --fallback-top-k >= 1")
    args.decoding = list(dict.fromkeys(args.decoding or ["greedy", "sampled"]))
    return args


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    arms = load_arms(args.ckpt, device)
    enc = arms_tokenizer(arms)  # the checkpoints' own tokenizer encodes the prompts
    if args.prompts:
        prompts = load_prompts(args.prompts, enc, args.template) + oov_prompts(enc, args.word or [], args.template)
    else:
        prompts = pair_prompts(load_pairs(args.pairs), args.per_category) + oov_prompts(
            enc, args.word or DEFAULT_WORDS, args.template)
    for arm in (a for a in arms if a.kronecker):
        for prompt in (p for p in prompts if p["kind"] == "oov"):
            check_fits(arm.model, prompt["word_bytes"].encode("utf-8"))
    rows = [run_prompt(arm, enc, prompt, decoding, args, device)
            for arm in arms for prompt in prompts for decoding in args.decoding]
    counts = echo_counts(rows, [a.name for a in arms])
    data = dict(settings=dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                              seed=args.seed, template=args.template, pairs_file=args.pairs,
                              prompts_file=args.prompts, per_category=args.per_category, decodings=args.decoding,
                              repeat_limit=args.repeat_limit, fallback_top_k=args.fallback_top_k),
                prompts_cut_to_context=sum(bool(r["prompt_cut"]) for r in rows),
                arms=[a.describe() for a in arms], echo_counts=counts, completions=rows)
    paths = write_report(args.out, "generation", data, report_markdown(arms, rows, counts, prompts, args))
    for name, c in counts.items():
        print(f"{name}: " + ", ".join(f"{k} echo {v['echo']}/{v['n']}" for k, v in c.items()))
    print(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    run_main(main)
