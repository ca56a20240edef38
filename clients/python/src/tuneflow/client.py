"""The client of one tuneflow server: creating, finding and deleting experiments."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Type, Union

from ._http import Transport
from .errors import Conflict
from .experiment import Experiment
from .params import parameter_entries

if TYPE_CHECKING:
    from .server import LocalServer

__all__ = ["Client", "connect", "DEFAULT_URL"]

DEFAULT_URL = "http://127.0.0.1:8470"
API = "/api/v1/experiments"


def connect(
    url: Optional[str] = None, token: Optional[str] = None, timeout: float = 60.0
) -> "Client":
    """A client of the server at ``url``.

    ``url`` defaults to the ``TUNEFLOW_URL`` environment variable, else
    ``http://127.0.0.1:8470``; ``token`` to ``TUNEFLOW_TOKEN``. Nothing is sent until
    the first call. ``timeout`` bounds each request, in seconds.
    """
    return Client(url or os.environ.get("TUNEFLOW_URL") or DEFAULT_URL, token, timeout)


class Client:
    """Talks to one tuneflow server over HTTP; safe to share between threads.

    Each thread keeps one keep-alive connection. A client is a context manager: leaving
    the ``with`` block closes its connections, and stops the server if the client started
    it (see :func:`tuneflow.serve`).
    """

    def __init__(
        self,
        url: str,
        token: Optional[str] = None,
        timeout: float = 60.0,
        server: Optional["LocalServer"] = None,
    ) -> None:
        if token is None:
            token = os.environ.get("TUNEFLOW_TOKEN") or None
        self.transport = Transport(url, token, timeout)
        self.server = server

    @property
    def url(self) -> str:
        """The server's base URL."""
        return self.transport.url

    def __repr__(self) -> str:
        return f"Client({self.url!r})"

    def health(self) -> Dict[str, Any]:
        """``{"status": "ok"}`` when the server and its store answer."""
        health: Dict[str, Any] = self.transport.request("GET", "/healthz")
        return health

    def create_experiment(
        self,
        name: str,
        objective: str,
        metric: str,
        parameters: Union[Mapping[str, Dict[str, Any]], List[Dict[str, Any]]],
        algorithm: str = "random",
        max_trials: Optional[int] = None,
        parallel_trials: Optional[int] = None,
        max_failed_trials: Optional[int] = None,
        goal: Optional[float] = None,
        seed: Optional[int] = None,
        lease_seconds: Optional[int] = None,
        settings: Optional[Mapping[str, Any]] = None,
        exist_ok: bool = False,
    ) -> Experiment:
        """Creates a client-driven experiment and returns it.

        Args:
            name: the experiment's name (lowercase letters, digits and ``-``).
            objective: ``"minimize"`` or ``"maximize"``.
            metric: the metric that ranks trials.
            parameters: ``{name: entry}`` built with :func:`tuneflow.uniform`,
                :func:`tuneflow.loguniform`, :func:`tuneflow.intrange`,
                :func:`tuneflow.discrete` or :func:`tuneflow.choice`.
            algorithm: ``"random"`` or ``"grid"``.
            max_trials, parallel_trials, max_failed_trials: ``spec.maxTrialCount``,
                ``spec.parallelTrialCount``, ``spec.maxFailedTrialCount``.
            goal: stop as soon as a trial reaches this objective value.
            seed: the algorithm's ``random_state``, for reproducible suggestions.
            lease_seconds: ``spec.trialLeaseSeconds``: a trial not heard of for this long fails.
            settings: more ``algorithmSettings``, ``{name: value}``.
            exist_ok: return the existing experiment if one of that name exists (it is not
                compared with these arguments) instead of raising :class:`Conflict`.
        """
        document = experiment_document(
            name,
            objective,
            metric,
            parameters,
            algorithm=algorithm,
            max_trials=max_trials,
            parallel_trials=parallel_trials,
            max_failed_trials=max_failed_trials,
            goal=goal,
            seed=seed,
            lease_seconds=lease_seconds,
            settings=settings,
        )
        try:
            info = self.transport.request("POST", API, document)
        except Conflict as err:
            if exist_ok and err.code == "already_exists":
                return self.experiment(name)
            raise
        return Experiment(self, info.get("name", name), info)

    def create_experiment_from_file(self, path: Union[str, "os.PathLike[str]"]) -> Experiment:
        """Creates an experiment from an experiment file (YAML or JSON), sent as it is."""
        data = Path(path).read_bytes()
        info = self.transport.request("POST", API, raw=data, content_type=_media_type(path, data))
        return Experiment(self, info["name"], info)

    def experiment(self, name: str) -> Experiment:
        """The experiment called ``name``; raises :class:`NotFound` if there is none."""
        quoted = urllib.parse.quote(name, safe="")
        info = self.transport.request("GET", f"{API}/{quoted}")
        return Experiment(self, info.get("name", name), info)

    def experiments(self) -> List[Dict[str, Any]]:
        """Every experiment of the server, oldest first, as dicts (as :meth:`Experiment.status`)."""
        experiments: List[Dict[str, Any]] = self.transport.request("GET", API)["experiments"]
        return experiments

    def delete_experiment(self, name: str) -> None:
        """Stops the experiment's running trials and removes it with everything it recorded."""
        self.transport.request("DELETE", f"{API}/{urllib.parse.quote(name, safe='')}")

    def close(self) -> None:
        """Closes the connections, and stops the server if this client started it."""
        self.transport.close()
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()


def experiment_document(
    name: str,
    objective: str,
    metric: str,
    parameters: Union[Mapping[str, Dict[str, Any]], List[Dict[str, Any]]],
    *,
    algorithm: str = "random",
    max_trials: Optional[int] = None,
    parallel_trials: Optional[int] = None,
    max_failed_trials: Optional[int] = None,
    goal: Optional[float] = None,
    seed: Optional[int] = None,
    lease_seconds: Optional[int] = None,
    settings: Optional[Mapping[str, Any]] = None,
) -> Dict[str, Any]:
    """The experiment document (as in an experiment file) for :meth:`Client.create_experiment`."""
    spec_objective: Dict[str, Any] = {"type": objective, "objectiveMetricName": metric}
    if goal is not None:
        spec_objective["goal"] = goal
    algorithm_settings = dict(settings or {})
    if seed is not None:
        algorithm_settings["random_state"] = seed
    spec_algorithm: Dict[str, Any] = {"algorithmName": algorithm}
    if algorithm_settings:
        spec_algorithm["algorithmSettings"] = [
            {"name": key, "value": str(value)} for key, value in algorithm_settings.items()
        ]
    spec: Dict[str, Any] = {"objective": spec_objective, "algorithm": spec_algorithm}
    optional = {
        "maxTrialCount": max_trials,
        "parallelTrialCount": parallel_trials,
        "maxFailedTrialCount": max_failed_trials,
        "trialLeaseSeconds": lease_seconds,
    }
    spec.update({key: value for key, value in optional.items() if value is not None})
    spec["parameters"] = parameter_entries(parameters)
    return {
        "apiVersion": "tuneflow.dev/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": spec,
    }


def _media_type(path: Union[str, "os.PathLike[str]"], data: bytes) -> str:
    """``application/json`` for ``.json`` files (or a body that starts with ``{``), else YAML."""
    suffix = Path(path).suffix.lower()
    if suffix == ".json" or (suffix not in (".yaml", ".yml") and data.lstrip()[:1] == b"{"):
        return "application/json"
    return "application/yaml"
