/**
 * The stores a UI renders, as one immutable state changed only by `reduce(state, event)`.
 *
 * Pure and deterministic: the connection engine (in a SharedWorker or the leader tab) applies
 * every event and forwards it to every tab, which applies the same event to its own replica, so
 * all tabs show the same thing without sharing memory. Selectors at the bottom derive what a UI
 * shows (timelines with pending messages, ticks, unread counts, typing).
 */

import type {
  AppliedFrame,
  Conversation,
  ConversationId,
  ErrorCode,
  Member,
  Message,
  Notification,
  PresenceStatus,
  UserId,
} from "./protocol.js";
import { isDurable } from "./protocol.js";
import type { OutboxEntry } from "./outbox.js";
import { advance, type Cursor } from "./streams.js";
import { TYPING_LAPSE_MS } from "./typing.js";

/** Messages kept per conversation; older ones are paged in again with `history`. */
export const MAX_MESSAGES_PER_CONVERSATION = 500;
/** Notifications kept for the bell; older ones are paged with `notifications.list`. */
export const MAX_NOTIFICATIONS = 200;

export type ConnectionStatus =
  | "idle" // not started
  | "connecting" // opening the socket
  | "syncing" // hello received, catching up
  | "open" // caught up, live
  | "waiting" // closed; a retry is scheduled (backoff)
  | "offline"; // the browser says it is offline: waiting for `online`

export interface ConnectionState {
  status: ConnectionStatus;
  /** Failed attempts since the last hello. */
  attempt: number;
  /** When the next attempt is due (ms since epoch), while waiting. */
  retryAt: number | null;
  lastClose: { code: number; reason: string } | null;
}

/** What the server supports; null until known (answers to probes after the first hello). */
export interface Capabilities {
  /** `conversations.list`, `conversation.create`, `history` (protocol part 2). */
  conversations: boolean | null;
  /** `notifications.list`, `notification.read` (the notifier). */
  notifications: boolean | null;
  /** `hello.push.vapid_public_key` present. */
  push: boolean;
}

export interface Watermark {
  delivered: number;
  read: number;
}

export interface ConversationView {
  id: ConversationId;
  kind: "direct" | "group";
  title: string | null;
  /** Null while unknown (a server without `conversations.list` tells only what messages show). */
  members: Member[] | null;
  /** Direct conversations: the other user, once known. */
  peer: UserId | null;
  lastMessage: Message | null;
  /** ISO time of the latest message, or of the creation. */
  lastActivity: string;
  /** My read watermark (conversation seq). */
  readUpTo: number;
  /** Other members' delivered/read watermarks. */
  watermarks: Record<UserId, Watermark>;
  /** Older messages than the oldest held may exist (page them with `history`). */
  hasOlder: boolean;
  /** I was removed or left: no more frames will come. */
  left: boolean;
}

export interface PresenceView {
  status: PresenceStatus;
  last_seen: string | null;
}

export interface NotificationsView {
  items: Notification[];
  unread: number;
  hasMore: boolean;
  /** The first `notifications.list` answered. */
  loaded: boolean;
}

export interface SyncRecord {
  /** The cursor the sync request carried. */
  cursor: Cursor;
  /** Durable frames it brought. */
  events: number;
  at: number;
}

export interface State {
  me: UserId | null;
  connection: ConnectionState;
  capabilities: Capabilities;
  vapidKey: string | null;
  /** Last seq applied per durable stream (persisted: a reload resumes from it). */
  cursor: Cursor;
  conversations: Record<ConversationId, ConversationView>;
  /** Direct peer -> conversation id, once learnt. */
  directPeers: Record<UserId, ConversationId>;
  /** Messages per conversation, ascending seq, unique ids. */
  messages: Record<ConversationId, Message[]>;
  /** Unacknowledged (and refused) sends, by client_msg_id. */
  outbox: Record<string, OutboxEntry>;
  presence: Record<UserId, PresenceView>;
  /** Conversation -> typist -> when the indicator lapses (ms since epoch). */
  typing: Record<ConversationId, Record<UserId, number>>;
  notifications: NotificationsView;
  /** The last sync the engine made (what it asked from, what it got). */
  lastSync: SyncRecord | null;
}

