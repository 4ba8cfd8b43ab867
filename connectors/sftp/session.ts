// One SFTP session over ssh2: the host key checked against the pin during the key exchange (before any
// credential is sent), the login by password or key from Secrets, and the few SFTP requests the Source
// and Destination make, as promises. Every failure becomes a SynclineError naming the server, never a secret.
import { posix } from 'node:path';
import { Client, type ConnectConfig, type FileEntryWithStats, type SFTPWrapper, type Stats } from 'ssh2';
import { SynclineError, isSynclineError } from '../../core/errors.ts';
import { redact } from '../../core/redact.ts';
import type { ConnectorContext } from '../../core/connectors.ts';
import type { SourceSpec } from '../../crds/index.ts';
import { NETWORK_ERROR_CODES } from '../shared/net-errors.ts';
import { hostKeyMismatch, hostVerifier, parseHostKey } from './host-key.ts';

/** The connection settings of an sftp Source or Destination. */
export type SftpConnectionSettings = Pick<
  NonNullable<SourceSpec['sftp']>,
  'host' | 'port' | 'user' | 'password' | 'privateKey' | 'privateKeyPassphrase' | 'hostKey' | 'timeoutSeconds'
>;

export type Side = 'source' | 'destination';

/** SFTP status codes (draft-ietf-secsh-filexfer-02), as ssh2 sets them on an error's code. */
export const SFTP_NO_SUCH_FILE = 2;
export const SFTP_PERMISSION_DENIED = 3;

export interface SftpSession {
  /** sftp://user@host:port, for messages. */
  where: string;
  readdir(path: string): Promise<FileEntryWithStats[]>;
  stat(path: string): Promise<Stats>;
  /** Download to a local file, a few requests in flight (bounded memory). */
  download(remote: string, local: string): Promise<void>;
  /** Upload a local file, replacing the remote one. */
  upload(local: string, remote: string): Promise<void>;
  /** Rename, replacing the target atomically when the server has OpenSSH's posix-rename extension. */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Whether the server offers posix-rename@openssh.com (an atomic rename over an existing file). */
  atomicReplace: boolean;
  close(): void;
}

/** A remote path as messages name it: sftp://user@host:port/absolute, or .../relative-to-login. */
export function remoteName(where: string, path: string): string {
  const clean = posix.normalize(path);
  return clean.startsWith('/') ? `${where}${clean}` : `${where}/${clean}`;
}

function connectionError(side: Side, where: string, message: string, cause: unknown): SynclineError {
  return new SynclineError(
    side === 'source' ? 'SourceConnectionFailed' : 'DestinationConnectionFailed',
    `${where}: ${message}`,
    {
      cause,
    },
  );
}

/** An ssh2 connection error as a reason: the login refused, the server unreachable, or another failure. */
function loginError(
  side: Side,
  settings: SftpConnectionSettings,
  where: string,
  error: Error & { level?: string; code?: string },
): SynclineError {
  const method = settings.privateKey
    ? `key (privateKey Secret "${settings.privateKey.secretKeyRef.name}")`
    : `password (password Secret "${settings.password?.secretKeyRef.name}")`;
  if (error.level === 'client-authentication') {
    return new SynclineError(
      'AuthenticationFailed',
      `${where} refused the login of user "${settings.user}" by ${method}: check the user, the Secret, and the server's authorized_keys or password`,
      { cause: error },
    );
  }
  if (error.level === 'client-timeout' || (error.code !== undefined && NETWORK_ERROR_CODES.has(error.code))) {
    const reason = side === 'source' ? 'SourceUnreachable' : 'DestinationUnreachable';
    return new SynclineError(reason, `cannot reach the SSH server ${where}: ${error.message}`, {
      cause: error,
    });
  }
  if (/privateKey|passphrase|private key/i.test(error.message)) {
    return new SynclineError(
      'InvalidCredentials',
      `the privateKey Secret "${settings.privateKey?.secretKeyRef.name}" does not hold a usable private key (${error.message.replace(/:.*$/, '')}): ` +
        'it needs an OpenSSH or PEM private key, and privateKeyPassphrase when the key is encrypted',
      { cause: error },
    );
  }
  return connectionError(side, where, error.message, error);
}

function promised<T>(run: (done: (error: Error | undefined | null, value?: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) =>
    run((error, value) => (error ? reject(error) : resolve(value as T))),
  );
}

