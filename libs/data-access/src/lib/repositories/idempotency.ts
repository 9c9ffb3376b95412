import { createHash } from 'node:crypto';
import { sqlQuery, sqlState, type Db } from '../db';
import { DataAccessError } from '../errors';
import { releaseUsage, reserveUsage, type Reservation, type ReserveRequest } from './usage';

/**
 * One canonical text of a JSON value: object members sorted by name (UTF-16 order), undefined members
 * dropped, strings and numbers as JSON.stringify writes them (lone surrogates escaped, so no two strings
 * share a text). Only for request fingerprints; the audit chain has its own canonical form.
 */
function canonical(value: unknown): string {
  if (value === undefined || value === null) return 'null';
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(obj[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * The fingerprint an Idempotency-Key is bound to: SHA-256 (hex) over the route, the key and the whole
 * validated body. A retry with the same key is answered from the store only when its fingerprint is equal;
 * any other difference in the request is `idempotency_key_reused`.
 */
export function requestFingerprint(route: string, idempotencyKey: string, body: Record<string, unknown>): string {
  return createHash('sha256').update(canonical({ route, idempotencyKey, body }), 'utf8').digest('hex');
}

/**
 * What {@link withIdempotentUsage} needs of a route that stores its answer with an Idempotency-Key: the reservation
 * (its `idempotencyKey`, `subjectId` and `kind` name the key), the stored answer's read and the work a fresh request
 * does under the reservation.
 */
export interface IdempotentUsage<T> {
  reserve: ReserveRequest;
  /**
   * The stored answer of (subject, key) on this route, or null when there is none yet; throws
   * `idempotency_key_reused` when it was stored for another request (another fingerprint).
   */
  replay: () => Promise<T | null>;
  /** Signs and stores under the reservation (finishReservation); its errors give the usage back. */
  perform: (reservation: Reservation) => Promise<T>;
}

/**
 * The one replay/in-flight logic of every route that honours an Idempotency-Key (sign orders, certificates). Without
 * a key: reserve, perform, and give the usage back when that throws. With one, the stored answer is read
 * - before the reservation (a retry of a finished request: nothing reserved, nothing signed);
 * - after a refused reservation (the refusal the first request caused, e.g. its last usage, is not the retry's
 *   answer): while the first still holds its reservation the retry is `conflict` (retry), once it committed its answer
 *   is. Read in that order: a finish swaps the reservation for the answer in one commit, so a reservation gone is an
 *   answer visible;
 * - again once the usage is held (an answer committed between the first read and the reservation, which the unique
 *   reservation of the key then no longer blocked): the usage goes back, nothing is signed twice;
 * - after a unique violation while storing (the same key finished by a concurrent request).
 * A failure half-way (the HSM, the store) gives the usage back and stores nothing: the key stays free, a retry works
 * afresh. The reservation of (subject, key) is unique across routes: one in flight on another route is `conflict` too.
 */
export async function withIdempotentUsage<T>(db: Db, u: IdempotentUsage<T>): Promise<{ value: T; replayed: boolean; reservation: Reservation | null }> {
  const key = u.reserve.idempotencyKey;
  if (key) {
    const prior = await u.replay();
    if (prior) return { value: prior, replayed: true, reservation: null };
  }
  let reservation: Reservation;
  try {
    reservation = await reserveUsage(db, u.reserve);
  } catch (err) {
    if (key && err instanceof DataAccessError && err.code !== 'conflict') {
      if (await inFlight(db, u.reserve.subjectId, key)) throw new DataAccessError('conflict', 'a request with this idempotency key is in progress', { cause: err });
      const prior = await u.replay();
      if (prior) return { value: prior, replayed: true, reservation: null };
    }
    throw err;
  }
  try {
    if (key) {
      const prior = await u.replay();
      if (prior) {
        await releaseUsage(db, reservation);
        return { value: prior, replayed: true, reservation: null };
      }
    }
    return { value: await u.perform(reservation), replayed: false, reservation };
  } catch (err) {
    await releaseUsage(db, reservation).catch(() => undefined);
    if (key && sqlState(err) === '23505') {
      const prior = await u.replay();
      if (prior) return { value: prior, replayed: true, reservation: null };
    }
    throw err;
  }
}

/** Whether a request with this (subject, idempotency key) holds a usage reservation (it is still signing). */
async function inFlight(db: Db, subjectId: string, idempotencyKey: string): Promise<boolean> {
  const rows = await sqlQuery(db, `SELECT 1 FROM "usage_reservation" WHERE "subjectId" = $1::uuid AND "idempotencyKey" = $2`, [subjectId, idempotencyKey]);
  return rows.length > 0;
}
