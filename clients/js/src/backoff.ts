/**
 * Full-jitter exponential backoff: the n-th retry waits a uniformly random time in
 * [0, min(cap, base * 2^n)). Random spread keeps thousands of browsers that lost the same
 * gateway from reconnecting in lock-step (the "thundering herd").
 */

export interface BackoffPolicy {
  /** Upper bound of the first wait, in ms. */
  baseMs: number;
  /** Largest upper bound, in ms. */
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, capMs: 30_000 };

/**
 * The wait before retry number `attempt` (0 for the first retry).
 *
 * @param random a number in [0, 1), injected so tests are deterministic.
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: number): number {
  const exponent = Math.min(Math.max(attempt, 0), 30);
  const ceiling = Math.min(policy.capMs, policy.baseMs * 2 ** exponent);
  return Math.floor(random * ceiling);
}

/**
 * The wait before resending a refused request: at least the server's `retry_after_ms` when it
 * gave one (an overloaded gateway says how long requests wait right now), spread over half as
 * much again so that the clients it refused together do not all come back together; without a
 * hint, {@link backoffDelay}.
 *
 * @param random a number in [0, 1), injected so tests are deterministic.
 */
export function retryDelay(
  attempt: number,
  policy: BackoffPolicy,
  random: number,
  retryAfterMs?: number,
): number {
  if (retryAfterMs === undefined || !(retryAfterMs > 0)) return backoffDelay(attempt, policy, random);
  return Math.floor(retryAfterMs * (1 + random / 2));
}
