"""The Keras reference recipes of benchmarks/bench_peers.py, restated on Keras 3 (torch backend).

Each function runs one published example as its source writes it (architecture, optimizer, loss,
epochs, batch size, preprocessing) on the raw arrays of exoml's dataset cache, and returns
{"value": its test score, "seconds": time from loading the data to the test score, "epoch_s": [...],
"settings": ...}. Deviations from the source, where the source cannot run here as written, are named
beside them. `small` (bench_peers --smallest) trains one epoch on a subset: a check that the recipe
runs, not a measurement. The backend is chosen by the caller (KERAS_BACKEND=torch before the import).
"""
from __future__ import annotations

import re
import time
from collections import Counter

import numpy as np

SMALL_TRAIN, SMALL_TEST = 2000, 1000  # --smallest: the subsets every image/text recipe trains and tests on
SMALL_WEEKS = 20                      # --smallest: the electricity recipe trains on the last 20 training weeks


def _n(epochs: int) -> str:
    return f"{epochs} epoch{'s' if epochs != 1 else ''}"


def _keras(seed: int):
    import keras
    keras.utils.set_random_seed(seed)
    return keras


class _EpochTimes:
    """Seconds of every epoch of a fit (validation included), for estimating a full run's length."""

    def __init__(self, keras):
        outer = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                outer.t0 = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                outer.seconds.append(round(time.perf_counter() - outer.t0, 3))
        self.seconds: list[float] = []
        self.callback = Callback()


def _images(name: str, small: bool, seed: int):
    from exoml import data
    d = data.load(name)
    x_tr, y_tr, x_te, y_te = d.x_train, d.y_train, d.x_test, d.y_test
    if small:
        rng = np.random.default_rng(seed)
        tr, te = rng.choice(len(y_tr), SMALL_TRAIN, replace=False), rng.choice(len(y_te), SMALL_TEST, replace=False)
        x_tr, y_tr, x_te, y_te = x_tr[tr], y_tr[tr], x_te[te], y_te[te]
    return x_tr, y_tr, x_te, y_te


def _fit_and_score(keras, model, t0: float, train, test, epochs: int, settings: str, **fit) -> dict:
    """The recipes' common end: fit (each epoch timed), accuracy on the test set, the result row."""
    times = _EpochTimes(keras)
    model.fit(*train, epochs=epochs, verbose=2, callbacks=[times.callback], **fit)
    _, acc = model.evaluate(*test, verbose=0)
    return {"value": float(acc), "seconds": time.perf_counter() - t0, "epoch_s": times.seconds,
            "settings": f"{_n(epochs)}, {settings}"}


