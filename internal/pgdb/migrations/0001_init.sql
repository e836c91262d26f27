CREATE TABLE services (
    id               bigserial PRIMARY KEY,
    name             text NOT NULL UNIQUE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_seen        timestamptz,
    sample_threshold double precision NOT NULL DEFAULT 0 CHECK (sample_threshold >= 0 AND sample_threshold <= 1),
    retention_days   integer CHECK (retention_days IS NULL OR retention_days > 0)
);

CREATE TABLE api_tokens (
    id           bigserial PRIMARY KEY,
    name         text NOT NULL DEFAULT '',
    kind         text NOT NULL DEFAULT 'agent' CHECK (kind IN ('agent', 'read')),
    service      text,
    hash         bytea NOT NULL UNIQUE,
    prefix       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

CREATE TABLE agents (
    gpid            bigserial PRIMARY KEY,
    service         text NOT NULL,
    hostname        text NOT NULL DEFAULT '',
    agent_version   text NOT NULL DEFAULT '',
    instance_type   text NOT NULL DEFAULT '',
    cloud_provider  text NOT NULL DEFAULT '',
    run_arguments   jsonb,
    containers      text[] NOT NULL DEFAULT '{}',
    k8s_objects     text[] NOT NULL DEFAULT '{}',
    first_seen      timestamptz NOT NULL DEFAULT now(),
    last_seen       timestamptz NOT NULL DEFAULT now(),
    last_profile_at timestamptz,
    profiles        bigint NOT NULL DEFAULT 0
);
CREATE INDEX agents_service_host ON agents (service, hostname);

CREATE TABLE users (
    id            bigserial PRIMARY KEY,
    username      text NOT NULL UNIQUE,
    password_hash text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE sessions (
    hash       bytea PRIMARY KEY,
    user_id    bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    csrf       text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL
);
