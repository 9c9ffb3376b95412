-- CreateSchema
CREATE SCHEMA IF NOT EXISTS "public";

-- CreateEnum
CREATE TYPE "SubjectKind" AS ENUM ('USER', 'CLIENT');

-- CreateEnum
CREATE TYPE "Nature" AS ENUM ('ADMINISTRATOR', 'APPROVER', 'ORDERER', 'SIGNER', 'PROVISIONER', 'AUDITOR');

-- CreateEnum
CREATE TYPE "KeyPermission" AS ENUM ('ORDER', 'SIGN', 'ISSUE', 'APPROVE');

-- CreateEnum
CREATE TYPE "KeyType" AS ENUM ('ROOT', 'CA', 'FW');

-- CreateEnum
CREATE TYPE "KeyAlgorithm" AS ENUM ('RSA_2048', 'RSA_3072', 'RSA_4096', 'EC_P256', 'EC_P384', 'EC_P521', 'ED25519');

-- CreateEnum
CREATE TYPE "HashAlgorithm" AS ENUM ('SHA256', 'SHA384', 'SHA512');

-- CreateEnum
CREATE TYPE "KeyState" AS ENUM ('ACTIVE', 'REVOKED');

-- CreateEnum
CREATE TYPE "OperationState" AS ENUM ('REQUESTED', 'APPROVED', 'EXHAUSTED', 'EXPIRED', 'REJECTED', 'CANCELLED');

-- CreateEnum
CREATE TYPE "AuditOutcome" AS ENUM ('SUCCESS', 'DENIED', 'FAILED');

-- CreateEnum
CREATE TYPE "AdminSessionState" AS ENUM ('PENDING', 'ACTIVE', 'CLOSED', 'EXPIRED');

-- CreateTable
CREATE TABLE "subject" (
    "id" UUID NOT NULL,
    "kind" "SubjectKind" NOT NULL,
    "tid" TEXT NOT NULL,
    "oid" TEXT NOT NULL,
    "displayName" TEXT NOT NULL,
    "username" TEXT,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "subject_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "role" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT NOT NULL DEFAULT '',
    "natures" "Nature"[],

    CONSTRAINT "role_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "subject_role" (
    "subjectId" UUID NOT NULL,
    "roleId" UUID NOT NULL,

    CONSTRAINT "subject_role_pkey" PRIMARY KEY ("subjectId","roleId")
);

-- CreateTable
CREATE TABLE "role_key_permission" (
    "roleId" UUID NOT NULL,
    "keyId" UUID NOT NULL,
    "permissions" "KeyPermission"[],

    CONSTRAINT "role_key_permission_pkey" PRIMARY KEY ("roleId","keyId")
);

