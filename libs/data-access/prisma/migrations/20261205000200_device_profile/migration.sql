-- Device-certificate profiles of CA keys (docs/device-profile.md) live in "key"."profile".
-- Hand-written (Prisma cannot express it): the column holds a JSON object, and the profiles of existing CA keys
-- are rewritten into the shape the API validates (api-contract DeviceProfile); the legacy 'otherName' SAN type,
-- which the PKI never copied, is dropped; FW and ROOT keys have no device profile.

UPDATE "key" SET "profile" = '{}'::jsonb WHERE "type" <> 'CA' OR jsonb_typeof("profile") <> 'object';

UPDATE "key" SET "profile" = jsonb_build_object(
    'validityDays', CASE
      WHEN jsonb_typeof("profile"->'validityDays') = 'number' AND ("profile"->>'validityDays')::numeric BETWEEN 1 AND 3650
        AND ("profile"->>'validityDays')::numeric = trunc(("profile"->>'validityDays')::numeric)
      THEN ("profile"->>'validityDays')::int ELSE 365 END,
    'allowedSanTypes', COALESCE((
      SELECT jsonb_agg(DISTINCT t) FROM jsonb_array_elements_text(
        CASE WHEN jsonb_typeof("profile"->'allowedSanTypes') = 'array' THEN "profile"->'allowedSanTypes' ELSE '["dns","uri"]'::jsonb END
      ) AS t WHERE t IN ('dns', 'uri', 'email', 'ip')), '[]'::jsonb),
    'maxSanCount', 8,
    'dnsDomains', '[]'::jsonb,
    'uriSchemes', '["https","urn"]'::jsonb,
    'keyAgreement', COALESCE("profile"->'keyAgreement' = 'true'::jsonb, false)
  )
WHERE "type" = 'CA';

ALTER TABLE "key" ADD CONSTRAINT "key_profile_is_object" CHECK (jsonb_typeof("profile") = 'object');
