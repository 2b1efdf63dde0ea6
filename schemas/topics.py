"""Kafka topic names (``<domain>.<kind>.v1``) and the event types carried on each."""

from __future__ import annotations

from typing import Final

#: Client commands for the chat service, keyed by conversation id (one conversation in order).
CHAT_COMMANDS: Final = "chat.commands.v1"
#: Facts the chat service established (message created, edited, deleted or reacted to, watermark
#: moved, conversation changed, an erased user's messages erased), keyed by conversation.
CHAT_EVENTS: Final = "chat.events.v1"
#: Conversations and their members, keyed by conversation id; compacted, so the latest fact of
#: every conversation stays (each fact carries the whole member list).
CHAT_CONVERSATIONS: Final = "chat.conversations.v1"
#: Frames for users, keyed by recipient user id; gateways tail the partitions of their users.
DELIVERY: Final = "delivery.frames.v1"
#: Connection lifecycle and status changes, keyed by user id (gateway heartbeats: gateway id).
PRESENCE_COMMANDS: Final = "presence.commands.v1"
#: Typing indicators, keyed by conversation id; short retention, never stored in Postgres.
PRESENCE_TYPING: Final = "presence.typing.v1"
#: Whether each user has a live connection, keyed by user id; compacted (the latest fact of
#: every user stays). Written by presence, read by the notifier (Web Push goes to users without).
PRESENCE_CONNECTIVITY: Final = "presence.connectivity.v1"
#: Client commands for the notifier (notification.read and the like), keyed by user id.
NOTIFIER_COMMANDS: Final = "notifier.commands.v1"
#: Job events published by the job board's team (../shared/events.md), keyed by job id.
JOBS_EVENTS: Final = "jobs.events.v1"
#: Application events published by the applications tracker's team, keyed by application id.
APPLICATIONS_EVENTS: Final = "applications.events.v1"
#: Requests to erase a user's data, keyed by user id; compacted, so a service rebuilt later still
#: finds every erasure (``python -m services.runtime.erasure erase-user``, or the site's own
#: services: docs/publishing-events.md).
USERS_ERASURE: Final = "users.erasure.v1"
#: Each service's report that it applied an erasure (or a step of one), keyed by user id; what
#: ``erase-user`` waits for. Short retention: progress reports, not a record.
USERS_ERASED: Final = "users.erased.v1"

#: chat.commands.v1: a message.send frame accepted by a gateway.
MESSAGE_SEND: Final = "chat.message.send"
#: chat.commands.v1: a receipt frame accepted by a gateway.
RECEIPT_POST: Final = "chat.receipt.post"
#: chat.commands.v1: conversation.create (the gateway minted the new group's id).
CONVERSATION_CREATE: Final = "chat.conversation.create"
#: chat.commands.v1: conversation.members.add.
MEMBERS_ADD: Final = "chat.members.add"
#: chat.commands.v1: conversation.members.remove (or leave).
MEMBERS_REMOVE: Final = "chat.members.remove"
#: chat.commands.v1: conversation.role.set.
ROLE_SET: Final = "chat.role.set"
#: chat.commands.v1: conversation.update (rename).
CONVERSATION_UPDATE: Final = "chat.conversation.update"
#: chat.commands.v1: message.edit.
MESSAGE_EDIT: Final = "chat.message.edit"
#: chat.commands.v1: message.delete.
MESSAGE_DELETE: Final = "chat.message.delete"
#: chat.commands.v1: reaction.set.
REACTION_SET: Final = "chat.reaction.set"
#: chat.events.v1: a message was stored.
MESSAGE_CREATED: Final = "chat.message.created"
#: chat.events.v1: a member's delivered/read watermark moved.
WATERMARK_MOVED: Final = "chat.watermark.moved"
#: chat.events.v1: a message was edited, deleted or reacted to (its whole current state).
MESSAGE_UPDATED: Final = "chat.message.updated"
#: chat.conversations.v1: a conversation was created, with its members.
CONVERSATION_CREATED: Final = "chat.conversation.created"
#: chat.conversations.v1 and chat.events.v1: a group was created or changed, with its whole
#: current member list and a version (a consumer ignores a version it already passed).
CONVERSATION_UPDATED: Final = "chat.conversation.updated"
#: chat.events.v1: an erased user's messages in one conversation were erased (a part of them).
MESSAGES_ERASED: Final = "chat.messages.erased"
#: delivery.frames.v1: one frame for one user (or one of their connections).
DELIVERY_FRAME: Final = "delivery.frame"
#: delivery.frames.v1: close every connection of one user (their data was erased).
DELIVERY_CLOSE: Final = "delivery.close"
#: presence.commands.v1: a device connected to a gateway.
CONNECTION_OPENED: Final = "presence.connection.opened"
#: presence.commands.v1: a device disconnected (or its gateway was declared dead).
CONNECTION_CLOSED: Final = "presence.connection.closed"
#: presence.commands.v1: a gateway is alive and holds connections.
GATEWAY_HEARTBEAT: Final = "presence.gateway.heartbeat"
#: presence.commands.v1: a user chose a status on one device.
STATUS_SET: Final = "presence.status.set"
#: presence.commands.v1: a user's offline grace period may have ended (from the sweeper).
OFFLINE_DUE: Final = "presence.offline.due"
#: presence.typing.v1: a typing frame accepted by a gateway.
TYPING: Final = "presence.typing"
#: presence.connectivity.v1: a user's first device connected or last one went away.
CONNECTIVITY_CHANGED: Final = "presence.connectivity.changed"
#: presence.connectivity.v1: a user was erased; what was known of their connectivity is void.
CONNECTIVITY_ERASED: Final = "presence.connectivity.erased"
#: notifier.commands.v1: notification.read.
NOTIFICATION_READ: Final = "notifier.notification.read"
#: notifier.commands.v1: notification.prefs.set.
PREFS_SET: Final = "notifier.prefs.set"
#: notifier.commands.v1: conversation.mute.
CONVERSATION_MUTE: Final = "notifier.conversation.mute"
#: notifier.commands.v1: push.subscribe.
PUSH_SUBSCRIBE: Final = "notifier.push.subscribe"
#: notifier.commands.v1: push.unsubscribe.
PUSH_UNSUBSCRIBE: Final = "notifier.push.unsubscribe"
#: jobs.events.v1 (the job board's team): a new job matched some users' saved alerts.
JOB_ALERT_MATCHED: Final = "job.alert.matched"
#: applications.events.v1 (the applications tracker's team): an application's status moved.
APPLICATION_STATUS_CHANGED: Final = "application.status.changed"
#: users.erasure.v1: erase everything the system holds of a user.
USER_ERASURE_REQUESTED: Final = "user.erasure.requested"
#: users.erased.v1: a service applied an erasure request (or one step of it).
USER_ERASED: Final = "user.erased"


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``: records that could not be parsed or applied."""
    return f"{topic}.dlq"
