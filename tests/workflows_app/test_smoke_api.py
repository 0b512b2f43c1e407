import pytest

from workflows_app.models import Step, Workflow


@pytest.mark.django_db
def test_it_accepts_the_canonical_request(api_client, canonical_request):
    response = api_client.post("/beta/workflows", canonical_request, format="json")
    assert response.status_code == 202, response.content
    workflow = Workflow.objects.get(id=response.json()["workflow_uuid"])
    assert [s.channel for s in Step.objects.filter(workflow=workflow)] == ["messenger", "sms"]
