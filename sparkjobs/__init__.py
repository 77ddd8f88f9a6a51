"""sparkjobs: run a project's PySpark scripts on local Spark, Spark clusters and HDInsight.

This module stays empty on purpose: it is shipped to clusters next to ``context.py`` (the one
thing a job imports, ``from sparkjobs import context``), where nothing else of sparkjobs and
none of its dependencies are installed. Importing ``sparkjobs`` must therefore import nothing.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
