"""Generation with misspelled and byte-novel words: the paper's "echo" and gibberish counts.

Per arm, completions (--decoding, repeatable; default greedy and sampled) of:
- pair prompts: the first --per-category pairs of each category of the typo-pair file, in clean
  and in misspelled form; the probe word is the word (or words) that differ;
- forced out-of-vocabulary prompts: a byte-novel word (--word, repeatable; default a list of
  made-up words) put into --template. The arms whose input reads bytes (Kronecker,
  trigram_hash: config.reads_token_bytes) get the word as ONE position through `embed_bytes`;
  the BPE arms get it as their usual several tokens;
- or, with --prompts FILE, the prompts of that file instead: a list of prompts, the authors'
  prompt list, or the authors' published generation results, run condition by condition
  (normal, misspelled, forced_oov) with the file's decoding settings as the defaults and its
  completions as a reference (eval/generation_prompts.py says which shapes and how).
Decodings: greedy; sampled (--temperature, --top-p); greedy_fallback, our reading of the
authors' "greedy with a fallback after N repeated tokens": greedy, except that once the last
--repeat-limit generated tokens are one and the same id, the next single token is sampled by
top-k (--fallback-top-k, at --temperature) with that id excluded; greedy then resumes.
A completion "echoes" when it repeats a probe word (clean word, typo or novel word) verbatim.
It is "gibberish", by our rule (the paper does not define its flag), when fewer than
--gibberish-distinct (0.5) of its new tokens are distinct: a repetition loop.
Echo and gibberish counts with n per arm, condition and decoding, and every completion, go to
<out>/generation.{json,md}; for the authors' results file also the same counts of its own
completions (our echo rule, their gibberish flag and ours).
Each completion is sampled with its own generator seeded with --seed, so results do not depend
on the order of prompts or arms. A prompt longer than the context is cut to its last
block_size positions, and the report says so.

    python -m eval.generation --ckpt bpe=out/bpe_s0/ckpt_004000.pt --ckpt kronecker=out/kronecker_s0/ckpt_004000.pt
    python -m eval.generation --ckpt kronecker=PATH --word " glorptastic" --template "I love {word} because"
    python -m eval.generation --ckpt kronecker=PATH --prompts my_prompts.jsonl --decoding greedy_fallback \
        --repeat-limit 3
    python -m eval.generation --ckpt bpe=A.pt --ckpt kronecker=B.pt --prompts generation_probe_results.json
"""
import argparse
import os

import torch

from devices import resolve_device
from errors import UserError, run_main
from eval.generation_prompts import (DEFAULT_TEMPLATE, DEFAULT_WORDS, PromptFile, load_prompt_file, oov_prompts,
                                     pair_prompts)
from eval.probe_common import (add_common_args, arms_markdown, context_note, decode, fit_context, load_arms,
                               arms_tokenizer, md_cell, write_report)
from eval.runs import markdown_table
from eval.typo_pairs import DEFAULT_PAIRS, load_pairs
from model import sample_next
from tokenizer import GPT2_VOCAB

KINDS = ("clean", "typo", "prompt", "oov", "normal", "misspelled", "forced_oov")  # report order
DECODINGS = ("greedy", "sampled", "greedy_fallback")
# decoding defaults: the paper's (temperature 0.7, top-p 0.9, 30 new tokens, seed 42); a --prompts
# file's own settings take their place, and the command line wins over both
DECODING_DEFAULTS = dict(temperature=0.7, top_p=0.9, max_new_tokens=30, seed=42)


def check_fits(model, piece):
    """UserError when the input layer would cut `piece` (the Kronecker codec keeps pos_dim bytes)."""
    limit = model.transformer.wte.max_bytes
    if limit is not None and len(piece) > limit:
        raise UserError(f"word {piece!r} is {len(piece)} bytes but the {model.config.embedding} input "
                        f"keeps {limit} (pos_dim); pick a shorter --word")


