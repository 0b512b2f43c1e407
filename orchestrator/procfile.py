"""``python -m orchestrator.procfile start ...``: honcho, as ``make run`` uses it, stopping its
processes the way each of them expects.

honcho (2.0) stops a Procfile process by sending SIGTERM to its whole process group, then
SIGKILL to the group 5 s later. Both hurt here:

- the group holds the process's own children: Celery's pool processes died of the SIGTERM
  under their parent (which logged each as an ERROR) instead of being closed by it, and
  gunicorn's workers were signalled beside their master;
- a Celery worker on the embedded filesystem transport needs about 5-7 s for a warm shutdown
  (its synchronous loop polls the broker in 2 s slices, then stops its pool and timer), so it
  was SIGKILLed half way on a busy machine.

So SIGTERM goes to the process's leader only (the Procfile ``exec``s each command, so the leader
is the program itself, which stops its own children), and SIGKILL, to the whole group, only
after ``STOP_GRACE`` seconds, for a process that hangs. Everything else is honcho's.
"""

import errno
import os
import signal

from honcho import compat, manager
from honcho.command import main

STOP_GRACE = 30  # seconds between SIGTERM and SIGKILL


class ProcessManager(compat.ProcessManager):
    def terminate(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.ESRCH):
                raise


manager.KILL_WAIT = STOP_GRACE
manager.ProcessManager = ProcessManager

if __name__ == "__main__":
    main()
