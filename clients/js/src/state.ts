/**
 * The stores a UI renders, as one immutable state changed only by `reduce(state, event)`.
 *
 * Pure and deterministic: the connection engine (in a SharedWorker or the leader tab) applies
 * every event and forwards it to every tab, which applies the same event to its own replica, so
 * all tabs show the same thing without sharing memory. Selectors at the bottom derive what a UI
 * shows (timelines with pending messages, ticks, unread counts, typing).
 */

import type { EndReason } from "./closes.js";
import {
  historyBefore,
  olderExist,
  onRead,
  onReadElsewhere,
  onServerCount,
  onStreamMessage,
  visibleRun,
  type UnreadTrack,
} from "./conversations.js";
import type {
  AppliedFrame,
  Conversation,
  ConversationId,
  ErrorCode,
  Limits,
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

/** Messages persisted per conversation (the newest); older ones are paged in with `history`. */
export const MAX_MESSAGES_PER_CONVERSATION = 500;
/** Messages held in memory per conversation: paging back in a long session stops growing here. */
export const MAX_MESSAGES_IN_MEMORY = 5000;
/** Notifications kept for the bell; older ones are paged with `notifications.list`. */
export const MAX_NOTIFICATIONS = 200;

export type ConnectionStatus =
  | "idle" // not started
  | "connecting" // opening the socket
  | "syncing" // hello received, catching up
  | "open" // caught up, live
  | "waiting" // closed; a retry is scheduled (backoff)
  | "offline" // the browser says it is offline: waiting for `online`
  | "ended"; // closed for good (see `ended`): nothing reconnects automatically

export interface ConnectionState {
  status: ConnectionStatus;
  /** Failed attempts since the last hello. */
  attempt: number;
  /** When the next attempt is due (ms since epoch), while waiting. */
  retryAt: number | null;
  lastClose: { code: number; reason: string } | null;
  /**
   * Why the connection ended for good, while it has: `erased` (close 4003, the account was
   * deleted: everything kept of it is gone), `replaced` (close 4010, a newer connection of
   * the user took this one's place: `reconnect()` on the user's action).
   */
  ended: EndReason | null;
}

/**
 * What the server supports, from its `hello` (null until the first one): `hello.features`
 * lists the frame types it answers, so nothing is probed. A server older than that field
 * announces groups by their limits (`hello.limits.max_conversations_page`).
 */
export interface Capabilities {
  /** `conversations.list`, `conversation.create`, `history`, rich messages (protocol part 2). */
  conversations: boolean | null;
  /** `search`. */
  search: boolean | null;
  /** `notifications.list`, `notification.read` (the notifier). */
  notifications: boolean | null;
  /** `hello.push.vapid_public_key` present. */
  push: boolean;
}

export interface Watermark {
  delivered: number;
  read: number;
}

export interface ConversationView extends UnreadTrack {
  id: ConversationId;
  kind: "direct" | "group";
  title: string | null;
  /** Longest-standing first; null while unknown (only messages of it seen so far). */
  members: Member[] | null;
  /** Direct conversations: the other user, once known. */
  peer: UserId | null;
  lastMessage: Message | null;
  /** ISO time of the latest message, or of the creation: the list's order. */
  lastActivity: string;
  /** Other members' delivered/read watermarks. */
  watermarks: Record<UserId, Watermark>;
  /** I was removed or left: no more frames of it will come (what was shown stays). */
  left: boolean;
}

/** Where `conversations.list` paging stands (the first page is fetched after every hello). */
export interface ConversationPages {
  /** The opaque cursor of the next page (null: none asked yet, or no more). */
  cursor: string | null;
  hasMore: boolean;
  /** The first page answered (on this connection or an earlier one). */
  loaded: boolean;
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
  /** `hello.limits` of the last connection (body and title lengths, page sizes...). */
  limits: Limits | null;
  vapidKey: string | null;
  /** Last seq applied per durable stream (persisted: a reload resumes from it). */
  cursor: Cursor;
  conversations: Record<ConversationId, ConversationView>;
  conversationPages: ConversationPages;
  /** Direct peer -> conversation id, once learnt. */
  directPeers: Record<UserId, ConversationId>;
  /** Messages per conversation, ascending seq, unique ids, in their current state (edits,
   * deletions, reactions applied); possibly with holes (see conversations.ts). */
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
  | { t: "hello"; userId: UserId; vapidKey: string | null; features: string[] | null; limits: Limits | null }
  | { t: "connection"; connection: ConnectionState }
  /** The connection ended for good (erased: every store is emptied, in every tab). */
  | { t: "ended"; reason: EndReason; close: { code: number; reason: string } }
  | { t: "frame"; frame: AppliedFrame; at: number }
  | { t: "synced"; record: SyncRecord }
  | { t: "outbox.add"; entry: OutboxEntry }
  | { t: "outbox.attempt"; clientMsgId: string }
  | { t: "outbox.acked"; message: Message }
  | { t: "outbox.failed"; clientMsgId: string; code: ErrorCode | "client"; message: string }
  | { t: "outbox.discard"; clientMsgId: string }
  | { t: "read.local"; conversationId: ConversationId; seq: number }
  | { t: "history"; conversationId: ConversationId; messages: Message[] }
  /**
   * Conversations from a request's answer (`conversations.list`, `conversation.create`): they
   * fill in what the stream has not told yet, never overwrite what it told (an answer can be
   * older than a live frame that crossed it). `page` says which list page it was, if any.
   */
  | {
      t: "conversations";
      conversations: Conversation[];
      /** `after`: the cursor the request carried (null: the first page). */
      page?: { after: string | null; cursor: string | null; hasMore: boolean };
    }
  | { t: "notifications"; items: Notification[]; unread: number; hasMore: boolean; append: boolean }
  | { t: "notifications.unread"; unread: number }
  | { t: "typing.lapse"; now: number };

export function initialState(): State {
  return {
    me: null,
    connection: { status: "idle", attempt: 0, retryAt: null, lastClose: null, ended: null },
    capabilities: { conversations: null, search: null, notifications: null, push: false },
    limits: null,
    vapidKey: null,
    cursor: {},
    conversations: {},
    conversationPages: { cursor: null, hasMore: false, loaded: false },
    directPeers: {},
    messages: {},
    outbox: {},
    presence: {},
    typing: {},
    notifications: { items: [], unread: 0, hasMore: false, loaded: false },
    lastSync: null,
  };
}

/**
 * The part of the state worth keeping across reloads: connection, presence and typing are
 * live, list pages are fetched again, and only the newest messages of each conversation stay.
 */
export function persistable(state: State): State {
  const messages: State["messages"] = {};
  for (const [id, held] of Object.entries(state.messages)) {
    messages[id] = held.length > MAX_MESSAGES_PER_CONVERSATION ? held.slice(-MAX_MESSAGES_PER_CONVERSATION) : held;
  }
  const fresh = initialState();
  return {
    ...state,
    messages,
    connection: fresh.connection,
    capabilities: fresh.capabilities,
    conversationPages: fresh.conversationPages,
    presence: {},
    typing: {},
    lastSync: null,
  };
}

function capabilitiesOf(features: string[] | null, limits: Limits | null, vapidKey: string | null): Capabilities {
  const has = (type: string, fallback: boolean): boolean => (features ? features.includes(type) : fallback);
  return {
    conversations: has("conversations.list", limits?.max_conversations_page !== undefined),
    search: has("search", limits?.max_search_page !== undefined),
    notifications: has("notifications.list", false),
    push: vapidKey !== null,
  };
}

export function reduce(state: State, event: Event): State {
  switch (event.t) {
    case "hello":
      return {
        ...state,
        me: event.userId,
        vapidKey: event.vapidKey,
        limits: event.limits,
        capabilities: capabilitiesOf(event.features, event.limits, event.vapidKey),
      };
    case "connection":
      return { ...state, connection: event.connection };
    case "ended": {
      const connection: ConnectionState = {
        status: "ended",
        attempt: 0,
        retryAt: null,
        lastClose: event.close,
        ended: event.reason,
      };
      // Erased: nothing of the user may stay, not even in a tab's memory.
      if (event.reason === "erased") return { ...initialState(), connection };
      // No typing stop will come any more; what else was shown stays.
      return { ...state, connection, typing: {} };
    }
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
      // Our own message.new (in the stream, before the ack on this connection) is what replaces.
      return storeMessage(settle(state, event.message), event.message, "fill");
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
      if (!conversation) return state;
      const held = state.messages[conversation.id] ?? [];
      const track = onRead(conversation, held, state.me, event.seq);
      return track === conversation ? state : withConversation(state, { ...conversation, ...track });
    }
    case "history":
      return event.messages.reduce((next, message) => storeMessage(next, message, "fill"), state);
    case "conversations": {
      let next = event.conversations.reduce(
        (acc: State, conversation: Conversation) => upsertConversation(acc, conversation, "fill"),
        state,
      );
      const page = event.page;
      // A next page answered after a newer first page (a reconnect) leaves the paging alone.
      if (page && (page.after === null || page.after === next.conversationPages.cursor)) {
        const cursor = page.hasMore ? page.cursor : null;
        next = { ...next, conversationPages: { cursor, hasMore: cursor !== null, loaded: true } };
      }
      return next;
    }
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
      next = storeMessage(next, message, "stream");
      return setTyping(next, message.conversation_id, message.sender_id, null);
    }
    case "message.updated":
      next = storeMessage(next, frame.message, "stream");
      return frame.message.deleted ? erasePreviews(next, frame.message) : next;
    case "message.status": {
      if (frame.user_id === next.me) return readElsewhere(next, frame.conversation_id, frame.status, frame.up_to_seq);
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
      return upsertConversation(next, frame.conversation, "stream");
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

/**
 * My own watermark moved: a read on another device of mine (or this one, echoed) clears what
 * it covers here too. Delivered changes nothing shown; a conversation not held is left alone.
 */
function readElsewhere(state: State, conversationId: ConversationId, status: string, seq: number): State {
  const conversation = state.conversations[conversationId];
  if (status !== "read" || !conversation) return state;
  const held = state.messages[conversationId] ?? [];
  const lastSeq = Math.max(conversation.lastMessage?.seq ?? 0, conversation.unreadAsOf);
  const track = onReadElsewhere(conversation, held, state.me, seq, lastSeq);
  return track === conversation ? state : withConversation(state, { ...conversation, ...track });
}

/**
 * A deleted message leaves the notifications that previewed it with an empty body, as the
 * notifier erases them in storage (it tells no device: the message's own frame is the signal).
 */
function erasePreviews(state: State, message: Message): State {
  const shows = (n: Notification) =>
    n.kind === "message" &&
    n.body !== "" &&
    n.data.message_id === message.id &&
    n.data.conversation_id === message.conversation_id;
  if (!state.notifications.items.some(shows)) return state;
  const items = state.notifications.items.map((n) => (shows(n) ? { ...n, body: "" } : n));
  return { ...state, notifications: { ...state.notifications, items } };
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

/**
 * Hold a message. `stream`: a durable frame (or the ack of my send), applied in stream order,
 * so it replaces the held version. `fill`: from a request's answer (history, a list's last
 * message), which may be older than a frame that crossed it: it only fills a gap, never
 * replaces (every change of a held message comes through the stream).
 */
function storeMessage(state: State, message: Message, mode: "stream" | "fill"): State {
  let conversation = ensureConversation(state, message.conversation_id, message.created_at);
  const held = state.messages[conversation.id] ?? [];
  const index = held.findIndex((m) => m.id === message.id);
  const previous = index >= 0 ? held[index] : undefined;
  if (previous && mode === "fill") return state;
  let messages: Message[];
  if (previous) {
    messages = held.slice();
    messages[index] = message;
  } else {
    messages = insertBySeq(held, message);
    if (messages.length > MAX_MESSAGES_IN_MEMORY) messages = messages.slice(-MAX_MESSAGES_IN_MEMORY);
  }
  const track = mode === "stream" ? onStreamMessage(conversation, state.me, previous, message) : conversation;
  let peer = conversation.peer;
  let directPeers = state.directPeers;
  if (conversation.kind === "direct" && peer === null && state.me !== null && message.sender_id !== state.me) {
    peer = message.sender_id;
    directPeers = { ...directPeers, [peer]: conversation.id };
  }
  const last = messages[messages.length - 1] ?? null;
  conversation = {
    ...conversation,
    ...track,
    peer,
    lastMessage: last,
    lastActivity: last ? latest(conversation.lastActivity, last.created_at) : conversation.lastActivity,
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

/**
 * A conversation as the server shows it. `stream` (`conversation.updated`): its members,
 * title and my membership are the truth from here on. `fill` (a request's answer): only what
 * is not known yet is taken. Either way the unread count is the server's as of its last message.
 */
function upsertConversation(state: State, incoming: Conversation, mode: "stream" | "fill"): State {
  const existing = state.conversations[incoming.id];
  const base = existing ?? emptyConversation(incoming.id, incoming.created_at);
  const described = mode === "stream" || base.members === null;
  let next = state;
  if (incoming.last_message) next = storeMessage(next, incoming.last_message, mode);
  let conversation = next.conversations[incoming.id] ?? base;
  if (described) {
    const others = incoming.members.filter((m) => m.user_id !== state.me);
    conversation = {
      ...conversation,
      kind: incoming.kind,
      title: incoming.title ?? null,
      members: incoming.members,
      peer: incoming.kind === "direct" ? (others[0]?.user_id ?? conversation.peer) : null,
      left: mode === "stream" ? !isMember(state, incoming) : conversation.left,
    };
  }
  const lastSeq = incoming.last_message?.seq ?? 0;
  if (mode === "stream") conversation = { ...conversation, watermarks: joinedAt(conversation, incoming, state.me, lastSeq) };
  const held = next.messages[incoming.id] ?? [];
  const track = onServerCount(conversation, held, state.me, incoming.unread_count, lastSeq);
  conversation = {
    ...conversation,
    ...track,
    lastActivity: latest(conversation.lastActivity, incoming.last_message?.created_at ?? incoming.created_at),
  };
  next = withConversation(next, conversation);
  if (conversation.peer !== null) next = { ...next, directPeers: { ...next.directPeers, [conversation.peer]: incoming.id } };
  return next;
}

/**
 * A member I hold no watermark of starts at the conversation's last message, as the server
 * starts a member added later: it has nothing of mine before that to deliver or read. (Ticks
 * are about my messages, all newer than my own joining, so a member I meet when I join is
 * right at that seq too.)
 */
function joinedAt(conversation: ConversationView, incoming: Conversation, me: UserId | null, lastSeq: number): Record<UserId, Watermark> {
  const missing = incoming.members.filter((m) => m.user_id !== me && !(m.user_id in conversation.watermarks));
  if (missing.length === 0) return conversation.watermarks;
  const watermarks = { ...conversation.watermarks };
  for (const member of missing) watermarks[member.user_id] = { delivered: lastSeq, read: lastSeq };
  return watermarks;
}

function isMember(state: State, conversation: Conversation): boolean {
  return state.me === null || conversation.members.some((m) => m.user_id === state.me);
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
    watermarks: {},
    left: false,
    unread: 0,
    unreadAsOf: 0,
    readUpTo: 0,
    readKnown: false,
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

/** Compared as times: ISO strings of the server may or may not carry fractions of a second. */
function timeOf(iso: string): number {
  const ms = Date.parse(iso);
  return Number.isNaN(ms) ? 0 : ms;
}

function latest(a: string, b: string): string {
  return timeOf(b) > timeOf(a) ? b : a;
}

// --- selectors ---------------------------------------------------------------------------------

export type MessageStatusView = "pending" | "failed" | "sent" | "delivered" | "read";

/** The message a reply answers, as far as it is held. */
export interface ReplyPreview {
  messageId: string;
  /** Null when the message is not held (older than what was paged in). */
  senderId: UserId | null;
  body: string | null;
  deleted: boolean;
}

/** One line of a chat window: a stored message or an optimistic (pending/failed) one. */
export interface TimelineItem {
  key: string;
  clientMsgId: string;
  messageId: string | null;
  seq: number | null;
  senderId: UserId;
  /** Empty for a deleted message (its text is erased). */
  body: string;
  createdAt: string;
  mine: boolean;
  /** Only for my messages. */
  status: MessageStatusView | null;
  edited: boolean;
  deleted: boolean;
  /** Emoji -> users, in the order they were first used. */
  reactions: Record<string, UserId[]>;
  replyTo: ReplyPreview | null;
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
  const byId = new Map(stored.map((m) => [m.id, m]));
  const items: TimelineItem[] = visibleRun(stored).map((message) => {
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
      edited: Boolean(message.edited_at),
      deleted: Boolean(message.deleted),
      reactions: message.reactions ?? {},
      replyTo: message.reply_to ? replyPreview(message.reply_to, byId.get(message.reply_to)) : null,
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
      edited: false,
      deleted: false,
      reactions: {},
      replyTo: entry.reply_to ? replyPreview(entry.reply_to, byId.get(entry.reply_to)) : null,
    };
    if (entry.error) item.error = entry.error;
    items.push(item);
  }
  return items;
}

function replyPreview(messageId: string, answered: Message | undefined): ReplyPreview {
  return {
    messageId,
    senderId: answered?.sender_id ?? null,
    body: answered ? (answered.deleted ? "" : answered.body) : null,
    deleted: Boolean(answered?.deleted),
  };
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

/** Messages of others after my read watermark, deleted ones excluded (the server's count,
 * kept current by what arrived since). */
export function unreadCount(state: State, conversationId: ConversationId): number {
  return state.conversations[conversationId]?.unread ?? 0;
}

/**
 * Conversations, latest activity first (the latest message, or the creation), including
 * those I was removed from or left (`left`: a UI may show the removal, or filter them out).
 */
export function conversationList(state: State): ConversationView[] {
  return Object.values(state.conversations).sort(
    (a, b) => timeOf(b.lastActivity) - timeOf(a.lastActivity) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0),
  );
}

/** Older messages than those a window shows exist (`loadOlder` pages them in). */
export function hasOlder(state: State, conversationId: ConversationId): boolean {
  const conversation = state.conversations[conversationId];
  return olderExist(state.messages[conversationId] ?? [], conversation?.lastMessage?.seq ?? 0);
}

/** The `before_seq` of the conversation's next `history` page (undefined: the newest). */
export function nextHistoryBefore(state: State, conversationId: ConversationId): number | undefined {
  return historyBefore(state.messages[conversationId] ?? []);
}

/** Members and roles of a conversation, and what I may do to it (protocol part 2 rules). */
export interface MembershipView {
  members: Member[];
  myRole: Member["role"] | null;
  /** Admin of a group I still belong to: add, remove, set roles, rename. */
  canManage: boolean;
}

export function membership(state: State, conversationId: ConversationId): MembershipView {
  const conversation = state.conversations[conversationId];
  const members = conversation?.members ?? [];
  const myRole = members.find((m) => m.user_id === state.me)?.role ?? null;
  return {
    members,
    myRole,
    canManage: conversation?.kind === "group" && !conversation.left && myRole === "admin",
  };
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
