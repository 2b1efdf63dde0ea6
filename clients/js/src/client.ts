/**
 * `createClient`: what a page uses. It finds (or becomes) the one engine of this user in this
 * browser, keeps a replica of its state, and offers actions and typed events.
 *
 *   const client = createClient({ url: "wss://rt.example.org/v1/ws", token: fetchToken, key: userId });
 *   client.subscribe((state) => render(state));
 *   client.on("message.new", (frame) => ...);
 *   await client.send("@bob", "hello");            // optimistic: pending until acked
 *   client.on("account.erased", () => showGoodbye()); // 4003: nothing kept, no reconnection
 *   client.on("connection.replaced", () => offerReconnect()); // 4010: `client.reconnect()`
 */

import type { EndReason } from "./closes.js";
import { RequestError, type Command } from "./engine.js";
import { EngineHost, Replica, type FromHost, type HostConfig, type ToHost } from "./hub.js";
import { newClientMsgId, type OutboxEntry } from "./outbox.js";
import type {
  Ack,
  AppliedFrame,
  Conversation,
  ConversationId,
  Message,
  PresenceStatus,
  PushSubscriptionJson,
  Role,
  UserId,
} from "./protocol.js";
import { initialState, lastIncomingSeq, resolveChat, type Event, type State } from "./state.js";
import { memoryPersistence, openIndexedDb, type Persistence } from "./storage.js";

export type MultiTabMode = "auto" | "shared-worker" | "leader" | "none";

export interface ClientOptions {
  /** The gateway's WebSocket URL, e.g. `wss://rt.example.org/v1/ws`. */
  url: string;
  /**
   * Returns a fresh token; called for every connection (after a 4001 too). Without it the
   * browser's session cookie signs in (the page's origin must be allowed by the gateway).
   */
  token?: () => Promise<string>;
  /**
   * Names the shared connection and the IndexedDB database: use the signed-in user's id, so
   * two users of one browser never share. Default `"default"`.
   */
  key?: string;
  /** How tabs share one connection (default `auto`: SharedWorker, else leader election). */
  multiTab?: MultiTabMode;
  /** Where `worker.js` of this package is served (default: beside this module). */
  workerUrl?: string | URL;
  /** Conversations per `conversations.list` page (default 30). */
  conversationsPage?: number;
}

/** How this tab reaches the engine. */
export type LinkMode = "shared-worker" | "leader" | "follower" | "single";

type FrameType = AppliedFrame["type"];

/**
 * The connection ended for good, told to every tab (and to a tab that opens while it is so):
 * `account.erased` (close 4003: the user's data was erased on the server; the SDK deleted
 * everything it kept of them, and never reconnects) or `connection.replaced` (close 4010: the
 * user opened more connections than the server allows and this, the oldest, made room; it
 * reconnects only on `reconnect()`, which may close the user's oldest other one in turn).
 */
export interface ConnectionEnded {
  type: "account.erased" | "connection.replaced";
  code: number;
  reason: string;
}

type EndedType = ConnectionEnded["type"];
type Notice<T extends FrameType | EndedType> = T extends FrameType
  ? Extract<AppliedFrame, { type: T }>
  : Extract<ConnectionEnded, { type: T }>;

const ENDED_TYPE: Record<EndReason, EndedType> = {
  erased: "account.erased",
  replaced: "connection.replaced",
};

