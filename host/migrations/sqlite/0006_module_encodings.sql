-- The module as it goes over the wire: brotli and gzip copies made when it
-- was baked (publish), served by content negotiation at
-- /v1/module/<sha256>.wasm. NULL for versions published before them (served
-- uncompressed; a rollback compresses them).
ALTER TABLE policy_versions ADD COLUMN module_br BLOB;
ALTER TABLE policy_versions ADD COLUMN module_gz BLOB;
ALTER TABLE publish_requests ADD COLUMN module_br BLOB;
ALTER TABLE publish_requests ADD COLUMN module_gz BLOB;
CREATE INDEX policy_versions_module ON policy_versions(module_sha256);
