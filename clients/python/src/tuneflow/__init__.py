"""tuneflow: the Python client of the tuneflow hyperparameter tuning server.

::

    import tuneflow

    with tuneflow.serve(store_dir="runs") as tf:      # or: tf = tuneflow.connect(URL)
        exp = tf.create_experiment(
            "demo", objective="minimize", metric="loss",
            parameters={"lr": tuneflow.loguniform(1e-5, 1e-1), "layers": tuneflow.intrange(1, 8)},
            max_trials=20,
        )
        for trial in exp.trials_iter():
            trial.complete(loss=train(**trial.params))
        print(exp.best())
"""

from ._version import __version__
from .client import Client, connect
from .errors import (
    Conflict,
    InvalidInput,
    NotFound,
    ServerUnavailable,
    TuneflowError,
    Unauthorized,
)
from .experiment import Experiment, Suggestions
from .params import choice, discrete, intrange, loguniform, uniform
from .server import LocalServer, serve
from .trial import Trial

__all__ = [
    "__version__",
    "Client",
    "connect",
    "serve",
    "LocalServer",
    "Experiment",
    "Suggestions",
    "Trial",
    "uniform",
    "loguniform",
    "intrange",
    "discrete",
    "choice",
    "TuneflowError",
    "InvalidInput",
    "Unauthorized",
    "NotFound",
    "Conflict",
    "ServerUnavailable",
]
