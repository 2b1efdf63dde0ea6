"""The metrics our services register, found by importing every module under ``services``.

Dashboards and alerts (deploy/) must follow the code: tests compare their queries with this
set, so a metric renamed in code, or added without a panel, fails a test.
"""

from __future__ import annotations

import importlib
import pkgutil

from prometheus_client import REGISTRY

import services

PREFIX = "realtime_"


def registered_metrics() -> dict[str, str]:
    """Metric name as PromQL names it (counters with ``_total``) -> its type."""
    for module in pkgutil.walk_packages(services.__path__, prefix="services."):
        importlib.import_module(module.name)
    found: dict[str, str] = {}
    for family in REGISTRY.collect():
        if not family.name.startswith(PREFIX):
            continue
        name = f"{family.name}_total" if family.type == "counter" else family.name
        found[name] = family.type
    return found
