import { hostname } from 'node:os';
import { z } from 'zod';
import { SynclineError, isSynclineError } from '../errors.ts';
import type { BlobStore } from '../storage/index.ts';

/**
 * The run lease of one Sync: `<namespace>/<sync>/lease.json`, taken with a conditional write before a run
 * writes anything or sends a request, renewed while it delivers, released when it ends. Two runs of one
 * Sync therefore never deliver at the same time, and a store the runner cannot write is found before the
 * first request. A lease whose holder died ends at `expiresAt`; a holder on this host whose process is
 * gone (the embedded CLI, killed) is taken over at once.
 */
export const leaseSchema = z.object({
  holder: z.string().min(1),
  host: z.string(),
  pid: z.number().int(),
  acquiredAt: z.string(),
  expiresAt: z.string(),
});
export type LeaseRecord = z.infer<typeof leaseSchema>;

/** How long a lease lasts without renewal; renewed every third of it. */
export const LEASE_TTL_MS = 120_000;

export interface LeaseOptions {
  ttlMs?: number;
  now?: () => number;
  /** Whether process `pid` on this host still runs (tests replace it). */
  alive?: (pid: number) => boolean;
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class RunLease {
  private etag: string;
  private readonly record: LeaseRecord;
  private timer: NodeJS.Timeout | undefined;
  private lost: SynclineError | undefined;
  /** When the lease ends unless renewed (the last renewal that the store took). */
  private expiresAtMs: number;

  private readonly blob: BlobStore;
  private readonly path: string;
  private readonly ttlMs: number;
  private readonly now: () => number;

  private constructor(
    blob: BlobStore,
    path: string,
    ttlMs: number,
    now: () => number,
    record: LeaseRecord,
    etag: string,
  ) {
    this.blob = blob;
    this.path = path;
    this.ttlMs = ttlMs;
    this.now = now;
    this.record = record;
    this.etag = etag;
    this.expiresAtMs = Date.parse(record.expiresAt);
  }

  /** Take the lease for run `holder`, or throw LeaseHeld (transient) naming the run that holds it. */
  static async acquire(
    blob: BlobStore,
    folder: string,
    holder: string,
    options: LeaseOptions = {},
  ): Promise<RunLease> {
    const ttlMs = options.ttlMs ?? LEASE_TTL_MS;
    const now = options.now ?? Date.now;
    const alive = options.alive ?? processAlive;
    const path = `${folder}lease.json`;
    const found = await blob.get(path);
    const current = found ? parseLease(found.body) : undefined;
    const host = hostname();
    if (found && current && current.holder !== holder) {
      const expired = Date.parse(current.expiresAt) <= now();
      const deadHere = current.host === host && current.pid !== process.pid && !alive(current.pid);
      if (!expired && !deadHere) {
        throw new SynclineError(
          'LeaseHeld',
          `run ${current.holder} (on ${current.host}) holds the run lease ${blob.url}/${path} until ${current.expiresAt}: ` +
            'one run of a Sync delivers at a time; this run starts again once that run ends or its lease expires',
          { retryable: true },
        );
      }
    }
    const record: LeaseRecord = {
      holder,
      host,
      pid: process.pid,
      acquiredAt: new Date(now()).toISOString(),
      expiresAt: new Date(now() + ttlMs).toISOString(),
    };
    const cond = found ? { ifMatch: found.etag } : ({ ifNoneMatch: '*' } as const);
    let etag: string;
    try {
      ({ etag } = await blob.put(path, JSON.stringify(record) + '\n', cond));
    } catch (error) {
      if (isSynclineError(error) && error.reason === 'PreconditionFailed') {
        throw new SynclineError(
          'LeaseHeld',
          `another run of this Sync took the run lease ${blob.url}/${path} at the same moment; this run starts again later`,
          { retryable: true },
        );
      }
      throw writeCheck(blob, path, error);
    }
    return new RunLease(blob, path, ttlMs, now, record, etag);
  }

  /** Renew every third of the lease's life until released; a lost lease is reported by `check()`. */
  keepAlive(): void {
    // A failed renewal is retried on the next tick; check() reports the lease lost once it has expired.
    this.timer = setInterval(() => void this.renew().catch(() => undefined), this.ttlMs / 3);
    this.timer.unref();
  }

  /** Throws LeaseLost when another run took the lease (this one was paused past its expiry). */
  check(): void {
    if (this.lost) throw this.lost;
    if (this.now() >= this.expiresAtMs) {
      throw new SynclineError(
        'LeaseLost',
        `the run lease ${this.blob.url}/${this.path} could not be renewed before it expired (the diff store did not take the writes): ` +
          'this run stopped so that another cannot deliver beside it; what it delivered is sent again by the next run',
        { retryable: true },
      );
    }
  }

  async renew(): Promise<void> {
    if (this.lost) throw this.lost;
    const expiresAtMs = this.now() + this.ttlMs;
    const record = { ...this.record, expiresAt: new Date(expiresAtMs).toISOString() };
    try {
      ({ etag: this.etag } = await this.blob.put(this.path, JSON.stringify(record) + '\n', {
        ifMatch: this.etag,
      }));
      this.expiresAtMs = expiresAtMs;
    } catch (error) {
      if (isSynclineError(error) && error.reason === 'PreconditionFailed') {
        this.lost = new SynclineError(
          'LeaseLost',
          `the run lease ${this.blob.url}/${this.path} was taken by another run while this one was delivering ` +
            '(it was not renewed in time): this run stopped, and what it delivered is sent again by the next run',
        );
        throw this.lost;
      }
      throw error;
    }
  }

  /** End the lease (an expired record, so that the next run need not wait). Never throws. */
  async release(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.lost) return;
    const record = { ...this.record, expiresAt: new Date(0).toISOString() };
    await this.blob
      .put(this.path, JSON.stringify(record) + '\n', { ifMatch: this.etag })
      .catch(() => undefined); // it expires by itself; nothing depends on the release
  }
}

function parseLease(body: Buffer): LeaseRecord | undefined {
  try {
    const parsed = leaseSchema.safeParse(JSON.parse(body.toString('utf8')));
    return parsed.success ? parsed.data : undefined; // an unreadable lease is taken over
  } catch {
    return undefined;
  }
}

/** A failed first write: the store is read-only, or the credentials may not write. */
function writeCheck(blob: BlobStore, path: string, error: unknown): SynclineError {
  const detail = isSynclineError(error) ? error.message : String(error);
  const reason = isSynclineError(error) ? error.reason : 'StorageError';
  return new SynclineError(
    reason === 'StorageAccessDenied' ? 'DiffStoreNotWritable' : reason,
    `cannot write the run lease ${blob.url}/${path}, so nothing was sent: the diff store must be writable by the runner (${detail})`,
    { cause: error, retryable: isSynclineError(error) ? error.retryable : false },
  );
}
