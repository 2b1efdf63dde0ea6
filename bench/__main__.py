"""``python -m bench``: run the scenarios, write bench/results/latest.json and plots, print a table.

``make bench`` starts Kafka and Postgres first and exports their addresses; the bench starts
its own chat, presence, notifier and gateway. ``--help`` lists the sizes; ``--full`` uses the
issue's figures (60 s sustained probes, longer steps, a job alert to 10,000 users) instead of
the few-minute defaults.
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvloop

from bench import duel, groups, hops, kafkahop, notifications, overload, profile, scenarios
from bench.chatdata import DataSizes
from bench.load import PairLoad
from bench.progress import Progress
from bench.report import plot, say, table, write_json
from bench.system import ROOT, BenchError, CpuMeter, System, machine, raise_nofile

SCENARIOS = (
    "duel",
    "overload",
    "latency",
    "sustained",
    "idle",
    "fanout",
    "hops",
    "groupfanout",
    "reads",
    "notifications",
    "kafkahop",
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line (every size has a flag; defaults finish in a few minutes)."""
    d = scenarios.Sizes()
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of {','.join(SCENARIOS)} (default: all)",
    )
    parser.add_argument(
        "--full", action="store_true", help="the issue's sizes: 60 s probes, 30 s steps"
    )
    parser.add_argument(
        "--users", type=int, default=d.users, help="users in pairs (latency, sustained)"
    )
    parser.add_argument(
        "--rates", default=",".join(map(str, d.rates)), help="latency steps, msgs/s"
    )
    parser.add_argument("--step-s", type=float, default=d.step_s, help="seconds per latency step")
    parser.add_argument("--drain-s", type=float, default=d.drain_s, help="wait for stragglers")
    parser.add_argument(
        "--warmup-s", type=float, default=d.warmup_s, help="unmeasured load first (0: none)"
    )
    parser.add_argument("--warmup-rate", type=int, default=d.warmup_rate, help="msgs/s")
    parser.add_argument("--sustain-s", type=float, default=d.sustain_s, help="seconds per probe")
    parser.add_argument("--sustain-probes", type=int, default=d.sustain_probes)
    parser.add_argument(
        "--sustain-settle-s", type=float, default=d.sustain_settle_s, help="quiet before probes"
    )
    parser.add_argument(
        "--idle-connections", type=int, default=d.idle_connections, help="idle connections to open"
    )
    parser.add_argument("--idle-per-ip", type=int, default=d.idle_per_ip, help="per 127.0.0.x")
    parser.add_argument("--fanout-devices", type=int, default=d.fanout_devices)
    parser.add_argument("--fanout-messages", type=int, default=d.fanout_messages)
    parser.add_argument("--hops-messages", type=int, default=d.hops_messages)
    parser.add_argument("--hops-rate", type=float, default=d.hops_rate, help="msgs/s")
    parser.add_argument(
        "--hops-keep", action="store_true", help="keep every message's hops in the result"
    )
    parser.add_argument(
        "--kafkahop-rate", type=int, default=1000, help="records/s of the bare Kafka hop"
    )
    parser.add_argument(
        "--kafkahop-lingers", default="0,2,5", help="producer lingers tried, ms (comma-separated)"
    )
    parser.add_argument("--group-members", type=int, default=d.group_members)
    parser.add_argument("--group-messages", type=int, default=d.group_messages)
    parser.add_argument("--group-rate", type=float, default=d.group_rate, help="msgs/s")
    parser.add_argument(
        "--group-settle-s", type=float, default=d.group_settle_s, help="quiet before sending"
    )
    parser.add_argument(
        "--read-messages", type=int, default=d.read_messages, help="stored with COPY (reads)"
    )
    parser.add_argument(
        "--read-conversations",
        type=int,
        default=d.read_conversations,
        help="conversations besides the heavy user's (reads)",
    )
    parser.add_argument("--read-users", type=int, default=d.read_users)
    parser.add_argument("--read-requests", type=int, default=d.read_requests, help="per read")
    dd = duel.DuelSizes()
    parser.add_argument(
        "--duel-rates", default=",".join(map(str, dd.rates)), help="duel steps, msgs/s"
    )
    parser.add_argument("--duel-pairs", type=int, default=dd.pairs, help="sender/recipient pairs")
    parser.add_argument("--duel-step-s", type=float, default=dd.step_s, help="seconds per rate")
    parser.add_argument(
        "--duel-systems", default=",".join(dd.systems), help="seed, ours or both (seed first)"
    )
    parser.add_argument(
        "--duel-rounds",
        type=int,
        default=dd.rounds,
        help="run the duel this many times; each round's verdicts and the median ratio",
    )
    parser.add_argument(
        "--duel-bodies",
        choices=("fixed", "text"),
        default=dd.bodies,
        help="fixed: 40 x's (the issue's); text: prose of up to 40 bytes (what search indexes)",
    )
    parser.add_argument(
        "--notify-users", type=int, default=d.notify_users, help="job alert recipients"
    )
    parser.add_argument("--notify-events", type=int, default=d.notify_events, help="events")
    parser.add_argument(
        "--notify-connected", type=int, default=d.notify_connected, help="recipients online"
    )
    parser.add_argument(
        "--notify-known",
        action="store_true",
        help="the recipients had a notification before (an unmeasured alert to all of them"
        " first); default: never seen",
    )
    parser.add_argument(
        "--notify-warm",
        action="store_true",
        help="an unmeasured alert of the same size to other users first (new recipients,"
        " processes past their first burst); default: a small one",
    )
    parser.add_argument(
        "--overload-capacity",
        type=int,
        default=0,
        help="msgs/s the system keeps up with (overload offers twice that); default: the"
        " duel's highest passing rate for ours, else 1000",
    )
    parser.add_argument(
        "--profile-rate",
        type=int,
        default=0,
        help="also profile chat and gateway with py-spy at this rate (msgs/s)",
    )
    parser.add_argument("--profile-s", type=int, default=20, help="seconds to profile")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / "results", help="result directory"
    )
    parser.add_argument(
        "--source",
        type=Path,
        default=ROOT,
        help="run the services from this directory (e.g. a `git archive` snapshot of a commit)",
    )
    parser.add_argument(
        "--gateways", type=int, default=1, help="gateway processes sharing one port (SO_REUSEPORT)"
    )
    parser.add_argument("--chats", type=int, default=1, help="chat instances in one group")
    parser.add_argument("--notifiers", type=int, default=1, help="notifier instances in one group")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment of the services (repeatable), e.g. GATEWAY_OVERLOAD_WAIT_MS=600000",
    )
    parser.add_argument("--keep-db", action="store_true", help="keep the bench database")
    parser.add_argument("--note", default="", help="free text stored in the result (what changed)")
    return parser.parse_args(argv)


