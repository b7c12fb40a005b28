# The edit worker for ECS: Node 22 for the Astro builds and Claude Code, Debian's Python 3.11 for the
# supervisor. BASE_IMAGE lets a build without Docker Hub use a locally made base (bin/test-image).
ARG BASE_IMAGE=node:22-bookworm-slim
FROM ${BASE_IMAGE}

# Extra CA certificates for a build behind a TLS-intercepting proxy (empty in the repository).
COPY deploy/build-ca/ /usr/local/share/ca-certificates/build/
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv git ca-certificates tini procps bubblewrap \
 && update-ca-certificates \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt

# The version the tests run (pyproject.toml, [tool.webordinary]; tests/deploy checks they agree).
ARG CLAUDE_CODE_VERSION=2.1.330
RUN npm install -g --no-fund --no-audit "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" \
 && npm cache clean --force \
 && claude --version

# Dependencies before the source: a change to the code rebuilds in seconds, not minutes.
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app
RUN python3 -m venv "$VIRTUAL_ENV"
WORKDIR /app
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + p['optional-dependencies']['awscli']))" > /tmp/requirements.txt \
 && pip install --no-cache-dir -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# One copy of the code, imported from /app (PYTHONPATH); nothing of it is installed into the venv.
COPY supervisor ./supervisor
COPY steps ./steps
COPY bin ./bin

# The supervisor and its workers run as root, so that what runs code we did not write (the agent, npm,
# the site's build) runs as a uid of its own per workspace (steps/job): it can read no secret in another
# process's environment, not tini's either, and can reach no other client's checkout nor our git.
# Fargate needs no added capability for that (SETUID/SETGID/CHOWN are Docker's defaults); the task
# definition drops the others (docs/deploy-ecs.md). bubblewrap adds the kernel sandbox where the host
# allows user namespaces (ECS on EC2 with a seccomp profile that does); SANDBOX=auto says which.
RUN mkdir -p /workspace && chmod 0711 /workspace
# The agent runs with the supervisor's defaults (README, "The agent").
ENV WORKSPACE_PATH=/workspace \
    LOG_FORMAT=json

# Healthy only while the supervisor's loop keeps its status file fresh.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["/app/bin/healthcheck"]

# tini is PID 1: it forwards SIGTERM to the supervisor and reaps what the supervisor does not.
# Give the container a stop timeout of SHUTDOWN_GRACE_SECONDS + 5 (docker stop -t 30; ECS stopTimeout).
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "supervisor"]
STOPSIGNAL SIGTERM
