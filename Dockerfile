# The edit worker for ECS: Node 22 for the Astro builds and Claude Code, Debian's Python 3.11 for the
# supervisor, on a slim Debian. BASE_IMAGE (Node) and DEBIAN_IMAGE let a build without Docker Hub use
# locally made bases (bin/test-image).
# Multi-stage: pip, python3-venv and npm's download cache stay in the build stages; the final image
# holds what the service runs and nothing it was built with. Layers go from the least often changed
# (base, Debian packages) to the most (the code), so a new release rebuilds and pushes only its top.
#
# Build arguments:
#   PYTHON_EXTRAS        optional dependencies of pyproject.toml to add, comma-separated: `awscli` for
#                        DEPLOY_STRATEGY=aws-cli (the default image deploys with `hash` and has no aws CLI)
#   CLAUDE_CODE_VERSION  the Claude Code CLI shipped (pyproject.toml [tool.webordinary]; tests/deploy checks)
#   BASE_IMAGE           where Node and npm come from (only they are taken from it)
#   DEBIAN_IMAGE         the image's system: the Debian the Node base is made on
ARG BASE_IMAGE=node:22-bookworm-slim
ARG DEBIAN_IMAGE=debian:bookworm-slim

# ---- node: Node and npm from the Node base, and nothing else of it (no yarn, corepack or C headers).
# Node's binary loses its symbol tables (18 MB): JavaScript stack traces are the same, a native crash
# report shows addresses where it showed C++ names (Debian's own nodejs ships stripped too).
FROM ${BASE_IMAGE} AS node
COPY deploy/build-ca/ /usr/local/share/ca-certificates/build/
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils \
 && mkdir -p /out/usr/local/bin /out/usr/local/lib/node_modules \
 && strip --strip-unneeded -o /out/usr/local/bin/node "$(readlink -f /usr/local/bin/node)" \
 && cp -a /usr/local/lib/node_modules/npm /out/usr/local/lib/node_modules/ \
 && rm -rf /out/usr/local/lib/node_modules/npm/docs /out/usr/local/lib/node_modules/npm/man \
 && ln -s ../lib/node_modules/npm/bin/npm-cli.js /out/usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /out/usr/local/bin/npx \
 && /out/usr/local/bin/node -e "process.exit(process.version === '$(node --version)' ? 0 : 1)" \
 && PATH=/out/usr/local/bin:$PATH npm --version

# ---- git: Debian's git, without the Perl it depends on (47 MB) for commands we never run (send-email,
# svn, cvs), and without its servers (daemon, http-backend, shell), mail and WebDAV push, and scalar
# (13 MB). Its programs, helpers and templates are copied into the image; git-libraries names the Debian
# libraries they link, which the runtime installs from apt. dpkg's own database does not list git (its
# Perl is missing: apt would call the system broken), but status.d does, as distroless images do, so
# image scanners (Trivy, Grype, ECR's) still see Debian's git and its version.
FROM ${DEBIAN_IMAGE} AS git
COPY deploy/build-ca/ /usr/local/share/ca-certificates/build/
RUN apt-get update \
 && apt-get install -y --no-install-recommends git \
 && mkdir -p /out/usr/bin /out/usr/lib /out/usr/share/git-core /out/var/lib/dpkg/status.d \
 && dpkg-query -s git >/out/var/lib/dpkg/status.d/git \
 && cp -a /usr/lib/git-core /out/usr/lib/ \
 && cp -a /usr/share/git-core/templates /out/usr/share/git-core/ \
 && cd /out/usr/lib/git-core \
 && rm git-daemon git-http-backend git-http-push git-imap-send git-shell scalar \
 && for name in git git-receive-pack git-upload-pack git-upload-archive; do ln -s ../lib/git-core/git /out/usr/bin/$name; done \
 && dpkg-query -W -f='${Depends}' git | tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/ //g' \
      | grep -vxE 'libc6|perl|liberror-perl|git-man' >/git-libraries \
 && /out/usr/bin/git --version