def sizes_from(args: argparse.Namespace) -> scenarios.Sizes:
    """Scenario sizes from the flags (``--full`` raises the time-based ones)."""
    step_s, sustain_s, probes = args.step_s, args.sustain_s, args.sustain_probes
    notify = (args.notify_users, args.notify_events, args.notify_connected)
    if args.full:
        step_s, sustain_s, probes = max(step_s, 30.0), max(sustain_s, 60.0), max(probes, 4)
        notify = (max(notify[0], 10_000), max(notify[1], 10), max(notify[2], 500))
    return scenarios.Sizes(
        users=args.users,
        rates=tuple(int(rate) for rate in args.rates.split(",") if rate),
        step_s=step_s,
        drain_s=args.drain_s,
        warmup_s=args.warmup_s,
        warmup_rate=args.warmup_rate,
        sustain_s=sustain_s,
        sustain_probes=probes,
        sustain_settle_s=args.sustain_settle_s,
        idle_connections=args.idle_connections,
        idle_per_ip=args.idle_per_ip,
        fanout_devices=args.fanout_devices,
        fanout_messages=args.fanout_messages,
        hops_messages=args.hops_messages,
        hops_rate=args.hops_rate,
        group_members=args.group_members,
        group_messages=args.group_messages,
        group_rate=args.group_rate,
        group_settle_s=args.group_settle_s,
        read_messages=args.read_messages,
        read_conversations=args.read_conversations,
        read_users=args.read_users,
        read_requests=args.read_requests,
        notify_users=notify[0],
        notify_events=notify[1],
        notify_connected=notify[2],
        notify_known=args.notify_known,
        notify_warm=args.notify_warm,
    )


def duel_sizes(args: argparse.Namespace) -> duel.DuelSizes:
    """The duel's sizes from the flags."""
    return duel.DuelSizes(
        rates=tuple(int(rate) for rate in args.duel_rates.split(",") if rate),
        pairs=args.duel_pairs,
        step_s=args.duel_step_s,
        systems=tuple(name.strip() for name in args.duel_systems.split(",") if name.strip()),
        rounds=args.duel_rounds,
        bodies=args.duel_bodies,
    )


