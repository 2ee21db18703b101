// The bench's setup for the eStargz peer: Debian packages installed on demand (not part of
// scripts/bootstrap.sh: only the benchmark needs them), then our small Go main
// (apps/bench/go/stargz-grpc) built offline from Debian's stargz-snapshotter 0.12 sources in
// GOPATH mode, once, into the image cache. Any failure skips the peer with one line.
import { createHash } from 'node:crypto';
import { access, mkdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cacheRoot } from '../images/cache.js';
import { run } from '../util/exec.js';

/** Debian packages the peer needs beyond the bench's own (ctr-remote comes with stargz-snapshotter). */
export const STARGZ_PACKAGES = ['golang-go', 'golang-github-containerd-stargz-snapshotter-dev', 'stargz-snapshotter', 'containerd', 'runc'];
const GOCODE = '/usr/share/gocode';
const STARGZ_SOURCES = join(GOCODE, 'src/github.com/containerd/stargz-snapshotter/fs');
const SOURCE_DIR = fileURLToPath(new URL('../../go/stargz-grpc/', import.meta.url));

export type PeerSetup = { binary: string } | { skip: string };

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function commandsPresent(): Promise<boolean> {
  const found = await run(
    'sh',
    ['-c', 'command -v go && command -v ctr && command -v ctr-remote && command -v containerd && command -v runc'],
    { allowFailure: true },
  );
  return found.code === 0 && (await exists(STARGZ_SOURCES));
}

async function installPackages(log: (message: string) => void): Promise<string | undefined> {
  if (await commandsPresent()) return undefined;
  if (process.getuid?.() !== 0) return `packages missing (${STARGZ_PACKAGES.join(' ')}) and not root`;
  log(`eStargz peer: apt-get install ${STARGZ_PACKAGES.join(' ')}`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  let result = await run('apt-get', ['install', '-y', '--no-install-recommends', ...STARGZ_PACKAGES], {
    env,
    allowFailure: true,
    timeoutMs: 20 * 60_000,
  });
  if (result.code !== 0) {
    await run('apt-get', ['update'], { env, allowFailure: true, timeoutMs: 10 * 60_000 });
    result = await run('apt-get', ['install', '-y', '--no-install-recommends', ...STARGZ_PACKAGES], {
      env,
      allowFailure: true,
      timeoutMs: 20 * 60_000,
    });
  }
  if (result.code !== 0) return `apt-get install failed: ${result.stderr.trim().split('\n').at(-1) ?? ''}`;
  return (await commandsPresent()) ? undefined : 'Go toolchain, stargz-snapshotter sources or containerd tools still missing after apt-get';
}

/** Returns the cached daemon binary, building it first if the source or Go changed; never throws. */
export async function ensureStargzDaemon(log: (message: string) => void): Promise<PeerSetup> {
  try {
    return await setUp(log);
  } catch (error) {
    return { skip: `eStargz peer skipped: ${(error as Error).message.split('\n')[0]}` };
  }
}

async function setUp(log: (message: string) => void): Promise<PeerSetup> {
  const missing = await installPackages(log);
  if (missing) return { skip: `eStargz peer skipped: ${missing}` };
  const source = await readFile(join(SOURCE_DIR, 'main.go'), 'utf8');
  const goVersion = (await run('go', ['version'])).stdout.trim();
  const key = createHash('sha256').update(source).update(goVersion).digest('hex').slice(0, 12);
  const dir = join(cacheRoot(), 'stargz');
  const binary = join(dir, `stargz-grpc-${key}`);
  if (await exists(binary)) return { binary };
  await mkdir(join(dir, 'gopath'), { recursive: true });
  log(`eStargz peer: building stargz-grpc offline with ${goVersion} (GOPATH mode, nice -n 10)`);
  const temporary = `${binary}.${process.pid}.tmp`;
  const env = { ...process.env, GO111MODULE: 'off', GOPATH: `${join(dir, 'gopath')}:${GOCODE}`, GOFLAGS: '', GOPROXY: 'off' };
  const built = await run('nice', ['-n', '10', 'go', 'build', '-o', temporary, '.'], {
    cwd: SOURCE_DIR,
    env,
    allowFailure: true,
    timeoutMs: 30 * 60_000,
  });
  if (built.code !== 0) {
    const first =
      built.stderr
        .trim()
        .split('\n')
        .find((line) => !line.startsWith('#')) ?? `exit ${built.code}`;
    return { skip: `eStargz peer skipped: stargz-grpc does not build from Debian's sources: ${first}` };
  }
  await rename(temporary, binary);
  return { binary };
}
