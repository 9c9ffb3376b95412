-- One serial number per issuer (RFC 5280 4.1.2.2) across everything an issuer signs (ADR 0020 addendum "serial
-- numbers per issuer"). A CA certifies device certificates (table "certificate") and keys (CA, FW and TSA
-- certificates, table "key_version"); until now only the first had a unique (issuer, serial), and only within itself.
-- "issued_serial" is the one register of both: a row per certificate the Keyserver signed as (issuing key, serial),
-- written by triggers in the inserting transaction, so no code path can store a certificate without taking its serial.
-- Self-signed and externally certified ROOT versions (no issuing key in the Keyserver) are not registered.
CREATE TABLE "issued_serial" (
    "issuerKeyId" UUID NOT NULL,
    "serialHex" TEXT NOT NULL,

    CONSTRAINT "issued_serial_pkey" PRIMARY KEY ("issuerKeyId","serialHex")
);

ALTER TABLE "issued_serial" ADD CONSTRAINT "issued_serial_issuerKeyId_fkey" FOREIGN KEY ("issuerKeyId") REFERENCES "key"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Existing rows first: a serial an issuer used twice stops the migration with the pairs named (an operator must
-- revoke and reissue one of them; the register cannot hold both).
DO $$
DECLARE
  dup TEXT;
BEGIN
  SELECT string_agg(format('%s/%s (%s times)', keyid, serial, n), ', ') INTO dup FROM (
    SELECT k."keyid" AS keyid, s.serial, count(*) AS n
    FROM (
      SELECT c."issuerKeyId" AS issuer, lower(c."serialHex") AS serial FROM "certificate" c
      UNION ALL
      SELECT i."id", lower(v."certificateSerial") FROM "key_version" v JOIN "key" i ON i."keyid" = v."issuerKeyid"
    ) s JOIN "key" k ON k."id" = s.issuer
    GROUP BY k."keyid", s.serial HAVING count(*) > 1
    ORDER BY 1, 2 LIMIT 20
  ) d;
  IF dup IS NOT NULL THEN
    RAISE EXCEPTION 'serial numbers used more than once by one issuer (issuer/serial): %', dup;
  END IF;
END;
$$;

INSERT INTO "issued_serial" ("issuerKeyId", "serialHex")
SELECT c."issuerKeyId", lower(c."serialHex") FROM "certificate" c
UNION ALL
SELECT i."id", lower(v."certificateSerial") FROM "key_version" v JOIN "key" i ON i."keyid" = v."issuerKeyid";

CREATE OR REPLACE FUNCTION "issued_serial_register"() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
  issuer UUID;
  serial TEXT;
BEGIN
  IF TG_TABLE_NAME = 'certificate' THEN
    issuer := NEW."issuerKeyId";
    serial := NEW."serialHex";
  ELSE
    IF NEW."issuerKeyid" IS NULL THEN
      RETURN NEW;
    END IF;
    SELECT "id" INTO issuer FROM "key" WHERE "keyid" = NEW."issuerKeyid";
    IF issuer IS NULL THEN
      RAISE EXCEPTION 'key version names an unknown issuer %', NEW."issuerKeyid" USING ERRCODE = 'foreign_key_violation';
    END IF;
    serial := NEW."certificateSerial";
  END IF;
  -- A serial the issuer used already: 23505 on "issued_serial_pkey", the caller signs again with a fresh serial.
  INSERT INTO "issued_serial" ("issuerKeyId", "serialHex") VALUES (issuer, lower(serial));
  RETURN NEW;
END;
$$;
REVOKE EXECUTE ON FUNCTION "issued_serial_register"() FROM PUBLIC;

CREATE TRIGGER "certificate_issued_serial" AFTER INSERT ON "certificate"
  FOR EACH ROW EXECUTE FUNCTION "issued_serial_register"();

CREATE TRIGGER "key_version_issued_serial" AFTER INSERT ON "key_version"
  FOR EACH ROW EXECUTE FUNCTION "issued_serial_register"();

-- The application role registers serials with the certificates it stores; a register row is never changed.
GRANT SELECT, INSERT ON "issued_serial" TO "keyserver_app";
