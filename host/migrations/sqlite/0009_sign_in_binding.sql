-- A sign-in link works only in the browser that asked for it: the hash of
-- that browser's binding cookie (`gh_sign_in`). Links made before this
-- column have none and are refused (they last 15 minutes).
ALTER TABLE sign_in_links ADD COLUMN browser_hash TEXT;

-- At most one sign-in mail a minute per address: the newest link by address.
CREATE INDEX sign_in_links_by_email ON sign_in_links (email_lower, expires_at);
