"""Waiting workflows in bulk, inserted with SQL (``INSERT … SELECT`` over ``generate_series``).

Each generated run is row for row what the service leaves behind after it accepted the canonical
two-step request (Messenger waiting for ``read``, then SMS) and the sandbox accepted the first
message and went silent: one Workflow, two Steps (the first ``waiting`` with its deadline, the
second ``pending``), one Attempt with its ProviderMessage, and three Events (``workflow.created``,
``pending → sending``, ``sending → waiting``). ``tests/bench/test_fixtures.py`` compares these
rows with the ones :func:`workflow_create` and :func:`steps_send_due` write, column by column.

Only ids, uuids, recipients and timestamps differ between runs. ``timer_armed_at`` stays NULL, as
the service leaves it for a deadline beyond ``TIMER_HORIZON``; for nearer deadlines the
scheduler arms the countdown on its next tick (as it does after Redis lost the countdowns).
"""

import contextlib

import psycopg
from django.db import DatabaseError, connection, transaction

from workflows_app.states import StepState

MESSENGER_TEXT = "Your order has shipped (Messenger)"
SMS_TEXT = "Your order has shipped (SMS)"
MESSENGER_SENDER = "100200300"
SMS_SENDER = "447700900001"
# The sandbox's silent fate (recipient ending in 3): accepted, then no receipt, so the timer
# decides the first step and the second step's send is accepted and waits too.
SILENT = "3"

# A UUIDv7 (what the service's uuid6.uuid7() makes) for the instant ``at``: its 48-bit
# millisecond timestamp over a random UUIDv4, whose version bits 0100 become 0111.
UUID7 = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send(floor(extract(epoch FROM {at}) * 1000)::bigint) FROM 3) FROM 1 FOR 6), "
    "52, 1), 53, 1), 'hex')::uuid"
)
STARTED = "d.deadline - make_interval(secs => expiry)"

GENERATE = f"""
CREATE TEMP TABLE bench_gen ON COMMIT DROP AS
SELECT g,
       {UUID7.format(at=STARTED)} AS workflow_id,
       nextval(pg_get_serial_sequence('workflows_app_step', 'id')) AS step0_id,
       nextval(pg_get_serial_sequence('workflows_app_step', 'id')) AS step1_id,
       {UUID7.format(at=STARTED)} AS attempt_id,
       {UUID7.format(at=STARTED)} AS message_uuid,
       'sbx-' || gen_random_uuid() AS provider_message_id,
       '10' || lpad(g::text, 8, '0') || %(silent)s AS messenger_to,
       '4477' || lpad(g::text, 8, '0') || %(silent)s AS sms_to,
       expiry,
       -- sent `expiry` seconds before its deadline; created a few milliseconds before that
       {STARTED} AS started,
       d.deadline
FROM generate_series(%(first)s, %(last)s) AS g,
     LATERAL (SELECT %(base)s::timestamptz + make_interval(secs =>
         %(from_s)s + (%(to_s)s - %(from_s)s) * (g - 1)::float8 / greatest(%(count)s - 1, 1))
         AS deadline) AS d,
     LATERAL (SELECT greatest(1, ceil(extract(epoch FROM d.deadline - %(base)s::timestamptz)))::int
         AS expiry) AS e
"""

