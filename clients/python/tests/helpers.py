"""Helpers shared by the tests."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any, Dict, Optional


def raw_error(
    url: str, method: str, path: str, body: Optional[Dict[str, Any]] = None
) -> Dict[str, Any]:
    """The server's JSON error for a request sent without the client, with its status."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raise AssertionError(f"{method} {path} answered {response.status}, not an error")
    except urllib.error.HTTPError as err:
        error = json.loads(err.read())["error"]
        error["status"] = err.code
        return error
