"""The one launcher of service processes: the environment it hands on, and that it stays
importable by deploy/local/stack.py, which runs before any dependency is installed."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from deploy.local import launcher
from deploy.local.launcher import service_env

BASE = {
    "HOME": "/root",
    "PYTHONASYNCIODEBUG": "1",
    "NOTIFIER_URL": "http://127.0.0.1:11003",
    "CHAT_URL": "http://elsewhere:1",
}


def env(**ports: int) -> dict[str, str]:
    return service_env(
        BASE,
        kafka_bootstrap="127.0.0.1:9092",
        database_url="postgresql://pg/db",
        auth_secret="s" * 32,
        ports=ports,
        topic_prefix="it1.",
    )


def test_where_everything_is_comes_from_the_launch_not_the_shell() -> None:
    made = env(chat=8001, presence=8002, gateway=8000)
    assert made["HOME"] == "/root"
    assert made["KAFKA_BOOTSTRAP_SERVERS"] == "127.0.0.1:9092"
    assert made["DATABASE_URL"] == "postgresql://pg/db"
    assert made["KAFKA_TOPIC_PREFIX"] == "it1."
    assert made["CHAT_URL"] == "http://127.0.0.1:8001"
    assert made["PRESENCE_URL"] == "http://127.0.0.1:8002"
    assert (made["CHAT_PORT"], made["PRESENCE_PORT"], made["GATEWAY_PORT"]) == (
        "8001",
        "8002",
        "8000",
    )
    assert "GATEWAY_URL" not in made


def test_a_service_not_launched_is_not_pointed_at() -> None:
    # A shell's NOTIFIER_URL would send every sync to a notifier that is not there.
    assert "NOTIFIER_URL" not in env(chat=8001, gateway=8000)
    assert env(chat=8001, notifier=8003, gateway=8000)["NOTIFIER_URL"] == "http://127.0.0.1:8003"


def test_services_never_run_in_asyncio_debug_mode() -> None:
    assert "PYTHONASYNCIODEBUG" not in env(chat=8001)


def test_launcher_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(launcher.__file__).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert {name.split(".")[0] for name in imported} <= set(sys.stdlib_module_names)