export type Event =
  | { t: "me"; userId: UserId; vapidKey: string | null }
  | { t: "connection"; connection: ConnectionState }
  | { t: "capabilities"; capabilities: Partial<Capabilities> }
  | { t: "frame"; frame: AppliedFrame; at: number }
  | { t: "synced"; record: SyncRecord }
  | { t: "outbox.add"; entry: OutboxEntry }
  | { t: "outbox.attempt"; clientMsgId: string }
  | { t: "outbox.acked"; message: Message }
  | { t: "outbox.failed"; clientMsgId: string; code: ErrorCode | "client"; message: string }
  | { t: "outbox.discard"; clientMsgId: string }
  | { t: "read.local"; conversationId: ConversationId; seq: number }
  | { t: "history"; conversationId: ConversationId; messages: Message[]; hasMore: boolean }
  | { t: "conversations"; conversations: Conversation[] }
  | { t: "notifications"; items: Notification[]; unread: number; hasMore: boolean; append: boolean }
  | { t: "notifications.unread"; unread: number }
  | { t: "typing.lapse"; now: number };

export function initialState(): State {
  return {
    me: null,
    connection: { status: "idle", attempt: 0, retryAt: null, lastClose: null },
    capabilities: { conversations: null, notifications: null, push: false },
    vapidKey: null,
    cursor: {},
    conversations: {},
    directPeers: {},
    messages: {},
    outbox: {},
    presence: {},
    typing: {},
    notifications: { items: [], unread: 0, hasMore: false, loaded: false },
    lastSync: null,
  };
}

/** The part of the state worth keeping across reloads (connection, presence, typing are live). */
export function persistable(state: State): State {
  return {
    ...state,
    connection: initialState().connection,
    capabilities: initialState().capabilities,
    presence: {},
    typing: {},
    lastSync: null,
  };
}

export function reduce(state: State, event: Event): State {
  switch (event.t) {
    case "me":
      return { ...state, me: event.userId, vapidKey: event.vapidKey };
    case "connection":
      return { ...state, connection: event.connection };
    case "capabilities":
      return { ...state, capabilities: { ...state.capabilities, ...event.capabilities } };
    case "frame":
      return applyFrame(state, event.frame, event.at);
    case "synced":
      return { ...state, lastSync: event.record };
    case "outbox.add":
      return { ...state, outbox: { ...state.outbox, [event.entry.client_msg_id]: event.entry } };
    case "outbox.attempt": {
      const entry = state.outbox[event.clientMsgId];
      if (!entry) return state;
      return {
        ...state,
        outbox: { ...state.outbox, [entry.client_msg_id]: { ...entry, attempts: entry.attempts + 1 } },
      };
    }
    case "outbox.acked":
      return storeMessage(settle(state, event.message), event.message);
    case "outbox.failed": {
      const entry = state.outbox[event.clientMsgId];
      if (!entry) return state;
      const failed: OutboxEntry = {
        ...entry,
        state: "failed",
        error: { code: event.code, message: event.message },
      };
      return { ...state, outbox: { ...state.outbox, [entry.client_msg_id]: failed } };
    }
    case "outbox.discard": {
      if (!(event.clientMsgId in state.outbox)) return state;
      const { [event.clientMsgId]: _gone, ...outbox } = state.outbox;
      return { ...state, outbox };
    }
    case "read.local": {
      const conversation = state.conversations[event.conversationId];
      if (!conversation || conversation.readUpTo >= event.seq) return state;
      return withConversation(state, { ...conversation, readUpTo: event.seq });
    }
    case "history":
      return applyHistory(state, event.conversationId, event.messages, event.hasMore);
    case "conversations":
      return event.conversations.reduce(upsertConversation, state);
    case "notifications": {
      const incoming = event.items;
      const kept = event.append
        ? state.notifications.items.filter((n) => !incoming.some((i) => i.id === n.id))
        : [];
      const items = event.append ? [...kept, ...incoming] : incoming;
      return {
        ...state,
        notifications: {
          items: items.slice(0, MAX_NOTIFICATIONS),
          unread: event.unread,
          hasMore: event.hasMore,
          loaded: true,
        },
      };
    }
    case "notifications.unread":
      return { ...state, notifications: { ...state.notifications, unread: event.unread } };
    case "typing.lapse":
      return lapseTyping(state, event.now);
  }
}

