-- The external chain above an externally certified ROOT is kept per version (ADR 0020 addendum "the renewed external
-- chain"): a key certified by an earlier version of a rotated external ROOT is chained and judged by that version's
-- chain, not the current one's. The key row keeps the current version's chain (the sign path reads it).
ALTER TABLE "key_version" ADD COLUMN "issuerChainPem" TEXT;

-- Existing rows: the current version of each externally certified ROOT has the key row's chain. The chains of its
-- earlier versions were overwritten by the import of the current one and are not known: they stay NULL, and such a
-- version falls back to the key row's chain, as before.
UPDATE "key_version" v SET "issuerChainPem" = k."issuerChainPem"
  FROM "key" k
 WHERE v."keyId" = k."id" AND v."version" = k."currentVersion" AND k."parentId" IS NULL AND k."issuerChainPem" IS NOT NULL;
