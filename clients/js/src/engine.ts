/**
 * The connection engine: ONE per user per browser (it runs in a SharedWorker, or in the tab
 * that holds the leader lock). It owns the WebSocket and everything the protocol asks of a
 * client:
 *
 *   connect (token from the provider, or the session cookie) -> hello (capabilities from
 *   hello.features: nothing is probed)
 *     -> sync from the cursor until has_more is false (live frames meanwhile are held) -> open
 *     -> resend the outbox (same client_msg_id), flush receipts, refresh the lists the server
 *        has (first page of conversations.list, notifications.list)
 *   live durable frame: repeat -> dropped; next -> applied; beyond a gap -> held + sync
 *   close -> what closes.ts decides for its code: full-jitter backoff -> connect (4001: at
 *     once, with a fresh token); 4003 (erased) and 4010 (replaced) end it for good: the page
 *     is told, nothing reconnects by itself, and 4003 deletes everything stored of the user
 *   no frame or pong within the heartbeat window -> the socket is dead -> replaced
 *   offline -> closed, waits for online; visible again -> checked at once
 *
 * Every change is an `Event` applied with `reduce` and handed to `publish`, which forwards it
 * to every tab (each applies it to its replica). The engine persists the state (debounced) and
 * settles outbox records in IndexedDB.
 */

import { backoffDelay, DEFAULT_BACKOFF, retryDelay, type BackoffPolicy } from "./backoff.js";
import { backoffAttempt, CLOSE_ABNORMAL, CLOSE_DEAD, closeReaction, type EndReason } from "./closes.js";
import { heartbeatAction } from "./heartbeat.js";
import { isTransient, pendingInOrder, sendFrame, type OutboxEntry } from "./outbox.js";
import {
  isDurable,
  type Ack,
  type AppliedFrame,
  type Conversation,
  type ConversationId,
  type ErrorCode,
  type ErrorFrame,
  type Hello,
  type Message,
  type Notification,
  type PresenceStatus,
  type PushSubscriptionJson,
  type ServerFrame,
} from "./protocol.js";
import type { Persistence } from "./storage.js";
import {
  initialState,
  nextHistoryBefore,
  persistable,
  reduce,
  type ConnectionState,
  type Event,
  type State,
} from "./state.js";
import { classify, HeldFrames } from "./streams.js";
import { DEFAULT_TYPING, onIdleCheck, onKeystroke, onStop, type OutgoingTyping } from "./typing.js";

/** How the engine authenticates: a token provider (called for every connection) or the cookie. */
export type AuthMode = { kind: "token"; getToken: () => Promise<string> } | { kind: "cookie" };

/** Commands a tab sends to the engine. */
export type Command =
  | { c: "send"; entry: OutboxEntry }
  | { c: "retry"; clientMsgId: string }
  | { c: "discard"; clientMsgId: string }
  | { c: "read"; conversationId: ConversationId; seq: number }
  | { c: "typing"; conversationId: ConversationId; state: "key" | "stop" }
  | { c: "presence"; status: PresenceStatus }
  | { c: "history"; conversationId: ConversationId; limit?: number }
  | { c: "conversations.reload" }
  | { c: "conversations.more" }
  | { c: "group.create"; title: string; members: string[]; key: string }
  | { c: "notifications.read"; ids?: string[]; all?: boolean }
  | { c: "notifications.more" }
  | { c: "push.subscribe"; subscription: PushSubscriptionJson }
  | { c: "request"; frame: Record<string, unknown> }
  | { c: "env"; online?: boolean; visible?: boolean }
  | { c: "reconnect" }
  | { c: "outbox.check" };

