"""Shared fixtures. Each real component has its own plugin module under tests/plugins/."""
pytest_plugins = [
    "plugins.paths",
    "plugins.azurite",
    "plugins.azurite_tls",
    "plugins.livy_server",
    "plugins.gateway",
    "plugins.spark_cluster",
    "plugins.hdi_cluster",
    "plugins.hdinsight",  # after hdi_cluster: overrides its hdi_cluster_options
]
