-- A staff member's initial password expires like a graduate's (G-4): when it
-- was issued (at creation, or reissued by an administrator).
ALTER TABLE staff ADD COLUMN password_issued_at INTEGER;
UPDATE staff SET password_issued_at = created_at;