function wrap(
  client: Client,
  sftp: SFTPWrapper,
  where: string,
  timeoutMs: number,
  onClose: () => void,
): SftpSession {
  const guard = <T>(what: string, work: Promise<T>): Promise<T> => {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        client.end();
        reject(new Error(`${what} got no answer from ${where} within ${timeoutMs / 1000} s`));
      }, timeoutMs);
    });
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  };
  const extensions = (sftp as unknown as { _extensions?: Record<string, string> })._extensions ?? {};
  const atomicReplace = extensions['posix-rename@openssh.com'] !== undefined;
  return {
    where,
    atomicReplace,
    readdir: (path) =>
      guard(
        `listing ${path}`,
        promised((done) => sftp.readdir(path, done)),
      ),
    stat: (path) =>
      guard(
        `stat ${path}`,
        promised((done) => sftp.stat(path, done)),
      ),
    // fastGet/fastPut keep at most `concurrency` chunks of `chunkSize` in memory (2 MiB): bounded, yet
    // enough in flight for a link with latency (ssh2's own default).
    download: (remote, local) =>
      promised((done) => sftp.fastGet(remote, local, { concurrency: 64, chunkSize: 32_768 }, (e) => done(e))),
    upload: (local, remote) =>
      promised((done) => sftp.fastPut(local, remote, { concurrency: 64, chunkSize: 32_768 }, (e) => done(e))),
    rename: (from, to) =>
      guard(
        `rename ${from}`,
        promised((done) =>
          atomicReplace
            ? sftp.ext_openssh_rename(from, to, (e) => done(e))
            : sftp.rename(from, to, (e) => done(e)),
        ),
      ),
    unlink: (path) =>
      guard(
        `remove ${path}`,
        promised((done) => sftp.unlink(path, (e) => done(e))),
      ),
    close: () => {
      onClose();
      client.end();
    },
  };
}

/** Log in and open the SFTP subsystem. */
export async function openSession(
  settings: SftpConnectionSettings,
  ctx: ConnectorContext,
  side: Side,
): Promise<SftpSession> {
  const where = `sftp://${settings.user}@${settings.host}:${settings.port ?? 22}`;
  const pin = parseHostKey(settings.hostKey);
  const verifier = hostVerifier(pin);
  const secrets: string[] = [];
  const secret = (ref: { secretKeyRef: { name: string; key: string } } | undefined) => {
    if (!ref) return undefined;
    const value = ctx.secrets(ref.secretKeyRef);
    secrets.push(value);
    return value;
  };
  const timeoutMs = (settings.timeoutSeconds ?? 30) * 1000;
  const config: ConnectConfig = {
    host: settings.host,
    port: settings.port ?? 22,
    username: settings.user,
    password: secret(settings.password),
    privateKey: secret(settings.privateKey),
    passphrase: secret(settings.privateKeyPassphrase),
    readyTimeout: timeoutMs,
    keepaliveInterval: 15_000,
    hostVerifier: (key: Buffer) => verifier.verify(key),
    ...(pin.algorithms ? { algorithms: { serverHostKey: pin.algorithms } } : {}),
    // Only the method the resource configures: no agent, no keyboard-interactive fallback.
    tryKeyboard: false,
  };
  const client = new Client();
  // The run's stop ends the connection: a download or upload in flight then fails at once.
  const abort = () => client.end();
  ctx.signal.addEventListener('abort', abort, { once: true });
  const stopListening = () => ctx.signal.removeEventListener('abort', abort);
  let failed: (error: Error) => void = () => {};
  // Always listened to: an 'error' event without a listener would end the process.
  client.on('error', (error) => {
    failed(error);
    ctx.log.debug({ where, err: redact(error.message, secrets) }, 'SSH connection error');
  });
  try {
    await new Promise<void>((resolve, reject) => {
      failed = reject;
      client.once('ready', resolve);
      client.once('close', () => reject(new Error('the server closed the connection')));
      client.connect(config);
    });
    const sftp = await promised<SFTPWrapper>((done) => client.sftp(done));
    return wrap(client, sftp, where, timeoutMs, stopListening);
  } catch (error) {
    stopListening();
    client.end();
    ctx.signal.throwIfAborted();
    const seen = verifier.mismatch();
    if (seen) throw hostKeyMismatch(where, pin, seen);
    if (isSynclineError(error)) throw error;
    const plain = error instanceof Error ? error : new Error(String(error));
    plain.message = redact(plain.message, secrets);
    throw loginError(side, settings, where, plain);
  }
}

/** An SFTP request's failure as a reason: a missing path, a permission, or the connection. */
export function requestError(side: Side, where: string, what: string, error: unknown): SynclineError {
  if (isSynclineError(error)) return error;
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  if (code === SFTP_NO_SUCH_FILE)
    return new SynclineError('PathNotFound', `${what} does not exist on ${where}`, { cause: error });
  if (code === SFTP_PERMISSION_DENIED) {
    return new SynclineError(
      side === 'source' ? 'PermissionDenied' : 'PathNotWritable',
      `${where} denied ${what}: permission denied`,
      {
        cause: error,
      },
    );
  }
  return connectionError(side, where, `${what} failed: ${message}`, error);
}
