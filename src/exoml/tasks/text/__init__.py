"""Text classification: imdb, with its tokenizer and vocabulary (tokens), figures (imdb_plots) and
the evaluation write-up, checkpoints and predict (imdb_report)."""
