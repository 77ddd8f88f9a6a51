"""Access a cluster already has to a storage account, which the bootstrap must leave alone.

On HDInsight, core-site holds the account key encrypted, read through
``ShellDecryptionKeyProvider``; setting a plain key over it would make every later FileSystem
hand the plain key to the decrypt script, which fails. Azure ML Workbench's own
``attach_storage_container`` set a key only when the configuration had none.
"""
from __future__ import annotations

import re
from typing import Any

__all__ = ["credential_host", "cluster_access"]


#: Where a cluster keeps its own key for an account host (then ``.<host>``): the key itself, or
#: the setting that says how to read it (HDInsight: an encrypted key and ShellDecryptionKeyProvider).
_KEY_SETTINGS = ("fs.azure.account.key.", "fs.azure.account.keyprovider.")
_CREDENTIAL_SETTING = re.compile(r"^fs\.azure\.(?:account\.key|sas\.[^.]+)\.(?P<host>[^.]+\.(?:blob|dfs)\..+)$")


def credential_host(key: str) -> str | None:
    """The account host a credential setting is for: ``acct.blob.core.windows.net`` for both
    ``fs.azure.account.key.acct.blob.core.windows.net`` and ``fs.azure.sas.CONTAINER.acct.blob...``."""
    match = _CREDENTIAL_SETTING.match(key)
    return match.group("host") if match else None


def cluster_access(settings: dict[str, str], configuration: Any) -> dict[str, str]:
    """The account hosts among ``settings`` that the cluster's Hadoop configuration already
    reaches, each with the setting that shows it (a name, never a value).

    Access is a key or key provider for the host (``getPassword`` also finds a key kept in a
    Hadoop credential provider), for abfs hosts an auth type other than SharedKey (OAuth, a SAS
    token provider, a custom one; per host or for all), and for wasb hosts a container SAS.
    Setting a plain key over such access would break it or change it: with a key provider every
    later FileSystem hands the plain key to the decrypt script. So those hosts are left alone.
    """
    found: dict[str, str] = {}
    for host in sorted({h for h in map(credential_host, settings) if h}):
        shown = next(
            (name for name in (p + host for p in _KEY_SETTINGS)
             if configuration.get(name) is not None or _has_password(configuration, name)),
            None,
        )
        if shown is None and ".dfs." in host:
            for name in ("fs.azure.account.auth.type." + host, "fs.azure.account.auth.type"):
                value = configuration.get(name)
                if value is not None:
                    shown = name if value.strip().lower() != "sharedkey" else None
                    break
        if shown is None:
            sas = configuration.getValByRegex("^fs\\.azure\\.sas\\.[^.]+\\." + host.replace(".", "\\.") + "$")
            shown = min((str(name) for name in sas), default=None) if sas is not None else None
        if shown is not None:
            found[host] = shown
    return found


def _has_password(configuration: Any, name: str) -> bool:
    """Whether a Hadoop credential provider holds ``name``; a provider that fails to open says no."""
    try:
        return configuration.getPassword(name) is not None
    except Exception:  # Py4JJavaError (an IOException from a provider): the plain conf already said no
        return False
