-- People who may sign in, with their role; the only place that knows passwords.
CREATE TABLE accounts (
    account_id    uuid        PRIMARY KEY,
    email         text        NOT NULL,
    full_name     text        NOT NULL,
    role          text        NOT NULL CHECK (role IN ('admin', 'manager', 'accountant', 'worker')),
    active        boolean     NOT NULL DEFAULT true,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Emails are unique whatever their case.
CREATE UNIQUE INDEX accounts_email ON accounts (lower(email));

-- Refresh tokens, stored as SHA-256 hashes. Each use rotates the token within its family;
-- a second use of a used token is a theft signal and revokes the family.
CREATE TABLE refresh_tokens (
    token_hash bytea       PRIMARY KEY,
    family_id  uuid        NOT NULL,
    account_id uuid        NOT NULL REFERENCES accounts,
    issued_at  timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz,
    revoked_at timestamptz
);

CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_account ON refresh_tokens (account_id);

-- Ed25519 keys that sign access tokens. One is active; retired ones stay published in the
-- JWKS until the tokens they signed have expired.
CREATE TABLE signing_keys (
    kid         text        PRIMARY KEY,
    private_key bytea       NOT NULL,
    public_key  bytea       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    retired_at  timestamptz
);

CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys ((true)) WHERE retired_at IS NULL;
