/**
 * Pure rules over one conversation's held messages: which of them a chat window shows, where
 * `history` paging resumes, and how the unread count follows the server's definition
 * (messages of others after my read watermark, deleted ones excluded: protocol part 2).
 *
 * Held messages are kept ascending by seq, one per id. They may have holes: a device that
 * learnt a conversation from `conversations.list` holds only its last message until `history`
 * pages the rest in. A conversation's seqs are consecutive (a deleted message keeps its seq),
 * so a hole is visible, and a window shows only the unbroken run that ends at the newest
 * message held: never a message with unknown ones between it and the next.
 *
 * The server tells the unread count, never the watermark itself: `unread_count` as of the
 * conversation's last message, in `conversations.list` answers and `conversation.updated`
 * frames. The count is then kept current locally: +1 for a new message of someone else beyond
 * what the server counted, 0 after reading, -1 when an unread message is deleted. Deciding
 * whether a deleted OLD message was among the unread ones needs the watermark:
 * `equivalentWatermark` recovers one from the count when the messages around it are held.
 */

import type { Message, UserId } from "./protocol.js";

/** The unbroken run of seqs that ends at the newest held message (what a window shows). */
export function visibleRun(held: readonly Message[]): readonly Message[] {
  let start = held.length - 1;
  while (start > 0 && held[start - 1]!.seq === held[start]!.seq - 1) start -= 1;
  return start <= 0 ? held : held.slice(start);
}

/** The `before_seq` of the next `history` page (undefined: from the newest message). */
export function historyBefore(held: readonly Message[]): number | undefined {
  return visibleRun(held)[0]?.seq;
}

/** Older messages than the visible run exist (seqs start at 1). */
export function olderExist(held: readonly Message[], lastSeq: number): boolean {
  const first = visibleRun(held)[0];
  return first ? first.seq > 1 : lastSeq > 0;
}

/** Unread by the server's definition, among held messages with a seq above `after`. */
export function countUnread(held: readonly Message[], me: UserId | null, after: number): number {
  let count = 0;
  for (let i = held.length - 1; i >= 0 && held[i]!.seq > after; i -= 1) {
    const message = held[i]!;
    if (message.sender_id !== me && !message.deleted) count += 1;
  }
  return count;
}

/**
 * A read watermark equivalent to the server's, from its `unread` count as of `lastSeq`: the
 * seq of the newest message of someone else that is NOT unread (every message of others above
 * it is, none below). Null when the held messages do not reach that far without a hole.
 * Equivalent rather than equal: my own messages and deleted ones between the two change no
 * count.
 */
export function equivalentWatermark(
  held: readonly Message[],
  me: UserId | null,
  unread: number,
  lastSeq: number,
): number | null {
  if (unread === 0) return lastSeq;
  let counted = 0;
  let expected = lastSeq;
  for (let i = held.length - 1; i >= 0; i -= 1) {
    const message = held[i]!;
    if (message.seq > lastSeq) continue;
    if (message.seq !== expected) return null;
    expected -= 1;
    if (message.sender_id === me || message.deleted) continue;
    if (counted === unread) return message.seq;
    counted += 1;
  }
  return expected === 0 && counted === unread ? 0 : null;
}

/** What the count knows about one conversation. */
export interface UnreadTrack {
  /** Unread messages now. */
  unread: number;
  /** The last seq the server's count covered (0: none yet). */
  unreadAsOf: number;
  /** My read watermark, or one equivalent to it (see `equivalentWatermark`). */
  readUpTo: number;
  /** Whether `readUpTo` is known to be that (else it is only a lower bound). */
  readKnown: boolean;
}

/** The server's count as of `lastSeq` (a list answer or a `conversation.updated` frame). */
export function onServerCount(
  track: UnreadTrack,
  held: readonly Message[],
  me: UserId | null,
  unread: number,
  lastSeq: number,
): UnreadTrack {
  // A count older than the one applied (a list answer that crossed a live frame) is stale.
  if (lastSeq < track.unreadAsOf) return track;
  if (track.readKnown && track.readUpTo >= lastSeq) {
    // I read past all it counted: the count may predate my receipt reaching the server.
    return { ...track, unreadAsOf: lastSeq, unread: countUnread(held, me, track.readUpTo) };
  }
  const equivalent = equivalentWatermark(held, me, unread, lastSeq);
  if (equivalent === null) {
    // Messages held above lastSeq arrived live after the count was made.
    const later = countUnread(held, me, Math.max(lastSeq, track.readUpTo));
    return { unread: unread + later, unreadAsOf: lastSeq, readUpTo: track.readUpTo, readKnown: false };
  }
  const readUpTo = Math.max(track.readUpTo, equivalent);
  return { unread: countUnread(held, me, readUpTo), unreadAsOf: lastSeq, readUpTo, readKnown: true };
}

/** I read up to `seq` (on this browser): what is left unread is what is held above it. */
export function onRead(track: UnreadTrack, held: readonly Message[], me: UserId | null, seq: number): UnreadTrack {
  if (track.readKnown && seq <= track.readUpTo) return track;
  const readUpTo = Math.max(track.readUpTo, seq);
  return { ...track, readUpTo, readKnown: true, unread: countUnread(held, me, readUpTo) };
}

/**
 * I read up to `seq` on ANOTHER device (a `message.status` about me, protocol-notes
 * "Receipts"): like `onRead`, except that this device may not hold the messages between
 * `seq` and `lastSeq` (the conversation's newest): then the count can only shrink to the
 * number of messages above `seq`, whoever sent them, until the next `conversations.list`.
 */
export function onReadElsewhere(
  track: UnreadTrack,
  held: readonly Message[],
  me: UserId | null,
  seq: number,
  lastSeq: number,
): UnreadTrack {
  if (track.readKnown && seq <= track.readUpTo) return track;
  if (seq >= lastSeq || holdsAbove(held, seq, lastSeq)) return onRead(track, held, me, seq);
  // The watermark is the server's own; only the count is a bound until the next list.
  const readUpTo = Math.max(track.readUpTo, seq);
  return { ...track, readUpTo, readKnown: true, unread: Math.min(track.unread, lastSeq - readUpTo) };
}

/** Whether every message with a seq in (after, upTo] is held. */
function holdsAbove(held: readonly Message[], after: number, upTo: number): boolean {
  let expected = upTo;
  for (let i = held.length - 1; i >= 0 && expected > after; i -= 1) {
    const seq = held[i]!.seq;
    if (seq > upTo) continue;
    if (seq !== expected) return false;
    expected -= 1;
  }
  return expected <= after;
}

/**
 * A message arrives in the stream (`message.new`, `message.updated`), replacing `previous`
 * (the held version, if any): a new unread message counts, an unread one deleted stops counting.
 */
export function onStreamMessage(
  track: UnreadTrack,
  me: UserId | null,
  previous: Message | undefined,
  message: Message,
): UnreadTrack {
  if (message.sender_id === me) return track;
  const beyondCount = message.seq > Math.max(track.unreadAsOf, track.readUpTo);
  if (!previous) {
    return beyondCount && !message.deleted ? { ...track, unread: track.unread + 1 } : track;
  }
  if (previous.deleted || !message.deleted) return track;
  const wasUnread = beyondCount || (track.readKnown && message.seq > track.readUpTo);
  return wasUnread ? { ...track, unread: Math.max(0, track.unread - 1) } : track;
}
