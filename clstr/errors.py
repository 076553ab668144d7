"""Exceptions that carry meaning across the package."""


class InputError(Exception):
    """Bad input from the user: reported as one line, exit status 2, nothing run.

    ``where`` names the file (and line) the problem is in, when there is one.
    """

    def __init__(self, message, where=None):
        super().__init__(message)
        self.message = message
        self.where = where

    def __str__(self):
        if self.where:
            return f"{self.where}: {self.message}"
        return self.message
