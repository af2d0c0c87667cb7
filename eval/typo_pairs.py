"""The clean/typo prompt-pair file used by eval/robustness.py and eval/generation.py.

A JSONL file, one object per line with `category`, `clean` and `typo`: the typo prompt is the
clean one with one or two character edits (swap, drop, double, substitute) inside one word.
`load_pairs` validates every line and raises UserError naming the first bad one.
Not a script; import it: `from eval.typo_pairs import load_pairs`.
"""
import json
import string
from pathlib import Path

from errors import UserError

DEFAULT_PAIRS = Path(__file__).resolve().parent / "data" / "typo_pairs.jsonl"
FIELDS = ("category", "clean", "typo")
MAX_EDITS = 2


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


def pair_problem(pair):
    """Why this pair is invalid, or None when it is fine."""
    if not isinstance(pair, dict) or any(not isinstance(pair.get(f), str) or not pair[f] for f in FIELDS):
        return f"needs non-empty string fields {', '.join(FIELDS)}"
    if pair["clean"] == pair["typo"]:
        return "clean and typo are identical"
    if changed_word(pair["clean"], pair["typo"]) is None:
        return "clean and typo must differ inside exactly one word"
    distance = edit_distance(pair["clean"], pair["typo"])
    if distance > MAX_EDITS:
        return f"typo is {distance} character edits from clean (at most {MAX_EDITS})"
    return None


def load_pairs(path=DEFAULT_PAIRS):
    """The validated pairs of a JSONL file, in file order."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"pair file not found: {path}; pass --pairs with a JSONL file of {'/'.join(FIELDS)}")
    pairs = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            pair = json.loads(line)
        except json.JSONDecodeError as err:
            raise UserError(f"{path}:{n}: not valid JSON ({err.msg}); fix that line")
        problem = pair_problem(pair)
        if problem:
            raise UserError(f"{path}:{n}: {problem}; fix that line")
        pairs.append({f: pair[f] for f in FIELDS})
    if not pairs:
        raise UserError(f"{path} holds no pairs; add lines of {'/'.join(FIELDS)}")
    return pairs
