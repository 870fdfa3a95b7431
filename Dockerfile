# One image for the four services (multi-stage, uv). SERVICE picks the entrypoint:
#   docker build --build-arg SERVICE=ingress -t workflow-ingress .
FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.9 /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock ./
COPY contracts contracts
COPY libs libs
COPY services services
COPY tools tools
ARG SERVICE=ingress
RUN uv sync --frozen --no-dev --no-editable --package workflow-${SERVICE}

FROM python:3.11-slim
ARG SERVICE=ingress
ENV PATH=/app/.venv/bin:$PATH SERVICE=${SERVICE} PYTHONUNBUFFERED=1
RUN useradd --system --uid 10001 app
COPY --from=build /app/.venv /app/.venv
USER app
CMD ["sh", "-c", "exec python -m ${SERVICE}"]
