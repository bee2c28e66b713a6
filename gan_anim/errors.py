"""The one exception type the CLI turns into a single clean line on stderr."""


class GanAnimError(Exception):
    """A problem with the user's input or environment (never a bug)."""
