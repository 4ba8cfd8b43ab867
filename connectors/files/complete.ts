// Whether a source file is whole, checked beside DuckDB's read of it: DuckDB reads a cut-off gzip or
// zstd stream up to the cut without an error, and a CSV cut inside its last field still parses.
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { Writable, type Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { SynclineError } from '../../core/errors.ts';
import type { FileFormat } from '../shared/location.ts';

/** A file DuckDB reads: its local path, and the name messages give it (its URL in the Source). */
export interface SourceFile {
  path: string;
  name: string;
}

const UPLOADING = 'it may still be being written or uploaded: run again once it is complete';

/** A file the source cannot read completely and exactly. */
export function unreadable(file: SourceFile, line: number | undefined, problem: string, cause?: unknown) {
  const where = line === undefined ? file.name : `${file.name} line ${line}:`;
  return new SynclineError('SourceFileUnreadable', `${where} ${problem}`, cause ? { cause } : {});
}

function decompressor(path: string): Transform | undefined {
  if (/\.(gz|gzip)$/i.test(path)) return createGunzip();
  if (/\.(zst|zstd)$/i.test(path)) return createZstdDecompress();
  return undefined;
}

/** Stream the file (decompressed) to `sink`; a decompression error is the file's. */
async function streamFile(
  file: SourceFile,
  signal: AbortSignal,
  sink: (chunk: Buffer) => void,
): Promise<void> {
  const unpack = decompressor(file.path);
  const into = new Writable({
    write(chunk: Buffer, _encoding, done) {
      sink(chunk);
      done();
    },
  });
  try {
    if (unpack) await pipeline(createReadStream(file.path), unpack, into, { signal });
    else await pipeline(createReadStream(file.path), into, { signal });
  } catch (error) {
    if (signal.aborted || unpack === undefined) throw error;
    const kind = /\.(gz|gzip)$/i.test(file.path) ? 'gzip' : 'zstd';
    throw unreadable(
      file,
      undefined,
      `is cut off or corrupt (${kind}: ${(error as Error).message}); ${UPLOADING}`,
      error,
    );
  }
}

/** The number of lines of a file (decompressed), the last one counted whether or not it ends in \n. */
async function countLines(file: SourceFile, signal: AbortSignal): Promise<number> {
  let breaks = 0;
  await streamFile(file, signal, (chunk) => {
    for (let at = chunk.indexOf(10); at !== -1; at = chunk.indexOf(10, at + 1)) breaks += 1;
  });
  return breaks + 1;
}

async function lastByteOf(path: string, size: number): Promise<number> {
  const handle = await open(path, 'r');
  try {
    const { buffer } = await handle.read(Buffer.alloc(1), 0, 1, size - 1);
    return buffer[0] ?? -1;
  } finally {
    await handle.close();
  }
}

/**
 * Throw SourceFileUnreadable when the file is empty (0 bytes: no header, no columns, most often a file
 * still being created), a compressed stream is cut off or corrupt, or a CSV does not end with a line
 * break (its last line may be cut off inside a field, which no parser can tell).
 */
export async function assertComplete(file: SourceFile, format: FileFormat, signal: AbortSignal) {
  const { size } = await stat(file.path);
  const empty = `is empty (0 bytes): a file with no rows needs its header line (CSV), or leave it out; ${UPLOADING}`;
  if (size === 0) throw unreadable(file, undefined, empty);
  let last = -1;
  let bytes = 0;
  if (decompressor(file.path)) {
    await streamFile(file, signal, (chunk) => {
      bytes += chunk.length;
      last = chunk[chunk.length - 1] ?? last;
    });
    if (bytes === 0) throw unreadable(file, undefined, empty);
  } else if (format === 'csv') {
    last = await lastByteOf(file.path, size);
  }
  if (format === 'csv' && last !== 10 && last !== 13) {
    throw unreadable(
      file,
      await countLines(file, signal),
      `the file does not end with a line break, so its last line may be cut off; ${UPLOADING}, ` +
        'or end the file with a line break',
    );
  }
}