/** A refusal from the server (`error` frame) or of the client (not connected). */
export class RequestError extends Error {
  constructor(
    readonly code: ErrorCode | "disconnected",
    message: string,
    /** The server's `retry_after_ms`, when it said how long to wait before sending again. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = "RequestError";
  }
}

export interface EngineOptions {
  url: string;
  auth: AuthMode;
  persistence: Persistence;
  /** Receives every event after the engine applied it (to forward to tabs). */
  publish: (event: Event) => void;
  backoff?: BackoffPolicy;
  now?: () => number;
  random?: () => number;
  WebSocketImpl?: typeof WebSocket;
  /** Whether the browser says it is online at start. */
  online?: boolean;
  /** Conversations per `conversations.list` page (default 30, the server's default). */
  conversationsPage?: number;
}

interface Pending {
  resolve: (ack: Ack) => void;
  reject: (error: RequestError) => void;
}

interface ReceiptMarks {
  delivered: number;
  read: number;
}

const SYNC_PAGE = 200;
const RECEIPT_DELAY_MS = 50;
const TYPING_TICK_MS = 1000;
const REQUEST_TIMEOUT_MS = 30_000;

export class Engine {
  state: State = initialState();
  private socket: WebSocket | null = null;
  private socketGeneration = 0;
  private hello: Hello | null = null;
  private pending = new Map<string, Pending>();
  private nextRequest = 0;
  private syncing = false;
  private held = new HeldFrames<AppliedFrame & { stream: string; seq: number }>();
  private online: boolean;
  private stopped = false;
  /** Ended for good by the server (4003, 4010): no automatic reconnection. */
  private ended: EndReason | null = null;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private heartbeatTimer: ReturnType<typeof setInterval> | null = null;
  private lastFrameAt = 0;
  private lastPingAt: number | null = null;
  private flushing = false;
  private flushAgain = false;
  private outboxRetryTimer: ReturnType<typeof setTimeout> | null = null;
  private outboxFailures = 0;
  private wanted = new Map<ConversationId, ReceiptMarks>();
  private confirmed = new Map<ConversationId, ReceiptMarks>();
  private receiptTimer: ReturnType<typeof setTimeout> | null = null;
  private saving = false;
  private saveAgain = false;
  private typingOut = new Map<ConversationId, OutgoingTyping>();
  private typingTimer: ReturnType<typeof setInterval> | null = null;
  private readonly now: () => number;
  private readonly random: () => number;
  private readonly backoff: BackoffPolicy;
  private readonly WebSocketImpl: typeof WebSocket;

  constructor(private readonly options: EngineOptions) {
    this.now = options.now ?? Date.now;
    this.random = options.random ?? Math.random;
    this.backoff = options.backoff ?? DEFAULT_BACKOFF;
    this.WebSocketImpl = options.WebSocketImpl ?? WebSocket;
    this.online = options.online ?? true;
  }

  /** Start from a state (the persisted one, or a tab's replica when a leader takes over). */
  start(initial: State): void {
    if (initial.connection.ended !== null) {
      // A tab taking over as leader after the end: it stays ended.
      this.state = initial;
      this.ended = initial.connection.ended;
      return;
    }
    this.state = {
      ...initial,
      connection: { status: "idle", attempt: 0, retryAt: null, lastClose: null, ended: null },
    };
    if (this.online) this.connect();
    else this.setConnection({ status: "offline", retryAt: null });
  }

  /** Close the socket for good (the leader tab goes away; the page signs out). */
  stop(): void {
    this.stopped = true;
    this.clearTimers();
    this.socket?.close(1000, "client stopped");
    this.socket = null;
    this.failPending("client stopped");
    void this.save();
  }

  // -- commands from tabs ----------------------------------------------------------------

