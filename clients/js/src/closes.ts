/**
 * What the SDK does when its WebSocket closes: one decision table over every close code the
 * server uses (protocol.md "Close codes", docs/protocol-notes.md) and the ones a browser
 * reports by itself (pure; the engine acts on it).
 *
 *   reconnect at once        4001 token expired (a fresh token is asked for)
 *   reconnect with backoff   1001 going away, 1006 no close frame, 1009 too big, 1011 server
 *                            error, 4000 ours (dead socket, failed sync), 4009 too slow, and
 *                            any code not listed here
 *   ... starting further out 1013 try again later (gateway full), 1008 policy and 4008 rate
 *                            abuse (reconnecting at once would only repeat the refusal)
 *   end, never reconnect     4003 the user was erased (forget everything stored of them),
 *                            4010 replaced by a newer connection of the same user (only the
 *                            user's action reconnects: `reconnect()`)
 *
 * Every reconnection syncs from the held cursor, so nothing durable is lost whatever the
 * code was.
 */

/** Why a connection ended for good (no automatic reconnection). */
export type EndReason = "erased" | "replaced";

export type CloseReaction =
  /** Connect again without waiting (4001: the token provider is asked for a fresh token). */
  | { kind: "now" }
  /**
   * Connect again after a full-jitter backoff wait, counting at least `fromAttempt` failed
   * attempts (a penalty for closes that an immediate retry would only repeat).
   */
  | { kind: "backoff"; fromAttempt: number }
  /** Stay closed; tell the page. */
  | { kind: "end"; reason: EndReason };

/** Close codes: the server's (protocol.md, protocol-notes.md), the browser's, and ours. */
export const CLOSE_NORMAL = 1000;
export const CLOSE_GOING_AWAY = 1001;
/** Reported by the browser when no close frame came (network, crash, upgrade refused). */
export const CLOSE_ABNORMAL = 1006;
export const CLOSE_POLICY = 1008;
export const CLOSE_TOO_BIG = 1009;
export const CLOSE_SERVER_ERROR = 1011;
export const CLOSE_TRY_AGAIN_LATER = 1013;
/** Our own code for a socket the heartbeat found dead, or whose sync failed (4000-4999). */
export const CLOSE_DEAD = 4000;
export const CLOSE_TOKEN_EXPIRED = 4001;
export const CLOSE_ERASED = 4003;
export const CLOSE_RATE_ABUSE = 4008;
export const CLOSE_TOO_SLOW = 4009;
export const CLOSE_REPLACED = 4010;

/**
 * The attempt number a penalised close starts its backoff from: with the default policy the
 * wait is drawn from [0, 16 s) instead of [0, 0.5 s).
 */
export const PENALTY_ATTEMPT = 5;
/** 1013 (gateway full): [0, 4 s) with the default policy, as the gateway's Retry-After of 5 s. */
export const TRY_AGAIN_ATTEMPT = 3;

export function closeReaction(code: number): CloseReaction {
  switch (code) {
    case CLOSE_TOKEN_EXPIRED:
      return { kind: "now" };
    case CLOSE_ERASED:
      return { kind: "end", reason: "erased" };
    case CLOSE_REPLACED:
      return { kind: "end", reason: "replaced" };
    case CLOSE_POLICY:
    case CLOSE_RATE_ABUSE:
      return { kind: "backoff", fromAttempt: PENALTY_ATTEMPT };
    case CLOSE_TRY_AGAIN_LATER:
      return { kind: "backoff", fromAttempt: TRY_AGAIN_ATTEMPT };
    default:
      return { kind: "backoff", fromAttempt: 0 };
  }
}

/** The attempt number to draw the backoff wait from, after `failed` attempts so far. */
export function backoffAttempt(reaction: { fromAttempt: number }, failed: number): number {
  return Math.max(failed, reaction.fromAttempt);
}
