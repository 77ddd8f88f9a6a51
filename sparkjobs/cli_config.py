"""``sparkjobs config check``: what a run configuration resolves to, key by key."""
from __future__ import annotations

import json

from .config import RunSettings

__all__ = ["config_check"]


def config_check(settings: RunSettings, as_json: bool) -> int:
    """Every key of every file the configuration reads, with what sparkjobs does with it."""
    if as_json:
        print(json.dumps({
            "runconfig": settings.name,
            "target": {"name": settings.compute.name, "type": settings.compute.type.value},
            "framework": settings.framework.value,
            "files": list(settings.config_files),
            "conda_dependencies_file": settings.conda_dependencies_file,
            "prepare_environment": settings.prepare_environment,
            "keys": [notice.to_json() for notice in settings.notices],
        }, indent=2))
        return 0
    print(f"Run configuration '{settings.name}': target '{settings.compute.name}' ({settings.compute.type.value}), "
          f"framework {settings.framework.value}.")
    by_file: dict[str, list] = {}
    for notice in settings.notices:
        by_file.setdefault(notice.file, []).append(notice)
    for file, notices in by_file.items():
        print(f"\n{file}:")
        width = max(len(n.key) for n in notices)
        for notice in notices:
            print(f"  {notice.key:<{width}}  {notice.disposition.value:<8}  {notice.reason}")
    return 0
