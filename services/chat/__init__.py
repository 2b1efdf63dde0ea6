"""Chat service: stores messages and watermarks, writes users' chat streams, answers commands.

Module map:
    domain/     pure logic: addressing and idempotency decisions, watermarks, errors
    handlers    applies a command in the consumer's transaction and stages what to publish
    storage     every SQL statement the service runs (schema ``chat``); the ``chat`` stream is
                the runtime's (services/runtime/streams), folded into its send statements
    app         the service (SERVICE: schema, migrations, the chat stream) and its parts: the
                handler and its consumer; the runtime starts, serves (the stream's sync
                reads, health, metrics) and stops them (services/runtime/service)
    settings    ChatSettings, from the environment
    migrations/ versioned SQL

Event flow::

    chat.commands.v1 (key: conversation) --consumer--> handlers --tx--> Postgres
        --outbox--> delivery.frames.v1 (key: user): message.new / message.status / ack / error
                \\-> chat.events.v1 (key: conversation): message.created / watermark.moved
"""
