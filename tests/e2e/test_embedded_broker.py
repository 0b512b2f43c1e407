"""Embedded mode's broker (orchestrator/broker.py) between real processes: every message is
read whole, and by one consumer only. Kombu's own filesystem transport, measured the same way,
let consumers read a third of the messages before their bytes were written (an empty JSON,
"Unrecoverable error" in a Celery worker, which stopped `make run`)."""

import multiprocessing
from pathlib import Path

import pytest
from kombu import Connection

pytestmark = pytest.mark.e2e

TRANSPORT = "orchestrator.broker:Transport"
MESSAGES_PER_PRODUCER = 400
PRODUCERS = CONSUMERS = 2


def _options(folder: str) -> dict:
    # The control folder too: kombu's default is ./control, in whatever the working folder is.
    return {
        "data_folder_in": folder,
        "data_folder_out": folder,
        "control_folder": f"{folder}-control",
        "polling_interval": 0,
    }


def _produce(folder: str, producer: int) -> None:
    with Connection("filesystem://", transport=TRANSPORT, transport_options=_options(folder)) as c:
        queue = c.SimpleQueue("q")
        for n in range(MESSAGES_PER_PRODUCER):
            queue.put({"id": f"{producer}-{n}", "padding": "x" * 2000})


def _consume(folder: str, results) -> None:
    """Take messages until none comes for 3 s; report their ids and any error."""
    ids, errors = [], []
    with Connection("filesystem://", transport=TRANSPORT, transport_options=_options(folder)) as c:
        queue = c.SimpleQueue("q")
        while True:
            try:
                message = queue.get(timeout=3)
            except queue.Empty:
                break
            except Exception as error:  # what kombu's own transport raised: JSONDecodeError
                errors.append(repr(error))
                continue
            ids.append(message.payload["id"])
            message.ack()
    results.put((ids, errors))


def test_concurrent_producers_and_consumers_pass_every_message_once(tmp_path: Path):
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    consumers = [
        context.Process(target=_consume, args=(str(tmp_path), results)) for _ in range(CONSUMERS)
    ]
    producers = [
        context.Process(target=_produce, args=(str(tmp_path), p)) for p in range(PRODUCERS)
    ]
    for process in consumers + producers:
        process.start()
    reports = [results.get(timeout=120) for _ in consumers]
    for process in consumers + producers:
        process.join(timeout=30)
    ids = [message_id for got, _ in reports for message_id in got]
    errors = [error for _, errs in reports for error in errs]
    assert errors == []
    assert len(ids) == len(set(ids)) == PRODUCERS * MESSAGES_PER_PRODUCER
    assert not list(tmp_path.iterdir())  # nothing left behind, half-written or taken


def test_a_fresh_var_dir_gets_its_broker_folder_from_the_first_process_that_connects(tmp_path):
    folder = tmp_path / "var" / "broker"
    with Connection(
        "filesystem://", transport=TRANSPORT, transport_options=_options(str(folder))
    ) as connection:
        queue = connection.SimpleQueue("q")
        queue.put({"id": "first"})
        assert queue.get(timeout=1).payload == {"id": "first"}
    assert folder.is_dir()
