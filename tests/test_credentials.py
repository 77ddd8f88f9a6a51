"""Credential resolution, the credentials file, Hadoop settings and redaction (sparkjobs/credentials.py).

The environment is set with monkeypatch and handed over as ``os.environ``, as the edge does;
the autouse ``isolated_home`` fixture gives each test its own SPARKJOBS_HOME.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from sparkjobs import credentials
from sparkjobs.credentials import (
    CredentialKind,
    StorageCredentials,
    credentials_file_path,
    hadoop_conf_for,
    livy_password,
    redact,
    resolve_storage_credentials,
)
from sparkjobs.errors import ConfigError

WASBS = "wasbs://runs@acct.blob.core.windows.net/team"
KEY = "a2V5LWZvci1hY2N0LWtleS1mb3ItYWNjdA=="
CS = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net"


def write_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def home_file(text: str, mode: int = 0o600) -> Path:
    return write_file(Path(os.environ["SPARKJOBS_HOME"]) / "credentials.yaml", text, mode)


def resolve(location: str = WASBS, project_dir: Path | None = None) -> StorageCredentials | None:
    return resolve_storage_credentials(location, os.environ, project_dir)


def test_local_locations_need_no_credentials(tmp_path: Path) -> None:
    assert resolve(str(tmp_path)) is None


def test_connection_string_comes_first(monkeypatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", CS)
    monkeypatch.setenv("AZURE_STORAGE_KEY", "other")
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", "sv=1&sig=x")
    creds = resolve()
    assert (creds.kind, creds.secret, creds.source) == (CredentialKind.CONNECTION_STRING, CS, "AZURE_STORAGE_CONNECTION_STRING")


def test_then_account_key_then_sas(monkeypatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_KEY", KEY)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", "?sv=1&sig=x")
    assert resolve().kind is CredentialKind.ACCOUNT_KEY
    monkeypatch.delenv("AZURE_STORAGE_KEY")
    creds = resolve()
    assert (creds.kind, creds.secret) == (CredentialKind.SAS, "sv=1&sig=x")  # leading '?' dropped


def test_file_entries_follow_the_same_order(monkeypatch) -> None:
    path = home_file(f"storage:\n  acct:\n    key: {KEY}\n    sas: sv=1&sig=x\n")
    creds = resolve()
    assert (creds.kind, creds.secret, creds.source) == (CredentialKind.ACCOUNT_KEY, KEY, str(path))
    # A kind higher in the order wins over the file, even from the environment...
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", CS)
    assert resolve().kind is CredentialKind.CONNECTION_STRING
    # ...and within a kind the environment comes before the file.
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_KEY", "ZW52LWtleQ==")
    assert resolve().secret == "ZW52LWtleQ=="
    # A file connection string beats an environment key.
    home_file(f"storage:\n  acct:\n    connection_string: '{CS}'\n")
    assert resolve().kind is CredentialKind.CONNECTION_STRING


def test_environment_secrets_apply_only_to_their_account(monkeypatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", CS.replace("AccountName=acct", "AccountName=other"))
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "other")
    monkeypatch.setenv("AZURE_STORAGE_KEY", KEY)
    home_file("storage:\n  acct:\n    sas: sv=1&sig=fromfile\n")
    creds = resolve()
    assert (creds.kind, creds.secret) == (CredentialKind.SAS, "sv=1&sig=fromfile")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT", "acct")
    assert resolve().kind is CredentialKind.ACCOUNT_KEY


def test_no_credentials_and_no_azure_identity(monkeypatch) -> None:
    monkeypatch.setattr(credentials, "_identity_available", lambda: False)
    with pytest.raises(ConfigError) as caught:
        resolve()
    message = str(caught.value)
    assert "acct" in message and "AZURE_STORAGE_KEY" in message
    assert "pip install 'sparkjobs[identity]'" in message


def test_default_azure_credential_is_the_last_resort(monkeypatch) -> None:
    monkeypatch.setattr(credentials, "_identity_available", lambda: True)
    creds = resolve()
    assert (creds.kind, creds.secret) == (CredentialKind.IDENTITY, None)


def test_credentials_file_location(monkeypatch, tmp_path: Path) -> None:
    assert credentials_file_path(os.environ) == Path(os.environ["SPARKJOBS_HOME"]) / "credentials.yaml"
    explicit = write_file(tmp_path / "elsewhere" / "creds.yaml", f"storage: {{acct: {{key: {KEY}}}}}\n")
    monkeypatch.setenv("SPARKJOBS_CREDENTIALS", str(explicit))
    assert resolve().source == str(explicit)
    monkeypatch.delenv("SPARKJOBS_HOME")
    monkeypatch.delenv("SPARKJOBS_CREDENTIALS")
    assert credentials_file_path({"HOME": "/home/u"}) == Path("/home/u/.sparkjobs/credentials.yaml")


def test_a_named_credentials_file_must_exist(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SPARKJOBS_CREDENTIALS", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError, match="does not exist"):
        resolve()


def test_open_file_mode_warns_in_one_line(caplog) -> None:
    path = home_file(f"storage: {{acct: {{key: {KEY}}}}}\n", mode=0o644)
    with caplog.at_level(logging.WARNING, logger="sparkjobs.credentials"):
        assert resolve().secret == KEY
    [record] = caplog.records
    message = record.getMessage()
    assert "\n" not in message and str(path) in message and "0644" in message and "chmod 600" in message
    assert KEY not in message
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="sparkjobs.credentials"):
        livy_password("mycluster", os.environ)
    assert caplog.records == []  # once per file is enough
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger="sparkjobs.credentials"):
        resolve()
    assert caplog.records == []


def test_a_credentials_file_inside_the_project_is_refused(monkeypatch, tmp_path: Path) -> None:
    project = tmp_path / "project"
    inside = write_file(project / "secrets" / "credentials.yaml", f"storage: {{acct: {{key: {KEY}}}}}\n")
    monkeypatch.setenv("SPARKJOBS_CREDENTIALS", str(inside))
    with pytest.raises(ConfigError, match="inside the project"):
        resolve(project_dir=project)
    monkeypatch.setenv("AZURE_STORAGE_KEY", KEY)  # refused even when the environment suffices
    with pytest.raises(ConfigError, match="inside the project"):
        resolve(project_dir=project)
    monkeypatch.delenv("AZURE_STORAGE_KEY")
    with pytest.raises(ConfigError, match="inside the project"):
        livy_password("mycluster", os.environ, project)
    assert resolve(project_dir=tmp_path / "other").secret == KEY


def test_file_problems_name_keys_and_never_values() -> None:
    home_file("storage:\n  acct:\n    kee: SECRETVALUE\n    sas: ''\n  other: SECRETTOO\nlivy:\n  c1: {pasword: SECRET3}\nextra: 1\n")
    with pytest.raises(ConfigError) as caught:
        resolve()
    message = str(caught.value)
    for words in ("storage.acct has unknown keys kee", "storage.acct: sas must be", "storage.other must be a mapping",
                  "livy.c1 has unknown keys pasword", "unknown section 'extra'"):
        assert words in message
    assert "SECRET" not in message


def test_invalid_yaml_does_not_quote_the_line() -> None:
    home_file("storage:\n  acct: {key: SECRETVALUE\n")
    with pytest.raises(ConfigError) as caught:
        resolve()
    assert "not valid YAML at line" in str(caught.value) and "SECRET" not in str(caught.value)


def test_repr_and_str_never_show_secrets() -> None:
    for kind, secret in ((CredentialKind.ACCOUNT_KEY, KEY), (CredentialKind.SAS, "sv=1&sig=SIG"),
                         (CredentialKind.CONNECTION_STRING, CS)):
        creds = StorageCredentials("acct", kind, secret, "AZURE_STORAGE_KEY")
        for text in (repr(creds), str(creds), f"{creds}", f"{creds!r}", repr([creds]), repr({"c": creds})):
            assert secret not in text and KEY not in text and "SIG" not in text
            assert "'***'" in text and "acct" in text
    assert "secret=None" in repr(StorageCredentials("acct", CredentialKind.IDENTITY))


def test_empty_secrets_are_refused() -> None:
    with pytest.raises(ConfigError, match="empty"):
        StorageCredentials("acct", CredentialKind.ACCOUNT_KEY, "", "AZURE_STORAGE_KEY")


def test_connection_string_facts() -> None:
    azurite = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=k==;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    creds = StorageCredentials("devstoreaccount1", CredentialKind.CONNECTION_STRING, azurite)
    assert creds.blob_endpoint == "http://127.0.0.1:10000/devstoreaccount1"
    assert set(creds.secrets) == {azurite, "k=="}
    assert StorageCredentials("acct", CredentialKind.CONNECTION_STRING, CS).blob_endpoint is None


def test_livy_password(monkeypatch) -> None:
    home_file(
        "livy:\n"
        "  https://exact.azurehdinsight.net/livy/: {password: by-url}\n"
        "  hosted.azurehdinsight.net: {password: by-host}\n"
        "  named: {password: by-name}\n"
        "storage: {}\n"
    )
    assert livy_password("https://exact.azurehdinsight.net/livy", os.environ) == "by-url"
    assert livy_password("https://hosted.azurehdinsight.net/livy", os.environ) == "by-host"
    assert livy_password("https://NAMED.azurehdinsight.net/livy", os.environ) == "by-name"
    assert livy_password("named", os.environ) == "by-name"
    assert livy_password("http://localhost:8998", os.environ) is None
    monkeypatch.setenv("SPARKJOBS_LIVY_PASSWORD", "from-env")
    assert livy_password("named", os.environ) == "from-env"


def test_livy_password_without_a_file() -> None:
    assert livy_password("https://x.azurehdinsight.net/livy", os.environ) is None


def test_hadoop_conf_for_each_kind() -> None:
    key = StorageCredentials("acct", CredentialKind.ACCOUNT_KEY, KEY)
    sas = StorageCredentials("acct", CredentialKind.SAS, "?sv=1&sig=x")
    assert hadoop_conf_for(WASBS, key) == {"fs.azure.account.key.acct.blob.core.windows.net": KEY}
    assert hadoop_conf_for("abfss://runs@acct.dfs.core.windows.net", key) == {
        "fs.azure.account.key.acct.dfs.core.windows.net": KEY
    }
    assert hadoop_conf_for(WASBS, sas) == {"fs.azure.sas.runs.acct.blob.core.windows.net": "sv=1&sig=x"}
    with pytest.raises(ConfigError, match="abfs"):
        hadoop_conf_for("abfss://runs@acct.dfs.core.windows.net", sas)
    cs = StorageCredentials("acct", CredentialKind.CONNECTION_STRING, CS)
    assert hadoop_conf_for(WASBS, cs) == {"fs.azure.account.key.acct.blob.core.windows.net": KEY}
    cs_sas = StorageCredentials("acct", CredentialKind.CONNECTION_STRING, "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=sv=2&sig=y")
    assert hadoop_conf_for(WASBS, cs_sas) == {"fs.azure.sas.runs.acct.blob.core.windows.net": "sv=2&sig=y"}
    assert hadoop_conf_for(WASBS, StorageCredentials("acct", CredentialKind.IDENTITY)) == {}
    assert hadoop_conf_for(WASBS, None) == {}
    assert hadoop_conf_for("/tmp/store", key) == {}


def test_redact() -> None:
    text = f"spark-submit --conf x={KEY} url=https://h/c?sv=1&sig=a%2Bb sig=a+b pass=hunter2"
    out = redact(text, [KEY, "a+b", "hunter2", None, ""])
    assert out == "spark-submit --conf x=*** url=https://h/c?sv=1&sig=*** sig=*** pass=***"
    # A secret inside another is masked whole, longest first.
    assert redact("abcdef", ["abc", "abcdef"]) == "***"
    assert redact("nothing secret", []) == "nothing secret"


def test_every_credential_variable_is_listed_and_kept_from_jobs(monkeypatch) -> None:
    # Every variable this module reads a secret or the secrets file from, found in its source.
    import inspect
    import re

    source = inspect.getsource(credentials)
    read = set(re.findall(r'"((?:AZURE_STORAGE|SPARKJOBS)_[A-Z_]+)"', source)) - {"AZURE_STORAGE_ACCOUNT", "SPARKJOBS_HOME"}
    assert read == set(credentials.CREDENTIAL_VARIABLES)
    environ = {name: "x" for name in credentials.CREDENTIAL_VARIABLES} | {"PATH": "/bin", "AZURE_STORAGE_ACCOUNT": "a"}
    assert credentials.without_credentials(environ) == {"PATH": "/bin", "AZURE_STORAGE_ACCOUNT": "a"}


def test_redact_masks_encoded_forms_at_every_base64_offset() -> None:
    import base64
    import re
    from urllib.parse import quote, quote_plus

    secret = "Livy+pass/word=&made up 42"
    raw = secret.encode()
    lower = re.sub("%[0-9A-F]{2}", lambda m: m.group().lower(), quote(secret, safe=""))
    for form in (secret, quote(secret), quote(secret, safe=""), quote_plus(secret), lower, secret.replace("/", "\\/"),
                 base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode().rstrip("="), raw.hex()):
        assert redact(f"<{form}>", [secret]) == "<***>", form
    for prefix in (b"", b"a", b"ab", b"abc"):  # inside longer base64 text, at each offset
        encoded = base64.b64encode(prefix + raw + b"tail").decode()
        masked = redact(encoded, [secret])
        assert "***" in masked and len(masked.replace("***", "")) <= 4 + 8  # at most the edges are left
    assert redact("nothing here", [secret]) == "nothing here"


def test_short_secrets_get_no_base64_forms() -> None:
    # A 4-character base64 fragment would blot out ordinary words; the secret itself is still masked.
    assert credentials.secret_forms(["abc"]) == ("abc",)
    assert redact("YWJj abc", ["abc"]) == "YWJj ***"


def test_known_secrets_come_from_the_environment_and_the_whole_file(monkeypatch, caplog) -> None:
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", CS)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", "?sv=2024&sig=AbC%2Bsignature%3D")
    monkeypatch.setenv("SPARKJOBS_LIVY_PASSWORD", "env-livy-password")
    home_file(
        "storage:\n  other: {key: b3RoZXIta2V5LXZhbHVl}\n  third: {connection_string: 'AccountName=third;AccountKey=dGhpcmQta2V5'}\n"
        "livy:\n  c1: {password: file-livy-password}\n  c2: {password: short}\n"
    )
    with caplog.at_level(logging.WARNING, logger="sparkjobs.credentials"):
        found = credentials.known_secrets(os.environ)
    assert {CS, KEY, "?sv=2024&sig=AbC%2Bsignature%3D", "sv=2024&sig=AbC%2Bsignature%3D", "AbC%2Bsignature%3D", "AbC+signature=", "env-livy-password",
            "b3RoZXIta2V5LXZhbHVl", "AccountName=third;AccountKey=dGhpcmQta2V5", "dGhpcmQta2V5", "file-livy-password"} == set(found)
    assert "short" not in found and len(caplog.records) == 1
    assert "livy.c2" in caplog.text and "shorter than 8" in caplog.text and "short" not in caplog.text.replace("shorter", "")


def test_known_secrets_without_any() -> None:
    assert credentials.known_secrets(os.environ) == ()
