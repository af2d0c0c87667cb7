"""Shared loader for training runs, used by every eval script that reads logs.

A run is a folder `<runs_dir>/<run_name>/` holding config.json, log.jsonl and (once finished)
summary.json, as written by train.py. `load_runs(dir)` reads them all into `Run` objects; arm and
seed come from config.json, never from the folder name: the arm is its `arm` field (train_config's
named arms, e.g. bpe_untied_scaled = bpe_untied at wte_scale 50), or `embedding` for runs
written before arms had names; its learning rate is `max_lr` (an lr sweep has several runs of
one arm and seed, one per lr). In log.jsonl, later lines for the same step win (a resumed run
may repeat steps); HellaSwag lines (hellaswag_* fields) are kept too. Also here: pairing runs by
seed, mean +- std, the paper-setting comparison, notes on what is missing or was changed on
resume, read_json and a markdown table writer. (Atomic writes are atomic.py's; the eval scripts
write through eval/outputs.py.)
Not a script; import it: `from eval.runs import load_runs`.
"""
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from errors import UserError

DEFAULT_RUNS_DIR = "results/runs"
NORM_FIELDS = ("emb_row_norm", "emb_token_norm", "emb_fro_norm")
HELLASWAG_FIELDS = ("hellaswag_acc_norm", "hellaswag_acc", "hellaswag_completion_loss", "hellaswag_n")
PAPER_REFERENCE = Path(__file__).resolve().parent.parent / "results" / "paper_reference.json"


@dataclass
class Run:
    name: str
    path: Path
    arm: str
    seed: int
    config: dict
    train_steps: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    eval_steps: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    norms: dict = field(default_factory=dict)  # NORM_FIELDS name -> values aligned with eval_steps
    hellaswag: dict = field(default_factory=dict)  # step -> {HELLASWAG_FIELDS name: value} it logged
    finished: bool = False

    @property
    def lr(self):
        """The run's peak learning rate (config.json max_lr; None when it does not say)."""
        return self.config.get("max_lr")

    @property
    def final_hellaswag(self):
        """The last HellaSwag line's fields (dict), or None when the run logged none."""
        return self.hellaswag[max(self.hellaswag)] if self.hellaswag else None

    @property
    def final_step(self):
        """Step of the last eval point (None before the first eval)."""
        return self.eval_steps[-1] if self.eval_steps else None

    @property
    def final_val_loss(self):
        """Validation loss at the last eval point (None before the first eval)."""
        return self.val_loss[-1] if self.val_loss else None


# ----------------------------------------------------------------------------- loading

def read_json(path, missing_ok=False):
    """The parsed JSON file at path; None if it does not exist and missing_ok. Raises UserError
    (one line naming the file) when it cannot be read or parsed."""
    path = Path(path)
    if missing_ok and not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}; rerun what wrote it, or move it away")


def read_log(path):
    """(train_lines, eval_lines, hellaswag_lines): dicts step -> line; a later line for the same
    step wins.

    When a step repeats, the older lines from that step on are dropped too (the run was resumed
    from an earlier checkpoint and is retracing them). An unterminated last line that is not valid
    JSON is skipped: train.py may be writing it now (or a crash tore it). A null value (train.py
    writes NaN / Infinity as null and lists the field in "nonfinite") is read back as NaN.
    """
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise UserError(f"cannot read {path}: {err}")
    train, evals, hellaswag = {}, {}, {}
    lines = text.split("\n")
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as err:
            if lineno == len(lines):
                continue
            raise UserError(f"{path} line {lineno} is not valid JSON ({err.msg}); fix or delete that line")
        if not isinstance(rec, dict) or "step" not in rec:
            raise UserError(f"{path} line {lineno} has no 'step' field; fix or delete that line")
        step = rec["step"]
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise UserError(f"{path} line {lineno}: 'step' is {step!r}, not a whole number >= 0; "
                            "fix or delete that line")
        rec = {k: math.nan if v is None and k != "step" else v for k, v in rec.items()}
        for key, kept in (("train_loss", train), ("val_loss", evals), (HELLASWAG_FIELDS[0], hellaswag)):
            if key in rec:
                rewind(kept, rec["step"])
                kept[rec["step"]] = rec
    return train, evals, hellaswag


