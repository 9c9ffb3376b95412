import { randomBytes } from 'node:crypto';
import { closeSync, createWriteStream, fsyncSync, lstatSync, openSync, renameSync, rmSync, statSync, writeSync, type WriteStream } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { CliError, Exit } from './errors';

/**
 * Where ksctl writes a file it was asked for (--out, --chain-out, keys show --chain, sign --cms' FILE.p7s): the path
 * must be a regular file or nothing, in an existing directory. Checked before the request, so a signature or a
 * certificate is never made (a usage spent) only to be refused at writing. A symlink is refused rather than followed:
 * in a shared CI workspace one planted at the name would otherwise receive the signature wherever it points.
 * @throws CliError(output_not_regular_file | output_directory_missing, exit 2)
 */
export function checkOutputPath(path: string, option: string): void {
  let dir;
  try {
    dir = statSync(dirname(path));
  } catch {
    dir = undefined;
  }
  if (!dir?.isDirectory()) throw new CliError(`${option}: the directory of ${path} does not exist`, Exit.Usage, 'output_directory_missing');
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return; // nothing there: written new
  }
  if (!st.isFile()) throw new CliError(`${option}: ${path} exists and is not a regular file (a symlink, directory or device is not written through)`, Exit.Usage, 'output_not_regular_file');
}

/** A fresh name beside `path` (same directory, so the rename is atomic), never an existing file or link. */
function temporaryBeside(path: string): string {
  return join(dirname(path), `.${basename(path)}.${randomBytes(8).toString('hex')}.tmp`);
}

/**
 * Writes `data` to `path` whole or not at all: into a new file beside it (O_EXCL, so never through a link planted at
 * the temporary name), flushed to disk, then renamed over `path`. A rename replaces a symlink at `path` instead of
 * following it; a reader (or another hard link) sees the old file or the new one, never a half-written one. The one
 * way ksctl writes a file: outputs ({@link writeOutputFile}) and the 0600 token cache (client.ts `writeCache`).
 */
export function replaceFile(path: string, data: string | Buffer, mode: number): void {
  const tmp = temporaryBeside(path);
  try {
    const fd = openSync(tmp, 'wx', mode);
    try {
      const bytes = typeof data === 'string' ? Buffer.from(data) : data;
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** An output the user asked for: its path checked ({@link checkOutputPath}), then {@link replaceFile}. */
export function writeOutputFile(path: string, data: string | Buffer, option: string): void {
  checkOutputPath(path, option);
  replaceFile(path, data, 0o666);
}

/**
 * A stream for a large output (the audit export, a CMS signature): into a new temporary file beside `path` (O_EXCL);
 * `commit` renames it over `path` once the stream is whole, `discard` removes it.
 */
export function outputStream(path: string, option: string): { stream: WriteStream; commit: () => void; discard: () => void } {
  checkOutputPath(path, option);
  const tmp = temporaryBeside(path);
  const stream = createWriteStream(tmp, { flags: 'wx', mode: 0o666, flush: true });
  openTemporaries.add(tmp);
  return {
    stream,
    commit: () => {
      renameSync(tmp, path);
      openTemporaries.delete(tmp);
    },
    discard: () => {
      rmSync(tmp, { force: true });
      openTemporaries.delete(tmp);
    },
  };
}

/** Temporary files of {@link outputStream}s neither committed nor discarded yet. */
const openTemporaries = new Set<string>();

/**
 * Removes every temporary file still open: for an exit that does not unwind (the deadline's watchdog), so no partial
 * file stays beside an output. ({@link replaceFile} is synchronous: its temporary never outlives the call.)
 */
export function discardOpenTemporaries(): void {
  for (const tmp of openTemporaries) rmSync(tmp, { force: true });
  openTemporaries.clear();
}
