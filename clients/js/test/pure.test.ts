// Pure parts of the SDK: backoff, cursors and dedupe, heartbeat, typing throttle, outbox rules.
import assert from "node:assert/strict";
import { test } from "node:test";

import { backoffDelay, DEFAULT_BACKOFF, retryDelay } from "../src/backoff.js";
import { heartbeatAction } from "../src/heartbeat.js";
import { isTransient, newClientMsgId, pendingInOrder, sendFrame, type OutboxEntry } from "../src/outbox.js";
import { advance, classify, HeldFrames } from "../src/streams.js";
import { DEFAULT_TYPING, onIdleCheck, onKeystroke, onStop } from "../src/typing.js";

test("backoff: full jitter below an exponentially growing ceiling, capped", () => {
  const policy = { baseMs: 100, capMs: 1000 };
  assert.equal(backoffDelay(0, policy, 0), 0);
  assert.equal(backoffDelay(0, policy, 0.999), 99);
  assert.equal(backoffDelay(1, policy, 0.5), 100);
  assert.equal(backoffDelay(3, policy, 0.5), 400);
  assert.equal(backoffDelay(4, policy, 0.999), 999, "1600 is capped at 1000");
  assert.equal(backoffDelay(1000, policy, 0.5), 500, "huge attempts do not overflow");
  assert.equal(backoffDelay(-3, policy, 0.5), 50);
});

test("backoff: the spread covers the whole range (no fixed floor)", () => {
  const delays = [0, 0.25, 0.5, 0.75].map((r) => backoffDelay(5, DEFAULT_BACKOFF, r));
  assert.deepEqual(delays, [0, 4000, 8000, 12000]);
});

test("retry: never before the server's retry_after_ms, spread over half as much again", () => {
  const policy = { baseMs: 100, capMs: 1000 };
  assert.equal(retryDelay(0, policy, 0, 4000), 4000);
  assert.equal(retryDelay(0, policy, 0.999, 4000), 5998);
  assert.equal(retryDelay(9, policy, 0.5, 200), 250, "the hint, not the backoff, whatever the attempt");
  assert.equal(retryDelay(3, policy, 0.5), backoffDelay(3, policy, 0.5), "no hint: the backoff");
  assert.equal(retryDelay(3, policy, 0.5, 0), backoffDelay(3, policy, 0.5), "a zero hint is no hint");
});

test("streams: repeats, the next frame and gaps", () => {
  const cursor = { chat: 5 };
  assert.equal(classify(cursor, "chat", 3), "duplicate");
  assert.equal(classify(cursor, "chat", 5), "duplicate");
  assert.equal(classify(cursor, "chat", 6), "next");
  assert.equal(classify(cursor, "chat", 8), "gap");
  assert.equal(classify(cursor, "notifications", 1), "next", "an unknown stream starts at 0");
  assert.equal(classify(cursor, "notifications", 2), "gap");
});

test("streams: the cursor only moves forward and is not mutated", () => {
  const cursor = { chat: 5 };
  assert.deepEqual(advance(cursor, "chat", 6), { chat: 6 });
  assert.equal(advance(cursor, "chat", 4), cursor);
  assert.deepEqual(advance(cursor, "notifications", 1), { chat: 5, notifications: 1 });
  assert.deepEqual(cursor, { chat: 5 });
});

test("streams: held frames drain in seq order per stream, bounded", () => {
  const held = new HeldFrames<{ stream: string; seq: number }>(3);
  held.hold({ stream: "chat", seq: 9 });
  held.hold({ stream: "notifications", seq: 2 });
  held.hold({ stream: "chat", seq: 7 });
  held.hold({ stream: "chat", seq: 8 });
  assert.equal(held.size, 3, "beyond the bound frames are left to sync");
  assert.deepEqual(held.drain(), [
    { stream: "chat", seq: 7 },
    { stream: "chat", seq: 9 },
    { stream: "notifications", seq: 2 },
  ]);
  assert.equal(held.size, 0);
});

