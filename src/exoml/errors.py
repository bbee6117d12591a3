"""One base class for the errors a user can act on: the CLI prints them as one line, exit code 2."""


class ExomlError(Exception):
    pass
