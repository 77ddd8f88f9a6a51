"""Compute targets, peers behind the Target seam; imported lazily by type."""
from __future__ import annotations

from typing import Mapping

from ..config import ComputeSettings, TargetType
from .base import Execution, Outcome, SubmitPlan, Target

__all__ = ["make_target", "Target", "Execution", "Outcome", "SubmitPlan"]


def make_target(compute: ComputeSettings, environ: Mapping[str, str]) -> Target:
    if compute.type is TargetType.LOCAL:
        from .local import LocalTarget

        return LocalTarget(environ)
    if compute.type is TargetType.SPARK:
        from .spark import SparkClusterTarget

        return SparkClusterTarget(environ)
    from .cluster import LivyTarget

    return LivyTarget(environ)
