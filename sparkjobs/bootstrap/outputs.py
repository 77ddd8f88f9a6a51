"""Copying ``./outputs`` to the run's outputs in storage."""
from __future__ import annotations

import os

from .console import brief, count, say
from .hadoop import Spark
from .snapshot import sha256_of
from .spec import child_uri, local_path

__all__ = ["ship_outputs"]


def ship_outputs(spark: Spark, local_dir: str, uri: str, digests: dict[str, str]) -> bool:
    """Copy every regular file under ``local_dir`` to ``uri``; False when some could not be copied
    or were refused: a symbolic link (``./outputs`` itself included) is named, never followed.

    ``digests`` receives the SHA-256 of each file copied, so the submitter can record the
    artifacts without downloading them again."""
    if os.path.islink(local_dir):
        say(f"./outputs is a symbolic link to {os.readlink(local_dir)}; links are never followed, so no outputs were copied")
        return False
    same = local_path(uri)
    if same is not None and os.path.realpath(same) == os.path.realpath(local_dir):
        return True  # already there; copying a file onto itself would truncate it
    files, refused = _files_under(local_dir)
    for relative, why in refused:
        say(f"outputs/{relative} was not copied: it is {why}")
    copied, failed = 0, len(refused)
    for relative in files:
        try:
            spark.upload(os.path.join(local_dir, relative), child_uri(uri, relative))
            digests[relative] = sha256_of(os.path.join(local_dir, relative))
            copied += 1
        except Exception as exc:  # Py4JJavaError per file; one bad file must not stop the others
            failed += 1
            say(f"could not copy outputs/{relative} to {uri}: {brief(exc)}")
    say(f"copied {count(copied, 'file')} from ./outputs to {uri}" + (f"; {failed} failed" if failed else ""))
    return failed == 0


def _files_under(folder: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Relative POSIX paths of the regular files under ``folder``, sorted, and of what is refused
    with the reason: a symbolic link (never followed: it could point at any file the driver can
    read) or a special file."""
    found, refused = [], []
    for parent, dirs, files in os.walk(folder):  # does not descend into linked folders
        for name in sorted(dirs + files):
            path = os.path.join(parent, name)
            relative = os.path.relpath(path, folder).replace(os.sep, "/")
            if os.path.islink(path):
                refused.append((relative, f"a symbolic link to {os.readlink(path)}, which is not followed"))
            elif os.path.isfile(path):
                found.append(relative)
            elif not os.path.isdir(path):
                refused.append((relative, "not a regular file"))
    return sorted(found), sorted(refused)
