"""``POST /bench/baseline``: the yardstick for the accept path, served only when
``BENCH_BASELINE_ENDPOINT`` is on (``make bench`` turns it on; it is off by default).

It does the least an accepting service must: authenticate with the same Basic auth, parse the
JSON body with the same parser, insert one row holding the request, answer 202. ``make bench``
reports ``POST /beta/workflows`` throughput as a ratio of this one, measured in the same run.
"""

from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from workflows_app.api.problems import Problem, problem_body
from workflows_app.models import Event


@extend_schema(exclude=True)  # a benchmark yardstick, not part of the API
class BaselineAcceptView(APIView):
    def initial(self, request: Request, *args, **kwargs) -> None:
        # Before authentication, so that with the setting off the URL looks like any unknown one.
        if not settings.BENCH_BASELINE_ENDPOINT:
            raise Problem(404, problem_body(404))
        super().initial(request, *args, **kwargs)

    def post(self, request: Request) -> Response:
        row = Event.objects.create(kind="bench.baseline", data=request.data)
        return Response({"id": row.id}, status=status.HTTP_202_ACCEPTED)
