"""exoml: ten classic machine-learning exercises, end to end, on the real datasets."""
__version__ = "0.1.0"
