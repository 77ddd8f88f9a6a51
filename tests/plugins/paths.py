"""Isolation: every test gets its own SPARKJOBS_HOME and never touches the user's ~/.sparkjobs."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("sparkjobs-home")
    monkeypatch.setenv("SPARKJOBS_HOME", str(home))
    for name in (
        "SPARKJOBS_HISTORY",
        "SPARKJOBS_CREDENTIALS",
        "SPARKJOBS_LIVY_PASSWORD",
        "AZURE_STORAGE_CONNECTION_STRING",
        "AZURE_STORAGE_KEY",
        "AZURE_STORAGE_SAS_TOKEN",
    ):
        monkeypatch.delenv(name, raising=False)
    return home
