/**
 * Dead-connection detection. Browsers cannot see WebSocket control frames, so the SDK pings at
 * the application level: after half the heartbeat window (`hello.heartbeat_s`) without any
 * frame it sends `ping`; if still no frame (the pong included) by the end of the window, the
 * connection is dead (a sleeping laptop, a NAT that dropped the flow) and is replaced.
 */

export type HeartbeatAction = "none" | "ping" | "dead";

export interface HeartbeatClock {
  /** When the last frame of any kind arrived (ms). */
  lastFrameAt: number;
  /** When the last ping was sent (ms), or null. */
  lastPingAt: number | null;
}

export function heartbeatAction(now: number, clock: HeartbeatClock, windowMs: number): HeartbeatAction {
  const idle = now - clock.lastFrameAt;
  const pingOutstanding = clock.lastPingAt !== null && clock.lastPingAt >= clock.lastFrameAt;
  if (idle >= windowMs && pingOutstanding) return "dead";
  if (idle >= windowMs / 2 && !pingOutstanding) return "ping";
  return "none";
}
