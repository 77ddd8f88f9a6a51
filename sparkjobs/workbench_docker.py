"""Workbench's Docker and remote-VM targets, which sparkjobs does not run, and the local (or
spark) target that runs the same job in their place (``sparkjobs init --from-docker NAME``).

Workbench's Docker image ran Spark in local mode in a container; sparkjobs runs Spark in local
mode on this machine, so the job is the same without Docker.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import yaml

from .config_yaml import load_yaml
from .errors import ConfigError
from .workbench_keys import DOCKER_TYPES, UNSUPPORTED_TYPES

__all__ = ["refused_type", "docker_equivalent", "write_docker_equivalent"]


def refused_type(file: str, name: str, kind: str, data: Mapping[str, Any]) -> str:
    """Why a Workbench Docker or remote-VM target does not run here, and what to use instead."""
    what = "Docker" if kind in DOCKER_TYPES else "remote-VM"
    pasted = "\n".join(f"    {line}" for line in docker_equivalent(name, kind, data).splitlines() if not line.startswith("#"))
    return (
        f"type '{kind}' is a Workbench {what} target, which sparkjobs does not run. The same job runs with this "
        f"{file} instead:\n{pasted}\n  Run 'sparkjobs init --from-docker {name}' to write it"
    )


def docker_equivalent(name: str, kind: str, data: Mapping[str, Any]) -> str:
    """The local (or, for a remote machine, spark) compute file that runs what the Workbench
    Docker target ran: Spark in local mode, as Workbench's mmlspark image did."""
    lines = [f"# Written by 'sparkjobs init --from-docker {name}' in place of Workbench's '{kind}' target",
             f"# (baseDockerImage {data.get('baseDockerImage') or 'default'}): sparkjobs runs Spark without Docker."]
    address = data.get("address")
    if kind in ("remotedocker", "remote") and isinstance(address, str) and address.strip():
        host = (urlsplit(address).hostname if "://" in address else address.split(":")[0]) or address
        lines += ["# A Spark standalone master must run on that machine (start-master.sh).", "type: spark",
                  f"master: {json.dumps(f'spark://{host}:7077')}"]
    else:
        lines += ["type: local", "master: local[*]"]
    share = data.get("nativeSharedDirectory")
    if isinstance(share, str) and share.strip():
        lines.append(f"nativeSharedDirectory: {json.dumps(share.strip())}")  # JSON strings are YAML
    return "\n".join(lines) + "\n"


def write_docker_equivalent(config_dir: Path, name: str) -> Path:
    """Replace ``config_dir/NAME.compute``, a Workbench Docker or remote-VM target, with its
    equivalent; the file is replaced whole (renamed into place), never half-written."""
    path = config_dir / f"{name}.compute"
    if not path.is_file():
        raise ConfigError(f"There is no compute target '{name}': {path} does not exist.")
    try:
        data = load_yaml(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read: {exc}") from None
    except yaml.YAMLError as exc:  # YamlRefused too
        raise ConfigError(f"{path} is not valid YAML ({exc}); fix it or write the compute file by hand.") from None
    kind = str(data.get("type", "")).strip().lower() if isinstance(data, dict) else ""
    if kind not in UNSUPPORTED_TYPES:
        raise ConfigError(f"{path} is not a Workbench Docker target (its type is {kind or 'missing'!r}); nothing to convert.")
    partial = path.with_name(f".{path.name}.sparkjobs-partial")
    partial.write_text(docker_equivalent(name, kind, data), encoding="utf-8")
    os.replace(partial, path)
    return path
