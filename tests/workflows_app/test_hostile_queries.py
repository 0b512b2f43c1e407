"""Hostile query strings on the run lists: forged cursors and junk parameters are 4xx problems,
never a 500, and change nothing (issue 14.1)."""

import base64
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzzing import fuzz_settings
from workflows_app.models import Event, Workflow

from .conftest import problem_of

LISTS = ["/beta/workflows", "/v0.1/dispatch"]


def cursor(querystring: str) -> str:
    return quote(base64.b64encode(querystring.encode("utf-8", "surrogatepass")).decode())


@pytest.fixture
def one_run(api_client, canonical_request):
    response = api_client.post("/beta/workflows", canonical_request, format="json")
    assert response.status_code == 202, response.content
    return response.json()["workflow_uuid"]


@pytest.mark.django_db
@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "position",
    [
        "notadate",
        "2026-99-99",
        "10000-01-01",
        "2026-01-01\x00",
        "\x00",
        "0001-01-01T00:00:00+23:59",
        "9999-12-31T23:59:59-23:59",
        "2026-01-01T00:00:00+05:00" * 2,
        "",
    ],
)
def test_a_forged_cursor_position_is_a_404_problem(api_client, one_run, path, position):
    problem_of(api_client.get(f"{path}?cursor={cursor('p=' + quote(position))}"), 404)


@pytest.mark.django_db
@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize(
    "raw", ["garbage", "%00", "%FF%FE", "o=-1", "r=x", "o=99999999999999999999", "\u00e9"]
)
def test_a_cursor_that_is_not_ours_is_a_404_problem(api_client, one_run, path, raw):
    problem_of(api_client.get(f"{path}?cursor={quote(raw)}"), 404)


@pytest.mark.django_db
@pytest.mark.parametrize("path", LISTS)
def test_a_cursor_position_from_another_time_zone_still_pages(api_client, one_run, path):
    response = api_client.get(f"{path}?cursor={cursor('p=' + quote('2999-01-01T00:00:00+05:00'))}")
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 1


# --- fuzzing ----------------------------------------------------------------------------------

JUNK_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\x00", "\ud800", "9" * 400, "-1", "1e309", "NaN", "0001-01-01", "+"]),
    st.from_regex(r"\d{1,6}-\d{1,3}-\d{1,3}([T ]\d{1,2}:\d{1,2}(:\d{1,2})?([+-]\d\d:?\d\d|Z)?)?"),
)
PARAMS = st.sampled_from(
    ["status", "client_ref", "created_after", "created_before", "page_size", "cursor", "other"]
)
CURSORS = st.builds(
    lambda p, o, r: cursor(
        urlencode({"p": p, "o": o, "r": r}, encoding="utf-8", errors="surrogatepass")
    ),
    JUNK_TEXT,
    st.one_of(st.integers(-(10**20), 10**20).map(str), JUNK_TEXT),
    st.one_of(st.sampled_from(["0", "1"]), JUNK_TEXT),
)


def quoted(text: str) -> str:
    """Percent-encoded as UTF-8, lone surrogates included (as the bytes a client would send)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def query_of(pairs: list[tuple[str, str]]) -> str:
    return "&".join(f"{quote(k)}={quoted(v)}" for k, v in pairs)


@pytest.mark.django_db
@fuzz_settings()
@given(
    path=st.sampled_from(LISTS),
    pairs=st.lists(st.tuples(PARAMS, st.one_of(JUNK_TEXT, CURSORS)), max_size=5),
)
def test_no_query_string_makes_a_list_fail_or_change_anything(api_client, one_run, path, pairs):
    before = (Workflow.objects.count(), Event.objects.count())
    response = api_client.get(f"{path}?{query_of(pairs)}")
    assert response.status_code in (200, 400, 404), (pairs, response.content)
    if response.status_code != 200:
        assert response["Content-Type"] == "application/problem+json"
    assert (Workflow.objects.count(), Event.objects.count()) == before


@pytest.mark.django_db
@fuzz_settings()
@given(path=st.sampled_from(LISTS), raw=st.one_of(CURSORS, JUNK_TEXT.map(quoted)))
def test_no_cursor_makes_a_list_fail(api_client, one_run, path, raw):
    response = api_client.get(f"{path}?cursor={raw}")
    assert response.status_code in (200, 400, 404), (raw, response.content)
