"""Arguments that name an earlier run's artifact (issue 10), and the run they pick.

An argument is a reference when it starts with ``run:``, whole or as the value of an option
written ``--name=VALUE`` (or ``name=VALUE``)::

    run:RUN_ID/outputs/PATH           that run (a full id, a unique prefix or its random suffix)
    run:latest/outputs/PATH           the newest completed run of the project that stored PATH
    run:best:METRIC/outputs/PATH      of those, the one whose last METRIC is highest
    run:best:max:METRIC/outputs/PATH  the same
    run:best:min:METRIC/outputs/PATH  of those, the one whose last METRIC is lowest
    run::anything                     not a reference: the job gets ``run:anything``

PATH names a file or a folder of artifacts (a Spark model is a folder). ``latest`` and
``best`` only consider runs that stored PATH, so a scoring run in between does not hide the
training run whose model a later run wants. METRIC ends at the first ``/outputs``, so a
metric's name may contain ``/`` (``train/loss``). Ties go to the newest run.

This module only finds things; ``run_inputs.py`` turns what it found into paths and URIs.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import ConfigError, RunNotFound, UnsafePathError
from .runs import Artifact, RunRecord, RunRepository, RunStatus
from .storage.base import check_prefix
from .wording import count

__all__ = ["Reference", "Found", "parse_argument", "find", "ESCAPE"]

PREFIX = "run:"
ESCAPE = "run::"  # run::x is passed on as run:x
_ARGUMENT = re.compile(r"^(?P<lead>-{0,2}[A-Za-z_][\w.-]*=)?run:(?P<rest>.*)$", re.DOTALL)
_SPLIT = re.compile(r"^(?P<selector>.+?)/(?P<path>outputs(?:/.*)?)$", re.DOTALL)
_BEST = re.compile(r"^best:(?:(?P<order>max|min):)?(?P<metric>.+)$", re.DOTALL)
_LITERAL_HINT = f"to pass an argument that starts with '{PREFIX}' as it is, write '{ESCAPE}' instead"


@dataclass(frozen=True)
class Reference:
    text: str  # the reference as written, e.g. "run:latest/outputs/model.pkl"
    lead: str  # what precedes it in the argument ("--model=", or "")
    selector: str  # "latest", "best:acc", "best:min:loss", or a run id
    path: str  # "outputs/model.pkl"

    @property
    def best(self) -> tuple[str, str] | None:
        """("max" or "min", METRIC) for a best: reference, else None."""
        match = _BEST.match(self.selector)
        return (match["order"] or "max", match["metric"]) if match else None


@dataclass(frozen=True)
class Found:
    reference: Reference
    run_id: str
    artifacts: tuple[Artifact, ...]  # the file, or every file of the folder
    folder: bool


def parse_argument(arg: str) -> Reference | str:
    """The reference an argument holds, or the argument as the job receives it (an escaped
    ``run::x`` becomes ``run:x``; any other argument is unchanged)."""
    match = _ARGUMENT.match(arg)
    if match is None:
        return arg
    lead, rest = match["lead"] or "", match["rest"]
    if rest.startswith(":"):
        return f"{lead}{PREFIX}{rest[1:]}"
    text = PREFIX + rest
    parts = _SPLIT.match(rest)
    if parts is None:
        raise ConfigError(
            f"The argument {arg!r} starts with '{PREFIX}' but names no artifact: write {PREFIX}RUN_ID/outputs/FILE, "
            f"{PREFIX}latest/outputs/FILE or {PREFIX}best:METRIC/outputs/FILE; {_LITERAL_HINT}."
        )
    path = parts["path"].rstrip("/")
    try:
        check_prefix(path)
    except UnsafePathError:
        raise ConfigError(f"The reference {text!r} has a path that may not contain '..', '.' or '//'.") from None
    selector = parts["selector"]
    if selector.startswith("best:") and _BEST.match(selector) is None:
        raise ConfigError(f"The reference {text!r} names no metric: write {PREFIX}best:METRIC/... or {PREFIX}best:min:METRIC/....")
    return Reference(text, lead, selector, path)


def artifacts_at(record: RunRecord, path: str) -> tuple[Artifact, ...]:
    return tuple(a for a in record.artifacts if a.path == path or a.path.startswith(path + "/"))


def find(repo: RunRepository, project: str, reference: Reference) -> Found:
    """The run and artifacts a reference names; ConfigError or RunNotFound, as a sentence
    naming the reference, when there are none."""
    if reference.selector == "latest" or reference.best:
        record = _pick(repo, project, reference)
    else:
        record = _by_id(repo, reference)
    found = artifacts_at(record, reference.path)
    if not found:
        raise ConfigError(
            f"The reference {reference.text} names {reference.path}, which run {record.id} did not store; "
            f"see 'sparkjobs runs show {record.id}'."
        )
    return Found(reference, record.id, found, folder=not any(a.path == reference.path for a in found))


def _by_id(repo: RunRepository, reference: Reference) -> RunRecord:
    try:
        record = repo.load(repo.resolve(reference.selector))
    except RunNotFound as exc:
        why = str(exc).rstrip(".")
        raise RunNotFound(f"The reference {reference.text} names no known run ({why[:1].lower()}{why[1:]}); {_LITERAL_HINT}.") from None
    if not record.status.is_terminal:
        raise ConfigError(
            f"The reference {reference.text} names run {record.id}, which is still running: its artifacts are stored when it ends."
        )
    return record


def _pick(repo: RunRepository, project: str, reference: Reference) -> RunRecord:
    """The newest completed run of the project that stored the path, or the best by a metric."""
    best = reference.best
    chosen: RunRecord | None = None
    chosen_value = 0.0
    candidates = 0
    for record in repo.iter_runs(project):  # newest first
        if record.status is not RunStatus.COMPLETED or not artifacts_at(record, reference.path):
            continue
        if best is None:
            return record
        candidates += 1
        value = _number(record.metrics.get(best[1]))
        if value is None:
            continue
        if chosen is None or (value > chosen_value if best[0] == "max" else value < chosen_value):
            chosen, chosen_value = record, value
    if chosen is not None:
        return chosen
    asked = f"The reference {reference.text} asks for a completed run of project {project} that stored {reference.path}"
    if not candidates:
        raise ConfigError(f"{asked}, but there is none in the run store at {repo.store.location}.")
    raise ConfigError(
        f"{asked} and logged the metric {best[1]!r}: {count(candidates, 'run')} stored it, but none logged "
        f"{best[1]!r} as a number."
    )


def _number(value: object) -> float | None:
    """A metric's last value as a number to compare; NaN, infinities and text do not count."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
