"""Pure chat logic (no I/O): addressing, idempotency decisions, watermarks.

Module map:
    messages    resolve_target (direct pair -> conversation), check_send (new, repeat, refused)
    watermarks  apply_receipt: fold a receipt into delivered/read watermarks
    errors      ChatError > Forbidden | Conflict | BadRequest, each with its protocol code
"""
