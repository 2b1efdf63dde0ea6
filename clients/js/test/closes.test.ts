// What the SDK does for each close code: the decision table (pure), and the engine and the
// page's client acting on it over a fake WebSocket (no reconnection after 4003 and 4010, the
// erased user's data gone from memory and storage, the page told once).
import assert from "node:assert/strict";
import { test } from "node:test";

import { createClient, type ConnectionEnded } from "../src/client.js";
import {
  backoffAttempt,
  closeReaction,
  PENALTY_ATTEMPT,
  TRY_AGAIN_ATTEMPT,
  type CloseReaction,
} from "../src/closes.js";
import { Engine, RequestError } from "../src/engine.js";
import type { OutboxEntry } from "../src/outbox.js";
import type { Hello } from "../src/protocol.js";
import { initialState, type Event, type State } from "../src/state.js";
import { memoryPersistence, type Persistence } from "../src/storage.js";

test("close codes: reconnect at once, after a backoff (some further out), or never", () => {
  const table: Array<[number, CloseReaction]> = [
    [1000, { kind: "backoff", fromAttempt: 0 }],
    [1001, { kind: "backoff", fromAttempt: 0 }],
    [1006, { kind: "backoff", fromAttempt: 0 }],
    [1008, { kind: "backoff", fromAttempt: PENALTY_ATTEMPT }],
    [1009, { kind: "backoff", fromAttempt: 0 }],
    [1011, { kind: "backoff", fromAttempt: 0 }],
    [1013, { kind: "backoff", fromAttempt: TRY_AGAIN_ATTEMPT }],
    [4000, { kind: "backoff", fromAttempt: 0 }],
    [4001, { kind: "now" }],
    [4003, { kind: "end", reason: "erased" }],
    [4008, { kind: "backoff", fromAttempt: PENALTY_ATTEMPT }],
    [4009, { kind: "backoff", fromAttempt: 0 }],
    [4010, { kind: "end", reason: "replaced" }],
    [4999, { kind: "backoff", fromAttempt: 0 }],
  ];
  for (const [code, expected] of table) assert.deepEqual(closeReaction(code), expected, `close ${code}`);
});

test("close codes: a penalty raises the attempt a backoff starts from, never lowers it", () => {
  assert.equal(backoffAttempt({ fromAttempt: 0 }, 3), 3);
  assert.equal(backoffAttempt({ fromAttempt: PENALTY_ATTEMPT }, 0), PENALTY_ATTEMPT);
  assert.equal(backoffAttempt({ fromAttempt: PENALTY_ATTEMPT }, 9), 9);
});

// --- the engine over a fake WebSocket --------------------------------------------------------

const ME = "erin";

class FakeSocket {
  static made: FakeSocket[] = [];
  readyState = 1;
  sent: Array<Record<string, unknown>> = [];
  onmessage: ((event: { data: string }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;

  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {
    FakeSocket.made.push(this);
  }

  send(text: string): void {
    const frame = JSON.parse(text) as Record<string, unknown>;
    this.sent.push(frame);
    // The server's side of what the engine asks after hello: nothing to sync, nothing listed.
    if (frame.type === "sync") this.receive({ type: "ack", id: frame.id, events: [], cursor: {}, has_more: false });
    if (frame.type === "receipt") this.receive({ type: "ack", id: frame.id });
  }

  close(): void {
    this.readyState = 3;
  }

  receive(frame: Record<string, unknown>): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  closedByServer(code: number, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason });
  }
}

const HELLO: Hello = {
  type: "hello",
  user_id: ME,
  connection_id: "c1",
  heartbeat_s: 25,
  server_time: "2026-01-01T00:00:00Z",
  features: [],
  limits: { max_frame_bytes: 1000, max_body_chars: 400, rate_per_s: 20 },
};

/** Let timers of 0 ms and promise chains run (a reconnection due now happens in here). */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i += 1) await new Promise((resolve) => setTimeout(resolve, 0));
}

