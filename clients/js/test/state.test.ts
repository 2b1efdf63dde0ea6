// The reducer and selectors: what every tab renders.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Replica, type FromHost } from "../src/hub.js";
import type { OutboxEntry } from "../src/outbox.js";
import type { AppliedFrame, Message } from "../src/protocol.js";
import {
  conversationList,
  hasOlder,
  initialState,
  lastIncomingSeq,
  persistable,
  reduce,
  resolveChat,
  timeline,
  typists,
  unreadCount,
  type Event,
  type State,
} from "../src/state.js";

const ME = "alice";
const BOB = "bob";
const DM = "dm_ab";

function message(seq: number, sender: string, extra: Partial<Message> = {}): Message {
  return {
    id: `m${seq}`,
    conversation_id: DM,
    seq,
    sender_id: sender,
    kind: "text",
    body: `body ${seq}`,
    client_msg_id: `c${seq}`,
    created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
    ...extra,
  };
}

const HELLO: Event = { t: "hello", userId: ME, vapidKey: null, features: null, limits: null };

function frame(frame: AppliedFrame, at = 0): Event {
  return { t: "frame", frame, at };
}

function run(...events: Event[]): State {
  return events.reduce(reduce, reduce(initialState(), HELLO));
}

function pending(id: string, extra: Partial<OutboxEntry> = {}): OutboxEntry {
  return { client_msg_id: id, to: BOB, body: "hello bob", created_at: 1000, attempts: 0, state: "pending", ...extra };
}

test("message.new advances the cursor and stores the message once", () => {
  const m = message(1, BOB);
  const state = run(
    frame({ type: "message.new", stream: "chat", seq: 1, message: m }),
    frame({ type: "message.new", stream: "chat", seq: 1, message: m }),
  );
  assert.deepEqual(state.cursor, { chat: 1 });
  assert.equal(state.messages[DM]!.length, 1);
  assert.equal(state.conversations[DM]!.peer, BOB, "the other sender of a direct conversation");
  assert.equal(resolveChat(state, "@bob"), DM);
});

test("messages are kept in conversation seq order whatever the arrival order", () => {
  const state = run(
    frame({ type: "message.new", stream: "chat", seq: 1, message: message(3, BOB) }),
    frame({ type: "message.new", stream: "chat", seq: 2, message: message(1, BOB) }),
    frame({ type: "message.new", stream: "chat", seq: 3, message: message(2, ME) }),
  );
  assert.deepEqual(
    state.messages[DM]!.map((m) => m.seq),
    [1, 2, 3],
  );
});

test("an optimistic message shows once: pending, then sent, whether ack or message.new comes first", () => {
  const entry = pending("c-1");
  const stored = message(1, ME, { client_msg_id: "c-1" });
  const newFrame = frame({ type: "message.new", stream: "chat", seq: 1, message: stored });
  const ack: Event = { t: "outbox.acked", message: stored };
  const before = run({ t: "outbox.add", entry });
  const shown = timeline(before, "@bob");
  assert.equal(shown.length, 1);
  assert.equal(shown[0]!.status, "pending");
  for (const order of [
    [newFrame, ack],
    [ack, newFrame],
  ]) {
    const after = order.reduce(reduce, before);
    const items = timeline(after, "@bob");
    assert.equal(items.length, 1, "no duplicate");
    assert.equal(items[0]!.status, "sent");
    assert.equal(items[0]!.messageId, "m1");
    assert.deepEqual(after.outbox, {});
    assert.equal(resolveChat(after, "@bob"), DM, "the ack tells the direct conversation's id");
    assert.deepEqual(timeline(after, DM), items);
  }
});

test("ticks follow the peer's watermarks: sent, delivered, read (read implies delivered)", () => {
  let state = run(
    { t: "outbox.add", entry: pending("c1") },
    { t: "outbox.acked", message: message(1, ME, { client_msg_id: "c1" }) },
    { t: "outbox.add", entry: pending("c2") },
    { t: "outbox.acked", message: message(2, ME, { client_msg_id: "c2" }) },
  );
  const statuses = () => timeline(state, DM).map((item) => item.status);
  assert.deepEqual(statuses(), ["sent", "sent"]);
  const status = (seq: number, s: "delivered" | "read", up: number): Event =>
    frame({ type: "message.status", stream: "chat", seq, conversation_id: DM, user_id: BOB, status: s, up_to_seq: up });
  state = reduce(state, status(3, "delivered", 1));
  assert.deepEqual(statuses(), ["delivered", "sent"]);
  state = reduce(state, status(4, "read", 2));
  assert.deepEqual(statuses(), ["read", "read"]);
  state = reduce(state, status(5, "delivered", 1));
  assert.deepEqual(statuses(), ["read", "read"], "a lower watermark changes nothing");
});

