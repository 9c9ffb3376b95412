-- An administrative session opened to give or take the administrator and approver natures (docs/adr/0044-admin-session-powers.md).
-- Sessions opened before this migration could do anything; they were opened without this consent and end within
-- ADMIN_SESSION_MINUTES, so they get false.
ALTER TABLE "admin_session" ADD COLUMN "powers" BOOLEAN NOT NULL DEFAULT false;
