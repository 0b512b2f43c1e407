"""Traffic for the chaos scenarios: mixed workflows posted over HTTP, and watchers that read them
back as their owner (status must never go backwards) and as another account (must be 404).
"""

import base64
import itertools
import random
import threading
import time
from dataclasses import dataclass, field

import requests

CHANNELS = ("messenger", "viber_service_msg", "whatsapp", "sms")
READ_CHANNELS = ("messenger", "viber_service_msg", "whatsapp")
# The sandbox's table (design.md): 0 read, 1 rejected, 2 undeliverable, 3 silence,
# 4 delivered never read, 5 transient then ok.
FATES = "012345"
# A transient error sends a step from `sending` back to `pending` (a retry): same rank.
STATE_RANK = {"pending": 0, "sending": 0, "waiting": 1}  # every other state is final (2)
STATUS_RANK = {None: 0, "submitted": 1, "delivered": 2, "read": 3}


def basic_auth(api_key: str, api_secret: str) -> str:
    return "Basic " + base64.b64encode(f"{api_key}:{api_secret}".encode()).decode()


# (to field, from field, sender) per channel, as workflows_app/api/channels.py wants them.
ADDRESSING = {
    "messenger": ("id", "id", "100200300"),
    "viber_service_msg": ("number", "id", "viber-service-1"),
    "whatsapp": ("number", "number", "447700900001"),
    "sms": ("number", "number", "447700900001"),
}


def item(channel: str, recipient: str, condition: str | None, expiry: int | None) -> dict:
    to_field, from_field, sender = ADDRESSING[channel]
    body = {
        "from": {"type": channel, from_field: sender},
        "to": {"type": channel, to_field: recipient},
        "message": {"content": {"type": "text", "text": f"chaos ✔ {channel} ' OR 1=1 --"}},
    }
    if condition:
        body["failover"] = {"condition_status": condition, "expiry_time": expiry}
    return body


def random_workflow(
    rng: random.Random,
    expiries: tuple[int, int],
    long_share: float,
    fault_groups: str = "",
    serial: itertools.count | None = None,
) -> dict:
    """2-3 steps on different channels, random fates, conditions and expiries.

    ``long_share`` of the runs get a first step with a one-hour expiry: they must still be
    waiting, on a deadline kept in Postgres, when the scenario ends. With ``fault_groups``,
    every step gets a recipient of its own, ``44<group><serial><fate>`` with a group drawn
    from ``fault_groups`` (tests/chaos/providers.py: the simulator's faults by group).
    """
    channels = rng.sample(CHANNELS, rng.choice((2, 3)))
    items = []
    for index, channel in enumerate(channels):
        if fault_groups and serial is not None:
            group = rng.choice(fault_groups)
            recipient = f"44{group}{next(serial):07d}{rng.choice(FATES)}"
        else:
            recipient = "4477009000" + "".join(rng.choice("06789")) + rng.choice(FATES)
        if index == len(channels) - 1:
            items.append(item(channel, recipient, None, None))
            continue
        condition = rng.choice(
            ("read", "delivered") if channel in READ_CHANNELS else ("delivered",)
        )
        expiry = rng.randint(*expiries)
        if index == 0 and rng.random() < long_share:
            expiry = 3600
        items.append(item(channel, recipient, condition, expiry))
    return {"template": "failover", "workflow": items, "client_ref": f"chaos-{rng.random():.6f}"}


