"""``manage.py run_scheduler``: the timer loop (see workflows_app/services/scheduler.py).

Running two at once is safe: each tick claims rows with SKIP LOCKED and every change is a
compare-and-set.
"""

import logging
import signal

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections, connection

from workflows_app.services.scheduler import scheduler_round, scheduler_tick

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
        if once:
            guarded(self._tick)
            return
        while not stopping:
            report = scheduler_round(interval, stopping=lambda: stopping, guard=guarded)
            if report and any(
                (
                    report.expired,
                    report.redispatched,
                    report.settled,
                    report.polled,
                    report.webhooks,
                )
            ):
                logger.info("tick %s", report)

    @staticmethod
    def _tick() -> None:
        logger.info("tick %s", scheduler_tick())


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