test("ticks: my own read (from another device of mine) is not a peer's", () => {
  let state = run(
    frame({ type: "message.new", stream: "chat", seq: 1, message: message(1, BOB) }),
    { t: "outbox.add", entry: pending("c2") },
    { t: "outbox.acked", message: message(2, ME, { client_msg_id: "c2" }) },
  );
  state = reduce(
    state,
    frame({ type: "message.status", stream: "chat", seq: 3, conversation_id: DM, user_id: ME, status: "read", up_to_seq: 2 }),
  );
  assert.deepEqual(timeline(state, DM).map((item) => item.status), [null, "sent"]);
  assert.equal(unreadCount(state, DM), 0);
  assert.equal(state.cursor.chat, 3);
});

test("a refused send stays visible as failed with its code", () => {
  const state = run(
    { t: "outbox.add", entry: pending("c1") },
    { t: "outbox.failed", clientMsgId: "c1", code: "forbidden", message: "not a member" },
  );
  const [item] = timeline(state, "@bob");
  assert.equal(item!.status, "failed");
  assert.equal(item!.error!.code, "forbidden");
  assert.deepEqual(reduce(state, { t: "outbox.discard", clientMsgId: "c1" }).outbox, {});
});

test("unread counts others' messages after my read watermark", () => {
  let state = run(
    frame({ type: "message.new", stream: "chat", seq: 1, message: message(1, BOB) }),
    frame({ type: "message.new", stream: "chat", seq: 2, message: message(2, ME) }),
    frame({ type: "message.new", stream: "chat", seq: 3, message: message(3, BOB) }),
  );
  assert.equal(unreadCount(state, DM), 2);
  assert.equal(lastIncomingSeq(state, DM), 3);
  state = reduce(state, { t: "read.local", conversationId: DM, seq: 1 });
  assert.equal(unreadCount(state, DM), 1);
  state = reduce(state, { t: "read.local", conversationId: DM, seq: 3 });
  assert.equal(unreadCount(state, DM), 0);
});

test("typing shows until stop, a message from the typist, or the 6 s lapse", () => {
  const start = (at: number): Event => frame({ type: "typing", conversation_id: DM, user_id: BOB, state: "start" }, at);
  let state = run(start(0));
  assert.deepEqual(typists(state, DM, 1000), [BOB]);
  assert.deepEqual(typists(state, DM, 6000), [], "lapsed");
  state = reduce(state, frame({ type: "typing", conversation_id: DM, user_id: BOB, state: "stop" }));
  assert.deepEqual(typists(state, DM, 0), []);
  state = reduce(state, start(10_000));
  state = reduce(state, frame({ type: "message.new", stream: "chat", seq: 1, message: message(1, BOB) }));
  assert.deepEqual(typists(state, DM, 10_001), []);
  state = reduce(state, start(20_000));
  state = reduce(state, { t: "typing.lapse", now: 26_000 });
  assert.deepEqual(state.typing[DM], {});
});

test("notifications: replaced by id (coalesced), read on any device clears everywhere", () => {
  const n = (id: string, title: string) => ({
    id,
    kind: "message",
    title,
    body: "",
    data: { conversation_id: DM },
    created_at: "2026-01-01T00:00:00Z",
    read: false,
  });
  let state = run(
    frame({ type: "notification.new", stream: "notifications", seq: 1, notification: n("n1", "1 message"), unread_count: 1 }),
    frame({ type: "notification.new", stream: "notifications", seq: 2, notification: n("n2", "job"), unread_count: 2 }),
    frame({ type: "notification.new", stream: "notifications", seq: 3, notification: n("n1", "2 messages"), unread_count: 2 }),
  );
  assert.deepEqual(
    state.notifications.items.map((i) => [i.id, i.title]),
    [
      ["n1", "2 messages"],
      ["n2", "job"],
    ],
  );
  assert.equal(state.notifications.unread, 2);
  state = reduce(state, frame({ type: "notification.read", stream: "notifications", seq: 4, ids: ["n1"], unread_count: 1 }));
  assert.deepEqual(
    state.notifications.items.map((i) => i.read),
    [true, false],
  );
  state = reduce(state, frame({ type: "notification.read", stream: "notifications", seq: 5, all: true, unread_count: 0 }));
  assert.ok(state.notifications.items.every((i) => i.read));
  assert.deepEqual(state.cursor, { notifications: 5 });
});

