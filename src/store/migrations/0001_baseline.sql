-- Version 1: the schema as it was before versions were kept. Every statement is IF NOT
-- EXISTS, so a file written by an earlier svcacct (the local backend's tables only, or the
-- server's as well) is adopted as it is.
-- One file holds any number of organizations; every row names its organization.
-- Times are Unix seconds (UTC); dates are YYYY-MM-DD text.
CREATE TABLE IF NOT EXISTS organizations (
    name        TEXT PRIMARY KEY,
    revision    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE IF NOT EXISTS roles (
    org          TEXT NOT NULL REFERENCES organizations(name),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    permissions  TEXT NOT NULL,          -- JSON array of strings
    builtin      INTEGER NOT NULL,
    managed      INTEGER NOT NULL,
    protect      INTEGER NOT NULL,
    PRIMARY KEY (org, name)
) STRICT;

CREATE TABLE IF NOT EXISTS teams (
    org          TEXT NOT NULL REFERENCES organizations(name),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    managed      INTEGER NOT NULL,
    protect      INTEGER NOT NULL,
    PRIMARY KEY (org, name)
) STRICT;

CREATE TABLE IF NOT EXISTS service_accounts (
    org          TEXT NOT NULL REFERENCES organizations(name),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    admin        INTEGER NOT NULL,
    expires      TEXT,
    disabled     INTEGER NOT NULL,
    protect      INTEGER NOT NULL,
    managed      INTEGER NOT NULL,
    PRIMARY KEY (org, name)
) STRICT;

CREATE TABLE IF NOT EXISTS memberships (
    org      TEXT NOT NULL,
    account  TEXT NOT NULL,
    team     TEXT NOT NULL,
    role     TEXT NOT NULL,
    PRIMARY KEY (org, account, team),
    FOREIGN KEY (org, account) REFERENCES service_accounts(org, name) ON DELETE CASCADE,
    FOREIGN KEY (org, team) REFERENCES teams(org, name),
    FOREIGN KEY (org, role) REFERENCES roles(org, name)
) STRICT;

-- Only the hash of a secret is stored. Revoked keys stay, for the audit trail; keys of a
-- deleted account are revoked with it.
CREATE TABLE IF NOT EXISTS api_keys (
    id              TEXT PRIMARY KEY,
    org             TEXT NOT NULL,
    account         TEXT NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL,
    scopes          TEXT NOT NULL,      -- JSON array of strings
    display_prefix  TEXT NOT NULL,
    hash            TEXT NOT NULL UNIQUE,
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER,
    retires_at      INTEGER,            -- set when rotated out: works until then
    revoked_at      INTEGER,
    expires_in      INTEGER,
    rotate_every    INTEGER,
    overlap         INTEGER,
    managed         INTEGER NOT NULL
) STRICT;
CREATE INDEX IF NOT EXISTS api_keys_live ON api_keys(org, account, name) WHERE revoked_at IS NULL;

CREATE TABLE IF NOT EXISTS audit_log (
    id      INTEGER PRIMARY KEY,
    org     TEXT NOT NULL,
    time    INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX IF NOT EXISTS audit_log_org_time ON audit_log(org, time);

-- The apply leases (one lock model for every writer), stored responses for idempotent
-- retries, and the index the audit log pages by.
CREATE TABLE IF NOT EXISTS leases (
    org         TEXT PRIMARY KEY,
    lease_id    TEXT NOT NULL UNIQUE,
    owner       TEXT NOT NULL,
    expires_at  INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS idempotency (
    org          TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (org, key)
) STRICT;
CREATE INDEX IF NOT EXISTS audit_log_org_id ON audit_log(org, id);
