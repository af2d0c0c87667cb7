"""Runs whose logged numbers are numbers: what every log-reading eval script loads.

eval/runs.py reads log.jsonl as written; a hand-edited line can hold text where a loss, norm or
HellaSwag score belongs ("val_loss": "3.1x"). `load_numeric_runs` loads the runs and stops with one line naming
the file, step, field and value; a JSON null (train.py writes a non-finite value as null) becomes
NaN, so a diverged run shows as nan instead of stopping the report.
Not a script; import it: `from eval.log_values import load_numeric_runs`.
"""
import math
from numbers import Real

from errors import UserError
from eval.runs import load_runs


def numeric(value, where):
    """value as a float; None -> NaN; UserError (naming `where`) for text, bools, lists, objects."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, Real):
        raise UserError(f"{where} is {value!r}, not a number; fix or delete that line of the log")
    return float(value)


def check_run(run):
    """Replace every logged value of run by a float in place; UserError on the first non-number."""
    log = run.path / "log.jsonl"
    series = [("train_loss", run.train_steps, run.train_loss), ("val_loss", run.eval_steps, run.val_loss)]
    series += [(name, run.eval_steps, values) for name, values in run.norms.items()]
    for name, steps, values in series:
        values[:] = [numeric(v, f"{log} step {s}: {name}") for s, v in zip(steps, values)]
    for step, fields in run.hellaswag.items():
        fields.update({name: numeric(v, f"{log} step {step}: {name}") for name, v in fields.items()})
    return run


def load_numeric_runs(runs_dir):
    """eval.runs.load_runs(runs_dir), with every logged loss, norm and HellaSwag score checked to be a number."""
    return [check_run(run) for run in load_runs(runs_dir)]
