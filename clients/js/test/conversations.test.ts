// Conversations and rich messages against a groups server (protocol part 2): the list and its
// pages, unread counts as the server defines them, history paging over holes, edits, deletions,
// reactions and replies, membership changes, and what a reload keeps.
import assert from "node:assert/strict";
import { test } from "node:test";

import { equivalentWatermark, historyBefore, visibleRun } from "../src/conversations.js";
import type { AppliedFrame, Conversation, Limits, Message } from "../src/protocol.js";
import {
  conversationList,
  hasOlder,
  initialState,
  membership,
  nextHistoryBefore,
  persistable,
  MAX_MESSAGES_PER_CONVERSATION,
  reduce,
  timeline,
  unreadCount,
  type Event,
  type State,
} from "../src/state.js";

const ME = "ann";
const G = "grp_1";

function msg(seq: number, sender: string, extra: Partial<Message> = {}): Message {
  return {
    id: `m${seq}`,
    conversation_id: G,
    seq,
    sender_id: sender,
    kind: "text",
    body: `text ${seq}`,
    client_msg_id: `c${seq}`,
    created_at: new Date(Date.UTC(2026, 0, 1, 0, 0, seq)).toISOString(),
    ...extra,
  };
}

function group(extra: Partial<Conversation> = {}): Conversation {
  return {
    id: G,
    kind: "group",
    title: "Team",
    members: [
      { user_id: ME, role: "admin" },
      { user_id: "bob", role: "member" },
      { user_id: "cat", role: "member" },
    ],
    created_at: "2026-01-01T00:00:00Z",
    last_message: null,
    unread_count: 0,
    ...extra,
  };
}

// Frames of the user's chat stream, numbered as the server numbers them.
let streamSeq = 0;
function live(frame: AppliedFrame): Event {
  return { t: "frame", frame, at: 0 };
}
const isNew = (message: Message) => live({ type: "message.new", stream: "chat", seq: ++streamSeq, message });
const isUpdated = (message: Message) => live({ type: "message.updated", stream: "chat", seq: ++streamSeq, message });
const conversationUpdated = (conversation: Conversation) =>
  live({ type: "conversation.updated", stream: "chat", seq: ++streamSeq, conversation });

function hello(features: string[] | null, limits: Limits | null): Event {
  return { t: "hello", userId: ME, vapidKey: null, features, limits };
}

function start(...events: Event[]): State {
  return events.reduce(reduce, reduce(initialState(), hello(null, null)));
}

function listed(conversations: Conversation[], after: string | null, cursor: string | null, hasMore: boolean): Event {
  return { t: "conversations", conversations, page: { after, cursor, hasMore } };
}

const shown = (state: State) => timeline(state, G).map((item) => item.seq);

test("capabilities come from hello.features; without it, groups from hello.limits; nothing is probed", () => {
  const limits = { max_frame_bytes: 1, max_body_chars: 1, rate_per_s: 1 };
  const featured = reduce(initialState(), hello(["conversations.list", "history", "search"], limits));
  assert.deepEqual(featured.capabilities, { conversations: true, search: true, notifications: false, push: false });
  const withBell = reduce(initialState(), hello(["conversations.list", "notifications.list"], limits));
  assert.equal(withBell.capabilities.notifications, true);
  const older = reduce(initialState(), hello(null, { ...limits, max_conversations_page: 100, max_search_page: 50 }));
  assert.deepEqual(older.capabilities, { conversations: true, search: true, notifications: false, push: false });
  const oldest = reduce(initialState(), hello(null, limits));
  assert.deepEqual(oldest.capabilities, { conversations: false, search: false, notifications: false, push: false });
});

