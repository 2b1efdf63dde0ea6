/**
 * Typing indicators. Sending: a `start` on the first keystroke, refreshed at most every
 * `refreshMs` while typing goes on (the server ends an unrefreshed start after 6 s), and a
 * `stop` after `idleMs` without keystrokes or when the message is sent. Receiving: a `start`
 * shows until its `stop` or until it lapses (6 s without a refresh: the typist's stop can be
 * lost, typing is at most once).
 */

export const TYPING_LAPSE_MS = 6000;

export interface TypingPolicy {
  refreshMs: number;
  idleMs: number;
}

export const DEFAULT_TYPING: TypingPolicy = { refreshMs: 3000, idleMs: 4000 };

/** One conversation's outgoing typing state. */
export interface OutgoingTyping {
  /** When the last `start` was sent, or null when stopped. */
  sentStartAt: number | null;
  /** Last keystroke. */
  lastKeyAt: number;
}

export type TypingSend = "start" | "stop" | null;

/** A keystroke at `now`: what to send (a start, at most every refreshMs) and the new state. */
export function onKeystroke(
  state: OutgoingTyping | undefined,
  now: number,
  policy: TypingPolicy,
): [OutgoingTyping, TypingSend] {
  if (state?.sentStartAt != null && now - state.sentStartAt < policy.refreshMs) {
    return [{ ...state, lastKeyAt: now }, null];
  }
  return [{ sentStartAt: now, lastKeyAt: now }, "start"];
}

/** A timer check at `now`: a stop when typing went idle. */
export function onIdleCheck(
  state: OutgoingTyping | undefined,
  now: number,
  policy: TypingPolicy,
): [OutgoingTyping | undefined, TypingSend] {
  if (state?.sentStartAt == null) return [state, null];
  if (now - state.lastKeyAt >= policy.idleMs) return [undefined, "stop"];
  return [state, null];
}

/** An explicit stop (message sent, input left). */
export function onStop(state: OutgoingTyping | undefined): [undefined, TypingSend] {
  return [undefined, state?.sentStartAt != null ? "stop" : null];
}
