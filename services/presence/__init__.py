"""Presence service: one status per user over all devices and gateways, and typing fan-out.

Module map:
    domain/       pure rules: device aggregation, grace debounce, gateway expiry, typing lapse
    handlers      applies presence commands and conversation facts in the consumer's transaction;
                  contacts follow memberships (introduced, and told when they part)
    typing_relay  typing indicators: current members only (read per batch), never stored,
                  lapsed starts end with stop
    sweeper       timers as commands: grace ended, gateway dead, old rows purged
    storage       every SQL statement (schema ``presence``)
    http          internal reads for gateways (RLS-filtered), beside the runtime's health
    erasure       the presence part of a user's erasure (its own consumer): rows deleted,
                  contacts told, gateways told to close the user's connections
    app           the service (SERVICE) and its parts: handler's consumer, typing relay,
                  sweeper, reads; the runtime starts and stops them; settings: PresenceSettings

Event flow::

    gateway --connection.opened/closed, status.set, heartbeat--> presence.commands.v1 (key: user)
    chat.conversations.v1 (conversation.created / .updated: members, version) --\\
    presence.commands.v1 --consumer--> handlers --tx--> Postgres --outbox-->
        delivery.frames.v1: presence frames to contacts and the user's own devices
        presence.connectivity.v1 (key: user, compacted): first device came, last one went
            --> notifier (Web Push goes to users without a live connection)
    gateway --typing--> presence.typing.v1 (key: conversation) --typing_relay--> delivery.frames.v1
    sweeper --offline.due / expired connection.closed--> presence.commands.v1
"""
