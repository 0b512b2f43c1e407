"""Gunicorn settings shared by every way we start it (Procfile, tests, Docker); gunicorn reads
this file from the working directory. Command-line flags still win."""

# Gunicorn 25.1+ opens a control socket at one fixed path per user ($HOME/.gunicorn): several
# instances on one machine (tests, make run, CI) would share and delete each other's. We do
# not use gunicornc.
control_socket_disable = True


def pre_request(worker, req):
    """gunicorn's own debug line, and a way for the application to close this connection after
    its response (orchestrator/bodies.py): ``wsgi.input`` is ``req.body``, and a ``Connection``
    header set by the application is dropped as hop-by-hop."""
    worker.log.debug("%s %s", req.method, req.path)
    body = getattr(req, "body", None)
    if body is not None and hasattr(req, "force_close"):
        body.close_connection_after_response = req.force_close
