#!/usr/bin/env python3
"""Train a small neural network on scikit-learn's bundled digits data set.

A tuneflow trial: hyperparameters come in as command-line options, metrics go out on stdout
in Katib's ``name=value`` format, one line per epoch and a final summary line:

    epoch=1 loss=1.873201 accuracy=0.786667
    epoch=2 loss=0.912348 accuracy=0.895556
    ...
    accuracy=0.975556

``accuracy`` is the accuracy on a held-out validation split (a quarter of the data, the same
split for every trial); ``loss`` is the training loss of that epoch. Training stops early when
the validation accuracy has not improved for ``--patience`` epochs, and the final line reports
the best epoch's accuracy, so the objective is the same whether tuneflow takes the maximum of
all ``accuracy`` observations (the default for a maximized objective) or the latest one.

Everything else (progress, the chosen parameters, the reason training stopped) goes to stderr
without ``=`` signs, so no collector mistakes it for a metric.

The data ships inside scikit-learn (``sklearn.datasets.load_digits``): nothing is downloaded.

Usage (standalone):
    .venv/bin/python train.py --learning-rate 0.001 --alpha 0.0001 --hidden-units 64 \
        --activation relu --batch-size 64
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings

import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

# The validation split is fixed so that every trial is scored on the same examples.
SPLIT_SEED = 42
VALIDATION_FRACTION = 0.25


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {text}")
    return value


def positive_int(text: str) -> int:
    # Accept "64" and also "64.0": search algorithms sometimes render ints as floats.
    value = float(text)
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text}")
    return int(value)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Train an MLP on the digits data set; print name=value metrics."
    )
    parser.add_argument("--learning-rate", type=positive_float, default=1e-3,
                        help="Adam's initial learning rate (default 0.001)")
    parser.add_argument("--alpha", type=positive_float, default=1e-4,
                        help="L2 regularisation strength (default 0.0001)")
    parser.add_argument("--hidden-units", type=positive_int, default=64,
                        help="neurons in the single hidden layer (default 64)")
    parser.add_argument("--activation", choices=["relu", "tanh", "logistic"], default="relu",
                        help="hidden layer activation (default relu)")
    parser.add_argument("--batch-size", type=positive_int, default=64,
                        help="minibatch size (default 64)")
    parser.add_argument("--epochs", type=positive_int, default=30,
                        help="maximum number of passes over the training data (default 30)")
    parser.add_argument("--patience", type=positive_int, default=5,
                        help="stop after this many epochs without a better accuracy (default 5)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for weight initialisation and shuffling (default 0)")
    return parser.parse_args(argv)


def log(message: str) -> None:
    """Human-readable progress on stderr (kept free of '=' so it is never parsed as a metric)."""
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    log(
        f"digits MLP: learning rate {args.learning_rate:g}, alpha {args.alpha:g}, "
        f"{args.hidden_units} {args.activation} units, batch {args.batch_size}, "
        f"up to {args.epochs} epochs"
    )

    digits = load_digits()
    x_train, x_val, y_train, y_val = train_test_split(
        digits.data, digits.target,
        test_size=VALIDATION_FRACTION, stratify=digits.target, random_state=SPLIT_SEED,
    )
    scaler = StandardScaler().fit(x_train)
    x_train, x_val = scaler.transform(x_train), scaler.transform(x_val)
    classes = np.unique(digits.target)

    model = MLPClassifier(
        hidden_layer_sizes=(args.hidden_units,),
        activation=args.activation,
        solver="adam",
        alpha=args.alpha,
        learning_rate_init=args.learning_rate,
        batch_size=min(args.batch_size, len(x_train)),
        shuffle=True,
        random_state=args.seed,
    )

    best_accuracy, best_epoch = 0.0, 0
    for epoch in range(1, args.epochs + 1):
        # One partial_fit call is one pass over the training data in minibatches.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.partial_fit(x_train, y_train, classes=classes)
        loss = float(model.loss_)
        if not np.isfinite(loss):
            log(f"training diverged at epoch {epoch} (loss {loss}); giving up")
            return 1
        accuracy = accuracy_score(y_val, model.predict(x_val))
        print(f"epoch={epoch} loss={loss:.6f} accuracy={accuracy:.6f}", flush=True)

        if accuracy > best_accuracy:
            best_accuracy, best_epoch = accuracy, epoch
        elif epoch - best_epoch >= args.patience and epoch < args.epochs:
            log(f"no improvement for {args.patience} epochs; stopping after epoch {epoch}")
            break

    # The final, summarising observation: the best epoch's validation accuracy.
    print(f"accuracy={best_accuracy:.6f}", flush=True)
    log(
        f"best validation accuracy {best_accuracy:.4f} at epoch {best_epoch} "
        f"({time.perf_counter() - started:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