  async command(command: Command): Promise<unknown> {
    switch (command.c) {
      case "send":
        if (!this.state.outbox[command.entry.client_msg_id]) {
          this.dispatch({ t: "outbox.add", entry: command.entry });
        }
        void this.flushOutbox();
        return command.entry.client_msg_id;
      case "retry": {
        const entry = this.state.outbox[command.clientMsgId];
        if (entry?.state === "failed") {
          const retried: OutboxEntry = { ...entry, state: "pending" };
          delete retried.error;
          await this.options.persistence.putOutbox(retried);
          this.dispatch({ t: "outbox.add", entry: retried });
          void this.flushOutbox();
        }
        return null;
      }
      case "discard":
        await this.options.persistence.deleteOutbox(command.clientMsgId);
        this.dispatch({ t: "outbox.discard", clientMsgId: command.clientMsgId });
        return null;
      case "read":
        this.dispatch({ t: "read.local", conversationId: command.conversationId, seq: command.seq });
        this.want(command.conversationId, "read", command.seq);
        return null;
      case "typing":
        this.onTyping(command.conversationId, command.state);
        return null;
      case "presence":
        return this.request({ type: "presence.set", status: command.status });
      case "history":
        return this.loadHistory(command.conversationId, command.limit ?? 50);
      case "conversations.reload":
        return this.loadConversations(null);
      case "conversations.more": {
        const pages = this.state.conversationPages;
        return pages.hasMore && pages.cursor !== null ? this.loadConversations(pages.cursor) : [];
      }
      case "group.create": {
        const ack = await this.request({
          type: "conversation.create",
          kind: "group",
          title: command.title,
          members: command.members,
          client_conversation_id: command.key,
        });
        // The durable conversation.updated follows (or came first); the ack shows it at once.
        const conversation = ack.conversation as Conversation | undefined;
        if (conversation) this.dispatch({ t: "conversations", conversations: [conversation] });
        return conversation ?? null;
      }
      case "notifications.read": {
        const frame: Record<string, unknown> = { type: "notification.read" };
        if (command.all) frame.all = true;
        else frame.ids = command.ids ?? [];
        const ack = await this.request(frame);
        if (typeof ack.unread_count === "number") {
          this.dispatch({ t: "notifications.unread", unread: ack.unread_count });
        }
        return ack.unread_count ?? null;
      }
      case "notifications.more":
        return this.loadNotifications(true);
      case "push.subscribe":
        return this.request({ type: "push.subscribe", subscription: command.subscription });
      case "request":
        return this.request(command.frame);
      case "env":
        if (command.online !== undefined) this.setOnline(command.online);
        if (command.visible) this.onVisible();
        return null;
      case "outbox.check":
        void this.flushOutbox();
        return null;
      case "reconnect":
        this.reconnect();
        return null;
    }
  }

  // -- connection ------------------------------------------------------------------------

  private async connect(): Promise<void> {
    if (this.stopped || this.ended !== null || !this.online) return;
    this.clearRetry();
    const generation = ++this.socketGeneration;
    this.setConnection({ status: "connecting", retryAt: null });
    const protocols = ["chat.v1"];
    if (this.options.auth.kind === "token") {
      try {
        protocols.push(`bearer.${await this.options.auth.getToken()}`);
      } catch {
        if (generation === this.socketGeneration) this.scheduleReconnect(0, "token provider failed");
        return;
      }
    }
    if (generation !== this.socketGeneration || this.stopped || this.ended !== null || !this.online) return;
    let socket: WebSocket;
    try {
      socket = new this.WebSocketImpl(this.options.url, protocols);
    } catch {
      this.scheduleReconnect(0, "invalid url");
      return;
    }
    this.socket = socket;
    this.lastFrameAt = this.now();
    this.lastPingAt = null;
    socket.onmessage = (event) => {
      if (this.socket === socket) this.onFrame(String(event.data));
    };
    socket.onclose = (event) => {
      if (this.socket === socket) this.onClose(event.code, event.reason);
    };
  }

  private onClose(code: number, reason: string): void {
    this.socket = null;
    this.hello = null;
    this.syncing = false;
    this.held.drain();
    this.stopHeartbeat();
    this.failPending("connection closed");
    this.confirmed.clear();
    if (this.stopped) return;
    const reaction = closeReaction(code);
    if (reaction.kind === "end") {
      this.end(reaction.reason, { code, reason });
      return;
    }
    if (!this.online) {
      this.setConnection({ status: "offline", retryAt: null, lastClose: { code, reason } });
      return;
    }
    const attempt = reaction.kind === "now" ? null : backoffAttempt(reaction, this.state.connection.attempt);
    this.scheduleReconnect(attempt, reason, code);
  }

