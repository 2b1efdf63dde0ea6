/**
 * Browser SDK of the realtime protocol v1 (shared/protocol.md).
 *
 * Module map:
 *   client    createClient: the page's API (actions, state, typed events)
 *   hub       multi-tab: EngineHost (SharedWorker or leader tab), Replica (every tab)
 *   worker    the SharedWorker entry
 *   engine    the connection: auth, backoff, heartbeat, sync, gaps, outbox, receipts, typing
 *   closes    what each close code makes the engine do (reconnect now, later, or end) (pure)
 *   state     the stores: one immutable state, a pure reducer, selectors for UIs
 *   conversations  a conversation's held messages: visible run, history paging, unread (pure)
 *   streams   cursors, dedupe, gap detection (pure)
 *   outbox    outbox entries and their rules (pure)
 *   backoff   full-jitter exponential backoff (pure)
 *   heartbeat dead-connection detection (pure)
 *   typing    typing throttle and lapse rules (pure)
 *   storage   IndexedDB persistence
 *   push      enablePush (+ sw.js, the service worker, and pushview: what it shows, where a
 *             click leads)
 *   protocol  frame types
 */

export { createClient } from "./client.js";
export type { ClientOptions, ConnectionEnded, LinkMode, MultiTabMode, RealtimeClient } from "./client.js";
export { closeReaction } from "./closes.js";
export type { CloseReaction, EndReason } from "./closes.js";
export { RequestError } from "./engine.js";
export { StorageGone } from "./storage.js";
export { enablePush, fetchVapidKey, PushUnavailable } from "./push.js";
export type { PushOptions } from "./push.js";
export {
  conversationList,
  hasOlder,
  lastIncomingSeq,
  membership,
  resolveChat,
  statusOf,
  timeline,
  typists,
  unreadCount,
} from "./state.js";
export type {
  Capabilities,
  ConnectionState,
  ConnectionStatus,
  ConversationPages,
  ConversationView,
  MembershipView,
  MessageStatusView,
  NotificationsView,
  PresenceView,
  ReplyPreview,
  State,
  TimelineItem,
} from "./state.js";
export type * from "./protocol.js";
export type { OutboxEntry } from "./outbox.js";
