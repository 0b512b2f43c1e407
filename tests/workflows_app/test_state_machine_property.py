"""Any interleaving of sends, receipts, deadlines, retries, crashes and cancels keeps the
invariants (tests/chaos/checker.py), checked after every step.

Hypothesis drives the real services against the real test database. A send can be split in
two (claimed, then later answered, or abandoned as if its worker died), so receipts, deadlines
and cancels also land while an attempt is in flight. Time passing is modelled by moving a
row's deadline, retry time or send start into the past, then letting the scheduler act.
"""

from datetime import timedelta

import pytest
from django.db.models import F
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from channels_app import http, receipts
from channels_app.errors import ErrorKind, ProviderError
from channels_app.statuses import ReceiptEvent, ReceiptStatus
from tests.chaos import checker
from tests.fixtures import spec
from workflows_app.models import Attempt, Step, Workflow
from workflows_app.services import send_record, sending
from workflows_app.services.accounts import account_create
from workflows_app.services.scheduler import scheduler_tick, steps_expire_due
from workflows_app.services.workflows import workflow_cancel, workflow_create

DAY = timedelta(days=1)
# Sandbox fates by last digit: 0 read, 1 rejected, 2 undeliverable, 3 silence, 4 delivered
# never read, 5 transient then ok.
recipients = st.sampled_from("012345").map(lambda digit: "447700900" + "00" + digit)
channels = st.sampled_from(["messenger", "sms"])


@st.composite
def workflow_specs(draw):
    count = draw(st.integers(2, 3))
    items = []
    for index in range(count):
        channel = draw(channels)
        recipient = draw(recipients)
        if index == count - 1:
            items.append(spec(channel, recipient))
        else:
            condition = "read" if channel == "messenger" and draw(st.booleans()) else "delivered"
            items.append(spec(channel, recipient, condition, draw(st.integers(15, 600))))
    return items