export interface RealtimeClient {
  /** The current state (immutable: compare by reference to re-render). */
  getState(): State;
  /** Called with the new state after every change; returns the unsubscribe function. */
  subscribe(listener: (state: State) => void): () => void;
  /**
   * Typed server frames, in the order they were applied (repeats already dropped), and the
   * connection's end (`account.erased`, `connection.replaced`: `ConnectionEnded`).
   */
  on<T extends FrameType | EndedType>(type: T, handler: (notice: Notice<T>) => void): () => void;
  /**
   * Connect again now: after a `connection.replaced` (the user's choice, e.g. a "use here"
   * button), or to cut a backoff wait short. Rejects after `account.erased`.
   */
  reconnect(): Promise<void>;
  /** How this tab is linked to the shared engine right now. */
  readonly mode: LinkMode;
  /**
   * Send a text message to a chat (`@<user id>` for a direct one, or a conversation id).
   * Resolves once it is in the persisted outbox (shown as pending), with its client_msg_id.
   */
  send(chat: string, body: string, options?: { replyTo?: string }): Promise<string>;
  retry(clientMsgId: string): Promise<void>;
  discard(clientMsgId: string): Promise<void>;
  /** The user sees this conversation: a read receipt up to its last incoming message. */
  markRead(conversationId: ConversationId): void;
  /** A keystroke in a conversation's input (start/refresh/stop are derived). */
  typing(conversationId: ConversationId): void;
  stopTyping(conversationId: ConversationId): void;
  setPresence(status: PresenceStatus): Promise<void>;
  /** Page older messages in (`history`): the page just older than what `timeline` shows. */
  loadOlder(conversationId: ConversationId, limit?: number): Promise<void>;
  /** The first page of `conversations.list` again (done after every hello anyway). */
  reloadConversations(): Promise<void>;
  /** The next page of `conversations.list`; false when there was none. */
  loadMoreConversations(): Promise<boolean>;
  /**
   * A group with me as its admin; resolves with it as the server created it. The request is
   * named by `clientConversationId` (a fresh random one when not given): after a failure
   * (`disconnected`, `unavailable`) call again with the same one, and the server answers with
   * the group made by the first try instead of making a second.
   */
  createGroup(title: string, members: string[], clientConversationId?: string): Promise<Conversation | null>;
  /** Group admins: add members, remove one, set a role, rename. */
  addMembers(conversationId: ConversationId, userIds: UserId[]): Promise<void>;
  removeMember(conversationId: ConversationId, userId: UserId): Promise<void>;
  setRole(conversationId: ConversationId, userId: UserId, role: Role): Promise<void>;
  rename(conversationId: ConversationId, title: string): Promise<void>;
  /** Any member: leave a group (the last admin leaving makes the longest-standing member one). */
  leave(conversationId: ConversationId): Promise<void>;
  /** My own message's new text. */
  edit(conversationId: ConversationId, messageId: string, body: string): Promise<void>;
  /** My message, or any message of a group I administer: its text is erased everywhere. */
  deleteMessage(conversationId: ConversationId, messageId: string): Promise<void>;
  /** Put a reaction on a message (`on` false takes it back). */
  react(conversationId: ConversationId, messageId: string, emoji: string, on?: boolean): Promise<void>;
  /**
   * Messages of my conversations (or one of them) matching `query` (words, "phrases",
   * -excluded, or), best match first. Answers are not kept in the state.
   */
  search(query: string, options?: { conversationId?: ConversationId; limit?: number }): Promise<Message[]>;
  markNotificationsRead(ids: string[] | "all"): Promise<void>;
  loadMoreNotifications(): Promise<void>;
  pushSubscribe(subscription: PushSubscriptionJson): Promise<void>;
  /** Any other request: resolves with its ack, rejects with a `RequestError`. */
  request(frame: Record<string, unknown>): Promise<Ack>;
  /** Detach this tab (the shared connection lives on while other tabs do). */
  close(): void;
}

const COMMAND_TIMEOUT_MS = 30_000;

export function createClient(options: ClientOptions): RealtimeClient {
  return new TabClient(options);
}

class TabClient implements RealtimeClient {
  mode: LinkMode = "single";
  private readonly tab = Math.random().toString(36).slice(2);
  private readonly key: string;
  private readonly config: HostConfig;
  private readonly persistence: Persistence;
  private readonly replica: Replica;
  private readonly listeners = new Set<(state: State) => void>();
  private readonly handlers = new Map<string, Set<(notice: AppliedFrame | ConnectionEnded) => void>>();
  /** The end this tab told its page about (an end is told once, a new one again). */
  private toldEnd: EndReason | null = null;
  private readonly replies = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private nextRid = 0;
  private post: (message: ToHost) => void = () => undefined;
  private teardown: Array<() => void> = [];