@torch.no_grad()
def forced_word_embedding(model, enc, prefix, piece, suffix, device):
    """(1, T, n_embd) prompt embedding with `piece` (bytes) as a single position via embed_bytes;
    prefix or suffix may be empty (a word that starts or ends the prompt)."""
    check_fits(model, piece)
    word = model.embed_bytes([piece]).unsqueeze(0)
    parts = []
    for text in (prefix, suffix):
        ids = torch.tensor([enc.encode_ordinary(text)], dtype=torch.long, device=device)
        parts.append(model.token_embedding(ids) if ids.numel() else word[:, :0])
    return torch.cat([parts[0], word.to(parts[0].dtype), parts[1]], dim=1)


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


def echoes(completion, words):
    """Does the completion repeat any of the probe words verbatim (case-sensitive)? Never without one."""
    return any(word and word in completion for word in words)


def gibberish(new_ids, min_distinct):
    """Is a completion (its new token ids) a repetition loop: fewer than min_distinct (a share) of
    its tokens distinct? Our reading: the paper flags gibberish without defining it."""
    return bool(new_ids) and len(set(new_ids)) < min_distinct * len(new_ids)


def run_prompt(arm, enc, prompt, decoding, args, device):
    forced = "word_bytes" in prompt and arm.reads_bytes
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
                echo=echoes(text, prompt["words"]), gibberish=gibberish(new_ids, args.gibberish_distinct))


def echo_counts(rows, arm_names):
    """arm -> 'kind/decoding' -> dict(echo, gibberish, n), kinds in KINDS order."""
    counts = {a: {} for a in arm_names}
    for r in sorted(rows, key=lambda r: KINDS.index(r["kind"])):
        c = counts[r["arm"]].setdefault(f"{r['kind']}/{r['decoding']}", dict(echo=0, gibberish=0, n=0))
        c["echo"] += r["echo"]
        c["gibberish"] += r["gibberish"]
        c["n"] += 1
    return counts


def reference_counts(reference, min_distinct):
    """The file's own completions (the authors' results) counted as ours are: file arm -> condition
    -> dict(echo (our rule), gibberish_flag (theirs; None when unflagged), gibberish (our rule on
    their completion_tokens; None without them), both (flagged by both), n)."""
    counts = {}
    for r in reference:
        c = counts.setdefault(r["arm"], {}).setdefault(r["prompt"]["kind"], dict(
            echo=0, gibberish_flag=0, gibberish=0, both=0, n=0))
        ours = gibberish(r["completion_tokens"], min_distinct) if isinstance(r["completion_tokens"], list) else None
        theirs = r["gibberish_flag"] if isinstance(r["gibberish_flag"], bool) else None
        c["echo"] += echoes(r["completion"], r["prompt"]["words"])
        both = None if ours is None or theirs is None else ours and theirs
        for key, value in (("gibberish_flag", theirs), ("gibberish", ours), ("both", both)):
            c[key] = None if value is None or c[key] is None else c[key] + value
        c["n"] += 1
    return counts


# ----------------------------------------------------------------------------- report

def decoding_text(args):
    texts = dict(greedy="greedy", sampled=f"sampled at temperature {args.temperature}, top-p {args.top_p}",
                 greedy_fallback=f"greedy with a fallback (after {args.repeat_limit} identical consecutive tokens, "
                                 f"one token sampled by top-{args.fallback_top_k} at temperature {args.temperature} "
                                 "without the repeated id; our reading of the authors' decoding)")
    return "; ".join(texts[d] for d in args.decoding)


def counts_cell(c):
    return f"{c['echo']} / {c['gibberish']} / {c['n']}"


