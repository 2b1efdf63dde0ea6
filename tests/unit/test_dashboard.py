"""The Grafana dashboard follows the metrics: every metric a service registers is on a panel,
or listed here as deliberately left off, and every panel queries metrics that exist.

(Whether each query returns data is checked against a real Prometheus scraping the test stack
in tests/integration/test_prometheus.py.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from tests.registered_metrics import registered_metrics

DASHBOARDS = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")
METRIC_TOKEN = re.compile(r"\brealtime_[a-z0-9_]+")

#: Metrics deliberately not on any panel, each with the reason. Empty today: every metric earns
#: a panel. A metric for tools or debugging only would be listed here.
UNPANELLED: dict[str, str] = {}


def panels() -> list[dict[str, Any]]:
    """Every panel of every provisioned dashboard (rows unfolded)."""
    found: list[dict[str, Any]] = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for top in json.loads(path.read_text())["panels"]:
            found.extend(p for p in [top, *top.get("panels", [])] if p.get("type") != "row")
    return found


def panelled_metrics() -> set[str]:
    """The realtime_* metrics the panels query (histogram series folded into their family)."""
    return {
        HISTOGRAM_SERIES.sub("", token)
        for panel in panels()
        for target in panel["targets"]
        for token in METRIC_TOKEN.findall(target["expr"])
    }


def test_every_registered_metric_is_on_a_panel_or_deliberately_left_off() -> None:
    missing = set(registered_metrics()) - panelled_metrics() - set(UNPANELLED)
    assert not missing, f"put these metrics on a panel, or in UNPANELLED with why: {missing}"


def test_panels_query_only_registered_metrics() -> None:
    unknown = panelled_metrics() - set(registered_metrics())
    assert not unknown, f"panels query metrics no service registers: {unknown}"


def test_unpanelled_metrics_exist_and_really_are_unpanelled() -> None:
    assert set(UNPANELLED) <= set(registered_metrics())
    assert not set(UNPANELLED) & panelled_metrics()


def test_panel_ids_are_unique_and_every_panel_has_a_query_and_a_description() -> None:
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["targets"] and panel["description"], panel["title"]
