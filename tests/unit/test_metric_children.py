"""Children: a one-label metric's children, looked up once and counted in the parent."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from services.runtime.metrics import Children


def test_a_child_is_looked_up_once_and_counts_in_its_metric() -> None:
    registry = CollectorRegistry()
    frames = Counter("frames_total", "frames", ["type"], registry=registry)
    by_type = Children(frames)

    assert by_type["ack"] is by_type["ack"]
    assert by_type["ack"] is not by_type["message.new"]
    by_type["ack"].inc()
    by_type["ack"].inc()
    by_type["message.new"].inc()

    assert registry.get_sample_value("frames_total", {"type": "ack"}) == 2
    assert registry.get_sample_value("frames_total", {"type": "message.new"}) == 1


def test_histogram_children_observe_into_their_label() -> None:
    registry = CollectorRegistry()
    latency = Histogram("latency_seconds", "latency", ["type"], registry=registry)
    by_type = Children(latency)

    by_type["message.new"].observe(0.004)

    assert registry.get_sample_value("latency_seconds_count", {"type": "message.new"}) == 1
    assert registry.get_sample_value("latency_seconds_sum", {"type": "message.new"}) == 0.004
    assert registry.get_sample_value("latency_seconds_count", {"type": "ack"}) is None
