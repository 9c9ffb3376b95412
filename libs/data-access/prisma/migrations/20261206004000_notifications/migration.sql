-- Approver notifications outside the browser (issue 14, item 5; docs/notifications.md, ADR 0023): the outbox written
-- in the transaction of an operation's state change, its deliveries (lease, retries, dead state) and per-subject settings.

-- CreateEnum
CREATE TYPE "NotificationChannel" AS ENUM ('EMAIL', 'WEBHOOK');

-- CreateEnum
CREATE TYPE "NotificationDeliveryState" AS ENUM ('PENDING', 'SENT', 'DEAD', 'SKIPPED');

-- CreateTable
CREATE TABLE "notification_outbox" (
    "id" UUID NOT NULL,
    "event" TEXT NOT NULL,
    "operationId" UUID,
    "adminSessionId" UUID,
    "recipientIds" UUID[],
    "payload" JSONB NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expandedAt" TIMESTAMPTZ(3),

    CONSTRAINT "notification_outbox_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "notification_delivery" (
    "id" UUID NOT NULL,
    "outboxId" UUID NOT NULL,
    "channel" "NotificationChannel" NOT NULL,
    "target" TEXT NOT NULL,
    "address" TEXT,
    "recipientIds" UUID[],
    "state" "NotificationDeliveryState" NOT NULL DEFAULT 'PENDING',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "nextAttemptAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "leaseToken" UUID,
    "leaseUntil" TIMESTAMPTZ(3),
    "lastError" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "sentAt" TIMESTAMPTZ(3),

    CONSTRAINT "notification_delivery_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "notification_preference" (
    "subjectId" UUID NOT NULL,
    "email" TEXT,
    "emailEnabled" BOOLEAN NOT NULL DEFAULT true,
    "webhookEnabled" BOOLEAN NOT NULL DEFAULT true,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "notification_preference_pkey" PRIMARY KEY ("subjectId")
);

-- CreateIndex
CREATE INDEX "notification_outbox_expandedAt_createdAt_idx" ON "notification_outbox"("expandedAt", "createdAt");

-- CreateIndex
CREATE UNIQUE INDEX "notification_outbox_operationId_event_key" ON "notification_outbox"("operationId", "event");

-- CreateIndex
CREATE UNIQUE INDEX "notification_outbox_adminSessionId_event_key" ON "notification_outbox"("adminSessionId", "event");

-- An event is about exactly one operation or one admin session.
ALTER TABLE "notification_outbox" ADD CONSTRAINT "notification_outbox_about_one" CHECK (num_nonnulls("operationId", "adminSessionId") = 1);

-- CreateIndex
CREATE INDEX "notification_delivery_state_nextAttemptAt_idx" ON "notification_delivery"("state", "nextAttemptAt");

-- CreateIndex
CREATE UNIQUE INDEX "notification_delivery_outboxId_channel_target_key" ON "notification_delivery"("outboxId", "channel", "target");

-- AddForeignKey
ALTER TABLE "notification_delivery" ADD CONSTRAINT "notification_delivery_outboxId_fkey" FOREIGN KEY ("outboxId") REFERENCES "notification_outbox"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "notification_preference" ADD CONSTRAINT "notification_preference_subjectId_fkey" FOREIGN KEY ("subjectId") REFERENCES "subject"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- The application role (see 20261129000200_audit_append_only) writes events, claims deliveries and keeps settings.
GRANT SELECT, INSERT, UPDATE, DELETE ON "notification_outbox", "notification_delivery", "notification_preference" TO "keyserver_app";
