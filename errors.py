"""User-facing errors and exit codes: one exception type whose message is printed alone (exit
code 2), the stop-signal exit (75) that means "checkpointed, rerun the same command", and the
one-line error for a missing optional package (`require`)."""
import importlib
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent

USER_ERROR_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what shells report for Ctrl-C
# EX_TEMPFAIL from BSD sysexits.h: "temporary failure, the user is invited to retry". A run stopped
# by SIGTERM / SIGUSR1 (e.g. a SLURM preemption) exits with it after writing a checkpoint.
PREEMPTED_EXIT_CODE = 75
# Under torchrun every rank checks the config, data and devices, so a user error is met by all of
# them: rank 0 alone prints it. The other ranks wait this long before exiting, because torchrun
# stops all workers (SIGTERM) as soon as the first one exits: a rank leaving at once could kill
# rank 0 before its line is out. Once rank 0 has exited, torchrun ends the waiting ranks; a rank
# still alive after the wait met an error rank 0 did not and prints it. train.py's start-up avoids
# the wait: a rank's own error (no GPU, data or tokenizer files on its node) is handed to rank 0,
# which prints it at once (ranks.py); the wait is what is left after start-up.
OTHER_RANK_WAIT_S = 30.0


class UserError(Exception):
    """A problem with the user's input (config, CLI value, data, checkpoint) and how to fix it."""


class Preempted(Exception):
    """A stop signal ended the run after a checkpoint; the message says how to resume."""


def one_line(err, limit=200):
    """"TypeName: the first line of err's message", at most `limit` characters of message: how a
    UserError quotes a library's exception (a network error, an unreadable file)."""
    first = (str(err).strip().splitlines() or [""])[0][:limit]
    return f"{type(err).__name__}: {first}"


def require(module, requirements, who):
    """Import an optional package (e.g. "transformers") for script `who`, or raise UserError
    naming the requirements file that installs it: optional packages are imported only by the
    scripts that need them, never by training."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise UserError(f"{who} needs the {module} package ({one_line(err)}); "
                        f"pip install -r {requirements}") from None
def not_found(what, path, fix):
    """The UserError for a missing `what` ("data folder", "config file") at `path`, whose fix is
    `fix` (words). A relative path is relative to the current directory, which the line names:
    run from another directory, `data/fineweb_edu` is not the repo's, and when the repo has it,
    the line says so (run from the repo, or give the path it has there)."""
    path = Path(path)
    if path.is_absolute():
        return UserError(f"{what} {path} not found; {fix}")
    where = f"{what} {path} not found (a relative path: relative to the current directory, {Path.cwd()})"
    if (REPO / path).exists() and Path.cwd().resolve() != REPO:
        return UserError(f"{where}; the repo has {REPO / path}: run from {REPO}, or give that path")
    return UserError(f"{where}; {fix}")


def launcher_rank():
    """This process's global rank from torchrun's RANK variable; 0 when not launched by torchrun."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:  # not torchrun's; a message is better printed than lost
        return 0


def run_main(main):
    """Call main(); a UserError prints its message alone to stderr and exits with code 2, a
    Preempted run prints its one line and exits with PREEMPTED_EXIT_CODE (75), Ctrl-C prints one
    line (no traceback) and exits 130. Output piped into a reader that closes early (`| head`)
    ends quietly with exit 1.

    Under torchrun these lines come from rank 0 only (RANK=0); another rank with a UserError
    waits OTHER_RANK_WAIT_S for torchrun to end it, and prints its error (naming its rank) only if
    it is still alive then. (train.py's start-up hands such an error to rank 0 first: ranks.py.)

    stdout is made line-buffered: piped (`| tee train.log`) it would otherwise be written in
    blocks, minutes late and after stderr's lines.
    """
    if hasattr(sys.stdout, "reconfigure"):  # a real text stream (not one a caller swapped in)
        sys.stdout.reconfigure(line_buffering=True)
    rank = launcher_rank()
    try:
        return main()
    except UserError as err:
        if rank != 0:
            time.sleep(OTHER_RANK_WAIT_S)
        print(f"error: {err}" if rank == 0 else f"error (rank {rank}): {err}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    except Preempted as stop:
        if str(stop) and rank == 0:  # train.py words it on rank 0 only
            print(stop, file=sys.stderr)
        sys.exit(PREEMPTED_EXIT_CODE)
    except BrokenPipeError:  # `python train.py --help | head`: the reader left early, nothing failed
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        sys.exit(1)  # what Python's documentation recommends (signal module, "Note on SIGPIPE")
    except KeyboardInterrupt:  # Ctrl-C reaches every rank (the terminal's process group)
        if rank == 0:
            print("interrupted (Ctrl-C); rerun the same command to resume from the last checkpoint",
                  file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_CODE)
