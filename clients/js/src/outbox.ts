/**
 * The outbox: messages the user sent that the server has not acknowledged yet.
 *
 * An entry is written (IndexedDB) BEFORE the frame leaves, so a reload, a crash or a closing
 * tab never loses it; it is sent again with the same `client_msg_id` after every reconnect
 * until acked (the server answers a repeat with the stored message and delivers nothing twice).
 * The ack, or the `message.new` carrying our `client_msg_id`, whichever comes first, settles it.
 */

import type { ConversationId, ErrorCode, UserId } from "./protocol.js";

export interface OutboxEntry {
  client_msg_id: string;
  /** Direct message recipient (exclusive with conversation_id). */
  to?: UserId;
  conversation_id?: ConversationId;
  body: string;
  reply_to?: string;
  /** When the user sent it (ms since epoch): orders entries and is shown. */
  created_at: number;
  /** Sends so far (a transient failure counts). */
  attempts: number;
  /** `failed`: the server refused it for good (forbidden, too_large, ...); kept for the UI. */
  state: "pending" | "failed";
  error?: { code: ErrorCode | "client"; message: string };
}

/**
 * Codes after which resending the same frame can succeed. Anything else is the frame's fault
 * (or the user's rights) and fails the entry for good.
 */
const TRANSIENT: ReadonlySet<string> = new Set(["unavailable", "rate_limited", "internal"]);

export function isTransient(code: string): boolean {
  return TRANSIENT.has(code);
}

/** A client_msg_id: unique per sender across devices (random, 128 bits). */
export function newClientMsgId(randomBytes: Uint8Array): string {
  return "c" + Array.from(randomBytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** Pending entries in the order they were sent (the order they are resent in). */
export function pendingInOrder(entries: Iterable<OutboxEntry>): OutboxEntry[] {
  return [...entries]
    .filter((entry) => entry.state === "pending")
    .sort((a, b) => a.created_at - b.created_at || (a.client_msg_id < b.client_msg_id ? -1 : 1));
}

/** The `message.send` frame of an entry (the request id is added when it is sent). */
export function sendFrame(entry: OutboxEntry): Record<string, unknown> {
  const frame: Record<string, unknown> = {
    type: "message.send",
    client_msg_id: entry.client_msg_id,
    kind: "text",
    body: entry.body,
  };
  if (entry.to !== undefined) frame.to = entry.to;
  else frame.conversation_id = entry.conversation_id;
  if (entry.reply_to !== undefined) frame.reply_to = entry.reply_to;
  return frame;
}
