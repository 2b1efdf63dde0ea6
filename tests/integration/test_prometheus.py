"""A real Prometheus (Debian's package) scrapes the test stack and evaluates our alert rules and
every dashboard query: what an SRE sees exists, so a misspelt metric or label fails here.

The scrape configuration is generated from deploy/prometheus/prometheus.yml: same job names,
targets replaced by the test services' ephemeral ports, scraped every second. After a little
traffic (a message, a receipt, typing, presence, a refused frame and a dead-lettered record):

- every target is up and every rule group loaded and evaluated without error;
- every rule expression and every panel query is accepted by Prometheus' HTTP API;
- every series selector in them (``metric{labels}``) returns a series, except those listed in
  ``EMPTY_WHEN_IDLE`` (a condition this test does not cause), whose metric must at least be
  exported (its HELP line is in a scrape), and those of a metric no service of the test stack
  exports because its service does not run here yet (the notifier's push worker), which must
  at least be registered in code under that name (tests/registered_metrics.py);
- every panel query returns a series unless it reads such a selector;
- the DLQ record this test dead-letters fires ``RealtimeDLQRecords`` (``for: 0m``).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer

from deploy.local.launcher import free_port
from tests.integration.harness import (
    Client,
    ServiceProcess,
    System,
    of_type,
    seconds,
    send_frame,
    unique,
)
from tests.registered_metrics import registered_metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "alerts.yml"
SCRAPE_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
DASHBOARDS = DEPLOY / "grafana" / "dashboards"
# A metric name followed by an optional label matcher list: one PromQL vector selector.
SELECTOR = re.compile(r"\b(realtime_[a-z0-9_]+|up)\b(\{[^}]*\})?")

#: Selectors with no series on a healthy stack under this test's light traffic, and why. For
#: these the metric name must be exported (HELP line) by some service; conditions are proven
#: by the tests named.
EMPTY_WHEN_IDLE: dict[str, str] = {
    'realtime_gateway_upgrades_refused_total{status="503"}': (
        "only when a gateway is full (tests/integration/test_limits.py fills one)"
    ),
    "realtime_gateway_closes_total": (
        "a server-side close: 4001/4008/4009/4010/1001, none on a calm stack"
    ),
    "realtime_records_skipped_total": (
        "only repeated conversation facts presence already knows (test_consumer_skips.py)"
    ),
    "realtime_inbound_duplicates_total": (
        "only an event published twice on a deduplicated topic (test_inbound_dedupe.py)"
    ),
    "realtime_notifications_skipped_total": (
        "only when a notification is not made (a muted conversation, a kind turned off)"
    ),
    "realtime_pushes_total": "only once a Web Push was attempted (test_push.py sends them)",
    'realtime_pushes_total{outcome=~"failed|given_up"}': (
        "only once a Web Push failed for good (test_push.py makes push services fail)"
    ),
}
HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")


@dataclass
class Prometheus:
    """A running Prometheus and its HTTP API."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    async def api(self, path: str, **params: str) -> Any:
        async with httpx.AsyncClient(timeout=seconds(10)) as client:
            response = await client.get(f"{self.url}/api/v1/{path}", params=params)
        body = response.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    async def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's result vector; a query Prometheus refuses fails the test."""
        data = await self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        result: list[dict[str, Any]] = data["result"]
        return result


def job_services(system: System) -> dict[str, ServiceProcess]:
    """The test services, by the job names deploy/prometheus/prometheus.yml scrapes them as."""
    jobs = {job["job_name"] for job in yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"]}
    jobs.discard("prometheus")
    services = {job: getattr(system, job, None) for job in jobs}
    missing = [job for job, service in services.items() if service is None]
    assert not missing, f"jobs of prometheus.yml the test system does not run: {missing}"
    return {job: service for job, service in services.items() if service is not None}


@pytest.fixture(scope="module")
async def prometheus(
    system: System, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus not found: `make test` installs Debian's prometheus package")
    workdir = Path(tmp_path_factory.mktemp("prometheus"))
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [
            {
                "job_name": job,
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"127.0.0.1:{service.port}"]}],
            }
            for job, service in sorted(job_services(system).items())
        ],
    }
    server = start_prometheus(binary, workdir, config, system.logs / "prometheus.log")
    try:
        await wait_until_ready(server)
        yield server
    finally:
        server.process.terminate()
        try:
            server.process.wait(timeout=seconds(20))
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()


def start_prometheus(
    binary: str, workdir: Path, config: dict[str, Any], log_path: Path
) -> Prometheus:
    """Write the configuration and start Prometheus on an ephemeral loopback port."""
    config_path = workdir / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config))
    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return Prometheus(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)


