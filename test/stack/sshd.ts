// A throwaway OpenSSH server (Debian's openssh-server) for the sftp connector's tests: unprivileged, on a
// free loopback port, with host keys, client keys and a served folder of its own, removed on stop.
import {
  existsSync,
  mkdtempSync,
  rmSync,
  chmodSync,
  chownSync,
  mkdirSync,
  readFileSync,
  writeFileSync,
} from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { Socket } from 'node:net';
import { freePort, run, startProcess, waitFor, type ManagedProcess } from './process.ts';
import { VERSIONS } from './versions.ts';

const SERVER = '/usr/sbin/sshd';

export interface SshKey {
  /** The private key in OpenSSH format. */
  privateKey: string;
  /** The `authorized_keys` / `known_hosts` line: type, base64 blob, comment. */
  publicKey: string;
  /** As `ssh-keygen -lf` prints it: `256 SHA256:... comment (ED25519)`. */
  fingerprintLine: string;
  /** Just `SHA256:...`. */
  fingerprint: string;
}

export interface SshServer {
  host: string;
  port: number;
  /** The user to log in as (the user sshd runs as: keys only, see startSshd). */
  user: string;
  /** The folder the SFTP session starts in (the login's working directory), on local disk. */
  root: string;
  hostKeys: { ed25519: SshKey; ecdsa: SshKey };
  /** An authorized client key without a passphrase, and one with (`passphrase`). */
  clientKey: SshKey;
  encryptedClientKey: SshKey & { passphrase: string };
  /** A key that is not authorized. */
  strangerKey: SshKey;
  /** Write a file under root (folders made as needed), owned by the server's user. */
  writeFile(path: string, data: string | Uint8Array): void;
  /** Make a folder under root, owned by the server's user. */
  mkdir(path: string): void;
  /** What sshd logged so far (LogLevel VERBOSE: connections, accepted and failed logins). */
  log(): string;
  stop(): Promise<void>;
}

interface SshdVersion {
  debianPackage: string;
}

function sshdVersion(): SshdVersion {
  const entry = (VERSIONS as unknown as { sshd?: SshdVersion }).sshd;
  if (!entry) throw new Error('test/stack/versions.json has no "sshd" entry');
  return entry;
}

/** Install OpenSSH's server from Debian's packages when the machine does not have it yet. */
export async function ensureSshdInstalled(): Promise<void> {
  if (existsSync(SERVER)) return;
  const { debianPackage } = sshdVersion();
  if (process.getuid?.() !== 0)
    throw new Error(`sshd is not installed: sudo apt-get install ${debianPackage}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  await run('apt-get', ['update', '-q'], { env });
  await run('apt-get', ['install', '-y', '-q', '--no-install-recommends', debianPackage], { env });
}

async function makeKey(
  dir: string,
  name: string,
  type: 'ed25519' | 'ecdsa',
  passphrase = '',
): Promise<SshKey> {
  const file = join(dir, name);
  await run('ssh-keygen', ['-q', '-t', type, '-N', passphrase, '-C', `syncline-test-${name}`, '-f', file]);
  // execFileSync, not run(): run resolves on exit, possibly before the output was read.
  const fingerprintLine = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${file}.pub`], {
    encoding: 'utf8',
  }).trim();
  return {
    privateKey: readFileSync(file, 'utf8'),
    publicKey: readFileSync(`${file}.pub`, 'utf8').trim(),
    fingerprintLine,
    fingerprint: /SHA256:[A-Za-z0-9+/]+/.exec(fingerprintLine)?.[0] ?? '',
  };
}

