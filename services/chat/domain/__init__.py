"""Pure chat logic (no I/O): addressing, idempotency decisions, watermarks, groups, edits.

Module map:
    messages    resolve_target (direct pair -> conversation), check_send (new, repeat, refused),
                decide_sends (a batch of sends in record order, as one record after another)
    watermarks  apply_receipt: fold a receipt into delivered/read watermarks
    groups      create_group, add_members, remove_member, set_role, rename: who may change a
                group, admin succession, member limit
    edits       edit, delete, react, check_reply: who may change a message, and how
    erasure     an erased user's messages, reactions, memberships and stored frames
    errors      ChatError > Forbidden | NotFound | Conflict | TooLarge | BadRequest, each with
                its protocol code
"""
