"""Test suites: ``unit`` (pure logic) and ``integration`` (local Kafka and Postgres)."""
