-- Agent log batches (the agent's --glogger-server option posts them to POST /api/v1/logs): one row per log
-- record, queryable per service and host. The table is bounded: PruneAgentLogs keeps the newest
-- FLAMESTREAM_AGENT_LOGS_MAX_ROWS records per service.
CREATE TABLE agent_logs (
    id            bigserial PRIMARY KEY,
    service       text NOT NULL,
    hostname      text NOT NULL DEFAULT '',
    run_id        text NOT NULL DEFAULT '',
    agent_version text NOT NULL DEFAULT '',
    batch_id      text NOT NULL DEFAULT '',
    received_at   timestamptz NOT NULL DEFAULT now(),
    ts            timestamptz NOT NULL,
    severity      smallint NOT NULL DEFAULT 0,
    logger        text NOT NULL DEFAULT '',
    message       text NOT NULL DEFAULT '',
    extra         jsonb
);
CREATE INDEX agent_logs_service_host_ts ON agent_logs (service, hostname, ts DESC);
CREATE INDEX agent_logs_service_id ON agent_logs (service, id);

-- Batches already stored, so that an agent retrying a batch it saw fail is stored once.
CREATE TABLE agent_log_batches (
    service     text NOT NULL,
    batch_id    text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    lost        bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (service, batch_id)
);

-- Hosts that sent a heartbeat (agents started in dynamic-profiling mode), with the last command they ran.
CREATE TABLE agent_heartbeats (
    service         text NOT NULL,
    hostname        text NOT NULL,
    ip_address      text NOT NULL DEFAULT '',
    status          text NOT NULL DEFAULT '',
    last_command_id text NOT NULL DEFAULT '',
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service, hostname)
);
