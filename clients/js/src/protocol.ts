/**
 * Frames of client protocol v1 (shared/protocol.md, parts 1 and 2), as TypeScript types.
 *
 * The SDK is written against the protocol document, not against what one server version
 * serves: frames of features a server may not have (groups, history, notifications, push) are
 * typed here and used when `hello.features` lists them.
 */

export type UserId = string;
export type Role = "admin" | "member";
export type ConversationId = string;
export type PresenceStatus = "online" | "away" | "busy" | "offline";
export type ReceiptStatus = "delivered" | "read";
export type ErrorCode =
  | "bad_request"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "too_large"
  | "rate_limited"
  | "unavailable"
  | "internal";

export interface Message {
  id: string;
  conversation_id: ConversationId;
  /** Position in the conversation, from 1. */
  seq: number;
  sender_id: UserId;
  kind: "text";
  body: string;
  client_msg_id: string;
  created_at: string;
  /** Part 2 (rich messages): absent when at their defaults (null, false, null, {}). */
  edited_at?: string | null;
  deleted?: boolean;
  reply_to?: string | null;
  reactions?: Record<string, UserId[]>;
}

export interface Member {
  user_id: UserId;
  role: Role;
}

export interface Conversation {
  id: ConversationId;
  kind: "direct" | "group";
  title?: string | null;
  members: Member[];
  created_at: string;
  last_message: Message | null;
  unread_count: number;
}

export type NotificationKind = "message" | "job_alert" | "application_status" | (string & {});

export interface Notification {
  id: string;
  kind: NotificationKind;
  title: string;
  body: string;
  data: Record<string, unknown>;
  created_at: string;
  read: boolean;
}

export interface Limits {
  max_frame_bytes: number;
  max_body_chars: number;
  rate_per_s: number;
  /** Servers with groups and rich messages (protocol part 2) announce these too. */
  max_group_members?: number;
  max_title_chars?: number;
  max_emoji_chars?: number;
  max_reaction_kinds?: number;
  max_query_chars?: number;
  max_conversations_page?: number;
  max_history_page?: number;
  max_search_page?: number;
}

export interface Hello {
  type: "hello";
  user_id: UserId;
  connection_id: string;
  heartbeat_s: number;
  server_time: string;
  /** Client frame types the server answers (absent on servers older than the field). */
  features?: string[];
  limits: Limits;
  push?: { vapid_public_key: string };
}

export interface Ack {
  type: "ack";
  id: string;
  [field: string]: unknown;
}

export interface ErrorFrame {
  type: "error";
  id?: string | null;
  code: ErrorCode;
  message: string;
  /** With `unavailable` from an overloaded gateway: how long to wait before sending again. */
  retry_after_ms?: number;
}

export interface Pong {
  type: "pong";
  id?: string | null;
}

/** A frame that records a durable fact: replayed by `sync`, deduplicated by (stream, seq). */
export interface Durable {
  stream: string;
  seq: number;
}

export interface MessageNew extends Durable {
  type: "message.new";
  message: Message;
}

export interface MessageUpdated extends Durable {
  type: "message.updated";
  message: Message;
}

export interface MessageStatus extends Durable {
  type: "message.status";
  conversation_id: ConversationId;
  user_id: UserId;
  status: ReceiptStatus;
  up_to_seq: number;
}

export interface ConversationUpdated extends Durable {
  type: "conversation.updated";
  conversation: Conversation;
}

export interface NotificationNew extends Durable {
  type: "notification.new";
  notification: Notification;
  unread_count: number;
}

export interface NotificationRead extends Durable {
  type: "notification.read";
  ids?: string[] | null;
  all?: boolean | null;
  unread_count: number;
}

export interface TypingFrame {
  type: "typing";
  conversation_id: ConversationId;
  user_id: UserId;
  state: "start" | "stop";
}

export interface PresenceFrame {
  type: "presence";
  user_id: UserId;
  status: PresenceStatus;
  last_seen: string | null;
}

export type DurableFrame =
  | MessageNew
  | MessageUpdated
  | MessageStatus
  | ConversationUpdated
  | NotificationNew
  | NotificationRead;

/** Frames the SDK applies to its stores (durable ones and the ephemeral typing/presence). */
export type AppliedFrame = DurableFrame | TypingFrame | PresenceFrame;

export type ServerFrame = Hello | Ack | ErrorFrame | Pong | AppliedFrame;

/** A browser's `PushSubscription.toJSON()`. */
export interface PushSubscriptionJson {
  endpoint: string;
  expirationTime: number | null;
  keys: { p256dh: string; auth: string };
}

export function isDurable(frame: { type: string }): frame is DurableFrame {
  const candidate = frame as Partial<Durable>;
  return typeof candidate.stream === "string" && typeof candidate.seq === "number";
}
