"""Delivered/read watermarks: monotonic, bounded by the conversation, read implies delivered;
and who is told when one moves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schemas.frames import ReceiptStatus


@dataclass(frozen=True, slots=True)
class Watermarks:
    """A member's position: every message up to ``delivered`` is delivered, up to ``read`` read."""

    delivered: int
    read: int


@dataclass(frozen=True, slots=True)
class WatermarkChange:
    """The outcome of a receipt: new watermarks and the status to announce, if any moved."""

    watermarks: Watermarks
    # (status, up_to_seq) to announce (see `audience`); None when nothing moved.
    announce: tuple[ReceiptStatus, int] | None


def apply_receipt(
    current: Watermarks, *, status: ReceiptStatus, seq: int, last_seq: int
) -> WatermarkChange:
    """Fold a receipt into a member's watermarks.

    A receipt beyond the conversation's last message is clamped to it (nobody can have seen a
    message that does not exist yet); a lower one than stored changes nothing. A read receipt
    moves delivered along, and then only ``read`` is announced, since read implies delivered.

    Args:
        current: the member's stored watermarks.
        status: which watermark the receipt moves.
        seq: the conversation seq the client reports.
        last_seq: the conversation's highest message seq.

    Returns:
        The new watermarks and what to announce.
    """
    target = min(seq, last_seq)
    if status == "read":
        read = max(current.read, target)
        moved = Watermarks(delivered=max(current.delivered, read), read=read)
        announce: tuple[ReceiptStatus, int] | None = ("read", read) if read > current.read else None
        return WatermarkChange(moved, announce)
    delivered = max(current.delivered, target)
    moved = Watermarks(delivered=delivered, read=current.read)
    announce = ("delivered", delivered) if delivered > current.delivered else None
    return WatermarkChange(moved, announce)


def audience(members: Sequence[str], reader: str, status: ReceiptStatus) -> list[str]:
    """Who gets the ``message.status`` of a watermark that moved.

    The other members always (their ticks). A ``read`` also goes to the reader's own devices,
    so a conversation read on one device stops counting as unread on the others; a
    ``delivered`` does not: the reader's devices have nothing to show for it, and every
    message would otherwise cost each of them one more frame.

    Args:
        members: every member of the conversation, the reader included, in user order.
        reader: whose watermark moved.
        status: which watermark moved.

    Returns:
        The recipients, in the order of ``members``.
    """
    if status == "read":
        return list(members)
    return [user for user in members if user != reader]