test("the list pages with its cursor; a late next page does not move a newer first page's cursor", () => {
  const a = group({ id: "a", created_at: "2026-01-03T00:00:00Z" });
  const b = group({ id: "b", created_at: "2026-01-02T00:00:00Z" });
  const c = group({ id: "c", created_at: "2026-01-01T00:00:00Z" });
  let state = start(listed([a, b], null, "k1", true));
  assert.deepEqual(state.conversationPages, { cursor: "k1", hasMore: true, loaded: true });
  state = reduce(state, listed([c], "k1", "k2", false));
  assert.deepEqual(state.conversationPages, { cursor: null, hasMore: false, loaded: true });
  assert.deepEqual(
    conversationList(state).map((x) => x.id),
    ["a", "b", "c"],
  );
  // Reconnect: a first page again (k3), then an answer to the old k1 arrives late.
  state = reduce(state, listed([a, b], null, "k3", true));
  state = reduce(state, listed([c], "k1", "k2", false));
  assert.equal(state.conversationPages.cursor, "k3");
});

test("the list orders by latest activity: the latest message, else the creation", () => {
  const quiet = group({ id: "quiet", created_at: "2026-01-05T00:00:00Z" });
  const busy = group({ id: "busy", created_at: "2026-01-01T00:00:00Z" });
  let state = start(listed([quiet, busy], null, "k", false));
  assert.deepEqual(
    conversationList(state).map((x) => x.id),
    ["quiet", "busy"],
  );
  state = reduce(state, isNew({ ...msg(1, "bob"), conversation_id: "busy", created_at: "2026-01-06T00:00:00.5Z" }));
  assert.deepEqual(
    conversationList(state).map((x) => x.id),
    ["busy", "quiet"],
  );
  // Times with and without fractions of a second compare as times, not as strings.
  state = reduce(state, isNew({ ...msg(1, "bob"), id: "q1", conversation_id: "quiet", created_at: "2026-01-06T00:00:01Z" }));
  assert.deepEqual(
    conversationList(state).map((x) => x.id),
    ["quiet", "busy"],
  );
});

test("unread: the server's count with one message held, +1 per new message of others, 0 after reading", () => {
  let state = start(listed([group({ last_message: msg(8, "bob"), unread_count: 3 })], null, null, false));
  assert.equal(unreadCount(state, G), 3);
  state = reduce(state, isNew(msg(9, "bob")));
  state = reduce(state, isNew(msg(10, ME)));
  assert.equal(unreadCount(state, G), 4, "mine do not count");
  state = reduce(state, isNew(msg(9, "bob")));
  assert.equal(unreadCount(state, G), 4, "a repeat counts once");
  state = reduce(state, { t: "read.local", conversationId: G, seq: 9 });
  assert.equal(unreadCount(state, G), 0);
  state = reduce(state, isNew(msg(11, "cat")));
  assert.equal(unreadCount(state, G), 1);
});

test("unread: a deleted unread message stops counting, a deleted read one changes nothing", () => {
  let state = start(
    conversationUpdated(group()),
    ...[1, 2, 3, 4].map((seq) => isNew(msg(seq, seq === 2 ? ME : "bob"))),
    { t: "read.local", conversationId: G, seq: 1 },
  );
  assert.equal(unreadCount(state, G), 2);
  state = reduce(state, isUpdated(msg(1, "bob", { deleted: true, body: "" })));
  assert.equal(unreadCount(state, G), 2, "seq 1 was read");
  state = reduce(state, isUpdated(msg(3, "bob", { deleted: true, body: "" })));
  assert.equal(unreadCount(state, G), 1);
  state = reduce(state, isUpdated(msg(3, "bob", { deleted: true, body: "" })));
  assert.equal(unreadCount(state, G), 1, "deleting again changes nothing");
});