  constructor(private readonly options: ClientOptions) {
    this.key = options.key ?? "default";
    this.config = {
      url: options.url,
      auth: options.token ? "token" : "cookie",
      dbName: `realtime:${this.key}`,
      ...(options.conversationsPage ? { conversationsPage: options.conversationsPage } : {}),
    };
    this.persistence = typeof indexedDB === "undefined" ? memoryPersistence() : openIndexedDb(this.config.dbName);
    this.replica = new Replica(
      initialState(),
      this.tab,
      () => this.post({ k: "attach", tab: this.tab, config: this.config }),
      (state, event) => this.changed(state, event),
    );
    const wanted = options.multiTab ?? "auto";
    if ((wanted === "auto" || wanted === "shared-worker") && typeof SharedWorker === "function") {
      this.linkSharedWorker();
    } else if (
      (wanted === "auto" || wanted === "leader") &&
      typeof BroadcastChannel === "function" &&
      typeof navigator !== "undefined" &&
      navigator.locks
    ) {
      this.linkLeaderElection();
    } else {
      this.linkSingle();
    }
    this.watchEnvironment();
    this.post({ k: "attach", tab: this.tab, config: this.config });
  }

  // -- links ---------------------------------------------------------------------------------

  private linkSharedWorker(): void {
    this.mode = "shared-worker";
    const url = this.options.workerUrl ?? new URL("./worker.js", import.meta.url);
    const worker = new SharedWorker(url, { type: "module", name: `realtime:${this.key}` });
    worker.port.onmessage = (event: MessageEvent<FromHost>) => this.fromHost(event.data);
    worker.port.start();
    this.post = (message) => worker.port.postMessage(message);
    this.teardown.push(() => {
      worker.port.postMessage({ k: "detach", tab: this.tab } satisfies ToHost);
      worker.port.close();
    });
  }

  private linkLeaderElection(): void {
    this.mode = "follower";
    const channel = new BroadcastChannel(`realtime:${this.key}`);
    let host: EngineHost | null = null;
    let releaseLock: () => void = () => undefined;
    channel.onmessage = (event: MessageEvent<ToHost | FromHost>) => {
      const message = event.data;
      if (isToHost(message)) host?.handle(message);
      else if (!host) this.fromHost(message);
    };
    this.post = (message) => (host ? host.handle(message) : channel.postMessage(message));
    void navigator.locks.request(`realtime:${this.key}:leader`, async () => {
      if (this.closed) return;
      this.mode = "leader";
      const started = new EngineHost(
        this.config,
        this.persistence,
        (message) => {
          this.fromHost(message);
          channel.postMessage(message);
        },
        this.options.token,
      );
      // A follower that takes over carries on from what it shows (its replica), an ended
      // connection included; a first leader starts from what the last session persisted.
      const shown = this.replica.state;
      const initial = shown.me !== null || shown.connection.ended !== null ? shown : await this.persistence.loadState();
      host = started;
      started.start(initial ?? initialState());
      started.snapshot(null);
      await new Promise<void>((resolve) => {
        releaseLock = resolve;
      });
    });
    this.teardown.push(() => {
      host?.engine.stop();
      releaseLock();
      channel.close();
    });
  }

  private linkSingle(): void {
    this.mode = "single";
    const host = new EngineHost(this.config, this.persistence, (message) => this.fromHost(message), this.options.token);
    this.post = (message) => host.handle(message);
    void this.persistence.loadState().then((saved) => {
      host.start(saved ?? initialState());
      host.snapshot(null);
    });
    this.teardown.push(() => host.engine.stop());
  }

  private closed = false;

  private fromHost(message: FromHost): void {
    switch (message.k) {
      case "reply": {
        if (message.to !== this.tab) return;
        const waiter = this.replies.get(message.rid);
        this.replies.delete(message.rid);
        if (!waiter) return;
        if (message.ok) waiter.resolve(message.value);
        else
          waiter.reject(
            new RequestError(
              (message.error?.code ?? "internal") as never,
              message.error?.message ?? "",
              message.error?.retryAfterMs,
            ),
          );
        return;
      }
      case "token?":
        if (this.options.token) {
          this.options.token().then(
            (token) => this.post({ k: "token", rid: message.rid, token }),
            () => this.post({ k: "token", rid: message.rid, token: null }),
          );
        }
        return;
      default:
        this.replica.receive(message);
    }
  }

