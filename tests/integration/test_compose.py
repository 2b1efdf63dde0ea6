"""Structural checks of deploy/docker-compose.yml and the configuration it mounts.

CI has no Docker engine, so ``docker compose up`` cannot prove the deployment here. These checks
catch what breaks it most often without one: a service renamed or missing, a mounted path that
moved, a scrape target naming no service, an alert or dashboard panel querying a metric that no
service exports, a job name that alerts use but Prometheus does not scrape. Pure file reads: no
network, no stack needed.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.registered_metrics import registered_metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"

SERVICES = {
    "kafka",
    "postgres",
    "chat",
    "presence",
    "notifier",
    "gateway-1",
    "gateway-2",
    "proxy",
    "prometheus",
    "grafana",
}
APP_SERVICES = ("chat", "presence", "notifier", "gateway-1", "gateway-2")
APP_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "AUTH_SECRET",
    "CHAT_URL",
    "PRESENCE_URL",
    "NOTIFIER_URL",
    "GATEWAY_PORT",
    "CHAT_PORT",
    "PRESENCE_PORT",
    "NOTIFIER_PORT",
    "VAPID_PUBLIC_KEY",
}
# Registered by services/runtime/metrics.py, services/gateway/metrics.py and any other module.
METRICS = set(registered_metrics())
HISTOGRAM_SERIES = re.compile(r"_(bucket|sum|count)$")
METRIC_TOKEN = re.compile(r"\brealtime_[a-z0-9_]+")
JOB_MATCHER = re.compile(r'\bjob\s*=~?\s*"([^"]*)"')


def load_yaml(path: Path) -> Any:
    """Parse a YAML file (anchors and merge keys resolved, as compose does)."""
    with path.open() as handle:
        return yaml.safe_load(handle)


def metrics_in(expr: str) -> set[str]:
    """The realtime_* metric families a PromQL expression reads (histogram series folded)."""
    return {HISTOGRAM_SERIES.sub("", token) for token in METRIC_TOKEN.findall(expr)}


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path (resolved against deploy/) of a service's bind mounts."""
    mounts = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (DEPLOY / source).resolve()
    return mounts


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed compose file."""
    document = load_yaml(COMPOSE)
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def prometheus_config() -> dict[str, Any]:
    """The parsed Prometheus configuration."""
    document = load_yaml(DEPLOY / "prometheus" / "prometheus.yml")
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def job_names(prometheus_config: dict[str, Any]) -> set[str]:
    """Scrape job names, which alerts and dashboards filter on."""
    return {job["job_name"] for job in prometheus_config["scrape_configs"]}


def test_every_required_service_is_defined(compose: dict[str, Any]) -> None:
    assert SERVICES <= set(compose["services"])


def test_build_contexts_and_dockerfiles_exist(compose: dict[str, Any]) -> None:
    built = {name: svc["build"] for name, svc in compose["services"].items() if "build" in svc}
    assert set(APP_SERVICES) <= set(built)
    for name, build in built.items():
        context = (DEPLOY / build["context"]).resolve()
        assert context.is_dir(), f"{name}: build context {context} missing"
        dockerfile = context / build.get("dockerfile", "Dockerfile")
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"


def test_volumes_are_existing_paths_or_declared_named_volumes(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for entry in service.get("volumes", []):
            source = entry.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: mounted path {source} missing"
            else:
                assert source in declared, f"{name}: named volume {source} not declared"


def test_dependencies_exist_and_healthy_ones_have_healthchecks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, service in services.items():
        depends = service.get("depends_on", {})
        conditions = depends if isinstance(depends, dict) else dict.fromkeys(depends)
        for dependency, spec in conditions.items():
            assert dependency in services, f"{name} depends on undefined {dependency}"
            if (spec or {}).get("condition") == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck"


@pytest.mark.parametrize("service", ["chat", "presence", "notifier"])
def test_service_waits_for_kafka_and_postgres_and_its_migrations(
    compose: dict[str, Any], service: str
) -> None:
    services = compose["services"]
    depends = services[service]["depends_on"]
    assert depends["kafka"]["condition"] == "service_healthy"
    assert depends["postgres"]["condition"] == "service_healthy"
    migrations = [
        name
        for name, spec in depends.items()
        if spec["condition"] == "service_completed_successfully"
    ]
    assert migrations, f"{service} must start after its migrations ran"
    assert services[migrations[0]]["command"][-2:] == [f"services.{service}", "migrate"]


def test_services_check_readiness(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        test = " ".join(compose["services"][name]["healthcheck"]["test"])
        assert "/readyz" in test, f"{name} healthcheck does not ask /readyz"


def test_app_services_get_their_connection_settings(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        environment = compose["services"][name]["environment"]
        assert isinstance(environment, dict)
        assert APP_ENV <= set(environment), f"{name} lacks {APP_ENV - set(environment)}"


def test_prometheus_config_and_rules_are_mounted_where_it_reads_them(
    compose: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    mounts = bind_mounts(compose["services"]["prometheus"])
    assert mounts["/etc/prometheus/prometheus.yml"] == DEPLOY / "prometheus" / "prometheus.yml"
    for rule_file in prometheus_config["rule_files"]:
        assert rule_file in mounts, f"rule file {rule_file} is not mounted"
        assert mounts[rule_file].is_file()


def test_scrape_targets_are_services_on_their_configured_ports(
    compose: dict[str, Any], prometheus_config: dict[str, Any]
) -> None:
    services = compose["services"]
    scraped = set()
    for job in prometheus_config["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host, port = target.rsplit(":", 1)
                if host == "localhost":
                    continue  # Prometheus scraping itself
                assert host in services, f"job {job['job_name']}: {host} is no compose service"
                environment = services[host].get("environment", {})
                ports = ("GATEWAY_PORT", "CHAT_PORT", "PRESENCE_PORT", "NOTIFIER_PORT")
                assert port in {environment.get(name) for name in ports}
                scraped.add(host)
    assert set(APP_SERVICES) <= scraped


def test_alert_rules_use_known_jobs_and_metrics(job_names: set[str]) -> None:
    document = load_yaml(DEPLOY / "prometheus" / "alerts.yml")
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    covered: set[str] = set()
    for rule in rules:
        expr = rule["expr"]
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert rule["annotations"]["summary"]
        for matcher in JOB_MATCHER.findall(expr):
            assert set(matcher.split("|")) <= job_names, f"{rule['alert']}: unknown job"
        used = metrics_in(expr)
        assert used <= METRICS, f"{rule['alert']} queries unknown {used - METRICS}"
        if re.search(r"\bup\{", expr):
            used.add("up")
        assert used, f"{rule['alert']} queries no known metric"
        covered |= used
    # Service down, consumer lag, DLQ growth, delivery latency and error rate each have a rule.
    wanted = {
        "up",
        "realtime_consumer_lag",
        "realtime_dlq_records_total",
        "realtime_delivery_latency_seconds",
        "realtime_errors_total",
    }
    assert wanted <= covered
    latency = next(r for r in rules if "realtime_delivery_latency_seconds" in r["expr"])
    assert "histogram_quantile(0.99" in latency["expr"] and "> 0.25" in latency["expr"]


def test_dashboard_panels_query_known_metrics_from_the_provisioned_datasource() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "realtime.json").read_text())
    datasources = load_yaml(DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    uids = {source["uid"] for source in datasources["datasources"]}
    panels = [
        panel
        for top in dashboard["panels"]
        for panel in [top, *top.get("panels", [])]
        if panel.get("type") != "row"
    ]
    covered: set[str] = set()
    for panel in panels:
        assert panel["datasource"]["uid"] in uids, f"{panel['title']}: unknown datasource"
        assert panel["targets"], f"{panel['title']} has no query"
        for target in panel["targets"]:
            used = metrics_in(target["expr"])
            assert used, f"{panel['title']}: {target['expr']} uses no known metric"
            assert used <= METRICS, f"{panel['title']} queries unknown {used - METRICS}"
            covered |= used
    # Every metric is on a panel or deliberately left off: tests/unit/test_dashboard.py.
    assert covered <= METRICS


def test_grafana_loads_dashboards_from_the_mounted_folder(compose: dict[str, Any]) -> None:
    mounts = bind_mounts(compose["services"]["grafana"])
    provisioning = mounts["/etc/grafana/provisioning"]
    providers = load_yaml(provisioning / "dashboards" / "realtime.yml")["providers"]
    for provider in providers:
        folder = mounts[provider["options"]["path"]]
        assert any(folder.glob("*.json")), f"no dashboard in {folder}"


def test_proxy_upgrades_websockets_to_both_gateways(compose: dict[str, Any]) -> None:
    config_path = bind_mounts(compose["services"]["proxy"])["/etc/nginx/nginx.conf"]
    config = config_path.read_text()
    assert "location = /v1/ws" in config
    assert "proxy_set_header Upgrade $http_upgrade;" in config
    assert "proxy_set_header Connection $connection_upgrade;" in config
    assert "proxy_http_version 1.1;" in config
    for gateway in ("gateway-1", "gateway-2"):
        port = compose["services"][gateway]["environment"]["GATEWAY_PORT"]
        assert f"server {gateway}:{port}" in config
    assert "/healthz" in config


def test_only_the_proxy_is_published_beyond_this_host(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for mapping in service.get("ports", []):
            if name == "proxy":
                continue
            # "127.0.0.1:9090:9090": published on the host's loopback only.
            assert str(mapping).startswith("127.0.0.1:"), f"{name} publishes {mapping}"
    for name in APP_SERVICES:
        assert "ports" not in compose["services"][name], f"{name} publishes an internal port"


def test_app_services_listen_on_the_network_explicitly(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        environment = compose["services"][name]["environment"]
        for variable in ("GATEWAY_HOST", "CHAT_HOST", "PRESENCE_HOST"):
            assert environment[variable] == "0.0.0.0", f"{name}: {variable}"


def test_every_app_service_reads_the_generated_internal_token(compose: dict[str, Any]) -> None:
    services = compose["services"]
    generator = services["internal-token"]
    written = {entry.split(":")[1] for entry in generator["volumes"]}
    readers = [name for name, svc in services.items() if svc.get("image") == "realtime-app:local"]
    assert set(APP_SERVICES) | {"chat-migrate", "presence-migrate"} <= set(readers)
    for name in readers:
        if name == "internal-token":
            continue
        service = services[name]
        token_file = service["environment"]["INTERNAL_TOKEN_FILE"]
        mounts = {entry.split(":")[1]: entry for entry in service["volumes"]}
        directory = token_file.rsplit("/", 1)[0]
        assert directory in written and directory in mounts, f"{name}: {token_file} not mounted"
        assert mounts[directory].endswith(":ro"), f"{name} may rewrite the token"
        condition = service["depends_on"]["internal-token"]["condition"]
        assert condition == "service_completed_successfully", name
    assert "secrets.token_urlsafe" in " ".join(generator["command"])


def test_gateways_trust_exactly_the_proxy_for_client_addresses(compose: dict[str, Any]) -> None:
    services = compose["services"]
    proxy_address = services["proxy"]["networks"]["default"]["ipv4_address"]
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert ipaddress.ip_address(proxy_address) in ipaddress.ip_network(subnet)
    for name in ("gateway-1", "gateway-2"):
        environment = services[name]["environment"]
        assert environment["GATEWAY_TRUSTED_PROXIES"] == proxy_address
    assert (
        "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;"
        in (DEPLOY / "nginx.conf").read_text()
    )
