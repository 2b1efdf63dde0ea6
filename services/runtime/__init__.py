"""Shared runtime: what every service needs so that a service is mostly its domain.

Module map:
    settings      typed settings pieces (Kafka, Postgres, what every service reads) read from
                  the environment
    logs          JSON logs on stderr, no message bodies
    metrics       Prometheus metrics shared by every service
    health        readiness checks and the metrics exposition
    http          the internal FastAPI app every service serves: health, metrics, the token,
                  the read route of its streams (``sync`` for gateways)
    lifecycle     start and stop: clock and ids, signals, the HTTP server, ``serve|migrate``
    errors        RuntimeServiceError > RecordRejected | InfrastructureError
    db            the pool, reads under Row Level Security, statement parts (Cte)
    migrations    versioned SQL migrations per service schema, and the runtime's own tables
                  in it (tables/<part>/: offsets, outbox, streams, inbound; a service names
                  the parts it uses)
    codec         Kafka record <-> CloudEvents envelope (structured; binary via the SDK), and
                  EventBuilder: how every producer of ours makes its events
    partitioning  Kafka's murmur2 partitioner, for gateways tailing their users' partitions
    kafka         topic names and creation, the idempotent producer, the consumer factory
    delivery      records for delivery.frames.v1 (one frame for one user or connection, or
                  closing a user's connections)
    streams       per-user durable streams: seqs, appends (also set-based), reads under RLS,
                  frames rewritten in place (a deletion, an erasure), a user's stream deleted
    dlq           dead letters: the copy of a failed record for ``<topic>.dlq``, counted
    outbox        transactional outbox: every statement on its table; stage in the
                  transaction, publish after commit, relay leftovers
    offsets       the offset store: fence, store, claim at assignment
    inbound       inbound CloudEvents applied once per (source, id): claims, pruning
    contact       how long Kafka has answered without a miss, and what it held (timers acting
                  on silence)
    consumer      the transactional consumer loop, its handler contracts, the retry policy
    commit_effects  what a handler wants done once its transaction committed (counting what
                  it did: a retried batch must not count twice)
    erasure/      user erasure: a service's part (Eraser) applied by its own consumer of
                  users.erasure.v1 and reported on users.erased.v1; the erase-user command
    service       one start-up for every schema-owning service: Service (what it is), Kit
                  (what its compose() gets and registers), serve and migrate, ordered stop

Flow inside a consuming service::

    Kafka --getmany--> consumer --BEGIN; offsets.fence; [inbound.claim]; handler.apply(...);
                                   outbox.stage (+ offsets.store); COMMIT
                       --> outbox.committed --> Kafka
"""