# ---- runtime: Debian, Node and npm (the sites' `npm ci` and `npm run build` run in the container), and the
# Debian packages the service runs with. procps: Claude Code runs `ps` to find and end the processes its
# tools start.
FROM ${DEBIAN_IMAGE} AS runtime
# bin/test-image removes its own unnamed earlier builds by this label.
LABEL webordinary.image=edit
COPY --from=node /out/ /
# Extra CA certificates for a build behind a TLS-intercepting proxy (empty in the repository).
COPY deploy/build-ca/ /usr/local/share/ca-certificates/build/
COPY --from=git /git-libraries /tmp/
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 ca-certificates tini procps bubblewrap $(cat /tmp/git-libraries) \
 && update-ca-certificates \
 && apt-get clean \
 && rm -rf /tmp/git-libraries /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/lib/dpkg/*-old \
      /var/log/apt /var/log/dpkg.log /var/log/alternatives.log
COPY --from=git /out/ /
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt

# ---- requirements: what pip installs, read from pyproject.toml. A file of its own, so that an edit to
# pyproject.toml that changes no dependency (a linter setting) keeps the venv's layers cached.
FROM runtime AS requirements
ARG PYTHON_EXTRAS=""
COPY pyproject.toml /tmp/
RUN python3 -c "import sys, tomllib; p = tomllib.load(open('/tmp/pyproject.toml', 'rb'))['project']; \
extras = [e for e in sys.argv[1].split(',') if e]; \
print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]))" "$PYTHON_EXTRAS" \
      >/requirements.txt

# ---- python: the venv, filled by a pip that is not in it (no pip, setuptools or wheel in the image).
# pip compiles what it installs: the .pyc files stay (every worker process imports boto3; without them
# each would compile it again, 1.5 s more per start measured here).
FROM runtime AS python
ARG PYTHON_EXTRAS=""
RUN apt-get update && apt-get install -y --no-install-recommends python3-venv
COPY --from=requirements /requirements.txt /tmp/
RUN python3 -m venv --without-pip /opt/venv \
 && python3 -m venv /tmp/pip \
 && PIP_CERT=/etc/ssl/certs/ca-certificates.crt /tmp/pip/bin/pip --python /opt/venv/bin/python install \
      --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt \
 && /opt/venv/bin/python -c "import boto3, psutil, sh, watchfiles"
# botocore's models of the 400-odd AWS services take 28 MB; our code uses the few listed in
# deploy/botocore-services.txt (tests/deploy checks the list against the code). The aws CLI of the awscli
# variant keeps them all: an operator may run any of its commands.
COPY deploy/botocore-services.txt /tmp/
RUN case ",$PYTHON_EXTRAS," in *,awscli,*) exit 0 ;; esac; \
    data=$(echo /opt/venv/lib/python3.*/site-packages/botocore/data) \
 && for service in "$data"/*/; do \
      grep -qxF "$(basename "$service")" /tmp/botocore-services.txt || rm -r "$service"; \
    done \
 && /opt/venv/bin/python -c "import boto3; boto3.session.Session(region_name='us-east-1').client('s3')"

# ---- claude: the CLI from npm. Its package installs the one native binary of this platform (an optional
# dependency per platform) and hard-links it over bin/claude.exe; only that copy goes on.
FROM runtime AS claude
# The version the tests run (pyproject.toml, [tool.webordinary]; tests/deploy checks they agree).
ARG CLAUDE_CODE_VERSION=2.1.330
RUN npm install -g --no-fund --no-audit --loglevel=error "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" \
 && mkdir -p /out/usr/local/lib/node_modules/@anthropic-ai /out/usr/local/bin \
 && cp -a /usr/local/lib/node_modules/@anthropic-ai/claude-code /out/usr/local/lib/node_modules/@anthropic-ai/ \
 && rm -rf /out/usr/local/lib/node_modules/@anthropic-ai/claude-code/node_modules \
 && ln -s ../lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe /out/usr/local/bin/claude \
 && /out/usr/local/bin/claude --version | grep -qF "${CLAUDE_CODE_VERSION}"

# ---- the image
FROM runtime
ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONPATH=/app
# The CLI (381 MB of the image) before the venv: it changes only with CLAUDE_CODE_VERSION, the venv
# whenever pip resolves anew.
COPY --from=claude /out/ /
COPY --from=python /opt/venv /opt/venv

# One copy of the code, imported from /app (PYTHONPATH); nothing of it is installed into the venv. It is
# compiled here: the supervisor and every worker start from .pyc (PYTHONDONTWRITEBYTECODE: nothing is
# written at run time).
WORKDIR /app
COPY supervisor ./supervisor
COPY steps ./steps
COPY bin ./bin
RUN python -m compileall -q -j 0 supervisor steps

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