  /**
   * The server ended this connection for good. Nothing reconnects by itself: a 4010 means
   * another device of the user took this one's place (reconnecting would close another in
   * turn), a 4003 that the user no longer exists here, and then everything stored of them is
   * deleted — in memory by the `ended` event (every tab applies it), on disk here and by
   * every tab (`Persistence.destroy`).
   */
  private end(why: EndReason, close: { code: number; reason: string }): void {
    this.ended = why;
    this.clearTimers();
    this.typingOut.clear();
    if (why === "erased") {
      this.wanted.clear();
      this.outboxFailures = 0;
    }
    this.dispatch({ t: "ended", reason: why, close });
    if (why === "erased") {
      this.options.persistence.destroy().catch(() => undefined);
    }
  }

  /** The user asks to connect again after a 4010 (an erased account stays ended). */
  private reconnect(): void {
    if (this.ended === "erased") throw new RequestError("disconnected", "this account was erased");
    if (this.ended === null) {
      this.onVisible();
      return;
    }
    this.ended = null;
    this.setConnection({ status: "idle", attempt: 0, retryAt: null, ended: null });
    if (this.online) void this.connect();
    else this.setConnection({ status: "offline" });
  }

  private scheduleReconnect(attempt: number | null, reason: string, code = CLOSE_ABNORMAL): void {
    const delay = attempt === null ? 0 : backoffDelay(attempt, this.backoff, this.random());
    this.setConnection({
      status: "waiting",
      attempt: (attempt ?? -1) + 1,
      retryAt: this.now() + delay,
      lastClose: { code, reason },
    });
    this.clearRetry();
    this.retryTimer = setTimeout(() => void this.connect(), delay);
  }

  private setOnline(online: boolean): void {
    if (online === this.online) return;
    this.online = online;
    if (this.ended !== null) return;
    if (!online) {
      // Nothing can get through: stop trying (and burning battery) until `online`.
      this.clearRetry();
      const socket = this.socket;
      if (socket) {
        this.onClose(1001, "offline");
        socket.close(1000, "offline");
      } else {
        this.setConnection({ status: "offline", retryAt: null });
      }
    } else if (!this.socket) {
      this.setConnection({ attempt: 0 });
      void this.connect();
    }
  }

  private onVisible(): void {
    if (this.ended !== null) return;
    if (!this.socket) {
      if (this.online && this.state.connection.status === "waiting") {
        this.setConnection({ attempt: 0 });
        void this.connect();
      }
      return;
    }
    // Back from the background (or a sleeping laptop): prove the socket still works now.
    if (this.hello) this.ping();
  }

  private onFrame(text: string): void {
    this.lastFrameAt = this.now();
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      return;
    }
    switch (frame.type) {
      case "hello":
        void this.onHello(frame);
        return;
      case "ack":
        this.pending.get(frame.id)?.resolve(frame);
        this.pending.delete(frame.id);
        return;
      case "error":
        this.onError(frame);
        return;
      case "pong":
        return;
      default:
        this.onApplied(frame);
    }
  }

  private onError(frame: ErrorFrame): void {
    if (frame.id) {
      this.pending.get(frame.id)?.reject(new RequestError(frame.code, frame.message, frame.retry_after_ms));
      this.pending.delete(frame.id);
    }
  }

  private async onHello(hello: Hello): Promise<void> {
    const socket = this.socket;
    if (this.state.me !== null && this.state.me !== hello.user_id) {
      // Another user signed in on this browser: nothing of the previous one may leak or be sent.
      await this.options.persistence.clear();
      this.state = { ...initialState(), connection: this.state.connection };
      this.typingOut.clear();
      this.wanted.clear();
    }
    this.hello = hello;
    this.dispatch({
      t: "hello",
      userId: hello.user_id,
      vapidKey: hello.push?.vapid_public_key ?? null,
      features: hello.features ?? null,
      limits: hello.limits ?? null,
    });
    this.setConnection({ status: "syncing", attempt: 0, retryAt: null });
    this.startHeartbeat(hello.heartbeat_s * 1000);
    if (!(await this.catchUp()) || this.socket !== socket) return;
    this.setConnection({ status: "open" });
    void this.flushOutbox();
    this.flushReceipts();
    // After the sync: what the lists say about unread counts is then as new as the stream.
    const { conversations, notifications } = this.state.capabilities;
    if (conversations) void this.loadConversations(null).catch(() => undefined);
    if (notifications) void this.loadNotifications(false).catch(() => undefined);
  }

