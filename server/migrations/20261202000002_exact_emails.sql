-- E-mail addresses compare byte for byte. The table's collation (utf8mb4_unicode_ci) ignores
-- accents and width, so `sécurity@…` or a full-width `ａ` matched `security@…`: a sign-up
-- with a look-alike address took the admin role meant for the real one, and the real one's
-- own sign-up was refused as taken. Addresses are normalised once at the edge (trimmed, NFC,
-- lower case; see server/src/accounts/email.rs) and compared exactly here.
ALTER TABLE users MODIFY email VARCHAR(254) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;

-- Sign-up no longer grants a role (the operator runs `server grant-admin <email>`), so the
-- list of addresses that did is gone.
DROP TABLE admin_emails;