def git_commit() -> str:
    """The commit the services ran at (with ``-dirty`` when the tree has changes)."""
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "services", "schemas"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        return head + ("-dirty" if dirty else "")
    return "unknown"


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the system, run the chosen scenarios, stop the system; returns the result."""
    chosen = {name.strip() for name in args.scenarios.split(",") if name.strip()}
    unknown = chosen - set(SCENARIOS)
    if unknown:
        raise BenchError(f"unknown scenarios: {', '.join(sorted(unknown))}")
    sizes = sizes_from(args)
    nofile = raise_nofile()
    progress = Progress()
    out: Path = args.out
    began = time.monotonic()
    result: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit() if args.source == ROOT else str(args.source),
        "note": args.note,
        "env": args.env,
        "gateways": args.gateways,
        "chats": args.chats,
        "notifiers": args.notifiers,
        "machine": machine(),
        "sizes": dict(vars(sizes)),
        "loadgen_processes": 1,
        "loadgen_nofile": nofile,
    }
    progress.update("starting chat and gateway", force=True)
    system = await System.start(
        log_dir=out / "logs",
        extra_env=dict(item.split("=", 1) for item in args.env),
        source=args.source,
        gateways=args.gateways,
        chats=args.chats,
        notifiers=args.notifiers,
    )
    meter = CpuMeter(system.pids)
    try:
        if "duel" in chosen:
            result["duel"] = await duel.duel(
                system, meter, duel_sizes(args), progress, log_dir=out / "logs"
            )
        if "overload" in chosen:
            capacity = args.overload_capacity or int(
                result.get("duel", {}).get("highest_rate_p99_under_limit", {}).get("ours") or 1000
            )
            result["overload"] = await overload.overload(
                system, meter, overload.OverloadSizes(capacity=capacity), progress
            )
        if chosen & {"latency", "sustained"} or args.profile_rate:
            load = PairLoad(system.ws_url, sizes.users, progress, label="pairs")
            progress.update(f"connecting {sizes.users} users", force=True)
            await load.open()
            steps = []
            if "latency" in chosen:
                outcome = await scenarios.latency(
                    load, meter, sizes, progress, database_url=system.database_url
                )
                steps = outcome.steps
                result["latency"] = [step.row() for step in steps]
                result["latency_limit"] = (
                    {"rate": outcome.limit_rate, "reason": outcome.limit_reason}
                    if outcome.limit_rate is not None
                    else None
                )
            if args.profile_rate:
                result["profile"] = await profile_step(load, system, args, out, progress)
            if "sustained" in chosen:
                best, probes = await scenarios.sustained(load, meter, sizes, progress, steps)
                result["max_sustained_rate"] = best
                result["sustained"] = {
                    "duration_s": sizes.sustain_s,
                    "p99_limit_ms": sizes.sustain_p99_ms,
                    "probes": [probe.as_json() for probe in probes],
                }
            await load.close()
        if "fanout" in chosen:
            result["fanout"] = await scenarios.fanout(system, meter, sizes, progress)
        if "hops" in chosen:
            result["hops"] = await hops.hops(
                system,
                progress,
                messages=sizes.hops_messages,
                rate=sizes.hops_rate,
                keep=args.hops_keep,
            )
        if "groupfanout" in chosen:
            result["groupfanout"] = await groups.group_fanout(
                system,
                meter,
                progress,
                members=sizes.group_members,
                messages=sizes.group_messages,
                rate=sizes.group_rate,
                settle_s=sizes.group_settle_s,
            )
        if "reads" in chosen:
            result["reads"] = await groups.reads(
                system,
                meter,
                progress,
                data=DataSizes(
                    messages=sizes.read_messages,
                    users=sizes.read_users,
                    other_conversations=sizes.read_conversations,
                ),
                requests=sizes.read_requests,
            )
        if "notifications" in chosen:
            result["notifications"] = await notifications.notifications(
                system,
                meter,
                progress,
                users=sizes.notify_users,
                events=sizes.notify_events,
                connected=sizes.notify_connected,
                known=sizes.notify_known,
                warm=sizes.notify_warm,
                drain_s=max(sizes.drain_s, 60.0),
            )
        if "kafkahop" in chosen:
            result["kafkahop"] = await kafkahop.kafka_hop(
                system,
                progress,
                rate=args.kafkahop_rate,
                lingers_ms=[int(ms) for ms in args.kafkahop_lingers.split(",") if ms],
            )
        if "idle" in chosen:
            result["idle"] = await scenarios.idle(system, meter, sizes, progress)
    finally:
        progress.update("stopping chat and gateway", force=True)
        await system.stop(drop_database=not args.keep_db)
    result["duration_s"] = round(time.monotonic() - began, 1)
    return result


async def profile_step(
    load: PairLoad, system: System, args: argparse.Namespace, out: Path, progress: Progress
) -> dict[str, Any]:
    """Offer ``--profile-rate`` while py-spy samples chat and gateway; summaries to ``out``."""
    seconds = int(args.profile_s)
    files = {name: out / f"profile-{name}.collapsed" for name in ("chat", "gateway")}
    spies = [
        await profile.record(system.chat.pid, files["chat"], duration_s=seconds),
        await profile.record(system.gateway.pid, files["gateway"], duration_s=seconds),
    ]
    # Load starts at once and outlasts the sampling window by a second.
    step = await load.run(args.profile_rate, seconds + 1, drain_s=10.0, label="profile")
    for spy in spies:
        await spy.wait()
    summaries: dict[str, Any] = {"rate": args.profile_rate, "seconds": seconds, **step.row()}
    for name, path in files.items():
        if path.exists():
            text = profile.summarize(path)
            (out / f"profile-{name}.txt").write_text(text)
            summaries[f"{name}_summary"] = str(out / f"profile-{name}.txt")
    progress.done(f"profile {args.profile_rate}/s for {seconds}s: summaries in {out}")
    return summaries


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        result = uvloop.run(run(args))
    except BenchError as exc:
        sys.stderr.write(f"bench: error: {exc}\n")
        return 1
    out: Path = args.out
    latest = out / "latest.json"
    write_json(result, latest)
    pictures = plot(result, out)
    say("")
    say(table(result))
    say("")
    say(f"results: {latest}")
    for picture in pictures:
        say(f"plot:    {picture}")
    say(f"took {result['duration_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
