/**
 * Multi-tab: one engine (one WebSocket) per user per browser, shared by every tab.
 *
 *   SharedWorker (where the browser has it):  tab --MessagePort--> worker: EngineHost + Engine
 *   otherwise, leader election:               tab --BroadcastChannel--> leader tab: EngineHost
 *     the leader holds a Web Lock; when it closes (or crashes) the lock passes to another tab,
 *     which starts an engine from its own replica and tells every tab (a new snapshot)
 *
 * The host publishes every event with a version; each tab applies it to its replica with the
 * same pure `reduce`, so every tab renders the same state. A tab that joins (or misses a
 * version) asks for a snapshot. Sends are written to IndexedDB by the tab before the host
 * hears of them, so a host that dies loses nothing: the next one adopts them.
 */

import { Engine, RequestError, type AuthMode, type Command } from "./engine.js";
import type { Persistence } from "./storage.js";
import { reduce, type Event, type State } from "./state.js";

/** What the first tab tells a shared engine (later tabs' settings are ignored). */
export interface HostConfig {
  url: string;
  auth: "token" | "cookie";
  dbName: string;
  /** Conversations per `conversations.list` page. */
  conversationsPage?: number;
}

export type ToHost =
  | { k: "attach"; tab: string; config: HostConfig }
  | { k: "cmd"; tab: string; rid: number; cmd: Command }
  | { k: "token"; rid: number; token: string | null }
  | { k: "detach"; tab: string };

export type FromHost =
  | { k: "snapshot"; to: string | null; epoch: string; v: number; state: State }
  | { k: "event"; epoch: string; v: number; event: Event }
  | { k: "reply"; to: string; rid: number; ok: boolean; value?: unknown; error?: { code: string; message: string; retryAfterMs?: number } }
  | { k: "token?"; rid: number };

const TOKEN_TIMEOUT_MS = 10_000;

/**
 * The engine's side: versions events, answers commands, asks tabs for tokens.
 *
 * @param send delivers a message to every tab (or to one, when `to` names it and the
 *   transport can address tabs).
 */
export class EngineHost {
  readonly engine: Engine;
  private readonly epoch = Math.random().toString(36).slice(2);
  private v = 0;
  private nextToken = 0;
  private tokenWaiters = new Map<number, (token: string | null) => void>();

  constructor(
    config: HostConfig,
    persistence: Persistence,
    private readonly send: (message: FromHost) => void,
    localToken?: () => Promise<string>,
  ) {
    const auth: AuthMode =
      config.auth === "cookie"
        ? { kind: "cookie" }
        : { kind: "token", getToken: localToken ?? (() => this.askToken()) };
    this.engine = new Engine({
      url: config.url,
      auth,
      persistence,
      online: typeof navigator === "undefined" ? true : navigator.onLine !== false,
      ...(config.conversationsPage ? { conversationsPage: config.conversationsPage } : {}),
      publish: (event) => {
        this.v += 1;
        this.send({ k: "event", epoch: this.epoch, v: this.v, event });
      },
    });
  }

  start(initial: State): void {
    this.engine.start(initial);
  }

  /** A full copy of the state (to one tab, or to all when a new host takes over). */
  snapshot(to: string | null): void {
    this.send({ k: "snapshot", to, epoch: this.epoch, v: this.v, state: this.engine.state });
  }

  handle(message: ToHost): void {
    switch (message.k) {
      case "attach":
        this.snapshot(message.tab);
        return;
      case "cmd":
        this.engine.command(message.cmd).then(
          (value) => this.send({ k: "reply", to: message.tab, rid: message.rid, ok: true, value }),
          (error: unknown) =>
            this.send({
              k: "reply",
              to: message.tab,
              rid: message.rid,
              ok: false,
              error: {
                code: error instanceof RequestError ? error.code : "client",
                message: error instanceof Error ? error.message : String(error),
                retryAfterMs: error instanceof RequestError ? error.retryAfterMs : undefined,
              },
            }),
        );
        return;
      case "token":
        this.tokenWaiters.get(message.rid)?.(message.token);
        this.tokenWaiters.delete(message.rid);
        return;
      case "detach":
        return;
    }
  }

  /** Ask the tabs for a token (their provider runs where the page's session is). */
  private askToken(): Promise<string> {
    const rid = ++this.nextToken;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.tokenWaiters.delete(rid);
        reject(new Error("no tab answered with a token"));
      }, TOKEN_TIMEOUT_MS);
      this.tokenWaiters.set(rid, (token) => {
        clearTimeout(timer);
        if (token) resolve(token);
        else reject(new Error("token provider failed"));
      });
      this.send({ k: "token?", rid });
    });
  }
}

/** A tab's copy of the state, kept equal to the host's by applying the same events. */
export class Replica {
  state: State;
  private epoch: string | null = null;
  private v = 0;

  constructor(
    initial: State,
    private readonly tab: string,
    private readonly requestSnapshot: () => void,
    private readonly onChange: (state: State, event: Event | null) => void,
  ) {
    this.state = initial;
  }

  /** Apply a message from the host; false when it was not for this tab. */
  receive(message: FromHost): void {
    if (message.k === "snapshot") {
      if (message.to !== null && message.to !== this.tab) return;
      this.epoch = message.epoch;
      this.v = message.v;
      this.state = message.state;
      this.onChange(this.state, null);
      return;
    }
    if (message.k !== "event") return;
    if (message.epoch !== this.epoch) {
      // Events of a host this tab has no snapshot of: ask for one (it carries them all).
      this.requestSnapshot();
      return;
    }
    if (message.v <= this.v) return;
    if (message.v !== this.v + 1) {
      this.requestSnapshot();
      return;
    }
    this.v = message.v;
    this.state = reduce(this.state, message.event);
    this.onChange(this.state, message.event);
  }
}
