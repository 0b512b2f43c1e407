"""The one-statement writes: the rows they leave are the ORM's, and an update's Event exists
exactly when the update happened."""

import pytest
from django.db import IntegrityError, connection, transaction
from django.forms.models import model_to_dict
from django.utils import timezone

from tests.workflows_app.test_receipts import spec
from workflows_app.models import Attempt, Event, Step, Workflow
from workflows_app.services.statements import insert_together, update_rows, update_then_insert
from workflows_app.services.workflows import workflow_create

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
    assert run._state.adding is False  # a saved instance, usable like one the ORM returned
    assert run.steps.count() == 2


def test_insert_together_returns_the_ids_of_one_batch_in_order(account):
    workflow = Workflow(account=account.account, api_flavour="workflows")
    steps = [
        Step(workflow=workflow, index=i, channel="sms", sender={}, recipient={}, message={})
        for i in range(3)
    ]
    ids = insert_together([workflow], steps, returning=1)
    assert ids == [step.id for step in steps]
    assert list(Step.objects.filter(id__in=ids).order_by("id").values_list("index", flat=True)) == [
        0,
        1,
        2,
    ]


def test_update_then_insert_inserts_only_when_the_update_changed_a_row(account):
    run = workflow_create(account=account.account, flavour="workflows", steps=[spec("sms", "1")])
    step = run.steps.get()
    before = Event.objects.count()

    def event():
        return Event(workflow_id=run.id, step_id=step.id, kind="test", detail="x", data={"a": 1})

    missed = update_then_insert(
        Step.objects.filter(id=step.id, state="waiting"), {"state": "sending"}, event()
    )
    assert missed == 0 and Event.objects.count() == before
    hit = update_then_insert(
        Step.objects.filter(id=step.id, state="pending"), {"attempt_count": 7}, event()
    )
    assert hit == 1
    assert Step.objects.get(id=step.id).attempt_count == 7
    recorded = Event.objects.get(kind="test")
    assert (recorded.step_id, recorded.data, recorded.from_state) == (step.id, {"a": 1}, "")


def test_update_then_insert_types_a_null_column_as_the_table_does(account):
    """An Event without a step (NULL in a bigint column) must insert, not fail as text."""
    run = workflow_create(account=account.account, flavour="workflows", steps=[spec("sms", "1")])
    changed = update_then_insert(
        Workflow.objects.filter(id=run.id, status="running"),
        {"client_ref": "x"},
        Event(workflow_id=run.id, kind="test"),
    )
    assert changed == 1
    assert Event.objects.get(kind="test").step_id is None


def test_insert_together_refuses_an_empty_batch(account):
    """``returning`` counts batches: silently dropping an empty one would shift it."""
    workflow = Workflow(account=account.account, api_flavour="workflows")
    with pytest.raises(ValueError):
        insert_together([workflow], [], returning=1)
    assert not Workflow.objects.filter(id=workflow.id).exists()


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
    Event.objects.create(workflow_id=run.id, kind="test", dedupe_key="taken")
    with transaction.atomic():
        with pytest.raises(IntegrityError):
            update_then_insert(
                Workflow.objects.filter(id=run.id),
                {"client_ref": "x"},
                Event(workflow_id=run.id, kind="test", dedupe_key="taken"),
            )
        assert transaction.get_rollback() is True  # so leaving the block rolls it back
    assert Workflow.objects.get(id=run.id).client_ref == ""  # and the connection works on


def test_update_rows_writes_what_bulk_update_writes(account):
    run = workflow_create(
        account=account.account,
        flavour="workflows",
        steps=[spec("messenger", "1000000003", "read", 600), spec("sms", "447700900000")],
    )
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
    update_rows(ours, fields)
    Attempt.objects.bulk_update(twins, fields)
    assert [_attempt(row) for row in ours] == [_attempt(row) for row in twins]
    assert Attempt.objects.get(id=ours[0].id).response == {"k": [1, None]}
    assert Attempt.objects.get(id=ours[1].id).response is None  # SQL NULL, not JSON null


def _attempt(row: Attempt) -> dict:
    fresh = Attempt.objects.get(id=row.id)
    return {k: v for k, v in model_to_dict(fresh).items() if k not in {"id", "number"}}