def reference_markdown(counts, args):
    """The file's own completions, counted as ours: per file arm and condition."""
    def n_or_na(value):
        return "n/a" if value is None else value
    rows = [[arm, kind, c["n"], c["echo"], n_or_na(c["gibberish_flag"]), n_or_na(c["gibberish"]), n_or_na(c["both"])]
            for arm, by_kind in counts.items() for kind, c in by_kind.items()]
    return "\n\n".join([
        f"## The file's own completions (`{args.prompts}`)",
        "What the file reports for its arms, counted as ours are: echo by our rule; gibberish by the file's "
        f"own flag and by our rule (< {args.gibberish_distinct:g} of the new tokens distinct) on its "
        "completion tokens, and how many completions both flag.",
        markdown_table(["file arm", "condition", "n", "echo", "gibberish (file's flag)", "gibberish (our rule)",
                        "both"], rows)])


def report_markdown(arms, rows, counts, prompts, args, reference):
    keys = [f"{k}/{d}" for k in KINDS for d in DECODINGS]
    keys = [k for k in keys if any(k in c for c in counts.values())]
    forced = [p for p in prompts if "word_bytes" in p]
    cut = sum(bool(r["prompt_cut"]) for r in rows)
    parts = [
        "# Generation with misspelled and byte-novel words", arms_markdown(arms),
        f"Prompts from `{args.prompts or args.pairs}`. {args.max_new_tokens} new tokens; {decoding_text(args)}; "
        f"seed {args.seed} (a fresh generator per completion){args.settings_note}. Echo = the completion repeats "
        "the probe word verbatim: the clean word, the typo, or the byte-novel word. Gibberish (our rule; the "
        f"paper does not define its flag) = fewer than {args.gibberish_distinct:g} of the completion's new tokens "
        "are distinct, a repetition loop.",
        context_note(cut, min(a.model.config.block_size for a in arms)),
        "## Echo and gibberish counts (echoed / gibberish / n completions), per condition and decoding",
        markdown_table(["arm"] + keys, [[a] + [counts_cell(c[k]) if k in c else "-" for k in keys]
                                        for a, c in counts.items()]),
    ]
    if forced:
        parts += ["## Words fed as one position",
                  "Arms whose input reads bytes (Kronecker, trigram_hash) read the word as one position "
                  "through `embed_bytes`; BPE arms read its tokens.",
                  markdown_table(["condition", "prompt", "word", "BPE tokens"],
                                 [[p["kind"], md_cell(p["text"]), md_cell(p["word_bytes"]), p["bpe_tokens"]]
                                  for p in forced])]
    if reference:
        parts.append(reference_markdown(reference, args))
    parts += ["## All completions",
              markdown_table(["arm", "kind", "decoding", "prompt", "completion", "echo", "gibberish", "fallbacks"],
                             [[r["arm"], r["kind"], r["decoding"], md_cell(r["prompt"]), md_cell(r["completion"]),
                               "yes" if r["echo"] else "", "yes" if r["gibberish"] else "",
                               "" if r["fallbacks"] is None else r["fallbacks"]]
                              for r in rows])]
    return "\n\n".join(filter(None, parts))


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p)
    p.add_argument("--pairs", default=os.path.relpath(DEFAULT_PAIRS),
                   help="pair file, JSON or JSONL (see eval/typo_pairs.py; default: %(default)s)")
    p.add_argument("--prompts", help="prompts and forced-OOV words from this file instead of --pairs and the "
                                     "default words (see eval/generation_prompts.py)")
    p.add_argument("--decoding", action="append", choices=DECODINGS,
                   help="decoding; repeat for several (default: greedy and sampled; sampled for a results file)")
    p.add_argument("--repeat-limit", type=int, default=3,
                   help="greedy_fallback: identical consecutive tokens before one sampled token (default: %(default)s)")
    p.add_argument("--fallback-top-k", type=int, default=50,
                   help="greedy_fallback: k of the top-k fallback sample (default: %(default)s)")
    p.add_argument("--per-category", type=int, default=1, help="pairs taken per category (default: %(default)s)")
    p.add_argument("--word", action="append", help="byte-novel word; repeat for several (default: a built-in list)")
    p.add_argument("--template", default=DEFAULT_TEMPLATE, help="prompt around {word} (default: %(default)r)")
    p.add_argument("--gibberish-distinct", type=float, default=0.5,
                   help="gibberish: fewer than this share of a completion's tokens distinct (default: %(default)s)")
    for name, kind in (("max_new_tokens", int), ("temperature", float), ("top_p", float), ("seed", int)):
        p.add_argument("--" + name.replace("_", "-"), type=kind,
                       help=f"default: the --prompts file's, else {DECODING_DEFAULTS[name]}")
    return p.parse_args(argv)