  // -- durable frames, sync, gaps --------------------------------------------------------

  private onApplied(frame: AppliedFrame): void {
    if (!isDurable(frame)) {
      this.dispatch({ t: "frame", frame, at: this.now() });
      return;
    }
    if (this.syncing || this.hello === null) {
      this.held.hold(frame);
      return;
    }
    switch (classify(this.state.cursor, frame.stream, frame.seq)) {
      case "duplicate":
        return;
      case "next":
        this.applyDurable(frame);
        return;
      case "gap":
        this.held.hold(frame);
        void this.catchUp();
    }
  }

  private applyDurable(frame: AppliedFrame): void {
    this.dispatch({ t: "frame", frame, at: this.now() });
    if (frame.type === "message.new" && frame.message.sender_id !== this.state.me) {
      this.want(frame.message.conversation_id, "delivered", frame.message.seq);
    }
  }

  /**
   * Sync until nothing is missing, then replay the live frames held meanwhile; a held frame
   * beyond a gap means more to fetch, so it loops. True when caught up on this socket.
   */
  private async catchUp(): Promise<boolean> {
    if (this.syncing) return false;
    this.syncing = true;
    const socket = this.socket;
    const asked = { ...this.state.cursor };
    let received = 0;
    try {
      let round: number;
      do {
        round = 0;
        for (;;) {
          const ack = await this.request({ type: "sync", cursor: this.state.cursor, limit: SYNC_PAGE });
          const events = (ack.events ?? []) as AppliedFrame[];
          for (const frame of events) {
            // A sync page is authoritative and in order: only repeats are dropped.
            if (isDurable(frame) && classify(this.state.cursor, frame.stream, frame.seq) === "duplicate") {
              continue;
            }
            this.applyDurable(frame);
          }
          received += events.length;
          round += events.length;
          if (!ack.has_more) break;
        }
        // A sync that brought nothing cannot fill the gap: take the frames as they are.
      } while (this.replayHeld(round === 0));
    } catch (error) {
      this.syncing = false;
      if (this.socket === socket && socket) {
        // The stream's owner is unavailable: drop this socket and try again with backoff.
        this.onClose(4000, error instanceof Error ? error.message : "sync failed");
        socket.close(4000, "sync failed");
      }
      return false;
    }
    this.syncing = false;
    this.dispatch({ t: "synced", record: { cursor: asked, events: received, at: this.now() } });
    return true;
  }

  /** Apply held live frames in order; true when one lies beyond a gap (sync again). */
  private replayHeld(acceptGaps: boolean): boolean {
    const frames = this.held.drain();
    let gap = false;
    for (const frame of frames) {
      const verdict = classify(this.state.cursor, frame.stream, frame.seq);
      if (verdict === "next" || (verdict === "gap" && acceptGaps)) this.applyDurable(frame);
      else if (verdict === "gap") {
        this.held.hold(frame);
        gap = true;
      }
    }
    return gap;
  }

  // -- lists -------------------------------------------------------------------------------

  /** A page of `conversations.list`: the first (`after` null) or the one after a cursor. */
  private async loadConversations(after: string | null): Promise<Conversation[]> {
    const frame: Record<string, unknown> = { type: "conversations.list", limit: this.options.conversationsPage ?? 30 };
    if (after !== null) frame.before = after;
    const ack = await this.request(frame);
    const conversations = (ack.conversations ?? []) as Conversation[];
    const cursor = typeof ack.cursor === "string" ? ack.cursor : null;
    this.dispatch({ t: "conversations", conversations, page: { after, cursor, hasMore: Boolean(ack.has_more) } });
    return conversations;
  }