test("conversation.updated: groups with members and titles; a removed member's group is marked left", () => {
  const group = {
    id: "g1",
    kind: "group" as const,
    title: "Team",
    members: [
      { user_id: ME, role: "admin" as const },
      { user_id: BOB, role: "member" as const },
    ],
    created_at: "2026-01-02T00:00:00Z",
    last_message: null,
    unread_count: 0,
  };
  let state = run(frame({ type: "conversation.updated", stream: "chat", seq: 1, conversation: group }));
  assert.equal(state.conversations.g1!.title, "Team");
  assert.equal(state.conversations.g1!.peer, null);
  assert.deepEqual(
    conversationList(state).map((c) => c.id),
    ["g1"],
  );
  state = reduce(
    state,
    frame({
      type: "conversation.updated",
      stream: "chat",
      seq: 2,
      conversation: { ...group, members: [{ user_id: BOB, role: "admin" }] },
    }),
  );
  assert.ok(state.conversations.g1!.left);
  assert.deepEqual(
    conversationList(state).map((c) => [c.id, c.left]),
    [["g1", true]],
    "still listed, to show the removal",
  );
});

test("history pages older messages in, and says whether more remain", () => {
  let state = run(frame({ type: "message.new", stream: "chat", seq: 1, message: message(10, BOB) }));
  state = reduce(state, { t: "history", conversationId: DM, messages: [message(9, BOB), message(8, ME)] });
  assert.deepEqual(
    state.messages[DM]!.map((m) => m.seq),
    [8, 9, 10],
  );
  assert.ok(hasOlder(state, DM));
  assert.deepEqual(state.cursor, { chat: 1 }, "history is not a stream");
});

test("conversations list: most recent activity first, unread from the server's count", () => {
  const conversation = (id: string, at: string, lastSeq: number, unread: number) => ({
    id,
    kind: "direct" as const,
    members: [
      { user_id: ME, role: "member" as const },
      { user_id: `peer-${id}`, role: "member" as const },
    ],
    created_at: at,
    last_message: { ...message(lastSeq, `peer-${id}`), id: `${id}-last`, conversation_id: id, created_at: at },
    unread_count: unread,
  });
  const state = run({
    t: "conversations",
    conversations: [conversation("old", "2026-01-01T00:00:00Z", 5, 0), conversation("new", "2026-02-01T00:00:00Z", 7, 2)],
  });
  assert.deepEqual(
    conversationList(state).map((c) => c.id),
    ["new", "old"],
  );
  assert.equal(unreadCount(state, "new"), 2, "the server's count, though one message is held");
  assert.equal(unreadCount(state, "old"), 0);
  assert.equal(state.conversations.new!.peer, "peer-new");
  assert.ok(hasOlder(state, "new"), "only the last message is held");
});

test("persisted state keeps cursor, stores and outbox, not live presence or typing", () => {
  const state = run(
    frame({ type: "message.new", stream: "chat", seq: 1, message: message(1, BOB) }),
    frame({ type: "presence", user_id: BOB, status: "online", last_seen: null }),
    frame({ type: "typing", conversation_id: DM, user_id: BOB, state: "start" }),
    { t: "outbox.add", entry: pending("c9") },
  );
  const saved = persistable(state);
  assert.deepEqual(saved.cursor, { chat: 1 });
  assert.equal(saved.messages[DM]!.length, 1);
  assert.ok(saved.outbox.c9);
  assert.deepEqual(saved.presence, {});
  assert.deepEqual(saved.typing, {});
});

test("replica: applies versions in order, ignores repeats, asks for a snapshot on a gap", () => {
  let snapshots = 0;
  const seen: number[] = [];
  const replica = new Replica(initialState(), "tab1", () => (snapshots += 1), (state) => seen.push(Object.keys(state.cursor).length));
  const event = (v: number, seq: number): FromHost => ({
    k: "event",
    epoch: "e1",
    v,
    event: frame({ type: "message.new", stream: "chat", seq, message: message(seq, BOB) }),
  });
  replica.receive(event(1, 1));
  assert.equal(snapshots, 1, "events of an unknown host: snapshot first");
  replica.receive({ k: "snapshot", to: "other-tab", epoch: "e1", v: 0, state: initialState() });
  assert.equal(seen.length, 0, "another tab's snapshot");
  replica.receive({ k: "snapshot", to: null, epoch: "e1", v: 0, state: run() });
  replica.receive(event(1, 1));
  replica.receive(event(1, 1));
  assert.deepEqual(replica.state.cursor, { chat: 1 });
  replica.receive(event(3, 3));
  assert.equal(snapshots, 2, "a missed version");
  assert.deepEqual(replica.state.cursor, { chat: 1 });
  replica.receive(event(2, 2));
  assert.deepEqual(replica.state.cursor, { chat: 2 });
});