def resolve_decoding(args, prompt_file):
    """Fill the decoding settings: the command line, else the prompt file's, else DECODING_DEFAULTS;
    check every value (UserError). A results file samples by default (its completions are sampled)."""
    given = {name for name in DECODING_DEFAULTS if getattr(args, name) is not None}
    for name, default in DECODING_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, type(default)(prompt_file.settings.get(name, default)))
    taken = [f"{k} {getattr(args, k)}" for k in DECODING_DEFAULTS if k in prompt_file.settings and k not in given]
    args.settings_note = f" ({', '.join(taken)}: the prompt file's settings)" if taken else ""
    if args.per_category < 0 or args.max_new_tokens < 1 or args.temperature <= 0 or not 0 < args.top_p <= 1:
        raise UserError("need --per-category >= 0, --max-new-tokens >= 1, --temperature > 0 and 0 < --top-p <= 1")
    if args.repeat_limit < 1 or args.fallback_top_k < 1 or not 0 < args.gibberish_distinct <= 1:
        raise UserError("need --repeat-limit >= 1, --fallback-top-k >= 1 and 0 < --gibberish-distinct <= 1")
    default = ["sampled"] if prompt_file.reference or prompt_file.settings else ["greedy", "sampled"]
    args.decoding = list(dict.fromkeys(args.decoding or default))


def main(argv=None):
    args = parse_args(argv)
    device = resolve_device(args.device)
    arms = load_arms(args.ckpt, device)
    enc = arms_tokenizer(arms)  # the checkpoints' own tokenizer encodes the prompts
    if args.prompts:
        prompt_file = load_prompt_file(args.prompts, enc, args.template)
        prompts = prompt_file.prompts + oov_prompts(enc, args.word or [], args.template)
    else:
        prompt_file = PromptFile([])
        prompts = pair_prompts(load_pairs(args.pairs), args.per_category) + oov_prompts(
            enc, args.word or DEFAULT_WORDS, args.template)
    resolve_decoding(args, prompt_file)
    for arm in (a for a in arms if a.reads_bytes):
        for prompt in (p for p in prompts if "word_bytes" in p):
            check_fits(arm.model, prompt["word_bytes"].encode("utf-8"))
    rows = [run_prompt(arm, enc, prompt, decoding, args, device)
            for arm in arms for prompt in prompts for decoding in args.decoding]
    counts = echo_counts(rows, [a.name for a in arms])
    reference = reference_counts(prompt_file.reference, args.gibberish_distinct)
    data = dict(settings=dict(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                              seed=args.seed, template=args.template, pairs_file=args.pairs,
                              prompts_file=args.prompts, per_category=args.per_category, decodings=args.decoding,
                              repeat_limit=args.repeat_limit, fallback_top_k=args.fallback_top_k,
                              gibberish_distinct=args.gibberish_distinct),
                prompts_cut_to_context=sum(bool(r["prompt_cut"]) for r in rows),
                arms=[a.describe() for a in arms], echo_counts=counts, reference_counts=reference, completions=rows)
    paths = write_report(args.out, "generation", data, report_markdown(arms, rows, counts, prompts, args, reference))
    for name, c in counts.items():
        print(f"{name}: " + ", ".join(f"{k} echo {v['echo']}/{v['n']}, gibberish {v['gibberish']}/{v['n']}"
                                      for k, v in c.items()))
    print(f"wrote {paths[0]} and {paths[1]}")


if __name__ == "__main__":
    run_main(main)
