"""``manage.py run_scheduler``: the timer loop (see workflows_app/services/timers.py).

Running two at once is safe: each tick claims rows with SKIP LOCKED and every change is a
compare-and-set.
"""

import logging
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection

from workflows_app.services.timers import expire_due, scheduler_tick, seconds_to_next_deadline

logger = logging.getLogger("workflows_app.scheduler")


class Command(BaseCommand):
    help = "Run the scheduler loop that fires due timers and re-dispatches lost work."

    def add_arguments(self, parser):
        parser.add_argument("--interval", type=float, default=settings.SCHEDULER_INTERVAL)
        parser.add_argument("--once", action="store_true", help="run one tick and exit")

    def handle(self, *args, interval: float, once: bool, **options):
        stopping = False

        def stop(signum, frame):
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        logger.info("scheduler started, interval %.2fs", interval)
        while not stopping:
            started = time.monotonic()
            guarded(self._tick)
            if once:
                break
            # Until the next tick: wake for each deadline and fire what is due.
            next_tick = started + interval
            while not stopping and (remaining := next_tick - time.monotonic()) > 0:
                time.sleep(guarded(seconds_to_next_deadline, remaining) or remaining)
                if not stopping and time.monotonic() < next_tick:
                    guarded(expire_due)

    @staticmethod
    def _tick() -> None:
        report = scheduler_tick()
        work = (report.expired, report.redispatched, report.settled, report.polled, report.webhooks)
        if any(work):
            logger.info("tick %s", report)


def guarded(function, *args):
    """Run one piece of scheduler work; on an error (the database may be restarting) log it,
    drop the connection and return None: the next tick tries again."""
    try:
        return function(*args)
    except Exception:
        logger.exception("scheduler %s failed", function.__name__)
        close_old_connections()
        connection.close()
        return None
