// hosts.toml TLS and headers against a real HTTPS mirror: an HTTPS front (node https, a CA made
// with openssl, client certificates required) to a real registry. `ca`, `client`, `header` and
// `skip_verify` decide whether the mirror is usable; when it is not, reads go to the server.
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:https';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type RunningRegistry } from '@clip/testkit';
import type { Digest } from '@clip/shared';
import { openImageSource } from '../src/open.js';
import type { MirroredSource } from '../src/hosts/mirrored-source.js';
import { blobBytes, buildLayout, filesLayer, type BuiltLayout } from '@clip/testkit';

const run = promisify(execFile);

let work: string;
let registry: RunningRegistry;
let front: Server;
let frontPort: number;
let built: BuiltLayout[];
const seen: Array<{ header: string | undefined; clientCert: boolean; url: string }> = [];

async function openssl(args: string[]): Promise<void> {
  await run('openssl', args, { cwd: work });
}

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'clip-mirror-tls-'));
  await openssl([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    '-days',
    '2',
    '-subj',
    '/CN=clip test CA',
  ]);
  for (const [name, ext] of [
    ['server', 'subjectAltName=IP:127.0.0.1'],
    ['client', 'extendedKeyUsage=clientAuth'],
  ] as const) {
    await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
    await writeFile(join(work, `${name}.ext`), `${ext}\n`);
    await openssl([
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.cert`,
      '-days',
      '2',
      '-extfile',
      `${name}.ext`,
    ]);
  }
  registry = await startRegistry();
  built = [
    await buildLayout(join(work, 'layout'), {
      tag: 'v1',
      layers: [filesLayer({ 'big.bin': { generate: 'random', size: 400_000, seed: 5 } }, 'none')],
    }),
  ];
  await run('skopeo', [
    'copy',
    '--quiet',
    '--preserve-digests',
    '--dest-tls-verify=false',
    `oci:${join(work, 'layout')}:v1`,
    `docker://${registry.host}/tls/img:v1`,
  ]);

  const ca = await readFile(join(work, 'ca.crt'));
  front = createServer(
    {
      key: await readFile(join(work, 'server.key')),
      cert: await readFile(join(work, 'server.cert')),
      ca,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (req, res) => {
      const header = req.headers['x-mirror-token'];
      seen.push({
        header: typeof header === 'string' ? header : undefined,
        clientCert: (req.socket as TLSSocket).authorized,
        url: req.url ?? '',
      });
      if (header !== 'fleet-a') {
        res.writeHead(403).end();
        return;
      }
      const upstream = httpRequest(
        { hostname: '127.0.0.1', port: registry.port, method: req.method, path: req.url, headers: req.headers },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
        },
      );
      upstream.on('error', () => res.destroy());
      req.pipe(upstream);
    },
  );
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  frontPort = (front.address() as AddressInfo).port;
}, 60_000);

afterAll(async () => {
  front?.closeAllConnections();
  await new Promise((resolve) => front?.close(resolve));
  await registry?.stop();
  await rm(work, { recursive: true, force: true });
});

async function hostsDir(name: string, entry: string[]): Promise<string> {
  const dir = join(work, name, `127.0.0.1_${registry.port}_`);
  await mkdir(dir, { recursive: true });
  for (const file of ['ca.crt', 'client.cert', 'client.key']) await writeFile(join(dir, file), await readFile(join(work, file)));
  await writeFile(
    join(dir, 'hosts.toml'),
    [`server = "http://${registry.host}"`, `[host."https://127.0.0.1:${frontPort}"]`, ...entry.map((l) => `  ${l}`)].join('\n'),
  );
  return join(work, name);
}

async function readThrough(dir: string): Promise<ReturnType<MirroredSource['hostStats']>> {
  const source = (await openImageSource(`${registry.host}/tls/img:v1`, { hostsDir: dir, retries: 0 })) as MirroredSource;
  try {
    const layer = built[0]!.images[0]!.layers[0]!;
    await source.resolve();
    const bytes = await source.readBlobRange(layer.digest as Digest, 1000, 300_000);
    expect(bytes.equals(blobBytes(layer).subarray(1000, 300_000))).toBe(true);
    return source.hostStats();
  } finally {
    await source.close();
  }
}

describe('HTTPS mirror configured by hosts.toml', () => {
  it('ca (relative path), client [cert, key] and header make the mirror usable', async () => {
    const before = seen.length;
    const [m, s] = await readThrough(
      await hostsDir('full', [
        'ca = "ca.crt"',
        'client = [["client.cert", "client.key"]]',
        `[host."https://127.0.0.1:${frontPort}".header]`,
        '  x-mirror-token = "fleet-a"',
      ]),
    );
    expect(m).toMatchObject({ rangesHonoured: 1, fallbacks: 0 });
    expect(s!.rangeRequests).toBe(0);
    const requests = seen.slice(before);
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.every((r) => r.clientCert && r.header === 'fleet-a')).toBe(true);
    expect(requests.every((r) => r.url.includes(`ns=127.0.0.1%3A${registry.port}`))).toBe(true);
  });

  it('without the CA the mirror is not trusted; skip_verify trusts it; a missing header gets 403: each time reads fall back or go through as they should', async () => {
    const noCa = await readThrough(
      await hostsDir('no-ca', [
        'client = [["client.cert", "client.key"]]',
        `[host."https://127.0.0.1:${frontPort}".header]`,
        '  x-mirror-token = "fleet-a"',
      ]),
    );
    expect(noCa[0]!.rangesHonoured).toBe(0);
    expect(noCa[1]!.rangesHonoured).toBe(1);

    const skip = await readThrough(
      await hostsDir('skip', [
        'skip_verify = true',
        'client = [["client.cert", "client.key"]]',
        `[host."https://127.0.0.1:${frontPort}".header]`,
        '  x-mirror-token = "fleet-a"',
      ]),
    );
    expect(skip[0]!.rangesHonoured).toBe(1);

    const noHeader = await readThrough(await hostsDir('no-header', ['ca = "ca.crt"', 'client = [["client.cert", "client.key"]]']));
    expect(noHeader[0]!.rangesHonoured).toBe(0);
    expect(noHeader[0]!.errors).toBeGreaterThanOrEqual(1);
    expect(noHeader[1]!.rangesHonoured).toBe(1);
  });

  it('a CA file that does not exist is a hosts config error naming the file', async () => {
    const dir = await hostsDir('missing-ca', ['ca = "nope.crt"']);
    await expect(openImageSource(`${registry.host}/tls/img:v1`, { hostsDir: dir })).rejects.toThrow(
      new RegExp(
        `bad registry hosts file .*127\\.0\\.0\\.1_${registry.port}_/hosts\\.toml: cannot read CA certificate .*nope\\.crt: ENOENT`,
      ),
    );
  });
});
