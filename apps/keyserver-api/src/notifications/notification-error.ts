import { errorClass } from '@keyserver/errors';

/** Refusals of the notification settings routes. */
export enum NotificationErrorCode {
  SubjectNotFound = 'subject_not_found',
}

const STATUS: Record<NotificationErrorCode, number> = {
  [NotificationErrorCode.SubjectNotFound]: 404,
};

export class NotificationError extends errorClass(STATUS) {}
