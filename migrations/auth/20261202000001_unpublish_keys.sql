-- A key retired in an emergency leaves the JWKS at once, instead of when its tokens expire.
ALTER TABLE signing_keys ADD COLUMN unpublished_at timestamptz;
