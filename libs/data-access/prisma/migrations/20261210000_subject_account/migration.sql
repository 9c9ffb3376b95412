-- The account kind a user token last proved for a subject (acct: member or guest; docs/adr/0040-guest-accounts.md,
-- addendum). Existing subjects are UNKNOWN until their next sign-in with an `acct` claim; the guard writes the column
-- only when a token proves a different kind (the subject trigger then flushes every replica's access cache).
CREATE TYPE "SubjectAccount" AS ENUM ('UNKNOWN', 'MEMBER', 'GUEST');
ALTER TABLE "subject" ADD COLUMN "account" "SubjectAccount" NOT NULL DEFAULT 'UNKNOWN';
ALTER TABLE "subject" ADD COLUMN "accountProvenAt" TIMESTAMPTZ(3);
ALTER TABLE "unknown_principal" ADD COLUMN "account" "SubjectAccount" NOT NULL DEFAULT 'UNKNOWN';