  private watchEnvironment(): void {
    if (typeof window === "undefined") return;
    const online = () => void this.command({ c: "env", online: true }).catch(() => undefined);
    const offline = () => void this.command({ c: "env", online: false }).catch(() => undefined);
    const visibility = () => {
      if (document.visibilityState === "visible") {
        void this.command({ c: "env", visible: true }).catch(() => undefined);
      }
    };
    const hide = () => this.close();
    window.addEventListener("online", online);
    window.addEventListener("offline", offline);
    document.addEventListener("visibilitychange", visibility);
    window.addEventListener("pagehide", hide);
    this.teardown.push(() => {
      window.removeEventListener("online", online);
      window.removeEventListener("offline", offline);
      document.removeEventListener("visibilitychange", visibility);
      window.removeEventListener("pagehide", hide);
    });
    // The engine may have started before this tab knew: tell it how the browser is now.
    if (navigator.onLine === false) offline();
  }

  private changed(state: State, event: Event | null): void {
    if (event?.t === "frame") {
      for (const handler of this.handlers.get(event.frame.type) ?? []) handler(event.frame);
    }
    this.tellEnd(state);
    for (const listener of this.listeners) listener(state);
  }

  /**
   * From the state, not only the event: a tab that attaches after the end learns it from its
   * snapshot. An erasure also deletes this tab's handle on the database (the engine deletes it
   * too; whichever comes first, neither opens it again).
   */
  private tellEnd(state: State): void {
    const ended = state.connection.ended;
    if (ended === this.toldEnd) return;
    this.toldEnd = ended;
    if (ended === null) return;
    if (ended === "erased") this.persistence.destroy().catch(() => undefined);
    const close = state.connection.lastClose ?? { code: 0, reason: "" };
    const notice: ConnectionEnded = { type: ENDED_TYPE[ended], code: close.code, reason: close.reason };
    for (const handler of this.handlers.get(notice.type) ?? []) handler(notice);
  }