@dataclass
class Traffic:
    """Posts workflows and watches them; everything it saw that breaks a promise is a problem."""

    base_url: str
    owner: tuple[str, str]
    stranger: tuple[str, str]
    seed: int
    fault_groups: str = ""  # when set, each step its own recipient in a fault group
    accepted: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unavailable: int = 0  # 503 answers seen (each must carry Retry-After)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _seen: dict = field(default_factory=dict)

    def _session(self, credentials: tuple[str, str]) -> requests.Session:
        session = requests.Session()
        session.headers["Authorization"] = basic_auth(*credentials)
        return session

    def _problem(self, message: str) -> None:
        with self._lock:
            if len(self.problems) < 50:
                self.problems.append(message)

    def _note_unavailable(self, response: requests.Response) -> float:
        with self._lock:
            self.unavailable += 1
        retry_after = response.headers.get("Retry-After")
        if response.headers.get("Content-Type") != "application/problem+json" or not retry_after:
            self._problem(f"503 without problem+json and Retry-After: {response.headers}")
            return 1.0
        return min(float(retry_after), 2.0)  # honoured, but capped to keep scenarios short

    def post(self, count: int, seconds: float, expiries=(1, 4), long_share=0.05, threads=4):
        """Post ``count`` workflows over ``seconds``, retrying 503s and dropped connections."""
        rng = random.Random(self.seed)
        serial = itertools.count(1)
        bodies = [
            random_workflow(rng, expiries, long_share, self.fault_groups, serial)
            for _ in range(count)
        ]
        per_thread = [bodies[i::threads] for i in range(threads)]
        gap = seconds / max(1, count / threads)

        def run(chunk: list[dict]) -> None:
            session = self._session(self.owner)
            for body in chunk:
                self._post_one(session, body)
                time.sleep(gap)

        workers = [threading.Thread(target=run, args=(chunk,)) for chunk in per_thread]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    def _post_one(self, session: requests.Session, body: dict) -> None:
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            try:
                response = session.post(self.base_url + "/beta/workflows", json=body, timeout=10)
            except requests.RequestException:
                time.sleep(0.5)  # web restarting, or the connection dropped: retry
                continue
            if response.status_code == 202:
                with self._lock:
                    self.accepted.append(response.json()["workflow_uuid"])
                return
            if response.status_code == 503:
                time.sleep(self._note_unavailable(response))
                continue
            self._problem(f"POST answered {response.status_code}: {response.text[:400]}")
            return
        self._problem("POST not accepted within 60 s")

    def watch(self, stop: threading.Event, interval: float = 0.05) -> None:
        """Read random accepted runs as their owner and as a stranger until ``stop`` is set."""
        owner, stranger = self._session(self.owner), self._session(self.stranger)
        rng = random.Random(self.seed + 1)
        while not stop.is_set():
            with self._lock:
                pick = rng.choice(self.accepted) if self.accepted else None
            if pick is None:
                time.sleep(interval)
                continue
            self._read_as_owner(owner, pick)
            self._read_as_stranger(stranger, pick)
            time.sleep(interval)

    def _read_as_owner(self, session: requests.Session, workflow_uuid: str) -> None:
        try:
            response = session.get(f"{self.base_url}/beta/workflows/{workflow_uuid}", timeout=10)
        except requests.RequestException:
            return
        if response.status_code == 503:
            self._note_unavailable(response)
            return
        if response.status_code != 200:
            self._problem(f"owner GET {workflow_uuid} answered {response.status_code}")
            return
        self._check_forward(workflow_uuid, response.json())

    def _check_forward(self, workflow_uuid: str, run: dict) -> None:
        """What a caller reads never moves backwards: run status, step states, message statuses."""
        ranks = [
            (STATE_RANK.get(s["state"], 2), STATUS_RANK.get(s["status"], 0)) for s in run["steps"]
        ]
        now = (run["status"] != "running", ranks)
        with self._lock:
            before = self._seen.get(workflow_uuid)
            self._seen[workflow_uuid] = now
        if before is None:
            return
        if before[0] and not now[0]:
            self._problem(f"{workflow_uuid} went from finished back to running")
        for index, (old, new) in enumerate(zip(before[1], now[1], strict=True)):
            if new[0] < old[0] or (new[1] < old[1] and new[1] != 0):
                self._problem(f"{workflow_uuid} step {index} went back from {old} to {new}")

    def _read_as_stranger(self, session: requests.Session, workflow_uuid: str) -> None:
        for path in (f"/beta/workflows/{workflow_uuid}", f"/v0.1/dispatch/{workflow_uuid}"):
            try:
                response = session.get(self.base_url + path, timeout=10)
            except requests.RequestException:
                return
            if response.status_code == 503:
                self._note_unavailable(response)
            elif response.status_code != 404:
                self._problem(f"another account's GET {path} answered {response.status_code}")
