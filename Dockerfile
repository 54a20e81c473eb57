# prod-access as a container image: `docker build -t prod-access .` (add
# `--build-arg EXTRAS=aws` for the AWS providers). It serves HTTP mode, `prod-access serve
# --http` on $PORT (3000), and reads `.env` and `policy.yml` from its working directory, /app,
# where you mount them read-only; compose.yaml runs it next to PostgreSQL. See README,
# "Running in a container".
#
# Two stages: the first builds wheels (prod-access and every dependency, with whatever a build
# needs); the second installs only those wheels, offline, into a slim image and runs the bot as
# an unprivileged user. .dockerignore lets only pyproject.toml, README.md and app/ into the
# build, so no .env, policy or database can end up in an image.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ARG EXTRAS=""
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels ".${EXTRAS:+[$EXTRAS]}"

FROM ${PYTHON_IMAGE} AS runtime
ARG EXTRAS=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The wheels are mounted for this one step, not copied, so they add nothing to the image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --disable-pip-version-check --no-index --find-links /wheels \
        "prod-access${EXTRAS:+[$EXTRAS]}"
# A fixed numeric id, so platforms that insist on a non-root user (runAsNonRoot) can verify it;
# mounted files must be readable by it.
RUN groupadd --gid 10001 prod-access \
    && useradd --uid 10001 --gid 10001 --home-dir /app --create-home \
        --shell /usr/sbin/nologin prod-access
WORKDIR /app
USER 10001:10001
EXPOSE 3000
# slim images have no curl: ask /healthz with Python, on the port serve reads (env, then .env).
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; from app.config import Settings; urllib.request.urlopen(f'http://127.0.0.1:{Settings().port}/healthz', timeout=5)"]
ENTRYPOINT ["prod-access"]
CMD ["serve", "--http"]