// --- frames ------------------------------------------------------------------------------------

function applyFrame(state: State, frame: AppliedFrame, at: number): State {
  let next = state;
  if (isDurable(frame)) next = { ...next, cursor: advance(next.cursor, frame.stream, frame.seq) };
  switch (frame.type) {
    case "message.new": {
      const message = frame.message;
      next = settle(next, message);
      next = storeMessage(next, message);
      return setTyping(next, message.conversation_id, message.sender_id, null);
    }
    case "message.updated":
      return storeMessage(next, frame.message);
    case "message.status": {
      const conversation = ensureConversation(next, frame.conversation_id, null);
      const mark = conversation.watermarks[frame.user_id] ?? { delivered: 0, read: 0 };
      const moved: Watermark =
        frame.status === "read"
          ? { read: Math.max(mark.read, frame.up_to_seq), delivered: Math.max(mark.delivered, frame.up_to_seq) }
          : { ...mark, delivered: Math.max(mark.delivered, frame.up_to_seq) };
      return withConversation(next, {
        ...conversation,
        watermarks: { ...conversation.watermarks, [frame.user_id]: moved },
      });
    }
    case "conversation.updated":
      return upsertConversation(next, frame.conversation);
    case "notification.new": {
      const items = [
        { ...frame.notification, read: false },
        ...next.notifications.items.filter((n) => n.id !== frame.notification.id),
      ].slice(0, MAX_NOTIFICATIONS);
      return { ...next, notifications: { ...next.notifications, items, unread: frame.unread_count } };
    }
    case "notification.read": {
      const ids = new Set(frame.ids ?? []);
      const items = next.notifications.items.map((n) =>
        frame.all || ids.has(n.id) ? { ...n, read: true } : n,
      );
      return { ...next, notifications: { ...next.notifications, items, unread: frame.unread_count } };
    }
    case "typing":
      return setTyping(
        next,
        frame.conversation_id,
        frame.user_id,
        frame.state === "start" ? at + TYPING_LAPSE_MS : null,
      );
    case "presence":
      return {
        ...next,
        presence: { ...next.presence, [frame.user_id]: { status: frame.status, last_seen: frame.last_seen } },
      };
    default:
      // A durable frame of a type this SDK does not know: its seq still counts.
      return next;
  }
}

/** An outbox entry is settled by its message (ack or our own `message.new`). */
function settle(state: State, message: Message): State {
  if (message.sender_id !== state.me && state.me !== null) return state;
  const entry = state.outbox[message.client_msg_id];
  if (!entry) return state;
  const { [message.client_msg_id]: _settled, ...outbox } = state.outbox;
  let next: State = { ...state, outbox };
  if (entry.to !== undefined) {
    const conversation = ensureConversation(next, message.conversation_id, message.created_at);
    if (conversation.kind === "direct" && conversation.peer === null) {
      next = withConversation(next, { ...conversation, peer: entry.to });
    }
    next = { ...next, directPeers: { ...next.directPeers, [entry.to]: message.conversation_id } };
  }
  return next;
}

function storeMessage(state: State, message: Message): State {
  let conversation = ensureConversation(state, message.conversation_id, message.created_at);
  const held = state.messages[conversation.id] ?? [];
  const index = held.findIndex((m) => m.id === message.id);
  let messages: Message[];
  if (index >= 0) {
    messages = held.slice();
    messages[index] = message;
  } else {
    messages = insertBySeq(held, message);
  }
  let hasOlder = conversation.hasOlder;
  if (messages.length > MAX_MESSAGES_PER_CONVERSATION) {
    messages = messages.slice(messages.length - MAX_MESSAGES_PER_CONVERSATION);
    hasOlder = true;
  }
  const last = messages[messages.length - 1] ?? null;
  let peer = conversation.peer;
  let directPeers = state.directPeers;
  if (conversation.kind === "direct" && peer === null && state.me !== null && message.sender_id !== state.me) {
    peer = message.sender_id;
    directPeers = { ...directPeers, [peer]: conversation.id };
  }
  conversation = {
    ...conversation,
    peer,
    hasOlder,
    lastMessage: last,
    lastActivity: last && last.created_at > conversation.lastActivity ? last.created_at : conversation.lastActivity,
  };
  return {
    ...withConversation(state, conversation),
    directPeers,
    messages: { ...state.messages, [conversation.id]: messages },
  };
}