async def wait_until_ready(server: Prometheus) -> None:
    deadline = time.monotonic() + seconds(30)
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise AssertionError(f"prometheus exited:\n{server.log_path.read_text()[-3000:]}")
            try:
                if (await client.get(f"{server.url}/-/ready")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("prometheus not ready")


def rule_expressions() -> dict[str, str]:
    """Alert name -> expression."""
    document = yaml.safe_load(RULES.read_text())
    return {rule["alert"]: rule["expr"] for group in document["groups"] for rule in group["rules"]}


def panel_expressions() -> dict[str, str]:
    """``dashboard / panel / refId`` -> expression, with Grafana's rate window filled in."""
    found = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        for top in json.loads(path.read_text())["panels"]:
            for panel in [top, *top.get("panels", [])]:
                for target in panel.get("targets", []):
                    key = f"{path.stem} / {panel['title']} / {target['refId']}"
                    found[key] = target["expr"].replace("$__rate_interval", "1m")
    return found


def selectors(expr: str) -> set[str]:
    """The vector selectors of an expression, histogram series folded to ``_bucket`` as written."""
    return {name + (labels or "") for name, labels in SELECTOR.findall(expr)}


def family(selector: str) -> str:
    """The metric a selector reads, as the registry names it (histogram series folded)."""
    match = SELECTOR.match(selector)
    assert match is not None, selector
    return HISTOGRAM_SERIES.sub("", match.group(1))


async def make_traffic(system: System) -> None:
    """A little of everything the dashboard shows: a conversation, a receipt, typing, presence,
    a refused frame, a refused upgrade, and one dead-lettered record."""
    alice, bob = unique("prom-a"), unique("prom-b")
    a = await Client.connect(system.ws_url, alice)
    b = await Client.connect(system.ws_url, bob)
    try:
        ack = await a.request(send_frame(to=bob, client_msg_id=unique("m")))
        assert ack["type"] == "ack", ack
        message = await b.take(of_type("message.new"))
        conversation = message["message"]["conversation_id"]
        receipt = {"type": "receipt", "conversation_id": conversation, "seq": 1, "status": "read"}
        assert (await b.request(receipt))["type"] == "ack"
        typing = {"type": "typing", "conversation_id": conversation, "state": "start"}
        assert (await a.request(typing))["type"] == "ack"
        assert (await a.request({"type": "presence.set", "status": "away"}))["type"] == "ack"
        assert (await a.request({"type": "sync", "cursor": {}}))["type"] == "ack"
        assert (await a.request({"type": "no.such.type"}))["code"] == "bad_request"
    finally:
        await a.close()
        await b.close()
    async with httpx.AsyncClient() as client:
        refused = await client.get(f"http://127.0.0.1:{system.gateway.port}/v1/ws")
        assert refused.status_code == 401
    producer = AIOKafkaProducer(bootstrap_servers=system.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            system.topic("chat.commands.v1"), b"not a cloudevent", key=unique("k").encode()
        )
    finally:
        await producer.stop()


async def exported_names(system: System) -> set[str]:
    """Metric names with a HELP line in any service's scrape (series or not)."""
    names = set()
    async with httpx.AsyncClient() as client:
        for service in job_services(system).values():
            text = (await client.get(f"http://127.0.0.1:{service.port}/metrics")).text
            names |= {line.split()[2] for line in text.splitlines() if line.startswith("# HELP ")}
    return names


async def test_targets_up_and_every_rule_and_panel_query_has_data(
    system: System, prometheus: Prometheus
) -> None:
    jobs = set(job_services(system))
    deadline = time.monotonic() + seconds(30)
    while True:
        targets = (await prometheus.api("targets"))["activeTargets"]
        up = {target["labels"]["job"] for target in targets if target["health"] == "up"}
        if up == jobs and len(targets) == len(jobs):
            break
        assert time.monotonic() < deadline, f"targets not all up: {targets}"
        await asyncio.sleep(0.2)

    await make_traffic(system)

    rules, panels = rule_expressions(), panel_expressions()
    exported = await exported_names(system) | {"up"}
    every = {s for expr in [*rules.values(), *panels.values()] for s in selectors(expr)}
    # Metrics of services the test stack does not run: registered in code, or a typo.
    elsewhere = {s for s in every if family(s) not in exported}
    unknown = {s for s in elsewhere if family(s) not in registered_metrics()}
    assert not unknown, f"selectors of metrics no code registers (a typo?): {unknown}"
    quiet = set(EMPTY_WHEN_IDLE) | elsewhere
    wanted = every - quiet
    # Every expression is valid PromQL that Prometheus accepts (a misspelt function fails here).
    for name, expr in {**rules, **panels}.items():
        try:
            await prometheus.query(expr)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None

    # Scrapes come every second and rates need two of them: poll until all have data.
    deadline = time.monotonic() + seconds(60)
    while True:
        empty_selectors = [s for s in sorted(wanted) if not await prometheus.query(s)]
        empty_panels = [
            key
            for key, expr in panels.items()
            if not selectors(expr) & quiet and not await prometheus.query(expr)
        ]
        if not empty_selectors and not empty_panels:
            break
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no series for selectors {empty_selectors} / panels {empty_panels}: a typo in a "
                "metric or label name, or a metric that is no longer exported"
            )
        await asyncio.sleep(0.5)

    for selector in EMPTY_WHEN_IDLE:
        assert family(selector) in exported, f"{selector} is not exported by any service"


async def test_rules_load_evaluate_cleanly_and_a_dead_letter_fires_its_alert(
    system: System, prometheus: Prometheus
) -> None:
    expected = set(rule_expressions())
    deadline = time.monotonic() + seconds(60)
    while True:
        groups = (await prometheus.api("rules"))["groups"]
        rules = {rule["name"]: rule for group in groups for rule in group["rules"]}
        assert set(rules) == expected
        errors = {
            name: rule.get("lastError") for name, rule in rules.items() if rule["health"] == "err"
        }
        assert not errors, f"rules fail to evaluate: {errors}"
        evaluated = all(rule["health"] == "ok" for rule in rules.values())
        firing = {
            alert["labels"]["alertname"]
            for alert in (await prometheus.api("alerts"))["alerts"]
            if alert["state"] == "firing"
        }
        if evaluated and "RealtimeDLQRecords" in firing:
            break
        assert time.monotonic() < deadline, f"rules {rules}, firing {firing}"
        await asyncio.sleep(0.5)