  private async loadNotifications(more: boolean): Promise<Notification[]> {
    const frame: Record<string, unknown> = { type: "notifications.list", limit: 30 };
    const items = this.state.notifications.items;
    if (more && items.length) frame.before = items[items.length - 1]!.id;
    const ack = await this.request(frame);
    const notifications = (ack.notifications ?? []) as Notification[];
    this.dispatch({
      t: "notifications",
      items: notifications,
      unread: typeof ack.unread_count === "number" ? ack.unread_count : this.state.notifications.unread,
      hasMore: Boolean(ack.has_more),
      append: more,
    });
    return notifications;
  }

  /** The page of `history` just older than what a window shows (gaps are filled first). */
  private async loadHistory(conversationId: ConversationId, limit: number): Promise<Message[]> {
    const frame: Record<string, unknown> = { type: "history", conversation_id: conversationId, limit };
    const before = nextHistoryBefore(this.state, conversationId);
    if (before !== undefined) frame.before_seq = before;
    const ack = await this.request(frame);
    const messages = (ack.messages ?? []) as Message[];
    this.dispatch({ t: "history", conversationId, messages });
    return messages;
  }

  // -- outbox ------------------------------------------------------------------------------

  /**
   * Send pending entries one after another, in the order they were written. A send that
   * comes while a pass runs makes another pass follow (the running one had its list already).
   */
  private async flushOutbox(): Promise<void> {
    if (this.state.connection.status !== "open") return;
    if (this.flushing) {
      this.flushAgain = true;
      return;
    }
    this.flushing = true;
    try {
      do {
        this.flushAgain = false;
        if (!(await this.flushPass())) break;
      } while (this.flushAgain);
    } finally {
      this.flushing = false;
    }
  }

  /** One pass over the outbox; false when it stopped early (disconnected, or a retry waits). */
  private async flushPass(): Promise<boolean> {
    await this.adoptStoredOutbox();
    for (const entry of pendingInOrder(Object.values(this.state.outbox))) {
      if (this.state.connection.status !== "open") return false;
      if (this.state.outbox[entry.client_msg_id]?.state !== "pending") continue;
      this.dispatch({ t: "outbox.attempt", clientMsgId: entry.client_msg_id });
      try {
        const ack = await this.request(sendFrame(entry));
        this.dispatch({ t: "outbox.acked", message: ack.message as Message });
        await this.options.persistence.deleteOutbox(entry.client_msg_id);
        this.outboxFailures = 0;
      } catch (error) {
        if (error instanceof RequestError && error.code !== "disconnected" && !isTransient(error.code)) {
          this.dispatch({
            t: "outbox.failed",
            clientMsgId: entry.client_msg_id,
            code: error.code,
            message: error.message,
          });
          const failed = this.state.outbox[entry.client_msg_id];
          if (failed) await this.options.persistence.putOutbox(failed);
          continue;
        }
        if (error instanceof RequestError && error.code !== "disconnected") this.retryOutboxLater(error.retryAfterMs);
        return false;
      }
    }
    return true;
  }

  private retryOutboxLater(retryAfterMs?: number): void {
    if (this.outboxRetryTimer) return;
    const delay = retryDelay(this.outboxFailures++, this.backoff, this.random(), retryAfterMs);
    this.outboxRetryTimer = setTimeout(() => {
      this.outboxRetryTimer = null;
      void this.flushOutbox();
    }, delay);
  }

  /** Entries other tabs wrote while no engine heard of them (a leader died in between). */
  private async adoptStoredOutbox(): Promise<void> {
    for (const entry of await this.options.persistence.loadOutbox()) {
      if (this.state.outbox[entry.client_msg_id]) continue;
      if (this.isStored(entry)) {
        await this.options.persistence.deleteOutbox(entry.client_msg_id);
      } else {
        this.dispatch({ t: "outbox.add", entry });
      }
    }
  }

