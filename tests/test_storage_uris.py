"""Store locations and their Hadoop URIs and credential key names (sparkjobs/storage/uris.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from sparkjobs.errors import ConfigError
from sparkjobs.storage.uris import StorageLocation, account_key_setting, parse_location, sas_setting

WASBS = "wasbs://runs@acct.blob.core.windows.net/team/project"


def test_parse_wasbs() -> None:
    where = parse_location(WASBS + "/")
    assert where == StorageLocation("wasbs", "acct", "runs", "team/project", "core.windows.net")
    assert str(where) == WASBS
    assert where.blob_account_url == "https://acct.blob.core.windows.net"
    assert where.key("runs/1/run.json") == "team/project/runs/1/run.json"


@pytest.mark.parametrize(
    "text, scheme, prefix",
    [
        ("wasb://runs@acct.blob.core.windows.net", "wasb", ""),
        ("wasbs://runs@acct.blob.core.windows.net/", "wasbs", ""),
        ("abfss://runs@acct.dfs.core.windows.net/a/b", "abfss", "a/b"),
        ("abfs://runs@acct.dfs.core.windows.net/a", "abfs", "a"),
        ("WASBS://runs@ACCT.blob.core.windows.net/Case/Kept", "wasbs", "Case/Kept"),
    ],
)
def test_parse_azure_forms(text: str, scheme: str, prefix: str) -> None:
    where = parse_location(text)
    assert (where.scheme, where.account, where.container, where.prefix) == (scheme, "acct", "runs", prefix)


def test_other_clouds_keep_their_endpoint_suffix() -> None:
    where = parse_location("wasbs://runs@acct.blob.core.chinacloudapi.cn/x")
    assert where.endpoint_suffix == "core.chinacloudapi.cn"
    assert where.outputs_uri("r1") == "wasbs://runs@acct.blob.core.chinacloudapi.cn/x/runs/r1/outputs/"
    assert where.account_key_setting() == "fs.azure.account.key.acct.blob.core.chinacloudapi.cn"


def test_outputs_and_shared_uris_in_both_drivers() -> None:
    where = parse_location(WASBS)
    assert where.outputs_uri("20261124T0733Z-3f9c2a") == (
        "wasbs://runs@acct.blob.core.windows.net/team/project/runs/20261124T0733Z-3f9c2a/outputs/"
    )
    assert where.shared_uri("ws", "proj") == "wasbs://runs@acct.blob.core.windows.net/team/project/shared/ws/proj/"
    assert where.outputs_uri("r1", scheme="abfss") == "abfss://runs@acct.dfs.core.windows.net/team/project/runs/r1/outputs/"
    assert where.shared_uri("ws", "proj", scheme="abfss") == "abfss://runs@acct.dfs.core.windows.net/team/project/shared/ws/proj/"
    assert parse_location("abfss://runs@acct.dfs.core.windows.net").outputs_uri("r1") == (
        "abfss://runs@acct.dfs.core.windows.net/runs/r1/outputs/"
    )
    assert where.uri() == "wasbs://runs@acct.blob.core.windows.net/team/project/"


def test_file_locations(tmp_path: Path) -> None:
    for text in (str(tmp_path / "store"), f"file://{tmp_path}/store", f"file:{tmp_path}/store", f"file://localhost{tmp_path}/store"):
        where = parse_location(text)
        assert where.is_local and where.local_path == tmp_path / "store"
    where = parse_location(str(tmp_path / "my store"))
    assert where.outputs_uri("r1") == (tmp_path / "my store" / "runs" / "r1" / "outputs").as_uri() + "/"
    assert where.shared_uri("ws", "p").startswith("file:///") and where.shared_uri("ws", "p").endswith("/shared/ws/p/")
    with pytest.raises(ValueError):
        where.outputs_uri("r1", scheme="wasbs")
    relative = parse_location("relative/folder")
    assert relative.local_path == Path.cwd() / "relative" / "folder"


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "empty"),
        ("s3://bucket/x", "Unsupported"),
        ("https://acct.blob.core.windows.net/runs", "Unsupported"),
        ("wasbs://acct.blob.core.windows.net/x", "names no container"),
        ("wasbs:///x", "names no container"),
        ("wasbs://runs@acct.dfs.core.windows.net/x", "must be ACCOUNT.blob"),
        ("abfss://runs@acct.blob.core.windows.net/x", "must be ACCOUNT.dfs"),
        ("wasbs://runs@acct/x", "must be ACCOUNT.blob"),
        ("wasbs://runs@acct.blob./x", "must be ACCOUNT.blob"),
        ("wasbs://runs@acct.blob.core.windows.net:443/x", "endpoint suffix"),
        ("wasbs://runs@acct.blob.core.windows.net/a/../b", "may not contain"),
        ("wasbs://runs@acct.blob.core.windows.net/a//b", "may not contain"),
        ("file://server/share", "not a local file URL"),
    ],
)
def test_malformed_locations(text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        parse_location(text)


def test_secrets_in_a_url_are_refused_without_being_echoed() -> None:
    for text in (
        "wasbs://runs@acct.blob.core.windows.net/x?sv=2024&sig=SECRETSIG",
        "wasbs://user:SECRETPASS@acct.blob.core.windows.net/x",
    ):
        with pytest.raises(ConfigError) as caught:
            parse_location(text)
        assert "SECRET" not in str(caught.value)


@pytest.mark.parametrize("account", ["acct", "abc", "a" * 24, "devstoreaccount1", "0123"])
def test_valid_accounts(account: str) -> None:
    assert parse_location(f"wasbs://runs@{account}.blob.core.windows.net").account == account


@pytest.mark.parametrize("account", ["ab", "a" * 25, "my_acct", "my-acct"])
def test_invalid_accounts(account: str) -> None:
    with pytest.raises(ConfigError, match="not a storage account name"):
        parse_location(f"wasbs://runs@{account}.blob.core.windows.net")


def test_account_names_are_case_insensitive_hosts() -> None:
    assert parse_location("wasbs://runs@MyAcct.blob.core.windows.net").account == "myacct"


@pytest.mark.parametrize("container", ["abc", "a-b-c", "runs2", "0ab", "a" * 63, "$root"])
def test_valid_containers(container: str) -> None:
    assert parse_location(f"wasbs://{container}@acct.blob.core.windows.net").container == container


@pytest.mark.parametrize("container", ["ab", "a" * 64, "-abc", "abc-", "a--b", "ABC", "a_b", "$logs", "a.b"])
def test_invalid_containers(container: str) -> None:
    with pytest.raises(ConfigError, match="not a blob container name"):
        parse_location(f"wasbs://{container}@acct.blob.core.windows.net")


def test_run_ids_and_names_must_be_single_parts() -> None:
    where = parse_location(WASBS)
    for bad in ("../x", "a/b", ""):
        with pytest.raises(ConfigError):
            where.outputs_uri(bad)
        with pytest.raises(ConfigError):
            where.shared_uri("ws", bad)


def test_hadoop_credential_key_names() -> None:
    assert account_key_setting("acct") == "fs.azure.account.key.acct.blob.core.windows.net"
    assert account_key_setting("acct", dfs=True) == "fs.azure.account.key.acct.dfs.core.windows.net"
    assert sas_setting("acct", "runs") == "fs.azure.sas.runs.acct.blob.core.windows.net"
    assert parse_location(WASBS).account_key_setting() == "fs.azure.account.key.acct.blob.core.windows.net"
    assert parse_location("abfss://runs@acct.dfs.core.windows.net").account_key_setting() == (
        "fs.azure.account.key.acct.dfs.core.windows.net"
    )
    assert parse_location(WASBS).sas_setting() == "fs.azure.sas.runs.acct.blob.core.windows.net"
    with pytest.raises(ConfigError):
        account_key_setting("Not_An_Account")
    with pytest.raises(ValueError):
        parse_location("/tmp/store").account_key_setting()
