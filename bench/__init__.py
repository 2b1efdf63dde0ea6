"""Benchmarks of the whole system on the local stack (``make bench``; not part of ``make test``).

Module map:
    __main__   command line: flags per scenario and size; result file, plots, table
    system     the bench's own service processes, CPU per process, machine facts
    client     WebSocket clients of the load generator and the send/ack/delivery bookkeeping
    load       open-loop offered load of users in pairs, and the sync check for lost messages
    scenarios  latency under load, maximum sustained rate, idle connections, fan-out
    notifications  one job alert to many users: time to the last connected one, stored/s
    stats      nearest-rank percentiles
    report     latest.json, PNG plots (matplotlib, Agg) and the printed table
    progress   the live status line
    profile    py-spy sampling of the services under load and a top-costs summary

Measurement flow::

    load generator (1 process, perf_counter)          services (processes of their own)
      t0 = send message.send{id=i, client_msg_id=i} --> gateway --> chat.commands --> chat
      t1 = ack{id=i} <-------------------------------- gateway <-- delivery.frames <-- chat
      t2 = peer's message.new{client_msg_id=i} <------ gateway <--/                   (commit)
      latency = t2 - t0, ack latency = t1 - t0; CPU seconds of every process per step (psutil)
"""
