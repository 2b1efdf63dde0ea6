"""Gateway: the thin, stateless WebSocket edge (``GET /v1/ws``).

Module map:
    domain/      protocol core without I/O: auth (tokens, session cookies), frame parsing,
                 commands made of frames, rate limit, session registry
    connections  the endpoint: upgrade checks, hello (with push.vapid_public_key when set),
                 frame loop, health, metrics and the VAPID public key over HTTP
    routes       ROUTES: one table from client frame type to its handler (publish a command,
                 or answer here: ping, sync, conversations.list, history, search,
                 notifications.list, notification.prefs.get)
    session      one connection: the principal on it before the upgrade, then its bounded
                 send queue (close 4009), close codes
    delivery     tails delivery.frames.v1 on the partitions of connected users: frames to
                 push, and closes of an erased user's connections (4003)
    publisher    publishes commands (chat: sends, receipts, group and message changes;
                 presence, typing, connection events; the notifier: reads, preferences,
                 mutes, push subscriptions) to Kafka
    sync         reads durable streams from their owners over internal HTTP
    reads        conversations.list, history, search: chat's internal HTTP reads; the bell's
                 (notifications.list, notification.prefs.get): the notifier's
    presence     reads presence (snapshot after hello, GET /v1/presence) from its owner
    devpage      development only (off by default): the SDK demo under /dev/, dev tokens
    app          composition root and graceful shutdown (close 1001, flush)
    settings     GatewaySettings, from the environment

Frame flow::

    browser --frame--> connections --routes--> publisher --> chat.commands.v1 --> chat
    browser --sync/list/history/search--> connections --routes--> HTTP --> chat (under RLS)
    browser --notification.read/prefs/mute/push--> publisher --> notifier.commands.v1
    browser --notifications.list/prefs.get--> connections --routes--> HTTP --> notifier
    chat --> delivery.frames.v1 (key: user) --delivery--> session queue --> browser
"""
