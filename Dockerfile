# One image for every service: `docker run IMAGE serve gateway` (or registry, webhooks, shim).
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 \
    WEDMESH_CONFIG=/app/wedmesh.example.toml
WORKDIR /app
COPY pyproject.toml README.md wedmesh.example.toml ./
COPY services ./services
COPY wedsync ./wedsync
RUN pip install --no-cache-dir . && useradd --uid 10001 --no-create-home wedmesh
USER 10001
EXPOSE 50051 50052 50053 8080 9101 9102 9103
ENTRYPOINT ["wedmesh"]
CMD ["serve", "gateway"]
