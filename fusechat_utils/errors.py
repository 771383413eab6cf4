"""UserError: what the user can fix (bad params, bad input files, a busy run folder). The CLI prints it as one
line; any other exception is a bug in the kit and keeps its traceback."""


class UserError(Exception):
    """An error in the user's input or setup; its message says what to fix."""
