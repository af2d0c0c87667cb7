"""The generation probe's prompts: our typo pairs and byte-novel words, or anyone's prompt file.

A prompt is a dict: `kind` (its condition: clean / typo / oov for ours, prompt for a plain
string, normal / misspelled / forced_oov for the authors' files), `category`, `text`, `words`
(the probe words, any of which a completion echoes; none for a plain prompt) and `word` (them as
one text, for reports). A prompt whose word is fed as ONE position to
Kronecker arms (oov, forced_oov) also has `prefix`, `suffix`, `word_bytes` (the word as text,
its leading space included when the text has one) and `bpe_tokens` (what BPE arms read instead).

`--prompts` files, JSON or JSONL, are loaded as they are (load_prompt_file):
- a list of prompts: strings; {"prompt": text, "word": probe word, "category": ...} objects;
  {"oov": word, "template": text around {word}} objects;
- a list of {"normal": text, "misspelled": text, "oov_target": word or null} objects, as the
  authors' probe script keeps its prompts: a normal and a misspelled prompt each (the probe
  words are the words that differ, probe_words), and a forced_oov one (the normal text, oov_target as one position)
  when oov_target is set;
- the authors' published results (their probes/data/generation_probe_results.json): an object
  with a `results` list of records holding `prompt_text`, `condition` (normal, misspelled,
  forced_oov; forced-OOV is read the same), `oov_target`, the decoding `settings` and each arm's
  `completion`. Every distinct (prompt_text, condition, oov_target) becomes one prompt, in file
  order; normal and misspelled records of one `prompt_id` give each other's probe words; the
  file's settings (temperature, top_p, max_new_tokens, seed) become the decoding defaults; its
  completions are kept as the reference (the paper's own outputs).
A forced_oov target is found in its prompt text ignoring case, and the text's spelling is fed.
Not a script; import it: `from eval.generation_prompts import load_prompt_file`.
"""
import json
import string
from dataclasses import dataclass, field
from pathlib import Path

from errors import UserError
from eval.typo_pairs import changed_span, read_text

DEFAULT_WORDS = ("flombertine", "zorblaxian", "quindlewarp", "snerfiplex", "grobnacious", "vextrolium",
                 "plimbosk", "drazzlewick")
DEFAULT_TEMPLATE = "My new friend is called {word}. Everyone calls him"
CONDITIONS = ("normal", "misspelled", "forced_oov")  # the authors' generation conditions
SETTINGS = ("temperature", "top_p", "max_new_tokens", "seed")  # the decoding settings a file may carry
PROMPTS_HINT = ('a JSON list or JSONL of prompts (strings, {"prompt": ..., "word": ...}, {"oov": ..., '
                '"template": ...} or {"normal": ..., "misspelled": ..., "oov_target": ...} objects), or a '
                'generation results object with a "results" list')


@dataclass
class PromptFile:
    """A --prompts file read: its prompts, its decoding settings ({} when it has none: a subset of
    SETTINGS) and its reference completions (the authors' results: dicts with arm, kind, text,
    oov_target, completion, completion_tokens, gibberish_flag)."""
    prompts: list
    settings: dict = field(default_factory=dict)
    reference: list = field(default_factory=list)


# ----------------------------------------------------------------------------- our prompts

def split_template(template):
    """(prefix, suffix, space): the text around {word}; a space before {word} travels with the word."""
    if template.count("{word}") != 1:
        raise UserError(f"--template {template!r} must contain {{word}} exactly once")
    prefix, suffix = template.split("{word}")
    space = prefix.endswith(" ")
    return (prefix[:-1] if space else prefix), suffix, space


def word_bytes(word, space):
    return ((" " if space else "") + word.strip()).encode("utf-8")


