/**
 * Cursors, dedupe and gap detection over durable streams (protocol.md, "Durable streams").
 *
 * The cursor holds, per stream, the last seq applied. A stream's seqs are consecutive, so a
 * frame is exactly one of: a repeat (seq <= cursor: at-least-once delivery, dropped), the
 * next one (seq == cursor + 1: applied), or beyond a gap (frames in between were missed:
 * `sync` fetches them, in order).
 */

export type Cursor = Readonly<Record<string, number>>;

export type Verdict = "duplicate" | "next" | "gap";

export function classify(cursor: Cursor, stream: string, seq: number): Verdict {
  const held = cursor[stream] ?? 0;
  if (seq <= held) return "duplicate";
  return seq === held + 1 ? "next" : "gap";
}

/** The cursor after applying `seq` of `stream` (never moves back). */
export function advance(cursor: Cursor, stream: string, seq: number): Cursor {
  return seq > (cursor[stream] ?? 0) ? { ...cursor, [stream]: seq } : cursor;
}

/**
 * Live frames that arrived while a sync was running (or beyond a gap), replayed once it is
 * done: each is then a duplicate (sync brought it), the next one, or again beyond a gap.
 * Kept in arrival order; bounded so a flood cannot grow memory (sync brings them anyway).
 */
export class HeldFrames<F extends { stream: string; seq: number }> {
  private frames: F[] = [];

  constructor(private readonly limit = 1000) {}

  hold(frame: F): void {
    if (this.frames.length < this.limit) this.frames.push(frame);
  }

  /** Everything held, by stream then seq; empties the buffer. */
  drain(): F[] {
    const frames = this.frames;
    this.frames = [];
    return frames.sort((a, b) =>
      a.stream === b.stream ? a.seq - b.seq : a.stream < b.stream ? -1 : 1,
    );
  }

  get size(): number {
    return this.frames.length;
  }
}
