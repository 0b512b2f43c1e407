"""Kombu's filesystem transport (embedded mode's broker), with atomic message files.

Kombu's own (5.7) creates a message file, then writes it, while consumers list the folder and
take any file with the queue's name: a consumer can take a file before its bytes are there,
and fails on the empty JSON with an "Unrecoverable error" that stops the Celery worker (and
with it ``make run``: honcho stops every process when one exits). Seen under load in embedded
mode (scripts/embedded_timing.py); kombu issue #1551 reports the error, unfixed.

Here a message is written under a name no consumer takes, then renamed into place (a rename
is atomic within a folder), and a consumer claims a file by renaming it too, so that of two
consumers only one gets each message. Selected by ``CELERY_BROKER_TRANSPORT`` whenever the
broker is ``filesystem://`` (orchestrator/settings.py).
"""

import os
import uuid
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.objects import cached_property

WRITING = ".writing"
TAKEN = ".taken"


class Channel(filesystem.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A fresh VAR_DIR has no broker folders yet (kombu's transport expects them made): any
        # process that reaches the broker first, a worker, the web or the scheduler, makes them.
        for name in ("data_folder_in", "data_folder_out", "control_folder"):
            if name in self.transport_options:
                os.makedirs(self.transport_options[name], exist_ok=True)

    # The filesystem Channel's own signature, which its base class's disagrees with.
    def _put(self, queue: Any, payload: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Put a message on ``queue``: named as kombu names it, visible only once complete."""
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        try:
            with open(path + WRITING, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(path + WRITING, path)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc

    def _get(self, queue: Any, timeout: Any = None) -> Any:
        """Take the oldest message of ``queue``; raises ``Empty`` when there is none."""
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            path = os.path.join(self.data_folder_in, name)
            taken = f"{path}.{self._consumer_id}{TAKEN}"
            try:
                os.rename(path, taken)
            except OSError:  # another consumer took it first
                continue
            try:
                with open(taken, "rb") as f:
                    payload = f.read()
                os.remove(taken)
            except OSError as exc:
                raise ChannelError(f"Cannot read file {taken!r} from queue.") from exc
            return loads(bytes_to_str(payload))
        raise Empty()

    @cached_property
    def _consumer_id(self) -> str:
        return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Transport(filesystem.Transport):
    Channel = Channel
