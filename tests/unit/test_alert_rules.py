"""The alert rules, checked and unit-tested by Prometheus' own ``promtool``.

Every alert in deploy/prometheus/alerts.yml has a test file deploy/prometheus/tests/<alert>.yml
that ``promtool test rules`` runs; this module holds each file to a minimum: the alert fires on
its condition, is not yet firing while its ``for:`` runs, and stays quiet on healthy input. It
also holds every alert to a runbook entry in docs/operations.md. Adding an alert (the notifier's
push failures, say) is one rule, one test file and one runbook entry.

``promtool`` comes from Debian's ``prometheus`` package, which ``make test`` installs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "alerts.yml"
RULE_TESTS = PROMETHEUS / "tests"
OPERATIONS = ROOT / "docs" / "operations.md"
DURATION = re.compile(r"(\d+)(ms|s|m|h|d)")
UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def promtool() -> str:
    """Path of promtool; a missing one fails (never skips) with how to get it."""
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool not found: `make test` installs Debian's prometheus package")
    return path


def seconds(duration: str | int) -> float:
    """A Prometheus duration (``1m``, ``1h30m``, ``0s``) in seconds."""
    text = str(duration)
    parts = DURATION.findall(text)
    assert parts and "".join(n + u for n, u in parts) == text, f"bad duration {text!r}"
    return sum(int(number) * UNIT_S[unit] for number, unit in parts)


def alerts() -> list[dict[str, Any]]:
    """Every alerting rule of alerts.yml."""
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


ALERTS = {rule["alert"]: rule for rule in alerts()}


def github_anchor(heading: str) -> str:
    """The anchor a Markdown heading gets on GitHub (lower case, punctuation dropped)."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def test_promtool_checks_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_test_file_belongs_to_an_alert() -> None:
    names = {path.stem for path in RULE_TESTS.glob("*.yml")}
    assert names <= set(ALERTS), f"tests for alerts that do not exist: {names - set(ALERTS)}"


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_alert_has_labels_and_a_runbook_entry(alert: str) -> None:
    rule = ALERTS[alert]
    assert rule["labels"]["severity"] in {"critical", "warning"}
    assert rule["annotations"]["summary"]
    runbook = rule["annotations"]["runbook"]
    path, _, anchor = runbook.partition("#")
    assert path == "docs/operations.md", runbook
    anchors = {
        github_anchor(line.lstrip("#"))
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    assert anchor in anchors, f"{alert}: no heading for #{anchor} in docs/operations.md"


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_alert_has_a_unit_test_that_fires_it_after_its_for_and_not_on_healthy_input(
    alert: str,
) -> None:
    path = RULE_TESTS / f"{alert}.yml"
    assert path.is_file(), f"{alert}: write {path.relative_to(ROOT)} (promtool test rules)"
    document = yaml.safe_load(path.read_text())
    assert [(path.parent / name).resolve() for name in document["rule_files"]] == [RULES]
    wait_s = seconds(ALERTS[alert].get("for", "0s"))
    fires = quiet = pending = False
    for case in document["tests"]:
        checks = [check for check in case["alert_rule_test"] if check["alertname"] == alert]
        firing = [seconds(check["eval_time"]) for check in checks if check["exp_alerts"]]
        silent = [seconds(check["eval_time"]) for check in checks if not check["exp_alerts"]]
        fires |= bool(firing)
        # A case where it never fires: healthy input.
        quiet |= bool(silent) and not firing
        # Quiet shortly before it fires: the `for:` is honoured (no test for `for: 0m`).
        if firing and wait_s > 0:
            pending |= any(min(firing) - wait_s <= t < min(firing) for t in silent)
        assert all(t >= wait_s for t in firing), f"{alert} fires before its for: {wait_s} s"
    assert fires, f"{path.name}: no check expects {alert} to fire"
    assert quiet, f"{path.name}: no case of healthy input where {alert} never fires"
    assert pending or wait_s == 0, f"{path.name}: no check that {alert} waits for its for:"


@pytest.mark.parametrize("alert", sorted(ALERTS))
def test_promtool_runs_the_alert_unit_test(alert: str) -> None:
    result = subprocess.run(
        [promtool(), "test", "rules", str(RULE_TESTS / f"{alert}.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
