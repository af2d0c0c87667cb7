"""User-facing errors: one exception type whose message is printed alone (exit code 2)."""
import sys


class UserError(Exception):
    """A problem with the user's input (config, CLI value, data, checkpoint) and how to fix it."""


def run_main(main):
    """Call main(); print a UserError's message alone to stderr and exit with code 2."""
    try:
        return main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