test("unread: a deletion among messages the server counted is attributed through the equivalent watermark", () => {
  // Held 5..8 from an earlier session; the server says 2 unread as of 8: 7 and 8 (bob's).
  const held = [5, 6, 7, 8].map((seq) => msg(seq, seq === 6 ? ME : "bob"));
  let state = start(...held.map(isNew));
  state = reduce(state, listed([group({ last_message: held[3]!, unread_count: 2 })], null, null, false));
  assert.equal(unreadCount(state, G), 2);
  assert.equal(state.conversations[G]!.readUpTo, 5);
  state = reduce(state, isUpdated(msg(5, "bob", { deleted: true, body: "" })));
  assert.equal(unreadCount(state, G), 2, "5 was read");
  state = reduce(state, isUpdated(msg(7, "bob", { deleted: true, body: "" })));
  assert.equal(unreadCount(state, G), 1);
});

test("unread: a count older than the one applied is ignored; one older than my read is recounted", () => {
  let state = start(conversationUpdated(group({ last_message: msg(4, "bob"), unread_count: 1 })));
  state = reduce(state, listed([group({ last_message: msg(3, "bob"), unread_count: 7 })], null, null, false));
  assert.equal(unreadCount(state, G), 1, "the list answer predates the frame");
  state = reduce(state, { t: "read.local", conversationId: G, seq: 4 });
  state = reduce(state, conversationUpdated(group({ title: "Renamed", last_message: msg(4, "bob"), unread_count: 1 })));
  assert.equal(unreadCount(state, G), 0, "my receipt had not reached the server yet");
  assert.equal(state.conversations[G]!.title, "Renamed");
});

test("unread: a read on another device of mine clears what it covers here (protocol-notes, Receipts)", () => {
  const mine = (status: "read" | "delivered", up: number): Event =>
    live({ type: "message.status", stream: "chat", seq: ++streamSeq, conversation_id: G, user_id: ME, status, up_to_seq: up });
  let state = start(conversationUpdated(group()), ...[1, 2, 3, 4].map((seq) => isNew(msg(seq, seq === 2 ? ME : "bob"))));
  assert.equal(unreadCount(state, G), 3);
  state = reduce(state, mine("delivered", 4));
  assert.equal(unreadCount(state, G), 3, "a delivered of mine shows nothing");
  state = reduce(state, mine("read", 3));
  assert.equal(unreadCount(state, G), 1, "4 is still unread");
  assert.equal(state.cursor.chat, streamSeq, "the frame is in my stream");
  assert.ok(!(ME in state.conversations[G]!.watermarks), "I am not among the ticks' readers");
  state = reduce(state, mine("read", 2));
  assert.equal(unreadCount(state, G), 1, "a lower watermark changes nothing");
  state = reduce(state, { t: "read.local", conversationId: G, seq: 4 });
  state = reduce(state, mine("read", 4));
  assert.equal(unreadCount(state, G), 0, "the echo of this device's own read changes nothing");
  state = reduce(state, isNew(msg(5, "cat")));
  assert.equal(unreadCount(state, G), 1);
});

test("unread: a read elsewhere below messages this device does not hold only bounds the count", () => {
  const mine = (up: number): Event =>
    live({ type: "message.status", stream: "chat", seq: ++streamSeq, conversation_id: G, user_id: ME, status: "read", up_to_seq: up });
  // Known from the list only: its newest message (8) and the server's count of 5.
  let state = start(listed([group({ last_message: msg(8, "bob"), unread_count: 5 })], null, null, false));
  state = reduce(state, mine(6));
  assert.equal(unreadCount(state, G), 2, "at most 7 and 8 are left");
  state = reduce(state, mine(8));
  assert.equal(unreadCount(state, G), 0);
  state = reduce(state, mine(3));
  assert.equal(unreadCount(state, G), 0);
  const other = reduce(state, live({ type: "message.status", stream: "chat", seq: ++streamSeq, conversation_id: "grp_unknown", user_id: ME, status: "read", up_to_seq: 2 }));
  assert.equal(other.conversations.grp_unknown, undefined, "a conversation not held is left to the next list");
});

