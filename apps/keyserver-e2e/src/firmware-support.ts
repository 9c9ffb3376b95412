import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export const MiB = 1024 * 1024;

/** Writes `size` pseudo-random bytes to a file in 1 MiB blocks and returns their SHA-256. */
export async function makeImage(file: string, size: number): Promise<string> {
  const h = createHash('sha256');
  const block = randomBytes(MiB);
  let left = size;
  let n = 0;
  await pipeline(
    Readable.from(
      (function* () {
        while (left > 0) {
          const chunk = Buffer.from(block.subarray(0, Math.min(MiB, left)));
          chunk.writeUInt32BE(n++, 0);
          left -= chunk.length;
          h.update(chunk);
          yield chunk;
        }
      })(),
    ),
    createWriteStream(file),
  );
  return h.digest('hex');
}
