import { DataAccessError, SERIAL_ATTEMPTS } from '@keyserver/data-access';

/**
 * Runs `certifyAndStore` (sign a certificate with a fresh random serial, store it) again while the database answers
 * `serial_in_use`: the issuer's serial register (table issued_serial) refused a serial it already used. Nothing was
 * stored by the refused attempt; after {@link SERIAL_ATTEMPTS} (the device certificates' bound too) the refusal is the answer (409 serial_in_use).
 */
export async function retrySerial<T>(certifyAndStore: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await certifyAndStore();
    } catch (err) {
      if (!(err instanceof DataAccessError && err.code === 'serial_in_use') || attempt >= SERIAL_ATTEMPTS) throw err;
    }
  }
}