  private isStored(entry: OutboxEntry): boolean {
    const conversationId =
      entry.conversation_id ?? (entry.to !== undefined ? this.state.directPeers[entry.to] : undefined);
    if (!conversationId) return false;
    return (this.state.messages[conversationId] ?? []).some((m) => m.client_msg_id === entry.client_msg_id);
  }

  // -- receipts ----------------------------------------------------------------------------

  /** Receipts are watermarks: only the highest one per conversation needs to reach the server. */
  private want(conversationId: ConversationId, status: "delivered" | "read", seq: number): void {
    const marks = this.wanted.get(conversationId) ?? { delivered: 0, read: 0 };
    marks[status] = Math.max(marks[status], seq);
    this.wanted.set(conversationId, marks);
    if (!this.receiptTimer) {
      this.receiptTimer = setTimeout(() => {
        this.receiptTimer = null;
        this.flushReceipts();
      }, RECEIPT_DELAY_MS);
    }
  }

  private flushReceipts(): void {
    if (this.state.connection.status !== "open") return;
    for (const [conversationId, marks] of this.wanted) {
      const done = this.confirmed.get(conversationId) ?? { delivered: 0, read: 0 };
      // read implies delivered: one read receipt covers both.
      const status = marks.read > done.read ? "read" : marks.delivered > done.delivered ? "delivered" : null;
      if (status === null) continue;
      const seq = marks[status];
      this.request({ type: "receipt", conversation_id: conversationId, seq, status }).then(
        () => {
          const now = this.confirmed.get(conversationId) ?? { delivered: 0, read: 0 };
          const moved = { ...now, [status]: Math.max(now[status], seq) };
          if (status === "read") moved.delivered = Math.max(moved.delivered, seq);
          this.confirmed.set(conversationId, moved);
          const still = this.wanted.get(conversationId);
          if (still && still.read <= moved.read && still.delivered <= moved.delivered) {
            this.wanted.delete(conversationId);
          }
        },
        (error: unknown) => {
          // Refused for good (removed from the group): never sent again. Anything else
          // (disconnected, unavailable) is sent again after the next hello.
          if (error instanceof RequestError && (error.code === "forbidden" || error.code === "not_found")) {
            this.wanted.delete(conversationId);
          }
        },
      );
    }
  }

  // -- typing ------------------------------------------------------------------------------

  private onTyping(conversationId: ConversationId, what: "key" | "stop"): void {
    const now = this.now();
    const [state, send] =
      what === "key"
        ? onKeystroke(this.typingOut.get(conversationId), now, DEFAULT_TYPING)
        : onStop(this.typingOut.get(conversationId));
    if (state) this.typingOut.set(conversationId, state);
    else this.typingOut.delete(conversationId);
    if (send) this.sendTyping(conversationId, send);
    this.ensureTypingTimer();
  }

  private sendTyping(conversationId: ConversationId, state: "start" | "stop"): void {
    if (this.state.connection.status !== "open" || !this.socket) return;
    // No id: typing is at most once and needs no answer.
    this.socket.send(JSON.stringify({ type: "typing", conversation_id: conversationId, state }));
  }

  private ensureTypingTimer(): void {
    if (this.typingTimer) return;
    this.typingTimer = setInterval(() => {
      const now = this.now();
      for (const [conversationId, state] of [...this.typingOut]) {
        const [next, send] = onIdleCheck(state, now, DEFAULT_TYPING);
        if (next) this.typingOut.set(conversationId, next);
        else this.typingOut.delete(conversationId);
        if (send) this.sendTyping(conversationId, send);
      }
      this.dispatch({ t: "typing.lapse", now });
      const anyShown = Object.values(this.state.typing).some((typists) => Object.keys(typists).length > 0);
      if (this.typingOut.size === 0 && !anyShown && this.typingTimer) {
        clearInterval(this.typingTimer);
        this.typingTimer = null;
      }
    }, TYPING_TICK_MS);
  }

  // -- heartbeat ---------------------------------------------------------------------------

