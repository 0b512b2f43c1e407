"""Meta's Graph API, which the Messenger and WhatsApp adapters share: the authenticated POST and
the error envelope (``{"error": {"code", "error_subcode", "message", "error_data"}}``).

Each adapter keeps its own path, payload, success shape and error table (reference/providers.md
§1 and §5).
"""

from typing import Any, ClassVar

from channels_app import http
from channels_app.adapters.base import Adapter
from channels_app.errors import ProviderError


class GraphAdapter(Adapter):
    default_base_url: ClassVar[str] = "https://graph.facebook.com"

    async def graph_post(
        self, config: dict[str, Any], path: str, token: str, payload: dict[str, Any]
    ) -> tuple[Any, dict[str, Any] | None]:
        """POST ``payload`` to ``/<api_version>/<path>``; return the response and its JSON body,
        or raise the provider's error.

        The token goes in the Authorization header, not the documented ``access_token`` query
        parameter, so it can never leak through a logged URL; the Graph API accepts both.
        """
        version = config.get("api_version", "v19.0")
        response = await http.request(
            "POST",
            f"{self.base_url(config)}/{version}/{path}",
            config=config,
            json=payload,
            headers={"Authorization": f"Bearer {token}"},
        )
        body = http.json_body(response)
        if not response.ok:
            raise self._graph_error(response, body)
        return response, body

    def _graph_error(self, response: Any, body: dict[str, Any] | None) -> ProviderError:
        graph = (body or {}).get("error")
        graph = graph if isinstance(graph, dict) else {}
        retry_after = http.retry_after(response)
        if graph.get("code") is None:  # not the Graph envelope: judge by the HTTP status
            return http.status_error(response)
        return self.graph_error(graph, retry_after)

    def graph_error(self, graph: dict[str, Any], retry_after: float | None) -> ProviderError:
        """The error for a Graph error object, from the adapter's table."""
        raise NotImplementedError
