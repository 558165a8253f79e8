-- API tokens are scoped (R15): to a list of accounts and to read or write.
-- `scope_accounts` is a JSON array of account ids; NULL on a browser
-- session and on a token made by the operator (`gatehouse token`), which
-- are not narrowed. `access` is 'read' or 'write' (NULL: not narrowed).
ALTER TABLE sessions ADD COLUMN scope_accounts TEXT;
ALTER TABLE sessions ADD COLUMN access TEXT;