function insertBySeq(held: Message[], message: Message): Message[] {
  let at = held.length;
  while (at > 0 && held[at - 1]!.seq > message.seq) at -= 1;
  return [...held.slice(0, at), message, ...held.slice(at)];
}

function applyHistory(state: State, conversationId: ConversationId, page: Message[], hasMore: boolean): State {
  let next = state;
  for (const message of page) next = storeMessage(next, message);
  const conversation = ensureConversation(next, conversationId, null);
  return withConversation(next, { ...conversation, hasOlder: hasMore });
}

function upsertConversation(state: State, incoming: Conversation): State {
  const existing = state.conversations[incoming.id];
  const base = existing ?? emptyConversation(incoming.id, incoming.created_at);
  const others = incoming.members.filter((m) => m.user_id !== state.me);
  const peer = incoming.kind === "direct" ? (others[0]?.user_id ?? base.peer) : null;
  const stillMember = state.me === null || incoming.members.some((m) => m.user_id === state.me);
  let readUpTo = base.readUpTo;
  const lastSeq = incoming.last_message?.seq ?? 0;
  if (typeof incoming.unread_count === "number" && lastSeq - incoming.unread_count > readUpTo) {
    readUpTo = lastSeq - incoming.unread_count;
  }
  let next = withConversation(state, {
    ...base,
    kind: incoming.kind,
    title: incoming.title ?? null,
    members: incoming.members,
    peer,
    readUpTo,
    left: !stillMember,
    hasOlder: base.hasOlder || (lastSeq > 0 && !(state.messages[incoming.id]?.length)),
    lastActivity: maxIso(base.lastActivity, incoming.last_message?.created_at ?? incoming.created_at),
  });
  if (peer !== null) next = { ...next, directPeers: { ...next.directPeers, [peer]: incoming.id } };
  if (incoming.last_message) next = storeMessage(next, incoming.last_message);
  return next;
}

function emptyConversation(id: ConversationId, createdAt: string | null): ConversationView {
  return {
    id,
    kind: "direct",
    title: null,
    members: null,
    peer: null,
    lastMessage: null,
    lastActivity: createdAt ?? "",
    readUpTo: 0,
    watermarks: {},
    hasOlder: false,
    left: false,
  };
}

function ensureConversation(state: State, id: ConversationId, createdAt: string | null): ConversationView {
  return state.conversations[id] ?? emptyConversation(id, createdAt);
}

function withConversation(state: State, conversation: ConversationView): State {
  return { ...state, conversations: { ...state.conversations, [conversation.id]: conversation } };
}

function setTyping(state: State, conversationId: ConversationId, userId: UserId, until: number | null): State {
  const current = state.typing[conversationId] ?? {};
  if (until === null && !(userId in current)) return state;
  const { [userId]: _old, ...rest } = current;
  const updated = until === null ? rest : { ...rest, [userId]: until };
  return { ...state, typing: { ...state.typing, [conversationId]: updated } };
}

function lapseTyping(state: State, now: number): State {
  let changed = false;
  const typing: State["typing"] = {};
  for (const [conversationId, typists] of Object.entries(state.typing)) {
    const kept: Record<UserId, number> = {};
    for (const [userId, until] of Object.entries(typists)) {
      if (until > now) kept[userId] = until;
      else changed = true;
    }
    typing[conversationId] = kept;
  }
  return changed ? { ...state, typing } : state;
}

function maxIso(a: string, b: string): string {
  return a > b ? a : b;
}

// --- selectors ---------------------------------------------------------------------------------

export type MessageStatusView = "pending" | "failed" | "sent" | "delivered" | "read";

/** One line of a chat window: a stored message or an optimistic (pending/failed) one. */
export interface TimelineItem {
  key: string;
  clientMsgId: string;
  messageId: string | null;
  seq: number | null;
  senderId: UserId;
  body: string;
  createdAt: string;
  mine: boolean;
  /** Only for my messages. */
  status: MessageStatusView | null;
  error?: OutboxEntry["error"];
}