def rewind(kept, step):
    """Drop lines at or after `step` (kept is in increasing step order): a resumed run retraces them."""
    while kept and next(reversed(kept)) >= step:
        kept.popitem()


def load_run(folder):
    folder = Path(folder)
    config = read_json(folder / "config.json")
    for key in ("embedding", "seed"):
        if key not in config:
            raise UserError(f"{folder / 'config.json'} has no '{key}' field; it was not written by train.py")
    arm = config.get("arm") or config["embedding"]  # runs from before named arms have no "arm"
    if not isinstance(arm, str):
        raise UserError(f"{folder / 'config.json'}: the arm is {arm!r}, not a name; fix that field")
    train, evals, hellaswag = read_log(folder / "log.jsonl") if (folder / "log.jsonl").exists() else ({}, {}, {})
    eval_steps = sorted(evals)
    return Run(
        name=folder.name, path=folder, arm=arm, seed=config["seed"], config=config,
        train_steps=sorted(train), train_loss=[train[s]["train_loss"] for s in sorted(train)],
        eval_steps=eval_steps, val_loss=[evals[s]["val_loss"] for s in eval_steps],
        norms={f: [evals[s][f] for s in eval_steps] for f in NORM_FIELDS
               if eval_steps and all(f in evals[s] for s in eval_steps)},
        hellaswag={step: {f: line[f] for f in HELLASWAG_FIELDS if f in line}
                   for step, line in sorted(hellaswag.items())},
        finished=(folder / "summary.json").exists() and read_json(folder / "summary.json").get("finished") is True,
    )


