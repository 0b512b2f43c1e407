"""The Workflows (``/beta/workflows``), Dispatch (``/v0.1/dispatch``) and Messages (v0.1, v1)
endpoints.

Views stay thin: authenticate (DRF), validate (serializers), call a service, shape the answer.
Every POST honours ``Idempotency-Key`` (:mod:`workflows_app.api.idempotency`).
"""

from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from uuid6 import uuid7

from workflows_app.api import schema
from workflows_app.api.auth import request_account, request_application
from workflows_app.api.fields import BodyInvalid
from workflows_app.api.idempotency import idempotent
from workflows_app.api.messages_v1 import invalid_params_v1, step_specs, v1_request
from workflows_app.api.pagination import WorkflowCursorPagination
from workflows_app.api.problems import InvalidParameter, Problem, problem_body
from workflows_app.api.serializers import (
    ID_FIELD,
    WorkflowListFilterSerializer,
    message_request,
    run_representation,
    workflow_request,
)
from workflows_app.models import ApiFlavour, Workflow
from workflows_app.selectors import workflow_get_for_account, workflow_list_for_account
from workflows_app.services.workflows import workflow_cancel, workflow_create


def require_json_body(request: Request) -> None:
    """415 unless the body is declared as JSON (the Vonage ``content-type-header`` error)."""
    if request.content_type.split(";")[0].strip().lower() != "application/json":
        raise Problem(415, problem_body(415))


class WorkflowListView(APIView):
    flavour = ApiFlavour.WORKFLOWS

    @schema.workflow_create_schema
    def post(self, request: Request) -> Response:
        return idempotent(request, lambda: self.create(request))

    def create(self, request: Request) -> Response:
        require_json_body(request)
        steps, client_ref = workflow_request(request.data)
        workflow = workflow_create(
            account=request_account(request),
            application=request_application(request),
            flavour=self.flavour,
            steps=steps,
            client_ref=client_ref,
        )
        return Response({ID_FIELD[self.flavour]: str(workflow.id)}, status=status.HTTP_202_ACCEPTED)

    @schema.workflow_list_schema
    def get(self, request: Request) -> Response:
        """Our extension: the caller's runs, newest first, filtered, cursor-paginated."""
        filters = WorkflowListFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        runs = workflow_list_for_account(request_account(request), **filters.validated_data)
        paginator = WorkflowCursorPagination()
        page = paginator.paginate_queryset(runs, request, view=self)
        return paginator.get_paginated_response(
            [run_representation(run, self.flavour) for run in page or []]
        )


class WorkflowDetailView(APIView):
    """Our extension: Vonage never offered GET on a workflow."""

    flavour = ApiFlavour.WORKFLOWS

    @schema.workflow_detail_schema
    def get(self, request: Request, workflow_id: str) -> Response:
        workflow = owned_workflow(request, workflow_id)
        return Response(run_representation(workflow, self.flavour))


class WorkflowCancelView(APIView):
    flavour = ApiFlavour.WORKFLOWS

    @schema.workflow_cancel_schema
    def post(self, request: Request, workflow_id: str) -> Response:
        return idempotent(request, lambda: self.cancel(request, workflow_id))

    def cancel(self, request: Request, workflow_id: str) -> Response:
        workflow = owned_workflow(request, workflow_id)
        if not workflow_cancel(workflow):
            raise Problem(
                409,
                problem_body(
                    409,
                    detail=f"The run has already ended "
                    f"({Workflow.objects.get(id=workflow.id).status}).",
                ),
            )
        workflow = owned_workflow(request, workflow_id)
        return Response(run_representation(workflow, self.flavour))


class MessagesV01View(APIView):
    """``POST /v0.1/messages`` and ``/beta/messages``: one message, run as a one-step workflow.

    Errors are the v0.1 400 ``InvalidParams`` problem (one ``invalid_parameters`` object).
    """

    @schema.messages_v01_schema
    def post(self, request: Request) -> Response:
        return idempotent(request, lambda: self.create(request))

    def create(self, request: Request) -> Response:
        require_json_body(request)
        message_uuid = uuid7()
        step, client_ref = message_request(request.data, message_uuid)
        workflow_create(
            account=request_account(request),
            application=request_application(request),
            flavour=ApiFlavour.MESSAGES_V01,
            steps=[step],
            client_ref=client_ref,
        )
        return Response({"message_uuid": str(message_uuid)}, status=status.HTTP_202_ACCEPTED)


class MessagesV1View(APIView):
    """``POST /v1/messages``: a message and its optional ``failover`` list.

    Errors are v1's 422 with ``invalid_parameters`` as an array (reference/vonage-api.md §3).
    """

    @schema.messages_v1_schema
    def post(self, request: Request) -> Response:
        try:
            return idempotent(request, lambda: self.create(request))
        except InvalidParameter as exc:  # an unstorable string or a bad Idempotency-Key
            raise Problem(422, invalid_params_v1([exc.body["invalid_parameters"]])) from exc

    def create(self, request: Request) -> Response:
        require_json_body(request)
        try:
            data = v1_request(request.data)
        except BodyInvalid as exc:
            raise Problem(422, invalid_params_v1(exc.parameters)) from exc
        message_uuid = uuid7()
        workflow = workflow_create(
            account=request_account(request),
            application=request_application(request),
            flavour=ApiFlavour.MESSAGES_V1,
            steps=step_specs(data, message_uuid),
            client_ref=data.get("client_ref", ""),
            webhook_url=data.get("webhook_url"),
            webhook_version=data.get("webhook_version"),
        )
        body = {"message_uuid": str(message_uuid)}
        if "failover" in data:
            body["workflow_id"] = str(workflow.id)
        return Response(body, status=status.HTTP_202_ACCEPTED)


def owned_workflow(request: Request, workflow_id: str) -> Workflow:
    """The caller's run ``workflow_id``; a 404 problem when it is not theirs or does not exist."""
    workflow = workflow_get_for_account(request_account(request), workflow_id)
    if workflow is None:
        raise Problem(404, problem_body(404))
    return workflow