test("equivalent watermark: the newest message of others that is not unread, only over an unbroken run", () => {
  const held = [msg(1, "bob"), msg(2, ME), msg(3, "bob", { deleted: true }), msg(4, "bob"), msg(5, ME)];
  assert.equal(equivalentWatermark(held, ME, 0, 5), 5);
  assert.equal(equivalentWatermark(held, ME, 1, 5), 1);
  assert.equal(equivalentWatermark(held, ME, 2, 5), 0);
  assert.equal(equivalentWatermark(held, ME, 3, 5), null, "more unread than held messages of others");
  assert.equal(equivalentWatermark([msg(4, "bob"), msg(5, ME)], ME, 1, 5), null, "not known below the hole");
});

test("history fills the hole below the newest message first, then pages back to the first", () => {
  // A reload kept 1..3; the list brings the last message, 9; nothing between is held.
  let state = start(...[1, 2, 3].map((seq) => isNew(msg(seq, "bob"))));
  state = reduce(state, listed([group({ last_message: msg(9, "bob"), unread_count: 0 })], null, null, false));
  assert.deepEqual(shown(state), [9], "never a message with unknown ones between");
  assert.equal(nextHistoryBefore(state, G), 9);
  assert.ok(hasOlder(state, G));
  state = reduce(state, { t: "history", conversationId: G, messages: [8, 7, 6, 5].map((s) => msg(s, "bob")) });
  assert.deepEqual(shown(state), [5, 6, 7, 8, 9]);
  state = reduce(state, { t: "history", conversationId: G, messages: [4, 3].map((s) => msg(s, "cat")) });
  assert.deepEqual(shown(state), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(hasOlder(state, G), false);
  assert.equal(state.messages[G]![2]!.sender_id, "bob", "a held message is not replaced by a page");
  assert.equal(historyBefore([]), undefined);
  assert.deepEqual(visibleRun([]), []);
});

test("a page never overwrites what the stream told: edits and members stay", () => {
  let state = start(conversationUpdated(group()), isNew(msg(1, "bob")));
  state = reduce(state, isUpdated(msg(1, "bob", { body: "edited", edited_at: "2026-01-02T00:00:00Z" })));
  state = reduce(state, { t: "history", conversationId: G, messages: [msg(1, "bob")] });
  state = reduce(
    state,
    listed([group({ title: "Old title", members: [{ user_id: ME, role: "member" }], last_message: msg(1, "bob") })], null, null, false),
  );
  const [line] = timeline(state, G);
  assert.equal(line!.body, "edited");
  assert.ok(line!.edited);
  assert.equal(state.conversations[G]!.title, "Team");
  assert.equal(membership(state, G).myRole, "admin");
});

test("edits, reactions and replies show; a deletion leaves no text, in the window and in what is persisted", () => {
  let state = start(conversationUpdated(group()), isNew(msg(1, "bob")), isNew(msg(2, ME, { reply_to: "m1" })));
  state = reduce(state, isUpdated(msg(1, "bob", { reactions: { "👍": [ME, "cat"] } })));
  let [first, reply] = timeline(state, G);
  assert.deepEqual(first!.reactions, { "👍": [ME, "cat"] });
  assert.deepEqual(reply!.replyTo, { messageId: "m1", senderId: "bob", body: "text 1", deleted: false });
  state = reduce(state, isUpdated(msg(1, "bob", { deleted: true, body: "" })));
  [first, reply] = timeline(state, G);
  assert.equal(first!.body, "");
  assert.ok(first!.deleted);
  assert.deepEqual(first!.reactions, {});
  assert.deepEqual(reply!.replyTo, { messageId: "m1", senderId: "bob", body: "", deleted: true });
  assert.ok(!JSON.stringify(persistable(state)).includes("text 1"), "the erased text is not persisted");
});

test("a fresh device replaying its stream from {} shows a deleted message deleted", () => {
  // The server rewrote the stored message.new of the deleted message (same seq, no text).
  const erased = msg(1, "bob", { deleted: true, body: "" });
  const state = start(conversationUpdated(group()), isNew(erased), isNew(msg(2, "cat")), isUpdated(erased));
  assert.deepEqual(
    timeline(state, G).map((item) => [item.seq, item.body, item.deleted]),
    [
      [1, "", true],
      [2, "text 2", false],
    ],
  );
  assert.equal(unreadCount(state, G), 1, "deleted messages are not unread");
});

test("membership: roles and what I may do; removed, my group shows the removal", () => {
  let state = start(conversationUpdated(group()));
  assert.deepEqual(membership(state, G).canManage, true);
  state = reduce(
    state,
    conversationUpdated(
      group({
        members: [
          { user_id: "bob", role: "admin" },
          { user_id: ME, role: "member" },
        ],
      }),
    ),
  );
  assert.deepEqual([membership(state, G).myRole, membership(state, G).canManage], ["member", false]);
  state = reduce(state, conversationUpdated(group({ members: [{ user_id: "bob", role: "admin" }] })));
  const view = state.conversations[G]!;
  assert.ok(view.left);
  assert.equal(membership(state, G).canManage, false);
  assert.deepEqual(
    conversationList(state).map((c) => [c.id, c.left]),
    [[G, true]],
  );
});

test("a reload keeps the newest messages of each conversation, not the pages of the list", () => {
  const many = Array.from({ length: MAX_MESSAGES_PER_CONVERSATION + 20 }, (_, i) => isNew(msg(i + 1, "bob")));
  const state = start(conversationUpdated(group()), ...many, listed([], null, "k", true));
  const saved = persistable(state);
  assert.equal(state.messages[G]!.length, MAX_MESSAGES_PER_CONVERSATION + 20, "all stay in memory");
  assert.equal(saved.messages[G]!.length, MAX_MESSAGES_PER_CONVERSATION);
  assert.equal(saved.messages[G]![0]!.seq, 21);
  assert.deepEqual(saved.conversationPages, { cursor: null, hasMore: false, loaded: false });
});

test("ticks in a group: read once every member read; a member added later starts at the last message", () => {
  let state = start(conversationUpdated(group()), isNew(msg(1, ME)));
  const status = (user: string, up: number): Event =>
    live({ type: "message.status", stream: "chat", seq: ++streamSeq, conversation_id: G, user_id: user, status: "read", up_to_seq: up });
  const ticks = () => timeline(state, G).map((item) => item.status);
  state = reduce(state, status("bob", 1));
  assert.deepEqual(ticks(), ["sent"], "cat has not read it");
  state = reduce(state, status("cat", 1));
  assert.deepEqual(ticks(), ["read"]);
  const withDan = group({ members: [...group().members, { user_id: "dan", role: "member" }], last_message: msg(1, ME) });
  state = reduce(state, conversationUpdated(withDan));
  assert.deepEqual(ticks(), ["read"], "dan joined after it");
  state = reduce(state, isNew(msg(2, ME)));
  assert.deepEqual(ticks(), ["read", "sent"]);
});

test("a deleted message leaves the notification that previewed it without its text", () => {
  const preview = (id: string, message: string) => ({
    id,
    kind: "message",
    title: "New message from bob",
    body: `text of ${message}`,
    data: { conversation_id: G, sender_id: "bob", message_id: message, count: 1 },
    created_at: "2026-01-01T00:00:00Z",
    read: false,
  });
  let state = start(
    conversationUpdated(group()),
    isNew(msg(1, "bob")),
    live({ type: "notification.new", stream: "notifications", seq: 1, notification: preview("n1", "m1"), unread_count: 1 }),
    live({ type: "notification.new", stream: "notifications", seq: 2, notification: preview("n2", "m9"), unread_count: 2 }),
  );
  state = reduce(state, isUpdated(msg(1, "bob", { deleted: true, body: "" })));
  assert.deepEqual(
    state.notifications.items.map((n) => [n.id, n.body]),
    [
      ["n2", "text of m9"],
      ["n1", ""],
    ],
  );
  assert.ok(!JSON.stringify(persistable(state)).includes("text of m1"));
});