function config(dir: string, port: number, root: string): string {
  return [
    `Port ${port}`,
    'ListenAddress 127.0.0.1',
    `HostKey ${join(dir, 'host_ed25519')}`,
    `HostKey ${join(dir, 'host_ecdsa')}`,
    `PidFile ${join(dir, 'sshd.pid')}`,
    `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
    // The folder is a temporary one, not a home with the modes StrictModes wants.
    'StrictModes no',
    // A non-root sshd can only log in the user it runs as, by key: it cannot read /etc/shadow. PAM
    // stands in for the account check (a user such as nobody has a locked password, which sshd's own
    // check refuses even for keys).
    'UsePAM yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    'PubkeyAuthentication yes',
    'PrintMotd no',
    `Subsystem sftp internal-sftp -d ${root}`,
    `ForceCommand internal-sftp -d ${root}`,
    'AllowTcpForwarding no',
    'X11Forwarding no',
    'PermitTTY no',
    'LogLevel VERBOSE',
    '',
  ].join('\n');
}

/** Whether the server sent its SSH identification line. */
async function greets(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('SSH-2.0-'));
    });
    socket.once('error', reject);
    socket.connect(port, '127.0.0.1');
  });
}

/**
 * sshd on a free loopback port, serving SFTP (internal-sftp) from a temporary folder. As root it runs as
 * `nobody` (runuser), otherwise as the current user: either way unprivileged, so logins are by key only,
 * as the user it runs as. Password authentication needs root (or PAM reading /etc/shadow) and is not offered.
 */
export async function startSshd(): Promise<SshServer> {
  await ensureSshdInstalled();
  const asRoot = process.getuid?.() === 0;
  const user = asRoot ? 'nobody' : userInfo().username;
  const ids = asRoot ? (await run('id', ['-u', user])).stdout.trim() : String(process.getuid?.() ?? 0);
  const gids = asRoot ? (await run('id', ['-g', user])).stdout.trim() : String(process.getgid?.() ?? 0);
  const own = (path: string) => asRoot && chownSync(path, Number(ids), Number(gids));
  const dir = mkdtempSync(join(tmpdir(), 'syncline-sshd-'));
  chmodSync(dir, 0o755);
  const root = join(dir, 'root');
  mkdirSync(root);
  const [ed25519, ecdsa, clientKey, encrypted, strangerKey] = await Promise.all([
    makeKey(dir, 'host_ed25519', 'ed25519'),
    makeKey(dir, 'host_ecdsa', 'ecdsa'),
    makeKey(dir, 'client', 'ed25519'),
    makeKey(dir, 'client_encrypted', 'ecdsa', 'syncline-passphrase'),
    makeKey(dir, 'stranger', 'ed25519'),
  ]);
  writeFileSync(join(dir, 'authorized_keys'), `${clientKey.publicKey}\n${encrypted.publicKey}\n`);
  const port = await freePort();
  writeFileSync(join(dir, 'sshd_config'), config(dir, port, root));
  for (const file of ['', 'root', 'host_ed25519', 'host_ecdsa', 'authorized_keys', 'sshd_config'])
    own(join(dir, file));
  const args = ['-D', '-e', '-f', join(dir, 'sshd_config')];
  const server: ManagedProcess = asRoot
    ? startProcess(`sshd-${port}`, 'runuser', ['-u', user, '--', SERVER, ...args], {
        logDir: join(dir, 'log'),
      })
    : startProcess(`sshd-${port}`, SERVER, args, { logDir: join(dir, 'log') });
  await waitFor(
    'sshd',
    async () => {
      if (server.exited())
        throw new Error(`sshd exited:\n${readFileSync(server.logFile, 'utf8').slice(-2000)}`);
      return greets(port);
    },
    { timeoutMs: 30_000 },
  );
  const mkdirOwned = (path: string) => {
    const parts = path.split('/').filter((p) => p !== '');
    let at = root;
    for (const part of parts) {
      at = join(at, part);
      if (!existsSync(at)) mkdirSync(at);
      own(at);
    }
  };
  return {
    host: '127.0.0.1',
    port,
    user,
    root,
    hostKeys: { ed25519, ecdsa },
    clientKey,
    encryptedClientKey: { ...encrypted, passphrase: 'syncline-passphrase' },
    strangerKey,
    writeFile(path, data) {
      const target = join(root, path);
      mkdirOwned(dirname(path));
      writeFileSync(target, data);
      own(target);
    },
    mkdir: mkdirOwned,
    log: () => readFileSync(server.logFile, 'utf8'),
    async stop() {
      await server.stop(5_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
