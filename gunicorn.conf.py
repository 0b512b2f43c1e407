"""Gunicorn settings shared by every way we start it (Procfile, tests, Docker); gunicorn reads
this file from the working directory. Command-line flags still win."""

# Gunicorn 25.1+ opens a control socket at one fixed path per user ($HOME/.gunicorn): several
# instances on one machine (tests, make run, CI) would share and delete each other's. We do
# not use gunicornc.
control_socket_disable = True
