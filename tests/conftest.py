"""Shared fixtures. Each real component has its own plugin module under tests/plugins/."""
pytest_plugins = [
    "plugins.paths",
    "plugins.azurite",
    "plugins.livy_server",
    "plugins.gateway",
    "plugins.spark_cluster",
]