class EngineMachine(RuleBasedStateMachine):
    """The model is the database itself; the invariants are the chaos checker's."""

    @initialize()
    def setup(self):
        self.account = account_create(name="property").account
        self.workflow_ids: list = []
        self.in_flight: dict = {}  # attempt id -> its SendClaim, claimed not answered

    # --- inputs -------------------------------------------------------------------------------

    @precondition(lambda self: len(self.workflow_ids) < 4)
    @rule(steps=workflow_specs())
    def start_a_run(self, steps):
        workflow = workflow_create(account=self.account, flavour="workflows", steps=steps)
        self.workflow_ids.append(workflow.id)

    def _steps(self, **filters):
        return list(
            Step.objects.filter(workflow_id__in=self.workflow_ids, **filters).order_by("id")
        )

    @rule(data=st.data())
    def send_a_ready_step(self, data):
        ready = self._steps(state="pending", ready_at__isnull=False)
        if ready:
            step = data.draw(st.sampled_from(ready))
            Step.objects.filter(id=step.id).update(ready_at=F("ready_at") - DAY)  # retry is due
            sending.steps_send_due(ids=[step.id])

    @rule(limit=st.integers(1, 4))
    def a_send_due_task_takes_a_batch(self, limit):
        ready = self._steps(state="pending", ready_at__isnull=False)
        Step.objects.filter(id__in=[step.id for step in ready]).update(ready_at=F("ready_at") - DAY)
        sending.steps_send_due(limit)

    @rule(data=st.data())
    def claim_a_send_and_hold_the_call(self, data):
        ready = self._steps(state="pending", ready_at__isnull=False)
        if ready:
            step = data.draw(st.sampled_from(ready))
            Step.objects.filter(id=step.id).update(ready_at=F("ready_at") - DAY)
            for claimed in sending._claim(Step.objects.filter(id=step.id), 1):
                self.in_flight[claimed.attempt.id] = claimed

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data(), outcome=st.sampled_from(["provider", "transient", "ambiguous"]))
    def answer_a_held_call(self, data, outcome):
        attempt_id = data.draw(st.sampled_from(sorted(self.in_flight)))
        attempt, route, outbound, _ = self.in_flight.pop(attempt_id)
        if outcome == "provider":
            try:
                result = http.run(route.adapter.send(outbound, route.config))
            except ProviderError as error:
                send_record.outcomes_record([(attempt, error)])
            else:
                send_record.outcomes_record([(attempt, result)])
        else:
            error = ProviderError(ErrorKind(outcome), f"injected {outcome}", retry_after=0.1)
            send_record.outcomes_record([(attempt, error)])

    @precondition(lambda self: self.in_flight)
    @rule(data=st.data())
    def a_worker_dies_mid_call(self, data):
        attempt_id = data.draw(st.sampled_from(sorted(self.in_flight)))
        attempt = self.in_flight.pop(attempt_id)[0]
        Step.objects.filter(id=attempt.step_id).update(send_started_at=F("send_started_at") - DAY)
        scheduler_tick()

    @rule(
        data=st.data(),
        status=st.sampled_from(list(ReceiptStatus)),
        by_client_ref=st.booleans(),
        copies=st.integers(1, 3),
    )
    def a_receipt_arrives(self, data, status, by_client_ref, copies):
        attempts = list(
            Attempt.objects.filter(step__workflow_id__in=self.workflow_ids).order_by("started_at")
        )
        if not attempts:
            return
        attempt = data.draw(st.sampled_from(attempts))
        ids = attempt.provider_message_ids or [f"early-{attempt.id}"]
        event = ReceiptEvent(
            provider=attempt.provider,
            provider_message_id=ids[0],
            status=status,
            client_ref=str(attempt.id) if by_client_ref else "",
            error_code=1260 if status in ("rejected", "undeliverable") else None,
            raw={"property": True},
            connection_ids=(attempt.connection_id,),
        )
        receipts.ingest([event] * copies)

    @rule(data=st.data(), via_scheduler=st.booleans())
    def a_deadline_passes(self, data, via_scheduler):
        waiting = self._steps(state="waiting")
        if not waiting:
            return
        step = data.draw(st.sampled_from(waiting))
        Step.objects.filter(id=step.id).update(deadline_at=F("deadline_at") - DAY * 2)
        if via_scheduler:
            scheduler_tick()
        else:
            steps_expire_due([step.id])
            steps_expire_due([step.id])  # a duplicated countdown

    @precondition(lambda self: self.workflow_ids)
    @rule(data=st.data())
    def the_caller_cancels(self, data):
        workflow_cancel(Workflow.objects.get(id=data.draw(st.sampled_from(self.workflow_ids))))

    @rule()
    def the_scheduler_ticks(self):
        scheduler_tick()

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def nothing_is_broken_so_far(self):
        verdict = checker.check(self.workflow_ids, require_settled=False)
        assert verdict.ok, verdict.violations

    def teardown(self):
        """Let every held call fail as if its worker died, then let time run out: every run
        must end or wait on a deadline still to come."""
        for attempt, *_ in self.in_flight.values():
            Step.objects.filter(id=attempt.step_id).update(
                send_started_at=F("send_started_at") - DAY
            )
        for _ in range(12):
            for step in self._steps(state="pending", ready_at__isnull=False):
                Step.objects.filter(id=step.id).update(ready_at=F("ready_at") - DAY)
                sending.steps_send_due(ids=[step.id])
            Step.objects.filter(workflow_id__in=self.workflow_ids, state="waiting").update(
                deadline_at=F("deadline_at") - DAY * 2
            )
            scheduler_tick()
        verdict = checker.check(self.workflow_ids)
        assert verdict.ok and verdict.lost == 0, verdict.violations


@pytest.mark.django_db
def test_any_interleaving_keeps_the_invariants():
    run_state_machine_as_test(
        EngineMachine,
        settings=settings(
            max_examples=15,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
