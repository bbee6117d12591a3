"""The imdb page in `exoml serve`: type or paste a review, see p(positive) and the words that pushed
it up or down (occlusion: imdb_report.word_influence, the model `exoml predict imdb` reads with)."""
from __future__ import annotations

from ...serve.page import BadInput, Bars, Field, Note, Page, Tokens, Verdict
from . import imdb_report, tokens as text


def imdb_page(task: str, build_model) -> Page:
    def load(run_dir, info):
        return imdb_report.load_sentiment(run_dir, info, task, build_model)

    def fields(_state):
        return [Field("review", "Review", "textarea", default="",
                      help="a film review in English; only its last words up to the run's max_len are read")]

    def answer(state, inputs):
        model, words, c = state
        review = inputs["review"]
        if not text.tokenize(review, c["lowercase"], c["punctuation"]):
            raise BadInput("the review has no words to classify")
        if sum(not (ch.isprintable() or ch.isspace()) for ch in review) > 0.05 * len(review):
            raise BadInput("the input does not look like text (too many control characters)")
        p, influence = imdb_report.word_influence(model, review, words, c)
        ranked = sorted(influence, key=lambda tw: -abs(tw[1]))[:12]
        unknown = sum(t.endswith("?") for t, _ in influence)
        return [
            Verdict(f"{'positive' if p > 0.5 else 'negative'}: p(positive) = {p:.3f}"),
            Bars("probability", [("positive", p), ("negative", 1 - p)]),
            Tokens("which words pushed it up (blue) or down (red)", influence,
                   caption="each word's influence: p(positive) of the review minus p(positive) with that word "
                           "left out; hover a word for the number. A word ending in ? is outside the run's "
                           "vocabulary (the model reads it as 'unknown')."),
            Bars("the strongest words", ranked, signed=True),
            Note(f"{len(influence)} tokens read, {unknown} of them outside the vocabulary."),
        ]

    return Page(about="Type or paste a film review: the run's recurrent network says how positive it is, and "
                      "which words moved that verdict (each word left out in turn).",
                load=load, fields=fields, answer=answer, submit="Classify the review")
