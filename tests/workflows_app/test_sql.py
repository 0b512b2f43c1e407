"""The hand-written statements (workflows_app/services/sql.py): the rows they leave are the
ORM's, a compare-and-set changes only the rows it names, and its Event exists exactly when
the update happened."""

import uuid

import pytest
from django.db import IntegrityError, connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from tests.fixtures import run_of, spec
from workflows_app.models import Attempt, Event, Step, Workflow
from workflows_app.services import sql
from workflows_app.services.clock import ClockTimestamp, db_now
from workflows_app.services.workflows import workflow_create
from workflows_app.states import EventKind

# Columns that differ between any two rows by nature: keys, and times taken at each write.
VOLATILE = {"id", "workflow", "created_at", "updated_at", "ready_at", "dispatched_at"}


def _comparable(obj) -> dict:
    row = type(obj).objects.get(pk=obj.pk)
    return {k: v for k, v in model_to_dict(row).items() if k not in VOLATILE}


def test_a_new_run_is_written_as_the_orm_writes_it(account, django_assert_num_queries):
    steps = [spec("messenger", "1000000003", "read", 600), spec("sms", "447700900000")]
    # One statement on PostgreSQL; elsewhere one INSERT per table (in the test's transaction,
    # so without a savepoint of their own).
    with django_assert_num_queries(1 if connection.vendor == "postgresql" else 3):
        run = workflow_create(account=account.account, flavour="workflows", steps=steps)
    # The same rows through plain ORM calls, for comparison.
    twin = Workflow.objects.create(account=account.account, api_flavour="workflows")
    ours = list(run.steps.order_by("index"))
    for step in ours:
        Step.objects.create(
            **{k: v for k, v in model_to_dict(step).items() if k not in VOLATILE},
            workflow=twin,
            ready_at=step.ready_at,
            dispatched_at=step.dispatched_at,
        )
    assert _comparable(run) == _comparable(twin)
    assert [_comparable(s) for s in ours] == [_comparable(s) for s in twin.steps.order_by("index")]
    assert ours[0].ready_at is not None and ours[0].dispatched_at is not None
    assert ours[1].ready_at is None
    created = Event.objects.get(workflow=run, kind="workflow.created")
    assert created.data == {"steps": 2, "flavour": "workflows"} and created.to_state == "running"
    assert run.steps.count() == 2


def test_run_insert_sets_the_ids_of_the_steps_in_order(account):
    workflow = Workflow(account=account.account, api_flavour="workflows")
    steps = [
        Step(workflow=workflow, index=i, channel="sms", sender={}, recipient={}, message={})
        for i in range(3)
    ]
    created = Event(workflow=workflow, kind=EventKind.WORKFLOW_CREATED)
    sql.run_insert(workflow, steps, created)
    ids = [step.id for step in steps]
    assert None not in ids
    stored = Step.objects.filter(id__in=ids).order_by("id").values_list("index", flat=True)
    assert list(stored) == [0, 1, 2]
    assert Event.objects.filter(workflow=workflow, kind=EventKind.WORKFLOW_CREATED).count() == 1


def test_run_insert_keeps_every_digit_of_a_time_and_the_database_clock_where_asked(account):
    workflow = Workflow(account=account.account, api_flavour="workflows")
    steps = [
        Step(workflow=workflow, index=0, channel="sms", sender={}, recipient={}, message={}),
        Step(workflow=workflow, index=1, channel="sms", sender={}, recipient={}, message={}),
    ]
    steps[0].ready_at = ClockTimestamp()
    steps[1].ready_at = timezone.now().replace(microsecond=123456)
    before = db_now()
    sql.run_insert(workflow, steps, Event(workflow=workflow, kind=EventKind.WORKFLOW_CREATED))
    stored = Workflow.objects.get(pk=workflow.pk)
    assert stored.created_at == workflow.created_at and stored.created_at.microsecond != 0
    first, second = Step.objects.filter(workflow=workflow).order_by("index")
    assert before <= first.ready_at <= db_now()
    assert second.ready_at == steps[1].ready_at


def _event(detail: str = "x") -> sql.EventRow:
    return sql.EventRow(kind="test", from_state="pending", to_state="sending", detail=detail)


def test_a_state_compare_and_set_changes_and_logs_only_the_rows_in_that_state(account):
    runs = [
        workflow_create(account=account.account, flavour="workflows", steps=[spec("sms", "1")])
        for _ in range(2)
    ]
    first, second = (run.steps.get() for run in runs)
    Step.objects.filter(id=second.id).update(state="sending")
    before = Event.objects.count()
    both = {first.id: runs[0].id, second.id: runs[1].id}
    changed = sql.steps_set_where_state(both, "pending", {"attempt_count": 7}, _event())
    assert changed == {first.id}
    assert Step.objects.get(id=first.id).attempt_count == 7
    assert Step.objects.get(id=second.id).attempt_count == 0
    assert Event.objects.count() == before + 1
    recorded = Event.objects.get(kind="test")
    assert (recorded.workflow_id, recorded.step_id, recorded.detail) == (runs[0].id, first.id, "x")
    only_first = {first.id: first.workflow_id}
    assert sql.steps_set_where_state(only_first, "waiting", {"attempt_count": 8}, _event()) == set()
    assert Event.objects.count() == before + 1


