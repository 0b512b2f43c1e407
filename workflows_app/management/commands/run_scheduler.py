"""``manage.py run_scheduler``: the timer loop (see workflows_app/services/timers.py).

Running two at once is safe: each tick claims rows with SKIP LOCKED and every change is a
compare-and-set.
"""

import logging
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import close_old_connections

from workflows_app.services.timers import scheduler_tick

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
            try:
                report = scheduler_tick()
                if (
                    report.expired
                    or report.redispatched
                    or report.settled
                    or report.polled
                    or report.webhooks
                ):
                    logger.info("tick %s", report)
            except Exception:
                # The database may be restarting: drop the connection and try next tick.
                logger.exception("scheduler tick failed")
                close_old_connections()
                from django.db import connection

                connection.close()
            if once:
                break
            time.sleep(max(0.0, interval - (time.monotonic() - started)))
