-- Role names unique whatever their case (ADR 0016 addendum "role names"). Names are ASCII letters, digits and ._-
-- (RoleName in @keyserver/api-contract), so lower() folds exactly the letters and nothing else. Two roles that read
-- the same to an administrator approving a four-eyes change ("Demo-Administrators" next to "demo-administrators")
-- are a confusion an insider can use; the index makes the database refuse the second, on every replica at once.
-- Prisma's schema cannot express an index on an expression; this one is kept by hand (schema.prisma says so).

-- Existing rows first: names that differ only in case stop the migration with them named (an operator renames or
-- merges one of them; the index cannot hold both).
DO $$
DECLARE
  dup TEXT;
BEGIN
  SELECT string_agg(names, '; ') INTO dup FROM (
    SELECT string_agg("name", ', ' ORDER BY "name" COLLATE "C") AS names
    FROM "role"
    GROUP BY lower("name") HAVING count(*) > 1
    ORDER BY lower("name") COLLATE "C" LIMIT 20
  ) d;
  IF dup IS NOT NULL THEN
    RAISE EXCEPTION 'role names that differ only in case (rename or merge all but one of each group): %', dup;
  END IF;
END;
$$;

CREATE UNIQUE INDEX "role_name_lower_key" ON "role" (lower("name"));