def probe_words(clean, typo):
    """(clean words, typo words): the words that differ between two prompts, punctuation stripped
    at their ends: position by position when both have as many words, else the differing span
    (typo_pairs.changed_span) as one piece. A typo in two words gives two probe words."""
    a, b = clean.split(), typo.split()
    if len(a) != len(b):
        return tuple([w] if w else [] for w in changed_span(clean, typo))
    diff = [(x.strip(string.punctuation), y.strip(string.punctuation)) for x, y in zip(a, b) if x != y]
    return [x for x, _ in diff if x], [y for _, y in diff if y]


def text_prompt(kind, category, text, words):
    return dict(kind=kind, category=category, text=text, words=words, word=" ".join(words))


def pair_prompts(pairs, per_category):
    """Clean and typo prompt of the first `per_category` pairs of each category."""
    taken, prompts = {}, []
    for pair in pairs:
        if taken.get(pair["category"], 0) >= per_category:
            continue
        taken[pair["category"]] = taken.get(pair["category"], 0) + 1
        clean_words, typo_words = probe_words(pair["clean"], pair["typo"])
        prompts.append(text_prompt("clean", pair["category"], pair["clean"], clean_words))
        prompts.append(text_prompt("typo", pair["category"], pair["typo"], typo_words))
    return prompts


def forced_prompt(enc, kind, prefix, word, suffix, space, category):
    """A prompt whose `word` Kronecker arms read as one position (its leading space with it when `space`)."""
    piece = word_bytes(word, space).decode("utf-8")
    return dict(text_prompt(kind, category, prefix + piece + suffix, [word.strip()]), prefix=prefix, suffix=suffix,
                word_bytes=piece, bpe_tokens=len(enc.encode_ordinary(piece)))


def oov_prompt(enc, word, template):
    prefix, suffix, space = split_template(template)
    return forced_prompt(enc, "oov", prefix, word, suffix, space, "oov")


def oov_prompts(enc, words, template):
    return [oov_prompt(enc, word, template) for word in words]


# ----------------------------------------------------------------------------- files

def forced_in_text(enc, text, target, where):
    """The forced_oov prompt of `text` with `target` (found ignoring case) as one position."""
    at = text.lower().find(target.lower()) if target else -1
    if at < 0:
        raise UserError(f"{where}: oov_target {target!r} is not in its prompt {text!r}; fix the record")
    prefix, word, suffix = text[:at], text[at:at + len(target)], text[at + len(target):]
    space = prefix.endswith(" ")
    return forced_prompt(enc, "forced_oov", prefix[:-1] if space else prefix, word, suffix, space, "forced_oov")


def condition_of(record, where):
    """The record's condition, normalised (forced-OOV -> forced_oov); UserError for another one."""
    condition = str(record.get("condition", "")).strip().lower().replace("-", "_")
    if condition not in CONDITIONS:
        raise UserError(f"{where}: condition {record.get('condition')!r} is none of {', '.join(CONDITIONS)}")
    return condition


def text_of(record, key, where):
    value = record.get(key)
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where}: '{key}' must be a non-empty string; --prompts takes {PROMPTS_HINT}")
    return value


def file_settings(doc, records, path):
    """The decoding settings of a results file: its top-level `settings`, else the records' own
    (UserError when they differ); only the SETTINGS keys."""
    if isinstance(doc.get("settings"), dict):
        chosen = doc["settings"]
    else:
        seen = {json.dumps(r.get("settings"), sort_keys=True) for r in records if isinstance(r.get("settings"), dict)}
        if len(seen) > 1:
            raise UserError(f"{path}: the records hold different decoding settings; give them on the command "
                            "line (--temperature, --top-p, --max-new-tokens, --seed)")
        chosen = json.loads(seen.pop()) if seen else {}
    return {k: chosen[k] for k in SETTINGS if isinstance(chosen.get(k), (int, float))}