def fashion_mnist(seed: int, small: bool) -> dict:
    """TensorFlow's "Basic classification: Classify images of clothing" (the exercise sheet's example):
    https://www.tensorflow.org/tutorials/keras/classification
    (source: github.com/tensorflow/docs/blob/master/site/en/tutorials/keras/classification.ipynb)
    pixels / 255; Flatten(28x28) -> Dense(128, relu) -> Dense(10) logits; Adam, sparse categorical
    cross-entropy from logits; fit(epochs=10) at Keras' default batch of 32; evaluate on the test set."""
    keras = _keras(seed)
    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te = _images("fashion-mnist", small, seed)
    x_tr, x_te = x_tr / 255.0, x_te / 255.0
    model = keras.Sequential([keras.Input((28, 28)), keras.layers.Flatten(),
                              keras.layers.Dense(128, activation="relu"), keras.layers.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return _fit_and_score(keras, model, t0, (x_tr, y_tr), (x_te, y_te), 1 if small else 10, "batch 32, Adam 1e-3")


def mnist_convnet(seed: int, small: bool) -> dict:
    """keras-io "Simple MNIST convnet" (fchollet):
    https://keras.io/examples/vision/mnist_convnet/ (github.com/keras-team/keras-io, examples/vision/mnist_convnet.py)
    pixels / 255, (28, 28, 1); Conv2D(32, 3, relu) -> MaxPool(2) -> Conv2D(64, 3, relu) -> MaxPool(2) ->
    Flatten -> Dropout(0.5) -> Dense(10, softmax); Adam, categorical cross-entropy on one-hot labels;
    batch 128, 15 epochs, validation_split=0.1 (the last 10% of the training images are held out)."""
    keras = _keras(seed)
    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te = _images("mnist", small, seed)
    x_tr, x_te = np.expand_dims(x_tr.astype("float32") / 255, -1), np.expand_dims(x_te.astype("float32") / 255, -1)
    y_tr, y_te = keras.utils.to_categorical(y_tr, 10), keras.utils.to_categorical(y_te, 10)
    L = keras.layers
    model = keras.Sequential([keras.Input((28, 28, 1)), L.Conv2D(32, kernel_size=(3, 3), activation="relu"),
                              L.MaxPooling2D(pool_size=(2, 2)), L.Conv2D(64, kernel_size=(3, 3), activation="relu"),
                              L.MaxPooling2D(pool_size=(2, 2)), L.Flatten(), L.Dropout(0.5),
                              L.Dense(10, activation="softmax")])
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return _fit_and_score(keras, model, t0, (x_tr, y_tr), (x_te, y_te), 1 if small else 15,
                          "batch 128, Adam 1e-3, validation_split 0.1", batch_size=128, validation_split=0.1)


def cifar10_cnn(seed: int, small: bool) -> dict:
    """TensorFlow's "Convolutional Neural Network (CNN)" tutorial:
    https://www.tensorflow.org/tutorials/images/cnn (github.com/tensorflow/docs, site/en/tutorials/images/cnn.ipynb)
    pixels / 255; Conv2D(32, 3, relu) -> MaxPool(2) -> Conv2D(64, 3, relu) -> MaxPool(2) -> Conv2D(64, 3, relu)
    -> Flatten -> Dense(64, relu) -> Dense(10) logits; Adam, sparse categorical cross-entropy from logits;
    10 epochs at the default batch of 32. The tutorial also passes the test set as validation_data to
    watch it after every epoch; that pass changes no weight, so it is left out here (it would only
    add to the reference's time)."""
    keras = _keras(seed)
    t0 = time.perf_counter()
    x_tr, y_tr, x_te, y_te = _images("cifar10", small, seed)
    x_tr, x_te = x_tr / 255.0, x_te / 255.0
    L = keras.layers
    model = keras.Sequential([keras.Input((32, 32, 3)), L.Conv2D(32, (3, 3), activation="relu"), L.MaxPooling2D((2, 2)),
                              L.Conv2D(64, (3, 3), activation="relu"), L.MaxPooling2D((2, 2)),
                              L.Conv2D(64, (3, 3), activation="relu"), L.Flatten(), L.Dense(64, activation="relu"),
                              L.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return _fit_and_score(keras, model, t0, (x_tr, y_tr), (x_te, y_te), 1 if small else 10, "batch 32, Adam 1e-3")


def _keras_imdb_ids(texts_train, texts_test, num_words: int) -> tuple[list, list]:
    """keras.datasets.imdb.load_data(num_words=...)'s encoding of the raw reviews: lower-cased words
    without punctuation, ranked by frequency (1 = start of review, 2 = out of vocabulary, the most
    frequent word = 3, index_from=3), words ranked >= num_words -> 2. The ranks are counted on the
    training reviews only (Keras' prepared file ranks over the whole corpus; the test reviews take no
    part in a choice here)."""
    word = re.compile(r"[a-z0-9]+(?:'[a-z0-9]+)?")
    tok = lambda s: word.findall(s.lower())  # noqa: E731
    train_tokens = [tok(s) for s in texts_train]
    counts = Counter(w for t in train_tokens for w in t)
    rank = {w: i + 3 for i, (w, _) in enumerate(counts.most_common())}
    encode = lambda t: [1] + [r if (r := rank.get(w, 2)) < num_words else 2 for w in t]  # noqa: E731
    return [encode(t) for t in train_tokens], [encode(tok(s)) for s in texts_test]


def imdb_bilstm(seed: int, small: bool) -> dict:
    """keras-io "Bidirectional LSTM on IMDB" (fchollet):
    https://keras.io/examples/nlp/bidirectional_lstm_imdb/ (keras-io, examples/nlp/bidirectional_lstm_imdb.py)
    top 20,000 words, sequences padded/truncated to 200 by pad_sequences (its defaults: both at the
    start); Embedding(20000, 128) -> Bidirectional(LSTM(64, return_sequences)) -> Bidirectional(LSTM(64))
    -> Dense(1, sigmoid); Adam, binary cross-entropy; batch 32, 2 epochs. The example passes the test
    reviews as validation_data only to watch them; left out here (it changes no weight)."""
    keras = _keras(seed)
    from exoml import data
    t0 = time.perf_counter()
    d = data.load("imdb")
    tr, te = d.train, d.test
    if small:
        rng = np.random.default_rng(seed)
        tr = tr.iloc[rng.choice(len(tr), SMALL_TRAIN // 4, replace=False)]
        te = te.iloc[rng.choice(len(te), SMALL_TEST // 2, replace=False)]
    max_features, maxlen = 20000, 200
    ids_tr, ids_te = _keras_imdb_ids(tr["text"].tolist(), te["text"].tolist(), max_features)
    x_tr = keras.utils.pad_sequences(ids_tr, maxlen=maxlen)
    x_te = keras.utils.pad_sequences(ids_te, maxlen=maxlen)
    y_tr, y_te = tr["label"].to_numpy(), te["label"].to_numpy()
    L = keras.layers
    inputs = keras.Input(shape=(None,), dtype="int32")
    x = L.Embedding(max_features, 128)(inputs)
    x = L.Bidirectional(L.LSTM(64, return_sequences=True))(x)
    x = L.Bidirectional(L.LSTM(64))(x)
    model = keras.Model(inputs, L.Dense(1, activation="sigmoid")(x))
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return _fit_and_score(keras, model, t0, (x_tr, y_tr), (x_te, y_te), 1 if small else 2,
                          "batch 32, Adam 1e-3, 20,000 words, length 200", batch_size=32)


def brownlee_daily_weeks():
    """Brownlee's data preparation: every missing minute takes the value of the same minute a day
    earlier, the minutes are summed per day, the first day (a partial Saturday) is dropped; train =
    the whole weeks up to 2010-01-02, test = the 46 weeks 2010-01-03 .. 2010-11-20 (daily[1:-328],
    daily[-328:-6]). Returns (train weeks (159, 7), test weeks (46, 7), first test day)."""
    from exoml import data
    frame = data.load("electricity").frame
    values = frame["Global_active_power"].to_numpy(dtype=float).copy()
    one_day = 60 * 24
    for row in np.flatnonzero(np.isnan(values)):  # in order, so a filled value can fill the next day
        values[row] = values[row - one_day]
    import pandas as pd
    daily = pd.Series(values, index=frame.index).resample("D").sum()
    train, test = daily.to_numpy()[1:-328], daily.to_numpy()[-328:-6]
    return train.reshape(-1, 7), test.reshape(-1, 7), daily.index[-328]


def electricity_weekly(seed: int, small: bool) -> dict:
    """Brownlee, "How to Develop LSTM Models for Multi-Step Time Series Forecasting of Household Power
    Consumption", the encoder-decoder LSTM with univariate input:
    https://machinelearningmastery.com/how-to-develop-lstm-models-for-multi-step-time-series-forecasting-of-household-power-consumption/
    daily totals of Global_active_power (kW, unscaled), inputs the last 14 days, outputs the next 7;
    training samples: every 14-day window of the training days (stride 1); LSTM(200, relu) ->
    RepeatVector(7) -> LSTM(200, relu, return_sequences) -> TimeDistributed(Dense(100, relu)) ->
    TimeDistributed(Dense(1)); MSE, Adam; 20 epochs, batch 16. Walk-forward over the 46 test weeks:
    each week forecast from the 14 actual days before it (the source predicts them one call at a
    time; one call for all 46 inputs gives the same numbers). Score: RMSE over every test day (kW)."""
    keras = _keras(seed)
    t0 = time.perf_counter()
    train, test, _ = brownlee_daily_weeks()
    n_input, n_out = 14, 7
    flat = train.reshape(-1)
    fit = flat[-7 * SMALL_WEEKS:] if small else flat
    starts = range(len(fit) - n_input - n_out + 1)
    x = np.array([fit[s:s + n_input] for s in starts])[..., None]
    y = np.array([fit[s + n_input:s + n_input + n_out] for s in starts])[..., None]
    L = keras.layers
    model = keras.Sequential([keras.Input((n_input, 1)), L.LSTM(200, activation="relu"), L.RepeatVector(n_out),
                              L.LSTM(200, activation="relu", return_sequences=True),
                              L.TimeDistributed(L.Dense(100, activation="relu")), L.TimeDistributed(L.Dense(1))])
    model.compile(loss="mse", optimizer="adam")
    times = _EpochTimes(keras)
    epochs = 1 if small else 20
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=2, callbacks=[times.callback])
    history = np.concatenate([flat, test.reshape(-1)])
    first = len(flat)
    inputs = np.array([history[first + 7 * w - n_input:first + 7 * w] for w in range(len(test))])[..., None]
    pred = model.predict(inputs, verbose=0)[..., 0]
    rmse = float(np.sqrt(((pred - test) ** 2).mean()))
    return {"value": rmse, "seconds": time.perf_counter() - t0, "epoch_s": times.seconds,
            "settings": f"{_n(epochs)}, batch 16, Adam 1e-3, 14 days in, 7 out, {len(test)} test weeks"}


RECIPES = {"fashion_mnist": fashion_mnist, "mnist_convnet": mnist_convnet, "cifar10_cnn": cifar10_cnn,
           "imdb_bilstm": imdb_bilstm, "electricity_weekly": electricity_weekly}
