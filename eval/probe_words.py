"""Probe words for eval/cross_model.py: word families with their variants, ours or anyone's.

Our file (eval/data/cross_model_probes.jsonl) has one family per line:
    {"word": "run", "typographic": ["Run", " run"], "morphological": ["runs", "ran"],
     "unrelated": ["rune", "kitchen"]}
Every variant gets a bucket: `self` (the word itself), `typographic` (the same canonical form:
case, leading space and surrounding punctuation aside; eval/geometry.normalise), `morphological`
or `unrelated` (as listed), or `unlabelled` (a variant of another file whose bucket is not given
and not typographic). A family's neighbour queries are its word and its morphological relatives
(or its own `queries` list).
Files written by others load as they are, as JSON or JSONL:
- family objects as above (`anchor` for `word`, `relatives` for `morphological`, `controls` for
  `unrelated` also accepted);
- pair records {"anchor": "run", "variant": "runs", "bucket": "morphological"} or arrays
  [anchor, variant] / [anchor, variant, bucket] (bucket names `same_canonical`, `morph`,
  `control` accepted), grouped by anchor in file order;
- one object {word: [relatives, ...]} (eval/neighbors.py's FAMILIES), or a list of words.
A file that is not UTF-8 text or not JSON, or a record without a non-empty word, is one
UserError line naming the file and the record.
Not a script; import it: `from eval.probe_words import load_families`.
"""
import json
from dataclasses import dataclass, field
from pathlib import Path

from errors import UserError
from eval.geometry import normalise
from eval.typo_pairs import edit_distance, read_text, records

DEFAULT_PROBES = Path(__file__).resolve().parent / "data" / "cross_model_probes.jsonl"
BUCKETS = ("self", "typographic", "morphological", "unrelated", "unlabelled")
BUCKET_NAMES = {"self": "self", "typographic": "typographic", "same_canonical": "typographic",
                "same canonical form": "typographic", "morphological": "morphological", "morph": "morphological",
                "unrelated": "unrelated", "control": "unrelated"}
LIST_KEYS = {"typographic": ("typographic",), "morphological": ("morphological", "relatives"),
             "unrelated": ("unrelated", "controls")}
FORMAT_HINT = ('JSON or JSONL of {"word", "typographic", "morphological", "unrelated"} families, '
               '{"anchor", "variant", "bucket"} pairs, or a list of words')
USAGE = f"pass --probes a {FORMAT_HINT}"


@dataclass
class Family:
    """A probe word, its variants as [(text, bucket)] (bucket from BUCKETS; the word itself first,
    as "self") and the strings whose nearest neighbours are listed."""
    word: str
    variants: list = field(default_factory=list)
    queries: list = field(default_factory=list)

    def relatives(self):
        """Canonical forms of the morphological relatives."""
        return {normalise(t) for t, b in self.variants if b == "morphological"}

    def add(self, text, bucket=None):
        if text in (t for t, _ in self.variants):
            return
        self.variants.append((text, infer_bucket(self.word, text, bucket)))

    def pairs(self):
        """[{anchor, variant, bucket, edit_distance}] for the edit-distance table."""
        return [dict(anchor=self.word, variant=t, bucket=b, edit_distance=edit_distance(self.word, t))
                for t, b in self.variants]


def infer_bucket(word, text, bucket):
    """A variant's bucket: the file's (normalised), else self / typographic by canonical form,
    else unlabelled."""
    if bucket is not None:
        return bucket
    if text == word:
        return "self"
    return "typographic" if normalise(text) == normalise(word) else "unlabelled"


def text_value(value, where, name):
    if not isinstance(value, str) or not value:
        raise UserError(f"{where}: {name} must be a non-empty string; fix that record")
    return value


def bucket_value(value, where):
    if value is None:
        return None
    name = BUCKET_NAMES.get(str(value).strip().lower())
    if name is None:
        raise UserError(f"{where}: unknown bucket {value!r}; use one of "
                        f"{', '.join(sorted(set(BUCKET_NAMES)))}")
    return name


def family_record(record, where):
    """(word, [(text, bucket)], queries or None) from a family object."""
    word = text_value(record.get("word", record.get("anchor")), where, "'word'")
    variants = []
    for bucket, keys in LIST_KEYS.items():
        for key in keys:
            values = record.get(key, [])
            if not isinstance(values, list):
                raise UserError(f"{where}: {key!r} must be a list of strings; fix that record")
            variants += [(text_value(v, where, f"each {key!r} entry"), bucket) for v in values]
    queries = record.get("queries")
    if queries is not None:
        if not isinstance(queries, list):
            raise UserError(f"{where}: 'queries' must be a list of strings; fix that record")
        queries = [text_value(q, where, "each 'queries' entry") for q in queries]
    return word, variants, queries


def pair_record(record, where):
    """(anchor, variant, bucket or None) from a pair object or array."""
    if isinstance(record, list) and len(record) in (2, 3):
        record = dict(zip(("anchor", "variant", "bucket"), record))
    anchor = text_value(record.get("anchor", record.get("word")), where, "'anchor'")
    return anchor, text_value(record.get("variant"), where, "'variant'"), bucket_value(record.get("bucket"), where)


def whole_document(text):
    """The JSON document when it is one mapping {word: [relatives]} or a list of words, else None."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return None
    if isinstance(doc, list) and doc and all(isinstance(x, str) for x in doc):
        return {word: [] for word in doc}
    if isinstance(doc, dict) and doc and all(isinstance(v, list) for v in doc.values()):
        return doc
    return None


def load_families(path=DEFAULT_PROBES):
    """The families of a probe file, in file order (module docstring); UserError for a bad file."""
    path = Path(path)
    text = read_text(path, "probe file", USAGE)
    families = {}

    def family(word):
        return families.setdefault(word, Family(word, [(word, "self")]))

    mapping = whole_document(text)
    if mapping is not None:
        for word, relatives in mapping.items():
            where = f"{path} entry {word!r}"
            fam = family(text_value(word, where, "each word"))
            for relative in relatives:
                fam.add(text_value(relative, where, "each relative"), "morphological")
    else:
        for where, record in records(path, text, FORMAT_HINT):
            if isinstance(record, str):
                family(text_value(record, where, "a word"))
            elif isinstance(record, list) or (isinstance(record, dict) and "variant" in record):
                anchor, variant, bucket = pair_record(record, where)
                family(anchor).add(variant, bucket)
            elif isinstance(record, dict):
                word, variants, queries = family_record(record, where)
                fam = family(word)
                for variant, bucket in variants:
                    fam.add(variant, bucket)
                fam.queries = queries or fam.queries
            else:
                raise UserError(f"{where}: not a family, pair or word; {USAGE}")
    if not families:
        raise UserError(f"{path} holds no probe words; {USAGE}")
    for fam in families.values():
        fam.queries = fam.queries or [fam.word] + [t for t, b in fam.variants if b == "morphological"]
    return list(families.values())
