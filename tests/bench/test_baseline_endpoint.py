"""The bench's baseline endpoint exists only when BENCH_BASELINE_ENDPOINT is on."""

import pytest
from rest_framework.test import APIClient

from workflows_app.models import Event

BODY = {"template": "failover", "workflow": []}


@pytest.mark.django_db
def test_it_is_not_found_when_the_setting_is_off_even_with_credentials(api_client, settings):
    settings.BENCH_BASELINE_ENDPOINT = False
    assert APIClient().post("/bench/baseline", BODY, format="json").status_code == 404
    assert api_client.post("/bench/baseline", BODY, format="json").status_code == 404
    assert not Event.objects.filter(kind="bench.baseline").exists()


@pytest.mark.django_db
def test_it_authenticates_parses_and_stores_one_row_when_on(api_client, settings):
    settings.BENCH_BASELINE_ENDPOINT = True
    assert APIClient().post("/bench/baseline", BODY, format="json").status_code == 401
    response = api_client.post("/bench/baseline", BODY, format="json")
    assert response.status_code == 202
    assert Event.objects.get(id=response.json()["id"]).data == BODY
