# One image for the three processes (web, worker, scheduler); docker-compose.yml picks the
# command. Build: docker build -t failover-orchestrator .
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VAR_DIR=/app/var

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them: the runtime lock (exact
# versions with their hashes, from pyproject.toml by `make lock`), the same one `make run` uses.
COPY requirements.lock ./
RUN pip install --require-hashes --no-deps -r requirements.lock

COPY . .
# The admin's static files, served by WhiteNoise from $VAR_DIR/static.
RUN python manage.py collectstatic --noinput --verbosity 0 \
    && useradd --system --uid 10001 --no-create-home --home-dir /app app \
    && mkdir -p "$VAR_DIR/broker" \
    && chown -R app:app "$VAR_DIR"

USER app
EXPOSE 8000
CMD ["gunicorn", "orchestrator.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--threads", "4", "--timeout", "30", "--access-logfile", "-"]