def test_a_workflow_compare_and_set_logs_an_event_without_a_step(account):
    """An Event without a step (NULL in a bigint column) must insert, not fail as text."""
    run = workflow_create(account=account.account, flavour="workflows", steps=[spec("sms", "1")])
    assert sql.workflow_set_where_status(run.id, "running", {"client_ref": "x"}, _event())
    assert Event.objects.get(kind="test").step_id is None
    assert Workflow.objects.get(id=run.id).client_ref == "x"
    assert not sql.workflow_set_where_status(run.id, "error", {"client_ref": "y"}, _event("y"))
    assert Workflow.objects.get(id=run.id).client_ref == "x"


def test_a_status_compare_and_set_moves_only_the_statuses_listed(account):
    runs = [
        workflow_create(account=account.account, flavour="workflows", steps=[spec("sms", "1")])
        for _ in range(3)
    ]
    never, submitted, read = (run.steps.get() for run in runs)
    Step.objects.filter(id=submitted.id).update(message_status="submitted")
    Step.objects.filter(id=read.id).update(message_status="read")
    ids = [never.id, submitted.id, read.id]
    changed = sql.steps_set_where_status_in(
        ids, (None, "submitted"), {"message_status": "delivered"}
    )
    assert changed == {never.id, submitted.id}
    assert Step.objects.get(id=read.id).message_status == "read"
    assert sql.steps_set_where_status_in(ids, ("submitted",), {"message_status": "read"}) == set()


def test_keys_written_on_every_accept_and_send_are_time_ordered(account):
    """UUIDv7 keys keep their indexes growing at one end (see Workflow.id)."""
    runs = [
        workflow_create(account=account.account, flavour="workflows", steps=[spec("sms", "3")])
        for _ in range(3)
    ]
    assert [run.id.version for run in runs] == [7, 7, 7]
    assert sorted(run.id for run in runs) == [run.id for run in runs]


def test_a_failed_statement_marks_the_callers_transaction_for_rollback(account):
    """As a failed QuerySet call does: the caller's atomic block cannot carry on unaware."""
    run = workflow_create(account=account.account, flavour="workflows", steps=[spec("sms", "1")])
    other = workflow_create(account=account.account, flavour="workflows", steps=[spec("sms", "1")])
    taken = uuid.uuid4()
    Step.objects.filter(workflow=other).update(message_uuid=taken)
    step = run.steps.get()
    with transaction.atomic():
        with pytest.raises(IntegrityError):  # message_uuid is unique
            sql.steps_set_where_state(
                {step.id: run.id}, "pending", {"message_uuid": taken}, _event()
            )
        assert transaction.get_rollback() is True  # so leaving the block rolls it back
    assert Step.objects.get(id=step.id).message_uuid is None  # and the connection works on


def test_rows_update_writes_what_bulk_update_writes(account):
    run = run_of(account, spec("messenger", "1000000003", "read", 600), spec("sms", "447700900000"))
    first, second = run.steps.order_by("index")
    ours = [
        Attempt.objects.create(step=first, number=1, provider="sandbox"),
        Attempt.objects.create(step=second, number=1, provider="sandbox"),
    ]
    twins = [
        Attempt.objects.create(step=first, number=2, provider="sandbox"),
        Attempt.objects.create(step=second, number=2, provider="sandbox"),
    ]
    values = [
        {"outcome": "accepted", "provider_message_ids": ["a", "b"], "response": {"k": [1, None]}},
        {"outcome": "error", "error_code": "1250", "response": None, "finished_at": timezone.now()},
    ]
    fields = ["outcome", "provider_message_ids", "response", "error_code", "finished_at"]
    for rows in (ours, twins):
        for row, changes in zip(rows, values, strict=True):
            for name, value in changes.items():
                setattr(row, name, value)
    sql.rows_update(ours, fields)
    Attempt.objects.bulk_update(twins, fields)
    assert [_attempt(row) for row in ours] == [_attempt(row) for row in twins]
    assert Attempt.objects.get(id=ours[0].id).response == {"k": [1, None]}
    assert Attempt.objects.get(id=ours[1].id).response is None  # SQL NULL, not JSON null


def _attempt(row: Attempt) -> dict:
    fresh = Attempt.objects.get(id=row.id)
    return {k: v for k, v in model_to_dict(fresh).items() if k not in {"id", "number"}}
