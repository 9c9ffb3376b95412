import type { IncomingHttpHeaders } from 'node:http';

/**
 * The coding a request body carries that no server here undoes, or undefined: a Content-Encoding other than
 * `identity`, or a transfer coding other than `chunked` (Node undoes only `chunked`). The API and the keyclient both
 * refuse such a body (415 unsupported_content_encoding, ADR 0011): a parser, the firmware hash or the API behind the
 * keyclient would otherwise read still-coded bytes as a plain body.
 */
export function bodyCoding(headers: IncomingHttpHeaders): 'content-encoding' | 'transfer-encoding' | undefined {
  const content = headers['content-encoding'];
  if (content !== undefined && content.trim().toLowerCase() !== 'identity') return 'content-encoding';
  const transfer = headers['transfer-encoding'];
  if (transfer !== undefined && transfer.trim().toLowerCase() !== 'chunked') return 'transfer-encoding';
  return undefined;
}
