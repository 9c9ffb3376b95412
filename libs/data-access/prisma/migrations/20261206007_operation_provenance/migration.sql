-- Issue 16: what a CI run declares about itself when it orders an operation (project, pipeline, run, commit, url),
-- shown to approvers next to the declared digests. Informational only: it never grants or limits anything.

-- AlterTable
ALTER TABLE "operation" ADD COLUMN "provenance" JSONB;
