"""Tables of numbers: boston (regression), iris (clustering), kddcup (anomaly detection), and what
they share (common: rows given on the command line, JSON models, thread limits, the KDD encoding)."""
