-- 0004: invitations, TOTP, password reset (issue 6, item 2). Placeholder, filled by the accounts work.
SELECT 1;
