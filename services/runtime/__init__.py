"""Shared runtime: what every service needs so that a service is mostly its domain.

Module map:
    settings      typed settings pieces (Kafka, Postgres) read from the environment
    logs          JSON logs on stderr, no message bodies
    metrics       Prometheus metrics shared by every service
    health        readiness checks and the metrics exposition
    errors        RuntimeServiceError > RecordRejected | InfrastructureError
    codec         Kafka record <-> CloudEvents envelope (structured; binary via the SDK), and
                  EventBuilder: how every producer of ours makes its events
    partitioning  Kafka's murmur2 partitioner, for gateways tailing their users' partitions
    kafka         topic names and creation, the idempotent producer
    migrations    versioned SQL migrations per service schema
    outbox        transactional outbox: stage in the transaction, publish after commit, relay
    consumer      the transactional consumer loop (offsets in Postgres, DLQ, retries)

Flow inside a consuming service::

    Kafka --getmany--> consumer --BEGIN; fence offsets; handler.apply(...); store offsets;
                                   outbox.stage; COMMIT--> outbox.publish --> Kafka
"""
