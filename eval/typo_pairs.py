"""Clean/typo prompt-pair files for eval/robustness.py and eval/generation.py, ours or anyone's.

Our file (eval/data/typo_pairs.jsonl) has one object per line with `category`, `clean` and
`typo`, the typo being one or two character edits (swap, drop, double, substitute) inside one
word. Files written by others are loaded as they are; every pair is kept (the paper's rates are
over its whole file). Accepted shapes, as JSON or JSONL (one record per line):
- objects {"category": ..., "clean": ..., "typo": ...} (category optional: "all" when absent);
- arrays [category, clean, typo] or [clean, typo];
- a JSON list of those, or a results JSON object holding them in a `prompt_pairs` list.
Each pair gets `edit_distance` (characters, see edit_distance) and `flags`, the ways it differs
from a one-word typo: "identical" (clean == typo), "whitespace-only" (only spaces inserted or
removed), "multi-word" (the edits touch more than one word), "over-2-edits". A file that is not
UTF-8 text, not JSON, or has a record without non-empty clean and typo strings is one UserError
line naming the file and record.
Not a script; import it: `from eval.typo_pairs import load_pairs, flag_counts`.
"""
import json
import string
from collections import Counter
from pathlib import Path

from errors import UserError

DEFAULT_PAIRS = Path(__file__).resolve().parent / "data" / "typo_pairs.jsonl"
FIELDS = ("category", "clean", "typo")
DEFAULT_CATEGORY = "all"
MAX_EDITS = 2
FLAGS = ("identical", "whitespace-only", "multi-word", f"over-{MAX_EDITS}-edits")
FORMAT_HINT = "JSON or JSONL of {category, clean, typo} objects or [category, clean, typo] arrays"


def edit_distance(a, b):
    """Optimal-string-alignment distance: insert, delete, substitute, swap of neighbours = 1 each."""
    prev2, prev = None, list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]


def changed_word(clean, typo):
    """(clean_word, typo_word) of the one whitespace-separated word that differs, punctuation stripped.

    Returns None when the prompts differ in word count or in more (or fewer) than one word.
    """
    clean_words, typo_words = clean.split(), typo.split()
    if len(clean_words) != len(typo_words):
        return None
    diff = [(c, t) for c, t in zip(clean_words, typo_words) if c != t]
    if len(diff) != 1:
        return None
    return tuple(w.strip(string.punctuation) for w in diff[0])


def changed_span(clean, typo):
    """(clean_text, typo_text): the words that differ once the common leading and trailing words
    are removed, joined by spaces, punctuation stripped at the ends; ("", "") for identical prompts."""
    a, b = clean.split(), typo.split()
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    return tuple(" ".join(words[start:len(words) - end]).strip(string.punctuation) for words in (a, b))


def pair_flags(clean, typo):
    """The FLAGS that apply to a pair, in FLAGS order ([] for a clean one-word typo of 1-2 edits)."""
    if clean == typo:
        return ["identical"]
    flags = []
    if "".join(clean.split()) == "".join(typo.split()):
        flags.append("whitespace-only")
    elif changed_word(clean, typo) is None:
        flags.append("multi-word")
    if edit_distance(clean, typo) > MAX_EDITS:
        flags.append(f"over-{MAX_EDITS}-edits")
    return flags


def to_pair(record, where):
    """A {category, clean, typo, edit_distance, flags} dict from one object or array record."""
    if isinstance(record, list) and len(record) in (2, 3):
        record = dict(zip(FIELDS[-len(record):], record))
    if not isinstance(record, dict):
        raise UserError(f"{where}: not a pair; expected {FORMAT_HINT}")
    category = record.get("category", DEFAULT_CATEGORY)
    clean, typo = record.get("clean"), record.get("typo")
    if not all(isinstance(v, str) and v for v in (clean, typo)) or not isinstance(category, str):
        raise UserError(f"{where}: needs non-empty strings clean and typo (and a string category); fix that record")
    return dict(category=category, clean=clean, typo=typo, edit_distance=edit_distance(clean, typo),
                flags=pair_flags(clean, typo))


def read_text(path, what="pair file", usage=f"pass --pairs with a {FORMAT_HINT}"):
    """The file's text; UserError for a missing, binary or non-UTF-8 file. `what` names the file
    and `usage` the fix in those messages (another file kind: `what="probe file"`, its own usage)."""
    if not path.is_file():
        raise UserError(f"{what} not found: {path}; {usage}")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read {what} {path}: {err.strerror}") from None
    if b"\0" in data:
        raise UserError(f"{path} is a binary file, not text; {usage}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise UserError(f"{path} is not UTF-8 text (byte {err.start}); save it as UTF-8 and retry") from None


def records(path, text, hint=FORMAT_HINT):
    """[(where, record)]: the items of a JSON document, else one per non-blank JSONL line (a line
    that is not JSON is a UserError saying the file must be `hint`)."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        doc = None
    else:
        if isinstance(doc, dict) and "prompt_pairs" in doc:
            doc = doc["prompt_pairs"]
        if isinstance(doc, list) and not (doc and all(isinstance(x, str) for x in doc)):
            return [(f"{path} item {i}", r) for i, r in enumerate(doc, start=1)]
        if isinstance(doc, (dict, list)):
            return [(f"{path}:1", doc)]
    found = []
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.append((f"{path}:{n}", json.loads(line)))
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{n}: not valid JSON ({err.msg}); the file must be {hint}") from None
    return found


def load_pairs(path=DEFAULT_PAIRS):
    """Every pair of a pair file, in file order, each with edit_distance and flags (see module doc)."""
    path = Path(path)
    pairs = [to_pair(record, where) for where, record in records(path, read_text(path))]
    if not pairs:
        raise UserError(f"{path} holds no pairs; it must be {FORMAT_HINT}")
    return pairs


def flag_counts(pairs):
    """{flag: number of pairs with it} for the flags that occur, in FLAGS order."""
    counts = Counter(flag for pair in pairs for flag in pair["flags"])
    return {flag: counts[flag] for flag in FLAGS if counts[flag]}


def flags_text(pairs):
    """One sentence on how many pairs are unusual and how, for a report."""
    counts = flag_counts(pairs)
    flagged = sum(bool(p["flags"]) for p in pairs)
    if not flagged:
        return f"all {len(pairs)} pairs are one-word typos of 1-{MAX_EDITS} character edits"
    kinds = ", ".join(f"{n} {flag}" for flag, n in counts.items())
    return f"{flagged} of {len(pairs)} pairs are flagged and kept ({kinds})"