/**
 * A chat is addressed by its conversation id, or by `@<user id>` for a direct chat whose
 * conversation id is not known yet (nothing exchanged yet): the first ack tells it.
 */
export function resolveChat(state: State, key: string): ConversationId | null {
  if (key.startsWith("@")) return state.directPeers[key.slice(1)] ?? null;
  return key;
}

export function timeline(state: State, key: string): TimelineItem[] {
  const conversationId = resolveChat(state, key);
  const conversation = conversationId ? state.conversations[conversationId] : undefined;
  const peer = key.startsWith("@") ? key.slice(1) : (conversation?.peer ?? null);
  const stored = conversationId ? (state.messages[conversationId] ?? []) : [];
  const items: TimelineItem[] = stored.map((message) => {
    const mine = message.sender_id === state.me;
    return {
      key: message.id,
      clientMsgId: message.client_msg_id,
      messageId: message.id,
      seq: message.seq,
      senderId: message.sender_id,
      body: message.deleted ? "" : message.body,
      createdAt: message.created_at,
      mine,
      status: mine && conversation ? statusOf(state, conversation, message) : null,
    };
  });
  const shown = new Set(stored.map((m) => m.client_msg_id));
  const pending = Object.values(state.outbox)
    .filter(
      (entry) =>
        !shown.has(entry.client_msg_id) &&
        ((conversationId !== null && entry.conversation_id === conversationId) ||
          (peer !== null && entry.to === peer)),
    )
    .sort((a, b) => a.created_at - b.created_at);
  for (const entry of pending) {
    const item: TimelineItem = {
      key: entry.client_msg_id,
      clientMsgId: entry.client_msg_id,
      messageId: null,
      seq: null,
      senderId: state.me ?? "",
      body: entry.body,
      createdAt: new Date(entry.created_at).toISOString(),
      mine: true,
      status: entry.state,
    };
    if (entry.error) item.error = entry.error;
    items.push(item);
  }
  return items;
}

/** Ticks of my message: read/delivered once every other member's watermark passed it. */
export function statusOf(state: State, conversation: ConversationView, message: Message): MessageStatusView {
  const others = otherMembers(state, conversation);
  if (others.length === 0) return "sent";
  const marks = others.map((user) => conversation.watermarks[user] ?? { delivered: 0, read: 0 });
  if (marks.every((mark) => mark.read >= message.seq)) return "read";
  if (marks.every((mark) => mark.delivered >= message.seq)) return "delivered";
  return "sent";
}

function otherMembers(state: State, conversation: ConversationView): UserId[] {
  if (conversation.members) return conversation.members.map((m) => m.user_id).filter((u) => u !== state.me);
  if (conversation.peer) return [conversation.peer];
  return Object.keys(conversation.watermarks);
}

export function unreadCount(state: State, conversationId: ConversationId): number {
  const conversation = state.conversations[conversationId];
  if (!conversation) return 0;
  return (state.messages[conversationId] ?? []).filter(
    (m) => m.sender_id !== state.me && m.seq > conversation.readUpTo && !m.deleted,
  ).length;
}

/** Conversations, most recent activity first. */
export function conversationList(state: State): ConversationView[] {
  return Object.values(state.conversations)
    .filter((c) => !c.left)
    .sort((a, b) => (a.lastActivity < b.lastActivity ? 1 : a.lastActivity > b.lastActivity ? -1 : 0));
}

/** Who is typing in a conversation now (lapsed indicators excluded). */
export function typists(state: State, conversationId: ConversationId, now: number): UserId[] {
  return Object.entries(state.typing[conversationId] ?? {})
    .filter(([, until]) => until > now)
    .map(([user]) => user);
}

/** The highest conversation seq of a message from someone else (what a read receipt covers). */
export function lastIncomingSeq(state: State, conversationId: ConversationId): number {
  const messages = state.messages[conversationId] ?? [];
  for (let i = messages.length - 1; i >= 0; i -= 1) {
    if (messages[i]!.sender_id !== state.me) return messages[i]!.seq;
  }
  return 0;
}
