"""Scenario ``kafkahop``: what one Kafka hop costs on this machine, with nothing of ours in it.

Every message crosses two Kafka hops (gateway -> chat, chat -> gateway), so what a hop costs
here is a floor under a message's CPU and latency that no service code can go below. This
scenario measures it alone: records of 400 bytes offered at a fixed rate to a one-partition
topic of the run's own by a producer process at a few lingers, tailed by a consumer process,
with three pairs of clients:

    aiokafka -> aiokafka    ``python -m bench.kafkahop``: the client every service of ours uses
    aiokafka -> kcat        librdkafka (C) consuming: the broker's cost with an efficient consumer
    confluent -> confluent  ``confluent-kafka`` (librdkafka through Python, its plain blocking
                            API in a process of its own): what a C client would cost us

(kcat's producer is not used: fed a line at a time it holds short records until its input
closes, so it cannot be paced.) This process paces the records and writes each, stamped with
the wall clock, to the producer's stdin; the consumer prints each record's value to its stdout,
read here. Each run reports the hop's latency (stamp -> read here, two pipe hops included) and,
over the measured records, the CPU per record of the broker, the producer and the consumer and
the broker's context switches per record (every thread's, from /proc); the broker's CPU net of
what it spent idle just before (the services' idle fetches), measured once for the scenario.
A broker started moments before runs JIT-cold code (aiokafka at both ends, linger 0: 908 µs
per record on a broker just started, 428 on a warm one): run it on a warm broker, as the
documented figures were.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import confluent_kafka
import psutil
import uvloop
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.progress import Progress
from bench.stats import summarize
from bench.system import ROOT, BenchError, System, cpu_seconds, find_kafka

#: Value size of a record (about a chat command's envelope).
RECORD_BYTES = 400
#: Seconds offered before the measured records: consumer positioned, clients warm.
WARM_S = 2.0
#: Seconds of measured records per run.
MEASURE_S = 6.0
#: Longest wait for the last record after it was offered.
DRAIN_S = 10.0
#: Producer and consumer of each run (kcat cannot produce paced records: see above).
PAIRS = (("aiokafka", "aiokafka"), ("aiokafka", "kcat"), ("confluent", "confluent"))
#: Seconds the broker's idle CPU is measured over, before the runs.
IDLE_S = 3.0


async def kafka_hop(
    system: System, progress: Progress, *, rate: int, lingers_ms: Sequence[int]
) -> dict[str, object]:
    """Run every pair of clients at every linger, one after the other; returns their rows.

    Raises:
        BenchError: kcat is not installed, or the broker cannot be found.
    """
    if shutil.which("kcat") is None:
        raise BenchError("kcat is missing: apt-get install kcat (make test installs it)")
    broker = find_kafka()
    if broker is None:
        raise BenchError("no broker listens on KAFKA_BOOTSTRAP_SERVERS' port")
    topic = f"{system.topic_prefix}kafkahop"
    admin = AIOKafkaAdminClient(bootstrap_servers=system.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    progress.update("kafkahop: the broker's idle CPU", force=True)
    idle_before = cpu_seconds(broker)
    await asyncio.sleep(IDLE_S)
    idle_cores = (cpu_seconds(broker) - idle_before) / IDLE_S
    runs = []
    for producer, consumer in PAIRS:
        for linger_ms in lingers_ms:
            progress.update(
                f"kafkahop: {producer} -> {consumer}, linger {linger_ms} ms, {rate}/s", force=True
            )
            hop = _Hop(
                system.kafka_bootstrap, topic, broker, (producer, consumer), linger_ms, idle_cores
            )
            runs.append(await hop.run(rate))
    return {
        "rate": rate,
        "record_bytes": RECORD_BYTES,
        "broker_idle_cores": round(idle_cores, 3),
        "runs": runs,
    }


class _Hop:
    """One run: a producer at one linger, a consumer, and what they cost."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        broker: psutil.Process,
        clients: tuple[str, str],
        linger_ms: int,
        broker_idle_cores: float,
    ) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._broker = broker
        self._producer, self._consumer = clients
        self._linger_ms = linger_ms
        self._broker_idle_cores = broker_idle_cores
        self._stamps: dict[int, float] = {}
        self._received: dict[int, float] = {}
        self._awaited: set[int] = set()
        self._all_received = asyncio.Event()

    async def run(self, rate: int) -> dict[str, object]:
        """Offer the records at ``rate`` a second; returns the run's row."""
        consumer = await _spawn(self._consumer_argv(), stdout=asyncio.subprocess.PIPE)
        producer = await _spawn(self._producer_argv(), stdin=asyncio.subprocess.PIPE)
        warm = int(WARM_S * rate)
        measured = range(warm, warm + int(MEASURE_S * rate))
        self._awaited = set(measured)
        reader = asyncio.create_task(self._read(consumer))
        try:
            assert producer.stdin is not None
            started = time.monotonic()
            before: dict[str, float] = {}
            for seq in range(measured.stop):
                if seq == warm:
                    before = self._readings(producer.pid, consumer.pid)
                stamp = time.time()
                self._stamps[seq] = stamp
                producer.stdin.write(f"{seq} {stamp:.6f} ".encode().ljust(RECORD_BYTES, b"x"))
                producer.stdin.write(b"\n")
                await producer.stdin.drain()
                delay = started + (seq + 1) / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._all_received.wait(), DRAIN_S)
            after = self._readings(producer.pid, consumer.pid)
        finally:
            reader.cancel()
            for process in (producer, consumer):
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        latencies = [self._received[s] - self._stamps[s] for s in measured if s in self._received]
        count = len(measured)
        used = {role: after[role] - before[role] for role in after}
        used["broker"] -= self._broker_idle_cores * used.pop("wall")
        return {
            "producer": self._producer,
            "consumer": self._consumer,
            "linger_ms": self._linger_ms,
            "records": count,
            "lost": count - len(latencies),
            **summarize(latencies),
            "cpu_us_per_record": {
                role: round(used[role] / count * 1e6, 1)
                for role in ("broker", "producer", "consumer")
            },
            "broker_switches_per_record": round(used["broker_switches"] / count, 2),
        }

    def _producer_argv(self) -> list[str]:
        return [sys.executable, "-m", "bench.kafkahop", "produce", self._bootstrap, self._topic,
                "--client", self._producer, "--linger-ms", str(self._linger_ms)]  # fmt: skip

    def _consumer_argv(self) -> list[str]:
        if self._consumer == "kcat":
            return [
                "kcat", "-C", "-b", self._bootstrap, "-t", self._topic, "-p", "0", "-o", "end",
                "-u", "-q", "-X", "fetch.wait.max.ms=500", "-X", "fetch.min.bytes=1",
            ]  # fmt: skip
        return [sys.executable, "-m", "bench.kafkahop", "consume", self._bootstrap, self._topic,
                "--client", self._consumer]  # fmt: skip

    async def _read(self, consumer: asyncio.subprocess.Process) -> None:
        assert consumer.stdout is not None
        async for line in consumer.stdout:
            seq = int(line.split(b" ", 1)[0])
            self._received.setdefault(seq, time.time())
            self._awaited.discard(seq)
            if not self._awaited:
                self._all_received.set()

    def _readings(self, producer: int, consumer: int) -> dict[str, float]:
        return {
            "wall": time.monotonic(),
            "broker": cpu_seconds(self._broker),
            "producer": cpu_seconds(psutil.Process(producer)),
            "consumer": cpu_seconds(psutil.Process(consumer)),
            "broker_switches": float(_context_switches(self._broker.pid)),
        }


