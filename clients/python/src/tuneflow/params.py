"""Helpers that describe a parameter's search space.

Each returns one entry of the experiment document's ``spec.parameters`` without its
``name`` (which :meth:`Client.create_experiment` adds from the key of the ``parameters``
mapping). Numbers are written as strings, as Katib documents write them::

    >>> loguniform(1e-5, 1e-1)["feasibleSpace"]
    {'min': '1e-05', 'max': '0.1', 'distribution': 'logUniform'}

The bounds are checked by the server, which reports every problem at once.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Dict, Iterable, List, Optional

__all__ = ["uniform", "loguniform", "intrange", "discrete", "choice", "parameter_entries"]

Entry = Dict[str, Any]


def uniform(lo: float, hi: float, step: Optional[float] = None) -> Entry:
    """A real number in ``[lo, hi]``, uniformly distributed (on a grid of ``step`` if given)."""
    space = {"min": _real(lo, "lo"), "max": _real(hi, "hi")}
    if step is not None:
        space["step"] = _real(step, "step")
    return {"parameterType": "double", "feasibleSpace": space}


def loguniform(lo: float, hi: float) -> Entry:
    """A real number in ``[lo, hi]`` whose logarithm is uniform; needs ``lo > 0``."""
    space = {"min": _real(lo, "lo"), "max": _real(hi, "hi"), "distribution": "logUniform"}
    return {"parameterType": "double", "feasibleSpace": space}


def intrange(lo: int, hi: int, step: Optional[int] = None, log: bool = False) -> Entry:
    """An integer in ``[lo, hi]`` (every ``step``-th one if given; log-uniform if ``log``)."""
    space = {"min": _integer(lo, "lo"), "max": _integer(hi, "hi")}
    if step is not None:
        space["step"] = _integer(step, "step")
    if log:
        space["distribution"] = "logUniform"
    return {"parameterType": "int", "feasibleSpace": space}


def discrete(values: Iterable[float]) -> Entry:
    """One of the given numbers (they come back as JSON numbers)."""
    items = [_real(value, "value") for value in values]
    return {"parameterType": "discrete", "feasibleSpace": {"list": _non_empty(items)}}


def choice(values: Iterable[str]) -> Entry:
    """One of the given strings (a categorical parameter; use :func:`discrete` for numbers)."""
    items = list(values)
    for value in items:
        if not isinstance(value, str):
            raise TypeError(
                f"choice() takes strings, got {value!r}; categorical values come back as "
                "strings: use discrete() for numbers"
            )
    return {"parameterType": "categorical", "feasibleSpace": {"list": _non_empty(items)}}


def parameter_entries(parameters: Any) -> List[Entry]:
    """The document's ``spec.parameters`` list from a mapping ``{name: entry}``.

    A list of complete entries (each with its ``name``) is taken as it is.
    """
    if isinstance(parameters, dict):
        return [{"name": name, **entry} for name, entry in parameters.items()]
    return list(parameters)


def _real(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{what} must be a number, got {value!r}")
    if isinstance(value, numbers.Integral):
        return str(int(value))
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{what} must be finite, got {value!r}")
    return repr(number)


def _integer(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an integer, got {value!r}")
    return str(int(value))


def _non_empty(items: List[Any]) -> List[Any]:
    if not items:
        raise ValueError("the list of values must not be empty")
    return items