test("heartbeat: ping after half the window of silence, dead after the whole window", () => {
  const window = 10_000;
  assert.equal(heartbeatAction(4_999, { lastFrameAt: 0, lastPingAt: null }, window), "none");
  assert.equal(heartbeatAction(5_000, { lastFrameAt: 0, lastPingAt: null }, window), "ping");
  assert.equal(heartbeatAction(7_000, { lastFrameAt: 0, lastPingAt: 5_000 }, window), "none");
  assert.equal(heartbeatAction(10_000, { lastFrameAt: 0, lastPingAt: 5_000 }, window), "dead");
  // A frame after the ping (the pong) clears it.
  assert.equal(heartbeatAction(10_000, { lastFrameAt: 6_000, lastPingAt: 5_000 }, window), "none");
  assert.equal(heartbeatAction(11_000, { lastFrameAt: 6_000, lastPingAt: 5_000 }, window), "ping");
  // Never declared dead without a ping outstanding (a sleeping timer fired late).
  assert.equal(heartbeatAction(60_000, { lastFrameAt: 0, lastPingAt: null }, window), "ping");
});

test("typing: start once, refreshed at most every refreshMs, stop after idleMs", () => {
  const policy = DEFAULT_TYPING;
  let [state, send] = onKeystroke(undefined, 0, policy);
  assert.equal(send, "start");
  [state, send] = onKeystroke(state, 1000, policy);
  assert.equal(send, null, "throttled");
  [state, send] = onKeystroke(state, policy.refreshMs, policy);
  assert.equal(send, "start", "refreshed before the server's 6 s lapse");
  let check = onIdleCheck(state, policy.refreshMs + policy.idleMs - 1, policy);
  assert.equal(check[1], null);
  check = onIdleCheck(state, policy.refreshMs + policy.idleMs, policy);
  assert.deepEqual(check, [undefined, "stop"]);
  assert.ok(policy.refreshMs < 6000);
});

test("typing: an explicit stop only when a start was sent", () => {
  assert.deepEqual(onStop(undefined), [undefined, null]);
  const [state] = onKeystroke(undefined, 0, DEFAULT_TYPING);
  assert.deepEqual(onStop(state), [undefined, "stop"]);
  assert.deepEqual(onIdleCheck(undefined, 99_999, DEFAULT_TYPING), [undefined, null]);
});

function entry(id: string, createdAt: number, extra: Partial<OutboxEntry> = {}): OutboxEntry {
  return { client_msg_id: id, body: "hi", created_at: createdAt, attempts: 0, state: "pending", ...extra };
}

test("outbox: pending entries resend in the order they were written; failed ones stay out", () => {
  const ordered = pendingInOrder([entry("c", 3), entry("a", 1), entry("f", 2, { state: "failed" }), entry("b", 1)]);
  assert.deepEqual(
    ordered.map((e) => e.client_msg_id),
    ["a", "b", "c"],
  );
});

test("outbox: only unavailable, rate_limited and internal are worth resending", () => {
  for (const code of ["unavailable", "rate_limited", "internal"]) assert.ok(isTransient(code));
  for (const code of ["bad_request", "forbidden", "not_found", "conflict", "too_large", "unauthorized"]) {
    assert.ok(!isTransient(code), code);
  }
});

test("outbox: the send frame addresses a user or a conversation, never both", () => {
  assert.deepEqual(sendFrame(entry("x", 1, { to: "bob" })), {
    type: "message.send",
    client_msg_id: "x",
    kind: "text",
    body: "hi",
    to: "bob",
  });
  const toConversation = sendFrame(entry("y", 1, { conversation_id: "g1", reply_to: "m1" }));
  assert.equal(toConversation.conversation_id, "g1");
  assert.equal(toConversation.reply_to, "m1");
  assert.ok(!("to" in toConversation));
});

test("outbox: client_msg_ids are 33 characters from 16 random bytes", () => {
  const id = newClientMsgId(new Uint8Array(16).fill(171));
  assert.equal(id, "c" + "ab".repeat(16));
  assert.ok(id.length <= 64);
});
