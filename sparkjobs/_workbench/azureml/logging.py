"""Azure ML Workbench's logging API, so that Workbench scripts run unchanged under sparkjobs::

    from azureml.logging import get_azureml_logger
    logger = get_azureml_logger()
    logger.log("Accuracy", 0.93)          # a number: one point of the metric
    logger.log("Cell", "Load Data")       # a string: a text point
    logger.log("all values", [5, 6, 7])   # a list: one point per item, in order

Each call becomes ``sparkjobs.context.log_metric``: the run record gets the last value of each
name, and the run store keeps every point.
"""
from __future__ import annotations

from typing import Any

from sparkjobs import context

__all__ = ["AzureMLLogger", "get_azureml_logger"]


class AzureMLLogger:
    """What ``get_azureml_logger()`` returns."""

    def log(self, name: str, value: Any) -> "AzureMLLogger":
        if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
            value = value.tolist()  # a numpy array or scalar, as Workbench took them
        if isinstance(value, (list, tuple)):
            for item in value:
                context.log_metric(name, item)
        else:
            context.log_metric(name, value)
        return self


_LOGGER = AzureMLLogger()


def get_azureml_logger() -> AzureMLLogger:
    return _LOGGER