def results_file(doc, path, enc):
    """PromptFile of the authors' results object (see the module doc)."""
    records = doc["results"]
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise UserError(f"{path}: 'results' must be a non-empty list of records; --prompts takes {PROMPTS_HINT}")
    texts = {}  # prompt_id -> {condition: text}: normal and misspelled give each other's probe word
    for i, record in enumerate(records, start=1):
        where = f"{path} results item {i}"
        texts.setdefault(record.get("prompt_id", ("item", i)), {})[condition_of(record, where)] = \
            text_of(record, "prompt_text", where)
    prompts, reference, keys = {}, [], []
    for i, record in enumerate(records, start=1):
        where = f"{path} results item {i}"
        condition, text, target = condition_of(record, where), record["prompt_text"], record.get("oov_target")
        key = (text, condition, target)
        if key not in prompts:
            if condition == "forced_oov":
                prompts[key] = forced_in_text(enc, text, target, where)
            else:
                pair = texts[record.get("prompt_id", ("item", i))]
                words = dict(zip(("normal", "misspelled"), probe_words(pair.get("normal", text),
                                                                        pair.get("misspelled", text))))
                prompts[key] = text_prompt(condition, condition, text, words[condition])
            keys.append(key)
        if isinstance(record.get("completion"), str):
            reference.append(dict(arm=str(record.get("arm", "?")), prompt=prompts[key], completion=record["completion"],
                                  completion_tokens=record.get("completion_tokens"),
                                  gibberish_flag=record.get("gibberish_flag")))
    return PromptFile([prompts[k] for k in keys], file_settings(doc, records, path), reference)


def script_prompts(enc, record, where):
    """The prompts of one {"normal", "misspelled", "oov_target"} record, as the authors' script keeps them."""
    normal, misspelled = text_of(record, "normal", where), text_of(record, "misspelled", where)
    clean_words, typo_words = probe_words(normal, misspelled)
    prompts = [text_prompt("normal", "normal", normal, clean_words),
               text_prompt("misspelled", "misspelled", misspelled, typo_words)]
    if record.get("oov_target"):
        prompts.append(forced_in_text(enc, normal, record["oov_target"], where))
    return prompts


def file_prompts(enc, record, where, template):
    """The prompts of one record of a prompt list (see the module doc)."""
    if isinstance(record, str):
        record = dict(prompt=record)
    if isinstance(record, dict) and "normal" in record:
        return script_prompts(enc, record, where)
    if isinstance(record, dict) and isinstance(record.get("oov"), str) and record["oov"].strip():
        return [oov_prompt(enc, record["oov"], record.get("template", template))]
    if not isinstance(record, dict) or not isinstance(record.get("prompt"), str) or not record["prompt"]:
        raise UserError(f"{where}: not a prompt; --prompts takes {PROMPTS_HINT}")
    word = record.get("word") or ""
    if not isinstance(word, str):
        raise UserError(f"{where}: 'word' must be a string")
    return [text_prompt("prompt", str(record.get("category", "prompt")), record["prompt"], [word] if word else [])]


def load_prompt_file(path, enc, template):
    """The PromptFile of a --prompts file (JSON or JSONL), prompts in file order; UserError (one line
    naming the file and record) for anything that is not one of the shapes of the module doc."""
    path = Path(path)
    text = read_text(path)
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        records = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    records.append((f"{path}:{n}", json.loads(line)))
                except json.JSONDecodeError as err:
                    raise UserError(f"{path}:{n}: not valid JSON ({err.msg}); --prompts takes {PROMPTS_HINT}") from None
    else:
        if isinstance(doc, dict) and "results" in doc:
            return results_file(doc, path, enc)
        records = ([(f"{path} item {i}", r) for i, r in enumerate(doc, start=1)] if isinstance(doc, list)
                   else [(f"{path}:1", doc)])
    prompts = [p for where, record in records for p in file_prompts(enc, record, where, template)]
    if not prompts:
        raise UserError(f"{path} holds no prompts; --prompts takes {PROMPTS_HINT}")
    return PromptFile(prompts)
