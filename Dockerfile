# The edit worker for ECS: Node for the Astro builds and Claude Code, Python for the supervisor.
# Debian bookworm's python3 is 3.11.
FROM node:20-bookworm-slim

# The version the tests run (pyproject.toml, [tool.webordinary]).
ARG CLAUDE_CODE_VERSION=2.1.330
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv git ca-certificates tini \
 && rm -rf /var/lib/apt/lists/* \
 && npm install -g "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" \
 && npm cache clean --force

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv "$VIRTUAL_ENV"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY supervisor ./supervisor
COPY steps ./steps
COPY bin ./bin
RUN pip install --no-cache-dir ".[awscli]"

# Claude Code refuses to skip permission prompts as root, and nothing here needs root.
RUN useradd --create-home --uid 10001 editor && mkdir -p /workspace && chown editor /workspace
USER editor
# The agent runs with the supervisor's defaults (README, "The agent"): edits and site commands
# allowed inside the checkout, history and remotes denied.
ENV WORKSPACE_PATH=/workspace \
    LOG_FORMAT=json

# Healthy only while the supervisor's loop keeps its status file fresh.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 CMD ["/app/bin/healthcheck"]

# tini is PID 1: it forwards SIGTERM to the supervisor and reaps what the supervisor does not.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["python", "-m", "supervisor"]
STOPSIGNAL SIGTERM
