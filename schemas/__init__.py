"""Schemas: the single source of truth for every frame and event.

Module map:
    base       shared model config (frozen, to_wire/from_wire with orjson), id types
    frames     client protocol v1: client frames (parsed strictly) and server frames
    envelope   the CloudEvents 1.0 structured envelope of every Kafka record
    events     ``data`` of each event type
    topics     topic names and event types
    ids        identifiers computed identically by several services (direct conversation id)
    generate   writes json/*.json and asyncapi.json; ``--check`` fails on stale files

Event flow::

    browser --frames.MessageSend--> gateway --Envelope(MessageSendCommand)--> chat.commands.v1
    chat --Envelope(events.DeliveryFrame{frame: frames.MessageNew|Ack|...})--> delivery.frames.v1
    chat --Envelope(events.MessageCreated|WatermarkMoved)--> chat.events.v1 --> notifier
    chat --Envelope(events.ConversationCreated)--> chat.conversations.v1 --> presence
    presence --Envelope(events.ConnectivityChanged)--> presence.connectivity.v1 --> notifier
    gateway --Envelope(events.NotificationReadCommand|...)--> notifier.commands.v1 --> notifier
    other teams --Envelope(events.JobAlertMatched|ApplicationStatusChanged), either binding-->
        jobs.events.v1, applications.events.v1 --> notifier
    notifier --Envelope(events.DeliveryFrame{frame: frames.NotificationNew|...})--> delivery
"""