  private command(cmd: Command): Promise<unknown> {
    const rid = ++this.nextRid;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (this.replies.delete(rid)) reject(new RequestError("unavailable", "no answer from the connection"));
      }, COMMAND_TIMEOUT_MS);
      this.replies.set(rid, {
        resolve: (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        reject: (error) => {
          clearTimeout(timer);
          reject(error);
        },
      });
      this.post({ k: "cmd", tab: this.tab, rid, cmd });
    });
  }

  // -- public API ----------------------------------------------------------------------------

  getState(): State {
    return this.replica.state;
  }

  subscribe(listener: (state: State) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  on<T extends FrameType | EndedType>(type: T, handler: (notice: Notice<T>) => void): () => void {
    type Handler = (notice: AppliedFrame | ConnectionEnded) => void;
    const handlers = this.handlers.get(type) ?? new Set();
    handlers.add(handler as Handler);
    this.handlers.set(type, handlers);
    return () => handlers.delete(handler as Handler);
  }

  async reconnect(): Promise<void> {
    await this.command({ c: "reconnect" });
  }

  async send(chat: string, body: string, options?: { replyTo?: string }): Promise<string> {
    if (body.length === 0) throw new RequestError("bad_request", "empty message");
    if (this.replica.state.connection.ended === "erased") {
      throw new RequestError("disconnected", "this account was erased");
    }
    const entry: OutboxEntry = {
      client_msg_id: newClientMsgId(crypto.getRandomValues(new Uint8Array(16))),
      body,
      created_at: Date.now(),
      attempts: 0,
      state: "pending",
    };
    const conversationId = resolveChat(this.replica.state, chat);
    if (conversationId !== null) entry.conversation_id = conversationId;
    else entry.to = chat.slice(1);
    if (options?.replyTo) entry.reply_to = options.replyTo;
    // Persisted first: whatever happens to this tab or the engine now, it will be sent.
    await this.persistence.putOutbox(entry);
    this.command({ c: "send", entry }).catch(() => undefined);
    return entry.client_msg_id;
  }

  async retry(clientMsgId: string): Promise<void> {
    await this.command({ c: "retry", clientMsgId });
  }

  async discard(clientMsgId: string): Promise<void> {
    await this.command({ c: "discard", clientMsgId });
  }

  markRead(conversationId: ConversationId): void {
    const state = this.replica.state;
    const seq = lastIncomingSeq(state, conversationId);
    if (seq > (state.conversations[conversationId]?.readUpTo ?? 0)) {
      this.command({ c: "read", conversationId, seq }).catch(() => undefined);
    }
  }

  typing(conversationId: ConversationId): void {
    this.command({ c: "typing", conversationId, state: "key" }).catch(() => undefined);
  }

  stopTyping(conversationId: ConversationId): void {
    this.command({ c: "typing", conversationId, state: "stop" }).catch(() => undefined);
  }

  async setPresence(status: PresenceStatus): Promise<void> {
    await this.command({ c: "presence", status });
  }

  async loadOlder(conversationId: ConversationId, limit?: number): Promise<void> {
    await this.command(limit ? { c: "history", conversationId, limit } : { c: "history", conversationId });
  }

  async reloadConversations(): Promise<void> {
    await this.command({ c: "conversations.reload" });
  }

  async loadMoreConversations(): Promise<boolean> {
    const page = (await this.command({ c: "conversations.more" })) as Conversation[];
    return page.length > 0;
  }

  async createGroup(title: string, members: string[], clientConversationId?: string): Promise<Conversation | null> {
    const key = clientConversationId ?? newClientMsgId(crypto.getRandomValues(new Uint8Array(16)));
    return (await this.command({ c: "group.create", title, members, key })) as Conversation | null;
  }

  // The changes below are answered by a plain ack: what they change arrives as durable frames
  // (conversation.updated, message.updated) on every device, this one included.

  async addMembers(conversationId: ConversationId, userIds: UserId[]): Promise<void> {
    await this.request({ type: "conversation.members.add", conversation_id: conversationId, user_ids: userIds });
  }

  async removeMember(conversationId: ConversationId, userId: UserId): Promise<void> {
    await this.request({ type: "conversation.members.remove", conversation_id: conversationId, user_id: userId });
  }

  async setRole(conversationId: ConversationId, userId: UserId, role: Role): Promise<void> {
    await this.request({ type: "conversation.role.set", conversation_id: conversationId, user_id: userId, role });
  }

  async rename(conversationId: ConversationId, title: string): Promise<void> {
    await this.request({ type: "conversation.update", conversation_id: conversationId, title });
  }

  async leave(conversationId: ConversationId): Promise<void> {
    const me = this.replica.state.me;
    if (me === null) throw new RequestError("disconnected", "not signed in yet");
    await this.removeMember(conversationId, me);
  }

  async edit(conversationId: ConversationId, messageId: string, body: string): Promise<void> {
    await this.request({ type: "message.edit", conversation_id: conversationId, message_id: messageId, body });
  }

  async deleteMessage(conversationId: ConversationId, messageId: string): Promise<void> {
    await this.request({ type: "message.delete", conversation_id: conversationId, message_id: messageId });
  }

  async react(conversationId: ConversationId, messageId: string, emoji: string, on = true): Promise<void> {
    await this.request({ type: "reaction.set", conversation_id: conversationId, message_id: messageId, emoji, on });
  }

  async search(query: string, options: { conversationId?: ConversationId; limit?: number } = {}): Promise<Message[]> {
    const frame: Record<string, unknown> = { type: "search", query };
    if (options.conversationId !== undefined) frame.conversation_id = options.conversationId;
    if (options.limit !== undefined) frame.limit = options.limit;
    const ack = await this.request(frame);
    return (ack.messages ?? []) as Message[];
  }

  async markNotificationsRead(ids: string[] | "all"): Promise<void> {
    await this.command(ids === "all" ? { c: "notifications.read", all: true } : { c: "notifications.read", ids });
  }

  async loadMoreNotifications(): Promise<void> {
    await this.command({ c: "notifications.more" });
  }

  async pushSubscribe(subscription: PushSubscriptionJson): Promise<void> {
    await this.command({ c: "push.subscribe", subscription });
  }

  async request(frame: Record<string, unknown>): Promise<Ack> {
    return (await this.command({ c: "request", frame })) as Ack;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const undo of this.teardown.splice(0)) undo();
  }
}

function isToHost(message: ToHost | FromHost): message is ToHost {
  return message.k === "attach" || message.k === "cmd" || message.k === "token" || message.k === "detach";
}