interface Watched {
  engine: Engine;
  events: Event[];
  persistence: Persistence & { destroyed: number };
}

async function openEngine(saved: State = initialState()): Promise<Watched> {
  FakeSocket.made = [];
  const events: Event[] = [];
  const inner = memoryPersistence();
  const persistence = {
    ...inner,
    destroyed: 0,
    async destroy() {
      persistence.destroyed += 1;
      await inner.destroy();
    },
  };
  const engine = new Engine({
    url: "ws://gateway/v1/ws",
    auth: { kind: "cookie" },
    persistence,
    publish: (event) => events.push(event),
    // No wait at all: a reconnection, if any, is made within `settle()`.
    backoff: { baseMs: 0, capMs: 0 },
    WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
  });
  engine.start(saved);
  await settle();
  FakeSocket.made[0]!.receive({ ...HELLO });
  await settle();
  assert.equal(engine.state.connection.status, "open");
  return { engine, events, persistence };
}

const MESSAGE = {
  id: "m1",
  conversation_id: "dm_1",
  seq: 1,
  sender_id: "fay",
  kind: "text",
  body: "hi erin",
  client_msg_id: "x1",
  created_at: "2026-01-01T00:00:01Z",
};

test("engine: every close code but 4003 and 4010 reconnects, from the attempt the table says", async () => {
  for (const [code, attempt] of [
    [1001, 1],
    [1006, 1],
    [1008, PENALTY_ATTEMPT + 1],
    [1011, 1],
    [1013, TRY_AGAIN_ATTEMPT + 1],
    [4001, 0],
    [4008, PENALTY_ATTEMPT + 1],
    [4009, 1],
  ] as const) {
    const { engine } = await openEngine();
    FakeSocket.made[0]!.closedByServer(code);
    assert.equal(engine.state.connection.attempt, attempt, `close ${code}: attempt`);
    await settle();
    assert.equal(FakeSocket.made.length, 2, `close ${code}: reconnected`);
    engine.stop();
  }
});

test("engine: 4003 ends for good, empties the state and deletes storage; the page is told", async () => {
  const { engine, events, persistence } = await openEngine();
  FakeSocket.made[0]!.receive({ type: "message.new", stream: "chat", seq: 1, message: MESSAGE });
  const entry: OutboxEntry = { client_msg_id: "c9", to: "fay", body: "unsent", created_at: 1, attempts: 0, state: "pending" };
  await persistence.putOutbox(entry);
  await engine.command({ c: "env", online: false });
  await engine.command({ c: "send", entry });
  await engine.command({ c: "env", online: true });
  await settle();
  const socket = FakeSocket.made.at(-1)!;
  socket.receive({ ...HELLO });
  await settle();
  assert.equal(engine.state.cursor.chat, 1);

  socket.closedByServer(4003, "account erased");
  await settle();
  assert.equal(FakeSocket.made.length, 2, "no reconnection");
  assert.equal(engine.state.connection.status, "ended");
  assert.equal(engine.state.connection.ended, "erased");
  assert.deepEqual(engine.state.connection.lastClose, { code: 4003, reason: "account erased" });
  assert.deepEqual(
    { ...engine.state, connection: null },
    { ...initialState(), connection: null },
    "nothing of the user is held: no cursor, messages, conversations, outbox, notifications",
  );
  assert.equal(persistence.destroyed, 1);
  assert.equal(await persistence.loadState(), null);
  assert.deepEqual(await persistence.loadOutbox(), []);
  assert.deepEqual(events.at(-1), { t: "ended", reason: "erased", close: { code: 4003, reason: "account erased" } });

  // Neither the browser coming back, nor a visible tab, nor the user reconnects an erased user.
  await engine.command({ c: "env", online: false });
  await engine.command({ c: "env", online: true, visible: true });
  await assert.rejects(engine.command({ c: "reconnect" }), RequestError);
  await settle();
  assert.equal(FakeSocket.made.length, 2);
  assert.equal(engine.state.connection.status, "ended");
});

