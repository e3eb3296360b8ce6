# codex-launch as the ENTRYPOINT of an image that runs the Codex CLI on a
# ChatGPT-subscription login. The container starts as root so that
# codex-launch can prepare CODEX_HOME on a mounted volume (create it, hand it
# to agent), then drops to agent (CODEX_LAUNCH_USER) before it refreshes the
# credential and starts the command: start.sh's steps, and gosu, in one binary.
#
# integration/container builds this file with a container engine and runs the
# image; integration/dockerfile_test.go runs the build line and each smoke
# check on its own, so keep each codex-launch smoke check in its own RUN.

ARG GO_VERSION=1.26
ARG NODE_VERSION=22

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# A static, stripped binary with no build paths in it. The compile cache
# outlives the layer, so a rebuild after a source change is incremental.
RUN --mount=type=cache,target=/root/.cache/go-build CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/codex-launch ./cmd/codex-launch

FROM node:${NODE_VERSION}-bookworm-slim
# The Codex CLI, pinned: the credential contract codex-launch honours was
# checked against this release.
ARG CODEX_VERSION=0.171.0
# procps: the CLI runs `ps` to watch the app server it starts (without it the
# default `codex` exits 1). The node image's own uid-1000 user gives way to
# agent, the user start.sh ran the CLI as (uid 1000, so volumes made for the
# old image keep working). CODEX_HOME exists and is agent's, so that a fresh
# named volume mounted there starts out agent's too (the engine copies the
# owner), which a container run as --user 1000, without root, needs.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates procps \
 && rm -rf /var/lib/apt/lists/* \
 && npm install -g "@openai/codex@${CODEX_VERSION}" \
 && npm cache clean --force \
 && userdel --remove node \
 && groupadd --gid 1000 agent \
 && useradd --uid 1000 --gid agent --create-home --shell /bin/bash agent \
 && install -d -o agent -g agent -m 0700 /home/agent/.codex
COPY --from=build /out/codex-launch /usr/local/bin/codex-launch

# Smoke checks at build time: the binary runs here, and a pass over an empty
# CODEX_HOME finds nothing to do (exit 1, the seed's "skipped").
RUN codex-launch --version
RUN home="$(mktemp -d)"; rc=0; CODEX_HOME="$home" codex-launch refresh --once || rc=$?; rm -rf "$home"; test "$rc" -eq 1
RUN codex --version
RUN ps -o pid=,comm= -p $$ >/dev/null

ENV CODEX_HOME=/home/agent/.codex \
    CODEX_LAUNCH_USER=agent
WORKDIR /home/agent

# 0: the credential is usable and the watchdog alive; 1 otherwise, with one
# line saying why (the status file goes stale when the watchdog is wedged).
HEALTHCHECK --interval=5m --timeout=10s --start-period=1m --retries=2 CMD ["codex-launch", "health"]

# PID 1: reaps, forwards signals, stops with grace, exits with the child's
# status. Arguments to `docker run IMAGE ...` replace CMD and are the child's
# command; codex-launch's own settings are its CODEX_LAUNCH_* variables (-e),
# and its subcommands run with --entrypoint codex-launch.
ENTRYPOINT ["codex-launch", "--"]
CMD ["codex"]