INSERTS = [
    """
INSERT INTO workflows_app_workflow
    (id, account_id, application_id, template, api_flavour, status, client_ref,
     created_at, updated_at, finished_at)
SELECT workflow_id, %(account_id)s, NULL, 'failover', 'workflows', 'running', '',
       started - interval '5 ms', started - interval '5 ms', NULL
FROM bench_gen
""",
    """
INSERT INTO workflows_app_step
    (id, workflow_id, index, channel, sender, recipient, message, condition_status, expiry_time,
     is_last, state, ready_at, dispatched_at, attempt_count, message_uuid, message_status, error,
     failover_reason, send_started_at, sent_at, deadline_at, timer_armed_at, finished_at,
     late_receipt, revoke_state, created_at, updated_at)
SELECT step0_id, workflow_id, 0, 'messenger',
       jsonb_build_object('type', 'messenger', 'id', %(messenger_sender)s),
       jsonb_build_object('type', 'messenger', 'id', messenger_to),
       jsonb_build_object('content',
                          jsonb_build_object('type', 'text', 'text', %(messenger_text)s)),
       'read', expiry, false, %(waiting)s, started - interval '4 ms', started - interval '4 ms', 1,
       message_uuid, 'submitted', NULL::jsonb, NULL, started, started + interval '10 ms',
       deadline, NULL::timestamptz, NULL::timestamptz, false, NULL,
       started - interval '4 ms', started + interval '11 ms'
FROM bench_gen
UNION ALL
SELECT step1_id, workflow_id, 1, 'sms',
       jsonb_build_object('type', 'sms', 'number', %(sms_sender)s),
       jsonb_build_object('type', 'sms', 'number', sms_to),
       jsonb_build_object('content', jsonb_build_object('type', 'text', 'text', %(sms_text)s)),
       NULL, NULL, true, %(pending)s, NULL, NULL, 0,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,  -- message_uuid … finished_at
       false, NULL, started - interval '4 ms', started - interval '4 ms'
FROM bench_gen
""",
    """
INSERT INTO workflows_app_attempt
    (id, step_id, number, provider, connection_id, request_summary, outcome, error_kind,
     error_code, error_detail, provider_message_ids, response, started_at, finished_at,
     price_currency)
SELECT attempt_id, step0_id, 1, 'sandbox', 'sandbox',
       jsonb_build_object('to', jsonb_build_object('type', 'messenger', 'id', messenger_to),
                          'channel', 'messenger', 'content_type', 'text'),
       'accepted', '', '', '', jsonb_build_array(provider_message_id),
       jsonb_build_object('fate', 'silent', 'message_id', provider_message_id),
       started + interval '1 ms', started + interval '10 ms', ''
FROM bench_gen
""",
    """
INSERT INTO workflows_app_providermessage
    (provider, provider_message_id, attempt_id, recipient, sent_at, status, price_currency)
SELECT 'sandbox', provider_message_id, attempt_id, messenger_to, started + interval '1 ms',
       'submitted', ''
FROM bench_gen
""",
    """
INSERT INTO workflows_app_event
    (workflow_id, step_id, kind, from_state, to_state, detail, data, dedupe_key, created_at)
SELECT workflow_id, NULL, 'workflow.created', '', 'running', '',
       jsonb_build_object('steps', 2, 'flavour', 'workflows'), NULL, started - interval '3 ms'
FROM bench_gen
UNION ALL
SELECT workflow_id, step0_id, 'step.transition', 'pending', 'sending', 'attempt started',
       '{}'::jsonb, NULL, started
FROM bench_gen
UNION ALL
SELECT workflow_id, step0_id, 'step.transition', 'sending', 'waiting',
       'provider accepted (or the outcome is ambiguous)', '{}'::jsonb, NULL,
       started + interval '11 ms'
FROM bench_gen
""",
]


def insert_waiting_workflows(
    *,
    account_id: int,
    count: int,
    deadlines_from_s: float,
    deadlines_to_s: float,
    batch: int = 100_000,
    on_batch=None,
) -> None:
    """Insert ``count`` waiting runs whose deadlines are spread evenly over
    ``[now + deadlines_from_s, now + deadlines_to_s]`` (database clock), in batches of ``batch``
    rows, each in its own transaction. ``on_batch(done)`` is called after each batch.
    """
    params = {
        "account_id": account_id,
        "from_s": float(deadlines_from_s),
        "to_s": float(deadlines_to_s),
        "count": count,
        "silent": SILENT,
        "messenger_sender": MESSENGER_SENDER,
        "sms_sender": SMS_SENDER,
        "messenger_text": MESSENGER_TEXT,
        "sms_text": SMS_TEXT,
        "waiting": StepState.WAITING.value,
        "pending": StepState.PENDING.value,
    }
    # Latest deadlines first, each batch timed from its own start: a load that takes minutes
    # still leaves the nearest deadlines `deadlines_from_s` ahead when it ends.
    for first in reversed(range(1, count + 1, batch)):
        last = min(count, first + batch - 1)
        # Client-side binding: the statements' parameters are untyped literals to PostgreSQL
        # (jsonb_build_object's arguments), which server-side binding cannot type.
        with transaction.atomic(), psycopg.ClientCursor(_psycopg_connection()) as cursor:
            cursor.execute("SELECT clock_timestamp()")
            params["base"] = cursor.fetchone()[0]
            cursor.execute("SET LOCAL synchronous_commit = off")
            # The rows reference each other by construction; skipping the per-row foreign-key
            # triggers (superuser only) makes a million runs load several times faster.
            cursor.execute("SET LOCAL session_replication_role = replica")
            cursor.execute("DROP TABLE IF EXISTS bench_gen")  # when called inside a transaction
            cursor.execute(GENERATE, {**params, "first": first, "last": last})
            for statement in INSERTS:
                cursor.execute(statement, params)
        if on_batch:
            on_batch(count - first + 1)
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"ANALYZE workflows_app_{table}")


def _psycopg_connection() -> psycopg.Connection:
    connection.ensure_connection()
    return connection.connection


TABLES = ("workflow", "step", "attempt", "providermessage", "event")


def settle_tables() -> None:
    """Leave the tables as a service that grew them over a day would have them: vacuumed
    (dead rows gone, hint bits and visibility map set, statistics fresh) and checkpointed.

    Measured straight after a bulk load, PostgreSQL is still writing out gigabytes of freshly
    dirtied pages and setting hint bits on first read, and that background work, not the
    table size, is what the first minutes' figures show (scale accept fell from ~100 to ~50
    req/s, then recovered). And every send leaves dead row versions (each state change is an
    update that touches indexed columns); with autovacuum off, as on the bench machine, a phase
    run after others pays for their dead rows (sends/s at 0 ms fell from ~780 to ~620 over one
    latency run)."""
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"VACUUM (ANALYZE) workflows_app_{table}")
        with contextlib.suppress(DatabaseError):  # needs superuser or pg_checkpoint
            cursor.execute("CHECKPOINT")
