"""The README's and docs' curl and Python snippets, run as pasted against a live stack.

Every fenced block of README.md and docs/*.md that holds a curl command or is Python must be
preceded by a marker line saying what it does, so that a new or changed snippet cannot go
untested unnoticed:

- ``<!-- snippet: expect 202 200 -->``: a shell block; each curl in it is run in order against
  the stack (placeholders substituted: ``API_KEY``, ``API_SECRET``, the host
  ``127.0.0.1:8000``/``localhost:8000``, ``<workflow_uuid>``), and must answer these statuses.
  Lines starting with ``$ `` are the commands; the others are their output, not run.
- ``<!-- snippet: webhook [then: EXPRESSION] -->``: a Python block run with ``headers`` and
  ``raw_body`` of a status webhook the stack really sent (``whsec_…`` is the account's
  secret), then EXPRESSION evaluated (``signature_secret`` is the account's); neither may raise.
- ``<!-- snippet: skip REASON -->``: cannot run here (a real provider's API); the reason shows.
"""

import re
import subprocess
import uuid
from dataclasses import dataclass

import pytest
import requests
from requests.structures import CaseInsensitiveDict

from tests.fixtures import messenger, run, sms
from tests.services import ROOT, STARTUP_TIMEOUT, wait_for
from tests.webhook_receiver import Receiver
from workflows_app.models import Account

pytestmark = pytest.mark.e2e

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!-- snippet: (expect|webhook|skip)\b ?(.*?) ?-->$")


@dataclass(frozen=True)
class Snippet:
    where: str  # path:line
    language: str
    code: str
    marker: str  # expect | webhook | skip | "" (none)
    argument: str

    @property
    def in_scope(self) -> bool:
        return self.language == "python" or re.search(r"(^|\$ )curl ", self.code, re.M) is not None


def snippets() -> list[Snippet]:
    found = []
    for document in DOCUMENTS:
        lines = document.read_text().splitlines()
        number = 0
        while number < len(lines):
            opening = FENCE.match(lines[number])
            if not opening:
                number += 1
                continue
            end = next(i for i in range(number + 1, len(lines)) if lines[i].startswith("```"))
            marker = MARKER.match(lines[number - 1]) if number else None
            found.append(
                Snippet(
                    where=f"{document.relative_to(ROOT)}:{number + 1}",
                    language=opening.group(1),
                    code="\n".join(lines[number + 1 : end]),
                    marker=marker.group(1) if marker else "",
                    argument=marker.group(2) if marker else "",
                )
            )
            number = end + 1
    return [snippet for snippet in found if snippet.in_scope]


SNIPPETS = snippets()


def test_every_curl_and_python_snippet_says_how_it_is_checked():
    unmarked = [snippet.where for snippet in SNIPPETS if not snippet.marker]
    assert unmarked == [], "add a <!-- snippet: ... --> line (see this module's docstring)"
    assert [s.where for s in SNIPPETS if s.marker == "skip" and not s.argument] == []
    assert any(s.marker == "expect" for s in SNIPPETS) and any(
        s.marker == "webhook" for s in SNIPPETS
    )


def shell_commands(code: str) -> str:
    lines = code.splitlines()
    if any(line.startswith("$ ") for line in lines):
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    return "\n".join(lines)


def substitute(code: str, stack, account, workflow_uuid: str) -> str:
    host = stack.base_url.removeprefix("http://")
    for placeholder, value in (
        ("API_KEY", account.account.api_key),
        ("API_SECRET", account.api_secret),
        ("127.0.0.1:8000", host),
        ("localhost:8000", host),
        ("<workflow_uuid>", workflow_uuid),
    ):
        code = code.replace(placeholder, value)
    return code


@pytest.mark.parametrize(
    "snippet", [s for s in SNIPPETS if s.marker == "expect"], ids=lambda s: s.where
)
def test_a_documented_curl_answers_the_documented_status(snippet, stack, client, account):
    # A stack just started is not ready until the scheduler's first tick (docs/operations.md).
    wait_for(lambda: _ready(stack.base_url), STARTUP_TIMEOUT, message="/readyz to answer 200")
    workflow_uuid = client.create(
        run(messenger("1000000000", condition="read", expiry=60), sms("447700900000"))
    )
    script = substitute(shell_commands(snippet.code), stack, account, workflow_uuid)
    wrapper = "curl() { command curl -sS -o /dev/null -w '%{http_code}\\n' \"$@\"; }\n"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", wrapper + script],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == snippet.argument.split(), f"{snippet.where}:\n{script}"


def _ready(base_url: str) -> bool:
    try:
        return requests.get(base_url + "/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def webhook(stack, client, account):
    """One status webhook the stack sent: (headers, raw body)."""
    owner = Account.objects.get(id=account.account.id)
    receiver = Receiver(owner.signature_secret, owner.webhook_secret).start()
    Account.objects.filter(id=owner.id).update(status_url=receiver.url)
    try:
        client.create(
            run(messenger("1000000001", condition="read", expiry=60), sms("447700900000"))
        )
        wait_for(lambda: receiver.accepted(), 20, message="a status webhook")
    finally:
        receiver.stop()
    received = receiver.accepted()[0]
    return CaseInsensitiveDict(received.headers), received.body, owner


@pytest.mark.parametrize(
    "snippet", [s for s in SNIPPETS if s.marker == "webhook"], ids=lambda s: s.where
)
def test_a_documented_webhook_check_accepts_a_real_webhook(snippet, webhook):
    headers, raw_body, owner = webhook
    code = snippet.code.replace("whsec_…", owner.webhook_secret)
    namespace = {"headers": headers, "raw_body": raw_body, "uuid": uuid}
    exec(compile(code, snippet.where, "exec"), namespace)
    expression = snippet.argument.removeprefix("then:").strip()
    if expression:
        namespace["signature_secret"] = owner.signature_secret
        assert eval(expression, namespace)
