"""Outputs of a bench run: the JSON result file, PNG plots and the short table on stdout."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

Result = dict[str, Any]


def write_json(result: Result, path: Path) -> None:
    """Write the result file (indented, keys in insertion order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")


def table(result: Result) -> str:
    """The short human-readable summary printed at the end of a run."""
    lines: list[str] = []
    machine = result.get("machine", {})
    lines.append(
        f"machine: {machine.get('cores')} cores, {machine.get('memory_gib')} GiB,"
        f" {machine.get('cpu_model', '')}"
        + (
            f", guest halt-polling {machine['guest_halt_poll_ns']} ns"
            if "guest_halt_poll_ns" in machine
            else ""
        )
    )
    if result.get("duel"):
        from bench.duel import table as duel_table

        lines.extend(duel_table(result["duel"]))
    over = result.get("overload")
    if over:
        capacity = over["sizes"]["capacity"]
        lines.append("")
        lines.append(
            f"overload {capacity} -> {2 * capacity} -> {capacity} msgs/s: sent {over['sent']},"
            f" acked {over['acked']}, refused {over['refused']} (retry_after_ms p50"
            f" {over['retry_after_ms']['p50_ms']:.0f}); delivery p99 while overloaded"
            f" {over['overload_delivery']['p99_ms']} ms; recovery {over['recovery_s']} s after"
            f" the load fell; acked but missing after sync: {over['acked_missing_after_sync']}"
        )
    if result.get("latency"):
        lines.append("")
        lines.append(
            "rate/s   sent    lost  p50 ms  p95 ms  p99 ms  max ms  ack p50  ack p99"
            "   cores: gw   chat  pres  kafka    pg  loadgen other"
        )
        for row in result["latency"]:
            cores = row.get("cpu", {}).get("cores", {})
            lines.append(
                f"{row['rate']:>6} {row['sent']:>6} {row['lost']:>7} {row['p50_ms']:>7.1f}"
                f" {row['p95_ms']:>7.1f} {row['p99_ms']:>7.1f} {row['max_ms']:>7.1f}"
                f" {row['ack_p50_ms']:>8.1f} {row['ack_p99_ms']:>8.1f}"
                f"        {_core(cores, 'gateway')} {_core(cores, 'chat')}"
                f" {_core(cores, 'presence')}"
                f" {_core(cores, 'kafka')} {_core(cores, 'postgres')} {_core(cores, 'loadgen')}"
                f"  {_core(cores, 'other')}"
            )
        limit = result.get("latency_limit")
        if limit:
            lines.append(f"limit: {limit['rate']} msgs/s ({limit['reason']})")
        else:
            lines.append("limit: not reached at the rates tried")
    if "max_sustained_rate" in result:
        sustained = result.get("sustained", {})
        lines.append("")
        lines.append(
            f"max sustained persisted rate: {result['max_sustained_rate']} msgs/s"
            f" (p99 < {sustained.get('p99_limit_ms')} ms for {sustained.get('duration_s')} s,"
            " every acked message synced)"
        )
    idle = result.get("idle")
    if idle:
        lines.append("")
        lines.append(
            f"idle: {idle['connections']} connections in {idle['open_s']} s,"
            f" {idle['rss_per_conn_kib']} KiB gateway RSS each;"
            f" p99 beside them {idle['p99_ms_after']} ms"
        )
    traced = result.get("hops")
    if traced:
        lines.append(
            f"hops at {traced['rate']:g} msgs/s, p50 ms:"
            f" gateway in {traced['gateway_in']['p50_ms']},"
            f" Kafka hop {traced['kafka_hop']['p50_ms']},"
            f" chat {traced['chat']['p50_ms']},"
            f" gateway out {traced['gateway_out']['p50_ms']};"
            f" end to end {traced['end_to_end']['p50_ms']} ({traced['traced']} traced)"
        )
    hop = result.get("kafkahop")
    if hop:
        lines.append("")
        lines.append(
            f"one Kafka hop alone, {hop['rate']} records/s of {hop['record_bytes']} bytes"
            f" (broker idle: {hop['broker_idle_cores']} cores, subtracted): p50 / p99 ms,"
            " CPU us per record: broker / producer / consumer, broker switches"
        )
        for run in hop["runs"]:
            cpu = run["cpu_us_per_record"]
            lines.append(
                f"  {run['producer']:>9} -> {run['consumer']:<9} linger {run['linger_ms']:>2} ms"
                f"  {run['p50_ms']:6.2f} / {run['p99_ms']:6.2f}"
                f"  {cpu['broker']:6.0f} / {cpu['producer']:5.0f} / {cpu['consumer']:5.0f}"
                f"  {run['broker_switches_per_record']:5.2f}"
                + (f"  ({run['lost']} not received)" if run["lost"] else "")
            )
    alert = result.get("notifications")
    if alert:
        cores = alert.get("cpu", {}).get("cores", {})
        lines.append("")
        lines.append(
            f"job alert to {alert['users']} users in {alert['events']} events"
            f" ({alert['connected']} connected): last connected after"
            f" {alert['last_connected_ms']} ms, all stored after {alert['stored_ms']} ms"
            f" ({alert['stored_per_s']}/s); notifier {alert['notifier_cpu_us_per_notification']}"
            f" us CPU per notification; cores: notifier {_core(cores, 'notifier')}"
            f" gw {_core(cores, 'gateway')} kafka {_core(cores, 'kafka')}"
            f" pg {_core(cores, 'postgres')}"
        )
    fanout = result.get("fanout")
    if fanout:
        lines.append(
            f"fan-out to {fanout['devices']} devices: p50 {fanout['p50_ms']} ms,"
            f" p99 {fanout['p99_ms']} ms (last device p99 {fanout['last_device_p99_ms']} ms)"
        )
    group = result.get("groupfanout")
    if group:
        every, last = group["every_member"], group["last_member"]
        lines.append(
            f"group fan-out to {group['members']} members at {group['rate']:g} msgs/s:"
            f" p50 {every['p50_ms']} ms, p99 {every['p99_ms']} ms;"
            f" last member p50 {last['p50_ms']} ms, p99 {last['p99_ms']} ms"
            f" ({group['incomplete']} incomplete)"
        )
    stored = result.get("reads")
    if stored:
        lines.append(
            f"reads over {stored['messages']:,} messages ({stored['messages_table_mib']} MiB),"
            f" {stored['requests']} of each, one at a time:"
        )
        for name in ("list", "history", "search", "search_heavy"):
            row = stored[name]
            lines.append(
                f"  {name:<12} p50 {row['p50_ms']:>6} ms  p99 {row['p99_ms']:>6} ms"
                f"  max {row['max_ms']:>6} ms  refused {row['refused']}"
            )
    return "\n".join(lines)


def _core(cores: dict[str, float], role: str) -> str:
    value = cores.get(role)
    return f"{value:5.2f}" if value is not None else "    -"


def plot(result: Result, directory: Path) -> list[Path]:
    """latency.png (percentiles against offered load), memory.png (gateway RSS against
    connections) and cpu.png (cores used per process at each rate); returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    rows = result.get("latency") or []
    if rows:
        rates = [float(row["rate"]) for row in rows]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for key, label, style in (
            ("p50_ms", "delivery p50", "o-"),
            ("p95_ms", "delivery p95", "s-"),
            ("p99_ms", "delivery p99", "^-"),
            ("max_ms", "delivery max", "x:"),
            ("ack_p99_ms", "ack p99", "v--"),
        ):
            ax.plot(rates, [max(float(row[key]), 0.1) for row in rows], style, label=label)
        ax.axhline(25, color="grey", linewidth=0.8, linestyle="--")
        ax.axhline(100, color="grey", linewidth=0.8, linestyle="-.")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered load (direct messages / s)")
        ax.set_ylabel("latency (ms)")
        ax.set_title("End-to-end latency against offered load")
        ax.grid(True, which="both", linewidth=0.3)
        ax.legend(fontsize=8)
        written.append(_save(fig, directory / "latency.png", plt))

        roles = ["gateway", "chat", "presence", "kafka", "postgres", "loadgen", "other"]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        bottoms = [0.0] * len(rows)
        positions = list(range(len(rows)))
        for role in roles:
            values = [float(row.get("cpu", {}).get("cores", {}).get(role, 0.0)) for row in rows]
            ax.bar(positions, values, bottom=bottoms, label=role)
            bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
        ax.axhline(float(result.get("machine", {}).get("cores") or 2), color="black", linewidth=1)
        ax.set_xticks(positions)
        ax.set_xticklabels([str(row["rate"]) for row in rows])
        ax.set_xlabel("offered load (direct messages / s)")
        ax.set_ylabel("CPU (cores)")
        ax.set_title("CPU per process during each latency step")
        ax.legend(fontsize=8)
        written.append(_save(fig, directory / "cpu.png", plt))
    idle = result.get("idle")
    if idle and idle.get("steps"):
        steps = idle["steps"]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        counts = [float(step["connections"]) for step in steps]
        ax.plot(counts, [float(step["rss_mib"]) for step in steps], "o-", label="gateway RSS")
        for step in steps:
            ax.annotate(
                f"{step['rss_per_conn_kib']:.1f} KiB/conn",
                (float(step["connections"]), float(step["rss_mib"])),
                textcoords="offset points",
                xytext=(-30, 8),
                fontsize=7,
            )
        ax.set_xlabel("open idle connections")
        ax.set_ylabel("gateway RSS (MiB)")
        ax.set_title("Gateway memory against idle connections")
        ax.grid(True, linewidth=0.3)
        ax.legend(fontsize=8)
        written.append(_save(fig, directory / "memory.png", plt))
    return written


def _save(fig: Any, path: Path, plt: Any) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def say(text: str) -> None:
    """Print to stdout (the table is the program's output, not a log record)."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()
