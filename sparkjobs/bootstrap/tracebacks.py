"""How a failing script's error is printed: as ``python script`` would print it, from the script's
first frame (the bootstrap's and runpy's frames are not the user's), and an error raised in a
Spark task once, as the task's own Python traceback.

An exception in a task (a UDF, a function given to ``rdd.map``) reaches the driver as pyspark's
``PythonException`` (or py4j's ``Py4JJavaError``). Its text holds the Python worker's traceback
and often a Java stack trace, and its own traceback runs through pyspark and py4j (in Spark 4
followed by the worker's frames again). Printed as it is, the user's error shows two or three
times among pyspark's frames. Here it becomes one traceback: the script's frames up to the
Spark action that ran the task, then the task's frames from the first one that is not pyspark's,
then the task's exception::

    Traceback (most recent call last):
      File "/.../train.py", line 7, in <module>
        rows = rdd.map(parse).collect()
      In a Spark task:
      File "/.../train.py", line 4, in parse
        raise ValueError(f"cannot parse {value!r}")
    ValueError: cannot parse 1

Anything else (a Java error in Spark, an exception the script raises itself) prints as Python
prints it. The executor's and scheduler's log lines that repeat a task's failure are filtered by
``spark-conf/log4j2.properties``.
"""
from __future__ import annotations

import re
import sys
import traceback
from types import TracebackType

__all__ = ["TASK_MARKER", "format_user_traceback", "print_user_traceback"]

#: The line between the driver's frames and the task's.
TASK_MARKER = "  In a Spark task:"
_HEADER = "Traceback (most recent call last):"
_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"
# Where the worker's traceback ends inside a Java exception's text.
_JAVA_TEXT = re.compile(r"\s+at \S+\(.*\)$|\s*SQLSTATE: |JVM stacktrace:|Caused by: |Driver stacktrace:|\s*\.\.\. \d+ more$")
_FRAME_PATH = re.compile(r'  File "(?P<path>[^"]*)", line \d+')
_SPARK_PATH = re.compile(r"[/\\](pyspark|py4j)[/\\]")
_SPARK_PACKAGES = ("pyspark", "py4j")
# Frames that only run the script: the bootstrap's own, and runpy's.
_OWN_MODULES = ("sparkjobs.bootstrap", "runpy")


def print_user_traceback(exc: BaseException, script_path: str) -> None:
    sys.stderr.write(format_user_traceback(exc, script_path))
    sys.stderr.flush()


def format_user_traceback(exc: BaseException, script_path: str) -> str:
    """The text to print for ``exc``, which ended the script at ``script_path``."""
    return "".join(_chain(exc, script_path, set()))


def _chain(exc: BaseException, script_path: str, seen: set[int]) -> list[str]:
    """The exception and those it was raised from or while handling, earliest first, as Python
    chains them."""
    seen.add(id(exc))
    lines: list[str] = []
    if exc.__cause__ is not None and id(exc.__cause__) not in seen:
        lines += [*_chain(exc.__cause__, script_path, seen), _CAUSE]
    elif exc.__context__ is not None and not exc.__suppress_context__ and id(exc.__context__) not in seen:
        lines += [*_chain(exc.__context__, script_path, seen), _CONTEXT]
    tb = _users_part(exc.__traceback__, script_path)
    task = _task_traceback(exc)
    if task is None:
        return lines + traceback.format_exception(type(exc), exc, tb, chain=False)
    return lines + _task_error(tb, task)


def _users_part(tb: TracebackType | None, script_path: str) -> TracebackType | None:
    """The traceback from the script's first frame; without one (a syntax error, an error of
    runpy's), what follows the frames that only run the script, maybe nothing."""
    found = tb
    while found is not None and found.tb_frame.f_code.co_filename != script_path:
        found = found.tb_next
    if found is not None:
        return found
    while tb is not None and _module(tb).startswith(_OWN_MODULES):
        tb = tb.tb_next
    return tb


def _module(tb: TracebackType) -> str:
    return str(tb.tb_frame.f_globals.get("__name__") or "")


def _task_traceback(exc: BaseException) -> list[str] | None:
    """The Python worker's traceback in the text of a pyspark or py4j exception, as lines."""
    if type(exc).__module__.split(".")[0] not in _SPARK_PACKAGES:
        return None
    try:
        text = str(exc)  # a Py4JJavaError asks the JVM; a stopped JVM fails the call
    except Exception:  # noqa: BLE001 - then it prints as Python prints it
        return None
    start = text.find(_HEADER)
    if start < 0:
        return None
    lines: list[str] = []
    for line in text[start:].splitlines():
        if _JAVA_TEXT.match(line):
            break
        lines.append(line)
    while lines and not lines[-1].strip():
        lines.pop()
    return lines if len(lines) > 1 else None


def _task_error(tb: TracebackType | None, task: list[str]) -> list[str]:
    """The script's frames up to the Spark action, then the task's traceback without pyspark's
    frames; a chained task error keeps its earlier tracebacks first, as Python prints them."""
    chunks = _split_at_headers(task)
    lines: list[str] = []
    for chunk in chunks[:-1]:
        frames, rest = _frames_and_rest(chunk)
        lines += [_HEADER + "\n", *_without_leading_spark(frames), *rest]
    frames, rest = _frames_and_rest(chunks[-1])
    lines.append(_HEADER + "\n")
    lines += traceback.extract_tb(tb, limit=_frames_before_spark(tb)).format()
    lines.append(TASK_MARKER + "\n")
    return lines + _without_leading_spark(frames) + rest


def _split_at_headers(task: list[str]) -> list[list[str]]:
    """The lines after each ``Traceback`` header (the text starts with one)."""
    chunks: list[list[str]] = []
    for line in task:
        if line == _HEADER:
            chunks.append([])
        elif chunks:
            chunks[-1].append(line + "\n")
    return chunks


def _frames_and_rest(chunk: list[str]) -> tuple[list[list[str]], list[str]]:
    """A chunk's frames (each its ``File`` line and the indented lines under it), and the
    exception (with, before another chunk, Python's line that chains them)."""
    frames: list[list[str]] = []
    at = 0
    while at < len(chunk) and chunk[at].startswith("  "):
        if chunk[at].startswith('  File "') or not frames:
            frames.append([])
        frames[-1].append(chunk[at])
        at += 1
    return frames, chunk[at:]


def _without_leading_spark(frames: list[list[str]]) -> list[str]:
    """The frames from the first one outside pyspark and py4j; all of them if there is none (the
    error is pyspark's own, and its frames are all there is to show)."""
    for index, frame in enumerate(frames):
        match = _FRAME_PATH.match(frame[0])
        if match is None or not _SPARK_PATH.search(match.group("path")):
            return [line for kept in frames[index:] for line in kept]
    return [line for kept in frames for line in kept]


def _frames_before_spark(tb: TracebackType | None) -> int:
    """How many frames lead from the script to the first pyspark or py4j frame, the Spark action."""
    count = 0
    while tb is not None and _module(tb).split(".")[0] not in _SPARK_PACKAGES:
        count += 1
        tb = tb.tb_next
    return count
