"""One exception type for bad user input: the CLI prints its message on one line and exits 2."""


class UserError(Exception):
    """A problem the user can fix (a path, an option, a file's contents); never a bug."""