async def _spawn(
    argv: list[str], *, stdin: int | None = None, stdout: int | None = None
) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=stdin, stdout=stdout, stderr=asyncio.subprocess.DEVNULL, cwd=ROOT
    )
    # Both ends connected before the first record: the consumer starts at the log's end.
    await asyncio.sleep(2.0)
    return process


def _context_switches(pid: int) -> int:
    """Voluntary and involuntary switches of every thread of ``pid`` (psutil reads only the
    main thread's)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            for line in (task / "status").read_text().splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split()[-1])
    return total


async def _produce(bootstrap: str, topic: str, linger_ms: int) -> None:
    """Send each line of stdin (without its newline) as one record, as kcat -P does."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=linger_ms, acks="all")
    await producer.start()
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        async for line in reader:
            await producer.send(topic, line.rstrip(b"\n"), partition=0)
    finally:
        await producer.stop()


async def _consume(bootstrap: str, topic: str) -> None:
    """Print each record's value on a line of its own, as kcat -C does."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=500,
        fetch_min_bytes=1,
    )
    await consumer.start()
    partition = TopicPartition(topic, 0)
    consumer.assign([partition])
    await consumer.seek_to_end(partition)
    out = sys.stdout.buffer
    try:
        while True:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    out.write((record.value or b"") + b"\n")
            out.flush()
    finally:
        await consumer.stop()


def _produce_confluent(bootstrap: str, topic: str, linger_ms: int) -> None:
    """As :func:`_produce`, with confluent-kafka's blocking API (its calls do not block for
    the broker: ``produce`` enqueues, ``poll(0)`` serves delivery reports)."""
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "linger.ms": linger_ms, "acks": "all"}
    )
    for line in sys.stdin.buffer:
        producer.produce(topic, line.rstrip(b"\n"), partition=0)
        producer.poll(0)
    producer.flush()


def _consume_confluent(bootstrap: str, topic: str) -> None:
    """As :func:`_consume`, with confluent-kafka's blocking API."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-kafkahop",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 500,
            "fetch.min.bytes": 1,
        }
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_END)])
    out = sys.stdout.buffer
    try:
        while True:
            # consume() waits for all of num_messages or the timeout: wait for the first record
            # only, then take what else is already fetched.
            first = consumer.poll(timeout=1.0)
            if first is None:
                continue
            for record in [first, *consumer.consume(num_messages=500, timeout=0)]:
                if record.error() is None:
                    out.write((record.value() or b"") + b"\n")
            out.flush()
    finally:
        consumer.close()


def main(argv: list[str] | None = None) -> None:
    """``python -m bench.kafkahop produce|consume BOOTSTRAP TOPIC``: the Python ends."""
    parser = argparse.ArgumentParser(prog="python -m bench.kafkahop")
    parser.add_argument("role", choices=("produce", "consume"))
    parser.add_argument("bootstrap")
    parser.add_argument("topic")
    parser.add_argument("--client", choices=("aiokafka", "confluent"), default="aiokafka")
    parser.add_argument("--linger-ms", type=int, default=0)
    args = parser.parse_args(argv)
    if args.client == "confluent":
        if args.role == "produce":
            _produce_confluent(args.bootstrap, args.topic, args.linger_ms)
        else:
            _consume_confluent(args.bootstrap, args.topic)
        return
    uvloop.install()
    if args.role == "produce":
        asyncio.run(_produce(args.bootstrap, args.topic, args.linger_ms))
    else:
        asyncio.run(_consume(args.bootstrap, args.topic))


if __name__ == "__main__":
    main()
