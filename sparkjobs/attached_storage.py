"""More storage accounts for a run: the compute's ``attachStorage`` names them, and their keys
come from the user's credentials (the file or the environment), never from the project.

A job often reads one account and writes another. The run's own ``storage`` account is
attached by its target; each account listed in ``attachStorage`` is attached the same way, at
run time on the driver's Hadoop configuration (never as Spark or Livy conf), so Spark's readers
and writers reach it on the executors too. Its key is set under both the ``blob`` (wasbs) and
the ``dfs`` (abfss) host names. The bootstrap leaves alone an account the cluster already
reaches by itself (a key, a key provider, a SAS, OAuth), as it does for ``storage``.

Only an account key can be attached for a whole account: Hadoop takes a SAS token per
container, so a SAS is refused here with what to do instead.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from .credentials import CredentialKind, parse_connection_string, resolve_account_credentials
from .errors import ConfigError
from .storage.uris import DEFAULT_ENDPOINT_SUFFIX, account_key_setting

__all__ = ["attached_storage_conf"]


def attached_storage_conf(
    accounts: Iterable[str], environ: Mapping[str, str], project_dir: Path | None = None
) -> dict[str, str]:
    """The Hadoop key settings for every account in ``accounts``; ConfigError names one without a key."""
    conf: dict[str, str] = {}
    for account in accounts:
        creds = resolve_account_credentials(account, environ, project_dir)
        key, suffix = None, DEFAULT_ENDPOINT_SUFFIX
        if creds.kind is CredentialKind.ACCOUNT_KEY:
            key = creds.secret
        elif creds.kind is CredentialKind.CONNECTION_STRING and creds.secret:
            parts = parse_connection_string(creds.secret)
            key, suffix = parts.get("accountkey") or None, parts.get("endpointsuffix") or suffix
        if not key:
            how = "Azure AD" if creds.kind is CredentialKind.IDENTITY else f"a SAS token ({creds.source})"
            raise ConfigError(
                f"attachStorage names storage account {account}, for which sparkjobs found {how}, not an "
                f"account key: add 'storage: {{{account}: {{key: ...}}}}' to the credentials file, or attach "
                f"one container in the script with context.attach_storage(spark, '{account}', sas=..., container=...)."
            )
        for dfs in (False, True):
            conf[account_key_setting(account, dfs=dfs, endpoint_suffix=suffix)] = key
    return conf
