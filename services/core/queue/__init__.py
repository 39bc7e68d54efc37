"""The durable queue: Redis Streams with consumer groups, leases, retries, dead letters.

Delivery is at-least-once. Every delivery carries a stable ``message_id`` (kept across
retries and replays) and an ``attempt`` number, so a receiver can be effectively-once.

Keys of queue ``<q>`` (all from :class:`~services.core.keys.QueueKeys`, one hash tag, so
every script touches one Cluster slot; every script declares all of them in KEYS)::

    wm:q:{<q>}:p:high|normal|low   work streams, one consumer group (default "workers")
    wm:q:{<q>}:delayed             zset: parked member -> due time (ms, Redis clock)
    wm:q:{<q>}:parked              hash: parked member -> msgpack'd envelope
    wm:q:{<q>}:dead                dead-letter stream (trimmed by MINID age, never MAXLEN)
    wm:q:{<q>}:ord:holders         hash: ordering key -> id of the message released for it
    wm:q:{<q>}:ord:seq             hash: t:<okey> / h:<okey> -> tail / head of its line
    wm:q:{<q>}:ord:waiting         hash: <okey>\n<seq> -> msgpack'd envelope waiting in line
    wm:q:{<q>}:reclaim             hash: stream index -> XAUTOCLAIM cursor (absent: start)
    wm:q:{<q>}:idem:<sha256>       string with a TTL: idempotency key -> first message id

Scripts (``lua/<op>.lua``, each prefixed with ``lua/_common.lua``, called by EVALSHA):
enqueue, claim, ack, ack_many (a Worker acks what finishes in one loop turn with one call), retry,
dead, renew, replay, forget. Work streams are never trimmed:
ack is XACK + XDEL, so XLEN is the real depth and a drained queue holds no entries.

Priority: one claim budget of ``count`` is split by weight (default 70/20/10, the rounding
remainder drawn by weighted lot so even ``count=1`` gives LOW its share); a priority's
unused budget flows down, and what is left after that fills top-down again. HIGH drains
first; LOW is never starved while HIGH has a backlog.

Ordering keys: a gate admits one message per key at a time. Enqueue releases a message
(into its stream, or the delayed set) only when no other message holds its key; otherwise
it waits in the key's line. The holder keeps the key while in flight *and* while parked for
a retry; its terminal outcome (ack, or dead, including dead-lettering inside claim) releases
the next in line. So same-key messages are handed out one at a time, in enqueue order. A
dead message does not block its key; replaying it puts it at the back of the key's line.

Leases: a claim holds an entry for ``lease`` seconds; the :class:`Worker` renews every
lease/3 (XCLAIM JUSTID to itself, owner-checked). Entries idle longer than the claimer's
lease are reclaimed by the next claim, so one queue's consumers must share one lease.
Outcome scripts are owner-checked: a holder that lost its lease cannot ack or retry.
Attempts count deliveries, crashes included; a delivery count over ``max_deliveries`` or an
attempt past ``max_attempts`` is dead-lettered inside claim (poison / crash loops).

Backpressure: ``submit(..., max_depth=N)`` refuses a new message (:class:`QueueFull`, a
RESOURCE_EXHAUSTED error with a retry delay) when the backlog — ready + delayed/parked +
waiting behind an ordering key, not in-flight, not dead — is already ``N``; checked inside
the enqueue script, after the idempotency key (a repeat still answers duplicate).
"""

from services.core.queue._consumer import Handler, Ready, Worker
from services.core.queue._dead import DeadLetterPage, DeadLetters
from services.core.queue._envelope import DeadLetter, Delivery, Priority
from services.core.queue._errors import PermanentError, QueueFull, RetryableError
from services.core.queue._policy import Decision, RetryPolicy, decide
from services.core.queue._queue import ClaimResult, DurableQueue, Enqueued
from services.core.queue._stats import PriorityStats, QueueStats

__all__ = [
    "ClaimResult",
    "DeadLetter",
    "DeadLetterPage",
    "DeadLetters",
    "Decision",
    "Delivery",
    "DurableQueue",
    "Enqueued",
    "Handler",
    "PermanentError",
    "Priority",
    "PriorityStats",
    "QueueFull",
    "QueueStats",
    "Ready",
    "RetryPolicy",
    "RetryableError",
    "Worker",
    "decide",
]
