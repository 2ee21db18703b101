// Thin wrappers over the real tools tests compare against: skopeo (copy/inspect between
// OCI layouts and registries) and umoci (reference unpacker). Errors carry the command
// line and the tool's stderr so a failing test says why.
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export interface RunResult {
  stdout: Buffer;
  stderr: string;
}

export class ToolError extends Error {
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(command: string, args: string[], exitCode: number | null, stderr: string) {
    super(`${command} ${args.join(' ')} exited with ${exitCode}: ${stderr.trim()}`);
    this.name = 'ToolError';
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** Runs a command to completion; rejects with ToolError on a non-zero exit. */
export function runTool(command: string, args: string[], options: { input?: Uint8Array; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], cwd: options.cwd });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => (err = (err + chunk.toString()).slice(-100_000)));
    child.once('error', (error) => reject(new Error(`cannot run ${command}: ${error.message}`)));
    child.once('close', (code) => {
      if (code === 0) resolve({ stdout: Buffer.concat(out), stderr: err });
      else reject(new ToolError(command, args, code, err));
    });
    child.stdin.end(options.input);
  });
}

export interface Credentials {
  username: string;
  password: string;
}

export interface SkopeoCopyOptions {
  /** Copy every platform of an index (`--all`). */
  all?: boolean;
  srcCreds?: Credentials;
  destCreds?: Credentials;
  /**
   * `--preserve-digests` (default true): fail rather than change any blob or manifest.
   * Without it skopeo gzips uncompressed layers on a push to a registry.
   */
  preserveDigests?: boolean;
  /** Extra skopeo arguments (e.g. `--dest-compress-format`). */
  extraArgs?: string[];
}

const creds = (c: Credentials) => `${c.username}:${c.password}`;

/** Creates the parent directory of an `oci:<dir>:<tag>` destination, which skopeo does not. */
async function prepareDestination(ref: string): Promise<void> {
  const match = /^oci:([^:]+)/.exec(ref);
  if (match?.[1]) await mkdir(dirname(match[1]), { recursive: true });
}

/**
 * `skopeo copy src dst` with TLS verification off on both sides (loopback registries serve
 * plain HTTP) and no signature policy. References use skopeo transports: `oci:dir:tag`,
 * `docker://127.0.0.1:5000/repo:tag`.
 */
export async function skopeoCopy(src: string, dst: string, options: SkopeoCopyOptions = {}): Promise<void> {
  await prepareDestination(dst);
  const args = ['--insecure-policy', 'copy', '--src-tls-verify=false', '--dest-tls-verify=false', '--retry-times', '0'];
  if (options.all) args.push('--all');
  if (options.preserveDigests ?? true) args.push('--preserve-digests');
  if (options.srcCreds) args.push('--src-creds', creds(options.srcCreds));
  if (options.destCreds) args.push('--dest-creds', creds(options.destCreds));
  args.push(...(options.extraArgs ?? []), src, dst);
  await runTool('skopeo', args);
}

export interface SkopeoInspectOptions {
  creds?: Credentials;
  /** Select a platform of an index (`--override-arch`/`--override-os`). */
  arch?: string;
  os?: string;
}

function inspectArgs(ref: string, options: SkopeoInspectOptions, mode: string[]): string[] {
  const args = ['--insecure-policy'];
  if (options.arch) args.push('--override-arch', options.arch);
  if (options.os) args.push('--override-os', options.os);
  args.push('inspect', '--tls-verify=false', ...mode);
  if (options.creds) args.push('--creds', creds(options.creds));
  args.push(ref);
  return args;
}

/** The exact manifest (or index) bytes as stored (`skopeo inspect --raw`): hash them for the digest. */
export async function skopeoInspectRaw(ref: string, options: SkopeoInspectOptions = {}): Promise<Buffer> {
  return (await runTool('skopeo', inspectArgs(ref, options, ['--raw']))).stdout;
}

/** The image config blob (`skopeo inspect --config`), parsed. */
export async function skopeoInspectConfig(ref: string, options: SkopeoInspectOptions = {}): Promise<unknown> {
  return JSON.parse((await runTool('skopeo', inspectArgs(ref, options, ['--config']))).stdout.toString('utf8'));
}

export interface SkopeoInspectResult {
  Digest: string;
  Layers: string[];
  Architecture: string;
  Os: string;
  [key: string]: unknown;
}

/** `skopeo inspect` summary (digest, layers, platform...), parsed. */
export async function skopeoInspect(ref: string, options: SkopeoInspectOptions = {}): Promise<SkopeoInspectResult> {
  return JSON.parse((await runTool('skopeo', inspectArgs(ref, options, []))).stdout.toString('utf8')) as SkopeoInspectResult;
}

/** Strips a leading `oci:` so both `oci:dir:tag` and `dir:tag` work as umoci image refs. */
function umociImage(layoutRef: string): string {
  return layoutRef.startsWith('oci:') ? layoutRef.slice('oci:'.length) : layoutRef;
}

export interface UmociUnpackOptions {
  /**
   * umoci 0.4.7 (Debian bookworm) rejects zstd layers. When set (default), such an image is
   * first copied by skopeo into a temporary layout with gzip layers (same diff_ids, same
   * unpacked tree) and unpacked from there.
   */
  convertZstd?: boolean;
}

/**
 * `umoci unpack --image <dir:tag> <bundleDir>` (as root: umoci restores owners, modes,
 * xattrs and device nodes). Returns the rootfs path (`<bundleDir>/rootfs`). An existing
 * bundleDir is replaced; remove it when done. For a multi-platform fixture pass the
 * per-platform ref (BuiltImage.umociRef): umoci cannot choose within an index.
 */
export async function umociUnpack(layoutRef: string, bundleDir: string, options: UmociUnpackOptions = {}): Promise<string> {
  await mkdir(dirname(bundleDir), { recursive: true });
  await rm(bundleDir, { recursive: true, force: true });
  const image = umociImage(layoutRef);
  try {
    await runTool('umoci', ['unpack', '--image', image, bundleDir]);
  } catch (error) {
    const zstd = error instanceof ToolError && /not correct mediatype: \S*zstd/.test(error.stderr);
    if (!zstd || options.convertZstd === false) throw error;
    const converted = await mkdtemp(join(tmpdir(), 'clip-umoci-gzip-'));
    try {
      const sep = image.lastIndexOf(':');
      const tag = image.slice(sep + 1);
      await skopeoCopy(`oci:${image}`, `oci:${converted}:${tag}`, {
        preserveDigests: false,
        extraArgs: ['--dest-compress', '--dest-compress-format', 'gzip'],
      });
      await rm(bundleDir, { recursive: true, force: true });
      await runTool('umoci', ['unpack', '--image', `${converted}:${tag}`, bundleDir]);
    } finally {
      await rm(converted, { recursive: true, force: true });
    }
  }
  return join(bundleDir, 'rootfs');
}
