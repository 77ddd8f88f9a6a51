"""The checkers that turn one raw YAML value into a typed setting, or say why not.

A checker raises :class:`Invalid` with the rest of a sentence ("must be a positive whole
number"); config.py adds the file and key. Workbench wrote numbers and booleans quoted
("4", "true"), so the numeric and boolean checkers accept them as written that way too.
"""
from __future__ import annotations

import enum
import re
import reprlib
from types import MappingProxyType
from typing import Any, Callable, Mapping

MAX_START_TIMEOUT_MINUTES = 7 * 24 * 60.0
#: Linux refuses to start a process with one argument or "NAME=value" string over 128 KiB
#: (MAX_ARG_STRLEN, the NUL included), or with all of them over ARG_MAX (usually 2 MiB, which
#: the inherited environment and spark-submit's own arguments share).
MAX_ARG_BYTES = 128 * 1024
MAX_ENVIRONMENT_BYTES = 1024 * 1024

Checker = Callable[[Any], Any]


class Invalid(ValueError):
    def __init__(self, message: str, *, show_value: bool = True) -> None:
        super().__init__(message)
        self.show_value = show_value  # False when the value is huge or already named


#: Values quoted in messages are cut short: a config value can be megabytes long.
short = reprlib.Repr()
short.maxstring = short.maxother = 60
short.maxlist = short.maxdict = 4
short.maxlevel = 2


def string(value: Any) -> str:
    if isinstance(value, str) and value.strip():
        return value
    raise Invalid("must be a non-empty string")


def scalar_string(value: Any) -> str:
    # Spark properties are strings; YAML turns 4 and true into numbers and booleans.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise Invalid("must be a string, number or boolean")


def _unquoted(value: Any) -> Any:
    """A number Workbench wrote in quotes ("4"), as the number; anything else as it is."""
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                return float(value.strip())
            except ValueError:
                return value
    return value


def positive_int(value: Any) -> int:
    value = _unquoted(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise Invalid("must be a positive whole number")


def memory(value: Any) -> str:
    text = scalar_string(value).strip().lower()
    if text[:-1].isdigit() and text[-1] in "kmgt" or text.isdigit():
        return text
    raise Invalid("must look like 512m or 4g")


def string_list(value: Any) -> tuple[str, ...]:
    # Strict: YAML reads 1e3, 010 and 1.50 as numbers whose str() is not what was written, so
    # converting them would silently change an argument.
    if not isinstance(value, list):
        raise Invalid("must be a list of strings")
    for index, item in enumerate(value, 1):
        if not isinstance(item, str):
            raise Invalid(
                f"has item {index} ({short.repr(item)}), which is not a string; put quotes around it so YAML "
                "keeps it exactly as written"
            )
    return tuple(value)


def argument_vector(value: Any) -> tuple[str, ...]:
    items = string_list(value)
    for index, item in enumerate(items, 1):
        if "\0" in item:
            raise Invalid(f"has a NUL character in item {index}, which no command line can carry")
        if len(item.encode("utf-8", "surrogatepass")) >= MAX_ARG_BYTES:
            raise Invalid(f"has item {index} over Linux's limit of 128 KiB for one argument", show_value=False)
    return items


def path_segment(value: Any) -> str:
    """A name that becomes one folder (shared folder, storage prefix): never a path."""
    text = string(value)
    if text in (".", "..") or any(c in text for c in "/\\\0"):
        raise Invalid("must be a single folder name, without '/', '\\', NUL, and not '.' or '..'")
    return text


def environment(value: Any) -> Mapping[str, str]:
    env = string_map(value)
    problems: list[str] = []
    total = 0
    for name, text in env.items():
        size = len(f"{name}={text}".encode("utf-8", "surrogatepass")) + 1
        total += size
        if not name or "=" in name or "\0" in name:
            problems.append(f"has the name {short.repr(name)}, which is empty or contains '=' or NUL")
        elif "\0" in text:
            problems.append(f"has a NUL character in the value of {name!r}")
        elif size > MAX_ARG_BYTES:
            problems.append(
                f"has a value of {size / 1024:.0f} KiB for {name!r}, over Linux's limit of 128 KiB for one "
                "variable; put it in a file in the project and pass its path instead"
            )
    if not problems and total > MAX_ENVIRONMENT_BYTES:
        problems.append(
            f"holds {total / 1024 / 1024:.1f} MiB in all, over sparkjobs' limit of 1 MiB (Linux starts a process only "
            "when its arguments and environment fit in ARG_MAX, usually 2 MiB); put large values in files"
        )
    if problems:
        raise Invalid("; ".join(problems), show_value=False)
    return env


def string_map(value: Any) -> Mapping[str, str]:
    if value is None:
        return MappingProxyType({})
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return MappingProxyType({k: scalar_string(v) for k, v in value.items()})
    raise Invalid("must be a mapping of names to strings")


def enum_of(kind: type[enum.Enum]) -> Checker:
    def check(value: Any) -> enum.Enum:
        for member in kind:
            if isinstance(value, str) and value.lower() == member.value.lower():
                return member
        raise Invalid("must be one of " + ", ".join(m.value for m in kind))

    return check


def minutes(value: Any) -> float:
    value = _unquoted(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value <= MAX_START_TIMEOUT_MINUTES:
        return float(value)
    raise Invalid(f"must be a number of minutes above 0 and at most {MAX_START_TIMEOUT_MINUTES:.0f} (7 days)")


def boolean(value: Any) -> bool:
    """true or false, as YAML reads them or quoted as Workbench sometimes wrote them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise Invalid("must be true or false")


def python_version(value: Any) -> str:
    # YAML reads 3.10 as the number 3.1, so a number is taken only where it cannot mean that.
    text = str(value) if isinstance(value, (str, float)) else ""
    if not re.fullmatch(r"3\.\d{1,2}", text) or (isinstance(value, float) and text == "3.1"):
        raise Invalid('must be a Python version such as "3.8", in quotes (YAML reads 3.10 as 3.1)')
    return text


def verify(value: Any) -> bool | str:
    if isinstance(value, (bool, str)) and value != "":
        return value
    raise Invalid("must be true, false or the path of a CA bundle")


def maven(value: Any) -> tuple[str, ...]:
    from .packages import coordinate  # here: project.yml's readers need no package parsing

    return each(value, coordinate, "'group:artifact:version' strings or mappings of group, artifact and version")


def repositories(value: Any) -> tuple[str, ...]:
    from .packages import repository

    return each(value, repository, "repository URLs or mappings with a url")


def each(value: Any, parse: Callable[[Any], str], what: str) -> tuple[str, ...]:
    # Both sparkjobs' strings and Workbench's mappings (packages.py).
    if not isinstance(value, list):
        raise Invalid(f"must be a list of {what}")
    try:
        return tuple(parse(item) for item in value)
    except ValueError as exc:
        raise Invalid(str(exc), show_value=False) from None


def accounts(value: Any) -> tuple[str, ...]:
    names = string_list(value)
    for name in names:
        if not re.fullmatch(r"[a-z0-9]{3,24}", name):
            raise Invalid(f"entry {name!r} is not a storage account name (3-24 lowercase letters and digits)")
    return tuple(dict.fromkeys(names))
