-- Version 1 on PostgreSQL: the same tables as on SQLite, in PostgreSQL's types. Times are
-- Unix seconds (UTC); dates are YYYY-MM-DD text; permission and scope lists are JSON text.
CREATE TABLE organizations (
    name        TEXT PRIMARY KEY,
    revision    BIGINT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE roles (
    org          TEXT NOT NULL REFERENCES organizations(name),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    permissions  TEXT NOT NULL,
    builtin      BOOLEAN NOT NULL,
    managed      BOOLEAN NOT NULL,
    protect      BOOLEAN NOT NULL,
    PRIMARY KEY (org, name)
);

CREATE TABLE teams (
    org          TEXT NOT NULL REFERENCES organizations(name),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    managed      BOOLEAN NOT NULL,
    protect      BOOLEAN NOT NULL,
    PRIMARY KEY (org, name)
);

CREATE TABLE service_accounts (
    org          TEXT NOT NULL REFERENCES organizations(name),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    admin        BOOLEAN NOT NULL,
    expires      TEXT,
    disabled     BOOLEAN NOT NULL,
    protect      BOOLEAN NOT NULL,
    managed      BOOLEAN NOT NULL,
    PRIMARY KEY (org, name)
);

CREATE TABLE memberships (
    org      TEXT NOT NULL,
    account  TEXT NOT NULL,
    team     TEXT NOT NULL,
    role     TEXT NOT NULL,
    PRIMARY KEY (org, account, team),
    FOREIGN KEY (org, account) REFERENCES service_accounts(org, name) ON DELETE CASCADE,
    FOREIGN KEY (org, team) REFERENCES teams(org, name),
    FOREIGN KEY (org, role) REFERENCES roles(org, name)
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    org             TEXT NOT NULL,
    account         TEXT NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL,
    scopes          TEXT NOT NULL,
    display_prefix  TEXT NOT NULL,
    hash            TEXT NOT NULL UNIQUE,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT,
    retires_at      BIGINT,
    revoked_at      BIGINT,
    expires_in      BIGINT,
    rotate_every    BIGINT,
    overlap         BIGINT,
    managed         BOOLEAN NOT NULL
);
CREATE INDEX api_keys_live ON api_keys(org, account, name) WHERE revoked_at IS NULL;

CREATE TABLE audit_log (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    org     TEXT NOT NULL,
    time    BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX audit_log_org_time ON audit_log(org, time);
CREATE INDEX audit_log_org_id ON audit_log(org, id);

CREATE TABLE leases (
    org         TEXT PRIMARY KEY,
    lease_id    TEXT NOT NULL UNIQUE,
    owner       TEXT NOT NULL,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE idempotency (
    org          TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    PRIMARY KEY (org, key)
);
