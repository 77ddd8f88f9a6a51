"""What a job logs, metric series and params, checked and written as strict JSON lines.

Shipped to clusters in the runtime zip with ``context.py``, so it imports only the standard
library. The submitter reads the same files back (``metrics.py``) and checks every line again:
a script can write anything to them, and nothing it writes may break the run record.

``metrics.jsonl``, one point per line, in the order logged (also the run store's layout)::

    {"name": "loss", "value": 0.25, "step": 3, "time": "2026-12-01T10:00:00.123Z"}
    {"name": "loss", "value": "NaN", "step": 4, "time": "...", "nonfinite": true}
    {"name": "status", "value": "training", "step": 0, "time": "..."}

A value is a JSON number; NaN and the infinities, which strict JSON cannot hold, are the strings
``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` with ``"nonfinite": true`` (and those three
strings always mean the numbers, in the run record's ``metrics`` too); any other string is text,
as Azure ML Workbench's ``logger.log(name, "text")`` logs it. ``params.jsonl`` holds
``{"name": ..., "value": ...}`` lines, one per param.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import sys
import threading
import unicodedata
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "MAX_NAME", "MAX_TEXT", "MAX_POINTS", "MAX_METRICS", "MAX_PARAMS", "NONFINITE",
    "Recorder", "check_name", "encode_metric", "decode_metric", "encode_param", "utc_time",
]  # fmt: skip

MAX_NAME = 200  # characters in a metric or param name
MAX_TEXT = 5000  # characters in a text value, or in a param's value as JSON
MAX_POINTS = 100_000  # points kept per metric; later ones are dropped with a warning
MAX_METRICS = 1000  # distinct metric names per run
MAX_PARAMS = 1000  # params per run
NONFINITE: dict[str, float] = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
# Characters that would make a name print or display as something else.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def utc_time() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check_name(name: Any, what: str = "metric") -> str:
    """``name`` if it is a usable metric or param name; ValueError or TypeError saying why not."""
    if not isinstance(name, str):
        raise TypeError(f"A {what} name must be a string, not {type(name).__name__}.")
    if not name or name != name.strip():
        raise ValueError(f"A {what} name must not be empty or start or end with spaces (got {name[:50]!r}).")
    if len(name) > MAX_NAME:
        raise ValueError(f"The {what} name {name[:40]!r}... has {len(name)} characters; the most is {MAX_NAME}.")
    if any(unicodedata.category(c) in ("Cc", "Cs") or c in _BIDI for c in name):
        raise ValueError(f"The {what} name {name[:50]!r} holds control characters; use printable text.")
    return name


def _text(value: str, what: str) -> str:
    if len(value) > MAX_TEXT:
        raise ValueError(f"{what} is {len(value)} characters long; the most is {MAX_TEXT}.")
    if any(unicodedata.category(c) == "Cs" for c in value):
        raise ValueError(f"{what} holds lone surrogates, which cannot be stored as UTF-8.")
    return value


def encode_metric(value: Any, name: str = "") -> tuple[int | float | str, bool]:
    """A metric value as stored (strict JSON) and whether it is NaN or infinite.

    Numbers (any ``numbers.Real`` but bool, so numpy's too) and text are taken; the strings
    ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` are those numbers.
    """
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
        raise TypeError(f"The value of metric {name!r} must be a number or a string, not {type(value).__name__}.")
    if isinstance(value, str):
        return (value, True) if value in NONFINITE else (_text(value, f"The text of metric {name!r}"), False)
    if isinstance(value, numbers.Integral):
        return int(value), False
    number = float(value)
    if math.isfinite(number):
        return number, False
    return ("NaN" if math.isnan(number) else "Infinity" if number > 0 else "-Infinity"), True


def decode_metric(value: Any, nonfinite: bool = False) -> int | float | str:
    """What ``encode_metric`` stored, as Python has it: NaN and the infinities as floats."""
    if isinstance(value, str) and (nonfinite or value in NONFINITE):
        return NONFINITE.get(value, math.nan)
    return value


def encode_param(value: Any, name: str = "") -> Any:
    """A param value as stored: any strict-JSON value (text, number, bool, null, lists, objects)."""
    try:
        text = json.dumps(value, allow_nan=False, sort_keys=True, ensure_ascii=False)
    except ValueError:
        raise ValueError(f"Param {name!r} holds NaN or an infinity, which a param cannot; log it as a metric.") from None
    except TypeError:
        raise TypeError(f"Param {name!r} must be text, a number, true/false, None, or a list or dict of those, "
                        f"not {type(value).__name__}.") from None
    _text(text, f"Param {name!r} as JSON")
    return json.loads(text)


class Recorder:
    """Appends what one job logs to its two files, or only checks it when there are none
    (the script runs outside sparkjobs). Safe to share between threads."""

    def __init__(self, metrics_path: str | None, params_path: str | None) -> None:
        self._metrics_path, self._params_path = metrics_path, params_path
        self._lock = threading.Lock()
        self._points: dict[str, int] = {}  # name -> points recorded
        self._steps: dict[str, int] = {}  # name -> last step
        self._params: dict[str, str] = {}  # name -> value as canonical JSON
        self._warned: set[str] = set()
        self._load()

    def _load(self) -> None:
        """Pick up what an earlier process of the same run logged (a script that re-runs itself)."""
        for line in _lines(self._metrics_path):
            name, step = line.get("name"), line.get("step")
            if isinstance(name, str) and isinstance(step, int):
                self._points[name] = self._points.get(name, 0) + 1
                self._steps[name] = step
        for line in _lines(self._params_path):
            if isinstance(line.get("name"), str):
                self._params[line["name"]] = json.dumps(line.get("value"), sort_keys=True)

    def log_metric(self, name: str, value: Any, step: int | None = None) -> None:
        check_name(name)
        stored, nonfinite = encode_metric(value, name)
        if step is not None and (isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0):
            raise ValueError(f"The step of metric {name!r} must be a whole number 0 or more, not {step!r}.")
        with self._lock:
            if name not in self._points and len(self._points) >= MAX_METRICS:
                raise ValueError(f"A run may log at most {MAX_METRICS} different metrics; {name!r} would be one more.")
            if self._points.get(name, 0) >= MAX_POINTS:
                self._warn_once(name, f"metric {name!r} has {MAX_POINTS} points, the most a metric keeps; "
                                      "later points are not recorded")
                return
            step = int(step) if step is not None else self._steps.get(name, -1) + 1
            point: dict[str, Any] = {"name": name, "value": stored, "step": step, "time": utc_time()}
            if nonfinite:
                point["nonfinite"] = True
            self._append(self._metrics_path, point)
            self._points[name] = self._points.get(name, 0) + 1
            self._steps[name] = step

    def log_param(self, name: str, value: Any) -> None:
        check_name(name, "param")
        stored = encode_param(value, name)
        canonical = json.dumps(stored, sort_keys=True)
        with self._lock:
            known = self._params.get(name)
            if known == canonical:
                return
            if known is not None:
                raise ValueError(f"Param {name!r} is already {_short(known)} in this run; a param is logged once "
                                 f"(log {_short(canonical)} as a metric, or under another name).")
            if len(self._params) >= MAX_PARAMS:
                raise ValueError(f"A run may log at most {MAX_PARAMS} params; {name!r} would be one more.")
            self._append(self._params_path, {"name": name, "value": stored})
            self._params[name] = canonical

    def _append(self, path: str | None, line: dict[str, Any]) -> None:
        if path is None:
            self._warn_once("", "not in a sparkjobs run, so metrics and params are checked but not recorded")
            return
        data = json.dumps(line, allow_nan=False, ensure_ascii=False) + "\n"
        # One write of one whole line in append mode: a kill leaves at most a cut last line.
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(data)

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            print(f"sparkjobs: {message}.", file=sys.stderr, flush=True)


def _short(json_text: str) -> str:
    return json_text if len(json_text) <= 60 else json_text[:57] + "..."


def _lines(path: str | None) -> list[dict[str, Any]]:
    if not path or not os.path.isfile(path):
        return []
    found = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict):
                found.append(line)
    return found
