"""Data that ships inside the package: the project template and the Spark defaults.

The repository keeps them at its top level, as ``aml_config/`` and ``spark-conf/``.
pyproject.toml maps those folders to ``sparkjobs._resources.aml_config`` and
``sparkjobs._resources.spark_conf``, so a wheel carries them inside the package wherever pip
installs it. Find them with ``sparkjobs.spark_env.resource_dir``, not by importing these names:
a source checkout (an editable install too) is read at its top level, where setuptools'
editable finder cannot import a folder mapped below a regular package.
"""
