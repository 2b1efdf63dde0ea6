"""Chat service: stores messages and watermarks, writes users' chat streams, answers commands.

Module map:
    domain/        pure logic: addressing and idempotency decisions, watermarks, group rules,
                   message changes, the list cursor, errors
    handlers       applies a command in the consumer's transaction: sends and receipts here,
                   the others through
    conversations  group changes (create, members, roles, title)
    changes        message changes (edit, delete, reaction)
    emit           stages answers, frames of the ``chat`` stream and facts for the outbox
    wire           a new message's frames, answer and fact around its JSON (serialised once)
    storage        every SQL statement of the command side (schema ``chat``); the ``chat``
                   stream is the runtime's (services/runtime/streams), folded into its send
                   statements
    reads          the reads that serve a user (list, history, search), under RLS
    http           those reads on the service's internal HTTP, for gateways
    erasure        the chat part of a user's erasure (its own consumer, off the send path);
                   erasure_storage: its statements
    app            the service (SERVICE: schema, migrations, the chat stream) and its parts: the
                   handler and its consumer, the read routes; the runtime starts, serves (the
                   stream's sync reads, health, metrics) and stops them (services/runtime/service)
    settings       ChatSettings, from the environment
    migrations/    versioned SQL

Event flow::

    chat.commands.v1 (key: conversation) --consumer--> handlers --tx--> Postgres
        --outbox--> delivery.frames.v1 (key: user): message.new / message.status /
                    message.updated / conversation.updated / ack / error
                \\-> chat.events.v1 (key: conversation): message.created / message.updated /
                    watermark.moved / conversation.updated
                \\-> chat.conversations.v1 (key: conversation, compacted): conversation.created /
                    conversation.updated
    gateway --HTTP--> http --reads (as chat_reader)--> Postgres
    users.erasure.v1 --its own consumer--> erasure --tx--> Postgres --outbox--> frames,
        chat.conversation.updated, chat.messages.erased, users.erased.v1 (the report)
"""
