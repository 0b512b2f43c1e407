"""The Workflows (``/beta/workflows``) and Dispatch (``/v0.1/dispatch``) endpoints.

Views stay thin: authenticate (DRF), validate (serializers), call a service, shape the answer.
"""

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from workflows_app.api.problems import Problem, problem_body
from workflows_app.api.serializers import WorkflowRequestSerializer
from workflows_app.models import ApiFlavour, Workflow
from workflows_app.selectors import workflow_get_for_account
from workflows_app.services.workflows import workflow_cancel, workflow_create

ID_FIELD = {ApiFlavour.WORKFLOWS: "workflow_uuid", ApiFlavour.DISPATCH: "dispatch_uuid"}


def require_json_body(request: Request) -> None:
    """415 unless the body is declared as JSON (the Vonage ``content-type-header`` error)."""
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        raise Problem(415, problem_body(415))


class WorkflowListView(APIView):
    flavour = ApiFlavour.WORKFLOWS

    def post(self, request: Request) -> Response:
        require_json_body(request)
        serializer = WorkflowRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        workflow = workflow_create(
            account=request.auth,
            flavour=self.flavour,
            steps=serializer.step_specs(),
            client_ref=serializer.validated_data.get("client_ref", ""),
        )
        return Response({ID_FIELD[self.flavour]: str(workflow.id)}, status=status.HTTP_202_ACCEPTED)


class WorkflowDetailView(APIView):
    """Our extension: Vonage never offered GET on a workflow."""

    flavour = ApiFlavour.WORKFLOWS

    def get(self, request: Request, workflow_id: str) -> Response:
        workflow = workflow_get_for_account(request.auth, workflow_id)
        if workflow is None:
            raise Problem(404, problem_body(404))
        return Response(workflow_representation(workflow, self.flavour))


class WorkflowCancelView(APIView):
    flavour = ApiFlavour.WORKFLOWS

    def post(self, request: Request, workflow_id: str) -> Response:
        workflow = workflow_get_for_account(request.auth, workflow_id)
        if workflow is None:
            raise Problem(404, problem_body(404))
        if not workflow_cancel(workflow):
            raise Problem(
                409,
                problem_body(
                    409,
                    detail=f"The run has already ended "
                    f"({Workflow.objects.get(id=workflow.id).status}).",
                ),
            )
        workflow.refresh_from_db()
        return Response(workflow_representation(workflow, self.flavour))


def workflow_representation(workflow: Workflow, flavour: str) -> dict:
    return {
        ID_FIELD.get(flavour, "workflow_uuid"): str(workflow.id),
        "template": workflow.template,
        "status": workflow.status,
        "client_ref": workflow.client_ref or None,
        "created_at": workflow.created_at,
        "updated_at": workflow.updated_at,
        "finished_at": workflow.finished_at,
        "steps": [
            {
                "index": step.index,
                "channel": step.channel,
                "from": step.sender,
                "to": step.recipient,
                "message_uuid": str(step.message_uuid) if step.message_uuid else None,
                "status": step.message_status,
                "state": step.state,
                "condition_status": step.condition_status,
                "expiry_time": step.expiry_time,
                "failover_reason": step.failover_reason,
                "error": step.error,
                "late_receipt": step.late_receipt,
                "deadline_at": step.deadline_at,
                "sent_at": step.sent_at,
                "finished_at": step.finished_at,
                "created_at": step.created_at,
                "updated_at": step.updated_at,
            }
            for step in workflow.steps.all()
        ],
    }