test("engine: 4010 ends without reconnecting and keeps everything; reconnect() on the user's word", async () => {
  const { engine, persistence } = await openEngine();
  FakeSocket.made[0]!.receive({ type: "message.new", stream: "chat", seq: 1, message: MESSAGE });
  FakeSocket.made[0]!.closedByServer(4010, "too many connections; replaced by a newer one");
  await engine.command({ c: "env", visible: true });
  await settle();
  assert.equal(FakeSocket.made.length, 1, "no reconnection");
  assert.equal(engine.state.connection.ended, "replaced");
  assert.equal(engine.state.cursor.chat, 1, "what was received stays");
  assert.equal(engine.state.messages.dm_1!.length, 1);
  assert.equal(persistence.destroyed, 0);

  await engine.command({ c: "reconnect" });
  await settle();
  assert.equal(FakeSocket.made.length, 2);
  FakeSocket.made[1]!.receive({ ...HELLO });
  await settle();
  assert.equal(engine.state.connection.status, "open");
  assert.equal(engine.state.connection.ended, null);
  assert.deepEqual(FakeSocket.made[1]!.sent.find((f) => f.type === "sync")!.cursor, { chat: 1 }, "it syncs on");
  engine.stop();
});

test("engine: a tab taking over after the end stays ended", async () => {
  const { engine } = await openEngine();
  FakeSocket.made[0]!.closedByServer(4010);
  const successor = new Engine({
    url: "ws://gateway/v1/ws",
    auth: { kind: "cookie" },
    persistence: memoryPersistence(),
    publish: () => undefined,
    WebSocketImpl: FakeSocket as unknown as typeof WebSocket,
  });
  successor.start(engine.state);
  await settle();
  assert.equal(FakeSocket.made.length, 1);
  assert.equal(successor.state.connection.ended, "replaced");
});

test("engine: a frame larger than hello's max_frame_bytes is refused without being sent", async () => {
  const { engine } = await openEngine();
  const socket = FakeSocket.made[0]!;
  const before = socket.sent.length;
  await assert.rejects(
    engine.request({ type: "search", query: "é".repeat(600) }),
    (error: unknown) => error instanceof RequestError && error.code === "too_large",
  );
  assert.equal(socket.sent.length, before, "nothing sent: the server would close with 1009");
  engine.stop();
});

test("client: every end is told once to the page with its code; an erased account sends nothing", async () => {
  FakeSocket.made = [];
  const globals = globalThis as { WebSocket?: unknown };
  globals.WebSocket = FakeSocket;
  try {
    const client = createClient({ url: "ws://gateway/v1/ws", multiTab: "none", key: ME });
    const told: ConnectionEnded[] = [];
    client.on("account.erased", (notice) => told.push(notice));
    client.on("connection.replaced", (notice) => told.push(notice));
    await settle();
    FakeSocket.made[0]!.receive({ ...HELLO });
    await settle();

    FakeSocket.made[0]!.closedByServer(4010, "replaced");
    await settle();
    assert.deepEqual(told, [{ type: "connection.replaced", code: 4010, reason: "replaced" }]);
    await client.reconnect();
    await settle();
    FakeSocket.made[1]!.receive({ ...HELLO });
    await settle();
    assert.equal(client.getState().connection.status, "open");

    FakeSocket.made[1]!.closedByServer(4003, "account erased");
    await settle();
    assert.deepEqual(told.at(-1), { type: "account.erased", code: 4003, reason: "account erased" });
    assert.equal(told.length, 2, "each end told once");
    assert.equal(client.getState().me, null);
    await assert.rejects(client.send("@fay", "still there?"), RequestError);
    await assert.rejects(client.reconnect(), RequestError);
    await settle();
    assert.equal(FakeSocket.made.length, 2, "never reconnected");
    client.close();
  } finally {
    delete globals.WebSocket;
  }
});