-- CreateTable
CREATE TABLE "unknown_principal" (
    "id" UUID NOT NULL,
    "tid" TEXT NOT NULL,
    "oid" TEXT NOT NULL,
    "kind" "SubjectKind" NOT NULL,
    "displayName" TEXT,
    "username" TEXT,
    "azp" TEXT,
    "firstSeenAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastSeenAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "attempts" INTEGER NOT NULL DEFAULT 1,

    CONSTRAINT "unknown_principal_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "key" (
    "id" UUID NOT NULL,
    "keyid" TEXT NOT NULL,
    "type" "KeyType" NOT NULL,
    "algorithm" "KeyAlgorithm" NOT NULL,
    "hash" "HashAlgorithm" NOT NULL,
    "requiredApprovers" INTEGER NOT NULL DEFAULT 0,
    "state" "KeyState" NOT NULL DEFAULT 'ACTIVE',
    "hsmKeyId" TEXT NOT NULL,
    "parentId" UUID,
    "certificatePem" TEXT NOT NULL,
    "certificateSerial" TEXT NOT NULL,
    "notBefore" TIMESTAMPTZ(3) NOT NULL,
    "notAfter" TIMESTAMPTZ(3) NOT NULL,
    "product" TEXT,
    "profile" JSONB NOT NULL DEFAULT '{}',
    "crlNumber" BIGINT NOT NULL DEFAULT 0,
    "revokedAt" TIMESTAMPTZ(3),
    "revocationReason" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "key_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "operation" (
    "id" UUID NOT NULL,
    "description" TEXT NOT NULL,
    "state" "OperationState" NOT NULL DEFAULT 'REQUESTED',
    "ordererId" UUID NOT NULL,
    "validFrom" TIMESTAMPTZ(3) NOT NULL,
    "validTo" TIMESTAMPTZ(3) NOT NULL,
    "digests" TEXT[],
    "rejectionReason" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "operation_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "operation_key" (
    "id" UUID NOT NULL,
    "operationId" UUID NOT NULL,
    "keyId" UUID NOT NULL,
    "usagesAllowed" INTEGER NOT NULL,
    "usagesUsed" INTEGER NOT NULL DEFAULT 0,
    "requiredApprovers" INTEGER NOT NULL,

    CONSTRAINT "operation_key_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "approval" (
    "id" UUID NOT NULL,
    "operationId" UUID NOT NULL,
    "keyId" UUID NOT NULL,
    "approverId" UUID NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "approval_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "sign_order" (
    "id" UUID NOT NULL,
    "operationId" UUID NOT NULL,
    "keyId" UUID NOT NULL,
    "subjectId" UUID NOT NULL,
    "description" TEXT NOT NULL,
    "inputdata" TEXT NOT NULL,
    "inputformat" TEXT NOT NULL,
    "inputpadding" TEXT NOT NULL,
    "signatureformat" TEXT NOT NULL,
    "result" TEXT NOT NULL,
    "idempotencyKey" TEXT,
    "requestId" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "sign_order_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "certificate" (
    "id" UUID NOT NULL,
    "issuerKeyId" UUID NOT NULL,
    "serialHex" TEXT NOT NULL,
    "subjectDn" TEXT NOT NULL,
    "sans" TEXT[],
    "notBefore" TIMESTAMPTZ(3) NOT NULL,
    "notAfter" TIMESTAMPTZ(3) NOT NULL,
    "pem" TEXT NOT NULL,
    "operationId" UUID,
    "requesterId" UUID,
    "revokedAt" TIMESTAMPTZ(3),
    "revocationReason" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "certificate_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "admin_session" (
    "id" UUID NOT NULL,
    "description" TEXT NOT NULL,
    "creatorId" UUID NOT NULL,
    "state" "AdminSessionState" NOT NULL DEFAULT 'PENDING',
    "requiredApprovals" INTEGER NOT NULL,
    "expiresAt" TIMESTAMPTZ(3) NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "activatedAt" TIMESTAMPTZ(3),
    "closedAt" TIMESTAMPTZ(3),

    CONSTRAINT "admin_session_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "admin_session_approval" (
    "id" UUID NOT NULL,
    "sessionId" UUID NOT NULL,
    "adminId" UUID NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "admin_session_approval_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "audit_event" (
    "seq" BIGSERIAL NOT NULL,
    "id" UUID NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "action" TEXT NOT NULL,
    "outcome" "AuditOutcome" NOT NULL,
    "errorCode" TEXT,
    "actorTid" TEXT,
    "actorOid" TEXT,
    "actorName" TEXT,
    "actorClient" TEXT,
    "actorSubjectId" UUID,
    "keyid" TEXT,
    "operationId" UUID,
    "adminSessionId" UUID,
    "digest" TEXT,
    "requestId" TEXT,
    "details" JSONB NOT NULL DEFAULT '{}',
    "prevHash" TEXT NOT NULL,
    "hash" TEXT NOT NULL,

    CONSTRAINT "audit_event_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "bff_session" (
    "id" TEXT NOT NULL,
    "tid" TEXT NOT NULL,
    "oid" TEXT NOT NULL,
    "displayName" TEXT,
    "username" TEXT,
    "tokenCiphertext" BYTEA NOT NULL,
    "accessTokenExpiresAt" TIMESTAMPTZ(3) NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastSeenAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "idleExpiresAt" TIMESTAMPTZ(3) NOT NULL,
    "absoluteExpiresAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "bff_session_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "subject_tid_oid_key" ON "subject"("tid", "oid");

-- CreateIndex
CREATE UNIQUE INDEX "role_name_key" ON "role"("name");

-- CreateIndex
CREATE INDEX "subject_role_roleId_idx" ON "subject_role"("roleId");

-- CreateIndex
CREATE INDEX "role_key_permission_keyId_idx" ON "role_key_permission"("keyId");

-- CreateIndex
CREATE UNIQUE INDEX "unknown_principal_tid_oid_key" ON "unknown_principal"("tid", "oid");

-- CreateIndex
CREATE UNIQUE INDEX "key_keyid_key" ON "key"("keyid");

-- CreateIndex
CREATE UNIQUE INDEX "key_hsmKeyId_key" ON "key"("hsmKeyId");

-- CreateIndex
CREATE INDEX "key_parentId_idx" ON "key"("parentId");

-- CreateIndex
CREATE INDEX "operation_state_createdAt_idx" ON "operation"("state", "createdAt");

-- CreateIndex
CREATE INDEX "operation_ordererId_idx" ON "operation"("ordererId");

-- CreateIndex
CREATE INDEX "operation_key_keyId_idx" ON "operation_key"("keyId");

-- CreateIndex
CREATE UNIQUE INDEX "operation_key_operationId_keyId_key" ON "operation_key"("operationId", "keyId");

-- CreateIndex
CREATE INDEX "approval_approverId_idx" ON "approval"("approverId");

-- CreateIndex
CREATE UNIQUE INDEX "approval_operationId_keyId_approverId_key" ON "approval"("operationId", "keyId", "approverId");

-- CreateIndex
CREATE INDEX "sign_order_operationId_idx" ON "sign_order"("operationId");

-- CreateIndex
CREATE UNIQUE INDEX "sign_order_subjectId_idempotencyKey_key" ON "sign_order"("subjectId", "idempotencyKey");

-- CreateIndex
CREATE INDEX "certificate_subjectDn_idx" ON "certificate"("subjectDn");

-- CreateIndex
CREATE UNIQUE INDEX "certificate_issuerKeyId_serialHex_key" ON "certificate"("issuerKeyId", "serialHex");

-- CreateIndex
CREATE INDEX "admin_session_state_idx" ON "admin_session"("state");

-- CreateIndex
CREATE UNIQUE INDEX "admin_session_approval_sessionId_adminId_key" ON "admin_session_approval"("sessionId", "adminId");

-- CreateIndex
CREATE UNIQUE INDEX "audit_event_seq_key" ON "audit_event"("seq");

-- CreateIndex
CREATE UNIQUE INDEX "audit_event_hash_key" ON "audit_event"("hash");

-- CreateIndex
CREATE INDEX "audit_event_at_idx" ON "audit_event"("at");

-- CreateIndex
CREATE INDEX "audit_event_action_idx" ON "audit_event"("action");

-- CreateIndex
CREATE INDEX "audit_event_keyid_idx" ON "audit_event"("keyid");

-- CreateIndex
CREATE INDEX "audit_event_operationId_idx" ON "audit_event"("operationId");

-- CreateIndex
CREATE INDEX "bff_session_absoluteExpiresAt_idx" ON "bff_session"("absoluteExpiresAt");

-- AddForeignKey
ALTER TABLE "subject_role" ADD CONSTRAINT "subject_role_subjectId_fkey" FOREIGN KEY ("subjectId") REFERENCES "subject"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "subject_role" ADD CONSTRAINT "subject_role_roleId_fkey" FOREIGN KEY ("roleId") REFERENCES "role"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "role_key_permission" ADD CONSTRAINT "role_key_permission_roleId_fkey" FOREIGN KEY ("roleId") REFERENCES "role"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "role_key_permission" ADD CONSTRAINT "role_key_permission_keyId_fkey" FOREIGN KEY ("keyId") REFERENCES "key"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "key" ADD CONSTRAINT "key_parentId_fkey" FOREIGN KEY ("parentId") REFERENCES "key"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "operation" ADD CONSTRAINT "operation_ordererId_fkey" FOREIGN KEY ("ordererId") REFERENCES "subject"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "operation_key" ADD CONSTRAINT "operation_key_operationId_fkey" FOREIGN KEY ("operationId") REFERENCES "operation"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "operation_key" ADD CONSTRAINT "operation_key_keyId_fkey" FOREIGN KEY ("keyId") REFERENCES "key"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "approval" ADD CONSTRAINT "approval_operationId_fkey" FOREIGN KEY ("operationId") REFERENCES "operation"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "approval" ADD CONSTRAINT "approval_keyId_fkey" FOREIGN KEY ("keyId") REFERENCES "key"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "approval" ADD CONSTRAINT "approval_approverId_fkey" FOREIGN KEY ("approverId") REFERENCES "subject"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "sign_order" ADD CONSTRAINT "sign_order_operationId_fkey" FOREIGN KEY ("operationId") REFERENCES "operation"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "sign_order" ADD CONSTRAINT "sign_order_keyId_fkey" FOREIGN KEY ("keyId") REFERENCES "key"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "sign_order" ADD CONSTRAINT "sign_order_subjectId_fkey" FOREIGN KEY ("subjectId") REFERENCES "subject"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "certificate" ADD CONSTRAINT "certificate_issuerKeyId_fkey" FOREIGN KEY ("issuerKeyId") REFERENCES "key"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "certificate" ADD CONSTRAINT "certificate_operationId_fkey" FOREIGN KEY ("operationId") REFERENCES "operation"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "certificate" ADD CONSTRAINT "certificate_requesterId_fkey" FOREIGN KEY ("requesterId") REFERENCES "subject"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "admin_session" ADD CONSTRAINT "admin_session_creatorId_fkey" FOREIGN KEY ("creatorId") REFERENCES "subject"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "admin_session_approval" ADD CONSTRAINT "admin_session_approval_sessionId_fkey" FOREIGN KEY ("sessionId") REFERENCES "admin_session"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "admin_session_approval" ADD CONSTRAINT "admin_session_approval_adminId_fkey" FOREIGN KEY ("adminId") REFERENCES "subject"("id") ON DELETE RESTRICT ON UPDATE CASCADE;


-- Invariants Prisma cannot express (hand-written; the schema diff ignores CHECK constraints)
ALTER TABLE "key" ADD CONSTRAINT "key_requiredApprovers_check" CHECK ("requiredApprovers" >= 0);
ALTER TABLE "key" ADD CONSTRAINT "key_crlNumber_check" CHECK ("crlNumber" >= 0);
ALTER TABLE "operation_key" ADD CONSTRAINT "operation_key_usages_check" CHECK ("usagesUsed" >= 0 AND "usagesAllowed" >= 0 AND "usagesUsed" <= "usagesAllowed");
ALTER TABLE "operation_key" ADD CONSTRAINT "operation_key_requiredApprovers_check" CHECK ("requiredApprovers" >= 0);
ALTER TABLE "operation" ADD CONSTRAINT "operation_window_check" CHECK ("validFrom" < "validTo");
ALTER TABLE "admin_session" ADD CONSTRAINT "admin_session_requiredApprovals_check" CHECK ("requiredApprovals" >= 0);
ALTER TABLE "unknown_principal" ADD CONSTRAINT "unknown_principal_attempts_check" CHECK ("attempts" >= 1);