def load_runs(runs_dir=DEFAULT_RUNS_DIR):
    """Every run folder directly under runs_dir (a folder with config.json or log.jsonl)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        raise UserError(f"no runs folder {runs_dir}; train first (python train.py ...) or pass --runs DIR")
    folders = sorted(p for p in runs_dir.iterdir()
                     if (p / "config.json").exists() or (p / "log.jsonl").exists())
    if not folders and (runs_dir / "config.json").exists():
        raise UserError(f"{runs_dir} is a single run; pass the folder holding run folders: --runs {runs_dir.parent}")
    if not folders:
        raise UserError(f"no runs in {runs_dir} (no subfolder with config.json); train first or pass --runs DIR")
    runs = [load_run(p) for p in folders]
    seen = {}
    for run in runs:
        key = (run.arm, run.lr, run.seed)
        if key in seen:
            raise UserError(f"runs {seen[key].path} and {run.path} are both arm {run.arm} seed {run.seed} "
                            f"at max_lr {run.lr}; move one out of {runs_dir}")
        seen[key] = run
    return runs


# ----------------------------------------------------------------------------- grouping

def by_arm(runs):
    """arm -> runs sorted by seed."""
    out = {}
    for run in sorted(runs, key=lambda r: (r.arm, r.seed)):
        out.setdefault(run.arm, []).append(run)
    return out


def by_seed(runs):
    """seed -> {arm: run}."""
    out = {}
    for run in sorted(runs, key=lambda r: (r.seed, r.arm)):
        out.setdefault(run.seed, {})[run.arm] = run
    return out


def paired(runs, baseline, arm):
    """[(seed, baseline_run, arm_run)] for the seeds that have both arms with eval points."""
    pairs = []
    for seed, arms in by_seed(runs).items():
        if baseline in arms and arm in arms and arms[baseline].eval_steps and arms[arm].eval_steps:
            pairs.append((seed, arms[baseline], arms[arm]))
    return pairs


def compared_arms(runs, baseline, arms=None):
    """Arms to compare with the baseline: those asked for, else every other arm; none without baseline runs."""
    found = by_arm(runs)
    if baseline not in found:
        return []
    return arms or [a for a in found if a != baseline]


def missing_notes(runs, arms=None):
    """Human-readable lines on what is missing: arm/seed gaps, unfinished runs, runs with no eval yet."""
    groups = by_arm(runs)
    arms = list(dict.fromkeys(arms or groups))
    seeds = sorted(by_seed(runs))
    notes = [f"arm {a}: no runs" for a in arms if a not in groups]
    for seed in seeds:
        lacking = [a for a in arms if a in groups and seed not in [r.seed for r in groups[a]]]
        if lacking:
            notes.append(f"seed {seed}: no run for {', '.join(lacking)}")
    for run in sorted(runs, key=lambda r: (r.arm, r.seed)):
        if run.arm not in arms:
            continue
        if not run.eval_steps:
            notes.append(f"{run.name}: no eval points yet (left out)")
        elif not run.finished:
            notes.append(f"{run.name}: unfinished (no summary.json); using its last eval, step "
                         f"{run.final_step} of {run.config.get('max_steps', '?')}")
    return notes


def change_notes(runs):
    """One line per run whose settings were changed on resume (config.json's config_changes,
    run_folder.py: --allow_change), e.g. "bpe_s1337: max_lr 0.0006 -> 0.0003 at step 250": its
    curve is a mixed schedule."""
    notes = []
    for run in sorted(runs, key=lambda r: (r.arm, r.seed)):
        changes = run.config.get("config_changes") or []
        if changes:
            notes.append(f"{run.name}: " + "; ".join(
                ", ".join(f"{k} {old} -> {new}" for k, (old, new) in c["config_change"].items())
                + f" at step {c['step']}" for c in changes))
    return notes


# ----------------------------------------------------------------------------- statistics

def mean_std(values):
    """(mean, sample std); std is None with fewer than 2 values, both None with none."""
    values = list(values)
    if not values:
        return None, None
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def fmt_mean_std(values, digits=4, suffix=""):
    """'m ± s' with the std as n/a for a single value; 'n/a' for none."""
    mean, std = mean_std(values)
    if mean is None:
        return "n/a"
    std_text = "n/a" if std is None else f"{std:.{digits}f}{suffix}"
    return f"{mean:.{digits}f}{suffix} ± {std_text}"


# ----------------------------------------------------------------------------- setting

def tokens_per_run(config):
    return config.get("max_steps", 0) * config.get("total_batch_tokens", 0)


def fmt_tokens(n):
    """A token count in 3 significant digits with a K/M/B unit: 614400 -> '614K', 2.5e9 -> '2.5B'."""
    n = float(f"{n:.3g}")  # round first, so 999,999 becomes '1M', not '1e+03K'
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.3g}"


def paper_reference(path=PAPER_REFERENCE):
    return read_json(path)


def setting_differences(runs, paper_setting):
    """Ways these runs fall short of the paper's setting (fewer seeds, tokens, smaller model)."""
    if not runs:
        return []
    diffs = []
    seeds = len({r.seed for r in runs})
    if seeds < paper_setting["seeds"]:
        diffs.append(f"{seeds} seed{'s' * (seeds != 1)} < {paper_setting['seeds']}")
    tokens = min(tokens_per_run(r.config) for r in runs)
    if tokens < paper_setting["tokens"]:
        diffs.append(f"{fmt_tokens(tokens)} tokens < {fmt_tokens(paper_setting['tokens'])}")
    for key in ("n_layer", "n_embd"):
        smallest = min(r.config.get(key, 0) for r in runs)
        if smallest < paper_setting[key]:
            diffs.append(f"{key} {smallest} < {paper_setting[key]}")
    return diffs


def setting_label(runs):
    """One line describing the model size, tokens and seeds of these runs (for titles)."""
    def one(c):
        return (f"{c.get('n_layer', '?')}L x {c.get('n_embd', '?')}d, {c.get('max_steps', '?')} steps, "
                f"{fmt_tokens(tokens_per_run(c))} tokens")
    settings = sorted({one(r.config) for r in runs})
    seeds = sorted({r.seed for r in runs})
    return f"{' | '.join(settings)}, seeds {','.join(map(str, seeds))}"


# ----------------------------------------------------------------------------- output

def notes_text(notes, title="missing"):
    """A '- note' list under a title, or '' when there is nothing to say."""
    return f"{title}:\n" + "\n".join(f"- {n}" for n in notes) if notes else ""


def markdown_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def default_out_dir(runs_dir):
    """Where reports go by default: the runs folder's parent (results/ for results/runs)."""
    return Path(runs_dir).parent