  private startHeartbeat(windowMs: number): void {
    this.stopHeartbeat();
    this.heartbeatTimer = setInterval(() => {
      const action = heartbeatAction(
        this.now(),
        { lastFrameAt: this.lastFrameAt, lastPingAt: this.lastPingAt },
        windowMs,
      );
      if (action === "ping") this.ping();
      else if (action === "dead") this.replaceDeadSocket();
    }, Math.max(windowMs / 4, 250));
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  private ping(): void {
    this.lastPingAt = this.now();
    this.socket?.send(JSON.stringify({ type: "ping" }));
  }

  private replaceDeadSocket(): void {
    const socket = this.socket;
    if (!socket) return;
    // Its close handshake would never complete: forget it now and connect anew.
    this.onClose(CLOSE_DEAD, "no frame within the heartbeat window");
    socket.close(CLOSE_DEAD, "dead");
  }

  // -- requests ----------------------------------------------------------------------------

  /**
   * Send a frame with a fresh id; resolves with its ack, rejects with its error. A frame
   * larger than `hello.limits.max_frame_bytes` is refused here (`too_large`): the server
   * cannot answer it, it closes the connection (1009), and an outbox entry resent after every
   * reconnect would close every connection.
   */
  request(frame: Record<string, unknown>): Promise<Ack> {
    const socket = this.socket;
    const hello = this.hello;
    if (!socket || !hello || socket.readyState !== 1) {
      return Promise.reject(new RequestError("disconnected", "not connected"));
    }
    const id = `r${++this.nextRequest}`;
    const text = JSON.stringify({ ...frame, id });
    if (tooLarge(text, hello.limits.max_frame_bytes)) {
      return Promise.reject(new RequestError("too_large", "frame larger than the server accepts"));
    }
    return new Promise<Ack>((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.pending.delete(id)) reject(new RequestError("unavailable", "no answer in time"));
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, {
        resolve: (ack) => {
          clearTimeout(timer);
          resolve(ack);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      socket.send(text);
    });
  }

  private failPending(reason: string): void {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const request of pending) request.reject(new RequestError("disconnected", reason));
  }

  // -- state -------------------------------------------------------------------------------

  private dispatch(event: Event): void {
    const next = reduce(this.state, event);
    if (next === this.state) return;
    this.state = next;
    this.options.publish(event);
    if (event.t !== "connection" && event.t !== "typing.lapse") this.scheduleSave();
  }

  private setConnection(change: Partial<ConnectionState>): void {
    this.dispatch({ t: "connection", connection: { ...this.state.connection, ...change } });
  }

  /**
   * Write-behind with one write in flight: a change starts a write at once, changes during
   * it make one more write follow. The persisted cursor stays close behind the held one (a
   * reload re-syncs only the little it missed), and a burst of frames costs a few writes.
   */
  private scheduleSave(): void {
    if (this.saving) {
      this.saveAgain = true;
      return;
    }
    this.saving = true;
    void (async () => {
      do {
        this.saveAgain = false;
        await this.save();
      } while (this.saveAgain);
      this.saving = false;
    })();
  }

  private async save(): Promise<void> {
    // After an erasure the state is empty (me null): nothing may write the database again.
    if (this.state.me === null || this.ended === "erased") return;
    try {
      await this.options.persistence.saveState(persistable(this.state));
    } catch {
      // Storage full or blocked: the next sync repairs what a reload would miss.
    }
  }

  private clearRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  private clearTimers(): void {
    this.clearRetry();
    this.stopHeartbeat();
    for (const timer of [this.outboxRetryTimer, this.receiptTimer]) {
      if (timer) clearTimeout(timer);
    }
    if (this.typingTimer) clearInterval(this.typingTimer);
    this.outboxRetryTimer = this.receiptTimer = null;
    this.typingTimer = null;
  }
}

/** Whether a frame's UTF-8 encoding exceeds `limit` bytes (at most 3 bytes per UTF-16 unit). */
function tooLarge(text: string, limit: number | undefined): boolean {
  if (limit === undefined || text.length * 3 <= limit) return false;
  return new TextEncoder().encode(text).length > limit;
}
