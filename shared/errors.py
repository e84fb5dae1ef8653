"""The one exception type users see as a one-line error."""


class GazeflowError(Exception):
    """An error with a message fit to show the user on one line (no traceback)."""
