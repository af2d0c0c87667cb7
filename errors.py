"""User-facing errors and exit codes: one exception type whose message is printed alone (exit
code 2), and the stop-signal exit (75) that means "checkpointed, rerun the same command"."""
import sys

USER_ERROR_EXIT_CODE = 2
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, what shells report for Ctrl-C
# EX_TEMPFAIL from BSD sysexits.h: "temporary failure, the user is invited to retry". A run stopped
# by SIGTERM / SIGUSR1 (e.g. a SLURM preemption) exits with it after writing a checkpoint.
PREEMPTED_EXIT_CODE = 75


class UserError(Exception):
    """A problem with the user's input (config, CLI value, data, checkpoint) and how to fix it."""


class Preempted(Exception):
    """A stop signal ended the run after a checkpoint; the message says how to resume."""


def run_main(main):
    """Call main(); a UserError prints its message alone to stderr and exits with code 2, a
    Preempted run prints its one line and exits with PREEMPTED_EXIT_CODE (75), Ctrl-C prints one
    line (no traceback) and exits 130."""
    try:
        return main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(USER_ERROR_EXIT_CODE)
    except Preempted as stop:
        if str(stop):  # only rank 0 words it
            print(stop, file=sys.stderr)
        sys.exit(PREEMPTED_EXIT_CODE)
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C); rerun the same command to resume from the last checkpoint",
              file=sys.stderr)
        sys.exit(INTERRUPTED_EXIT_CODE)
