"""Exceptions that carry meaning across the package."""


class InputError(Exception):
    """Bad input from the user: reported as one line, exit status 2, nothing run.

    ``where`` names the file (and line) the problem is in, when there is one; ``option``, the
    option (by its library name) whose value is bad, and ``detail``, what is wrong with it, so
    that the command line can name the option as the user typed it.
    """

    def __init__(self, message, where=None, option=None, detail=None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.option = option
        self.detail = detail

    def __str__(self):
        if self.where:
            return f"{self.where}: {self.message}"
        return self.message
