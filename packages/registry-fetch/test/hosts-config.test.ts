import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HostsConfigError, hostDirCandidates, loadHostsConfig, parseGoDuration, parseHostsToml } from '../src/hosts/hosts-config.js';
import { resolveHostsDir } from '@clip/shared';

let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'clip-hosts-config-'));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

async function hostsFile(dir: string, text: string): Promise<void> {
  await mkdir(join(root, dir), { recursive: true });
  await writeFile(join(root, dir, 'hosts.toml'), text);
}

describe('containerd hosts.toml', () => {
  it('keeps [host] entries in file order with the server last, as containerd does', () => {
    const hosts = parseHostsToml(
      [
        'server = "https://registry-1.docker.io"',
        '[host."https://zeta.example.com"]',
        '  capabilities = ["pull"]',
        '[host."http://alpha.example.com:5000"]',
        '  capabilities = ["pull", "resolve"]',
        '  ca = "mirror.crt"',
        '  client = [["c.cert", "c.key"], "both.pem"]',
        '  skip_verify = true',
        '  [host."http://alpha.example.com:5000".header]',
        '    x-custom = "1"',
        '    x-list = ["a", "b"]',
      ].join('\n'),
      '/etc/certs.d/docker.io/hosts.toml',
      '/etc/certs.d/docker.io',
    );
    expect(hosts.map((h) => [h.scheme, h.host, h.path, h.isServer])).toEqual([
      ['https', 'zeta.example.com', '/v2', false],
      ['http', 'alpha.example.com:5000', '/v2', false],
      ['https', 'registry-1.docker.io', '/v2', true],
    ]);
    expect(hosts[0]!.capabilities).toEqual(['pull']);
    expect(hosts[1]!.capabilities).toEqual(['pull', 'resolve']);
    // No capabilities: all of them (containerd's default).
    expect(hosts[2]!.capabilities).toEqual(['pull', 'resolve', 'push', 'referrers']);
    expect(hosts[1]!.ca).toEqual(['/etc/certs.d/docker.io/mirror.crt']);
    expect(hosts[1]!.client).toEqual([
      ['/etc/certs.d/docker.io/c.cert', '/etc/certs.d/docker.io/c.key'],
      ['/etc/certs.d/docker.io/both.pem', undefined],
    ]);
    expect(hosts[1]!.skipVerify).toBe(true);
    expect(hosts[1]!.header).toEqual({ 'x-custom': ['1'], 'x-list': ['a', 'b'] });
  });

  it('adds /v2 to host paths unless override_path; a server without scheme is https', () => {
    const hosts = parseHostsToml(
      [
        'server = "registry.example.com:5000"',
        '[host."https://mirror.example.com/cache/docker"]',
        '[host."https://mirror.example.com/v2/exact/path"]',
        '  override_path = true',
        '[host."https://mirror.example.com/already/v2/"]',
      ].join('\n'),
      'f',
      '/',
    );
    expect(hosts.map((h) => `${h.scheme}://${h.host}${h.path}`)).toEqual([
      'https://mirror.example.com/cache/docker/v2',
      'https://mirror.example.com/v2/exact/path',
      'https://mirror.example.com/already/v2',
      'https://registry.example.com:5000/v2',
    ]);
  });

  it('without a server the last entry is the registry itself', () => {
    const hosts = parseHostsToml('[host."http://127.0.0.1:6000"]\n', 'f', '/');
    expect(hosts).toHaveLength(2);
    expect(hosts[1]).toMatchObject({ isServer: true, path: '/v2' });
    expect(hosts[1]!.host).toBeUndefined();
  });

  it('parse errors are typed and name the file', () => {
    const bad = (text: string) => () => parseHostsToml(text, '/x/hosts.toml', '/x');
    expect(bad('server = "a"\n[host."h"\ncapabilities = 1')).toThrow(HostsConfigError);
    expect(bad('server = "a"\n[host."h"\ncapabilities = 1')).toThrow(/bad registry hosts file \/x\/hosts\.toml: not valid TOML \(line 2/);
    expect(bad('[host."https://m"]\ncapabilities = ["pull", "fly"]')).toThrow(
      /\/x\/hosts\.toml: \[host."https:\/\/m"\]: unknown capability "fly"/,
    );
    expect(bad('server = 5')).toThrow(/`server` must be a string/);
    expect(bad('[host."https://m"]\nskip_verify = "yes"')).toThrow(/skip_verify must be true or false/);
    try {
      bad('server = [')();
    } catch (error) {
      expect((error as HostsConfigError).code).toBe('CLIP_E_HOSTS_CONFIG');
    }
  });

  it('finds host_port_ before host:port before _default, and nothing when none exists', async () => {
    expect(hostDirCandidates('/c', '127.0.0.1:5000')).toEqual(['/c/127.0.0.1_5000_', '/c/127.0.0.1:5000', '/c/_default']);
    expect(hostDirCandidates('/c', 'quay.io')).toEqual(['/c/quay.io', '/c/_default']);
    expect(await loadHostsConfig(root, 'nothing.example.com')).toBeUndefined();

    await hostsFile('127.0.0.1:5000', 'server = "http://127.0.0.1:5000"\n[host."http://colon"]\n');
    expect((await loadHostsConfig(root, '127.0.0.1:5000'))!.hosts[0]!.host).toBe('colon');
    await hostsFile('127.0.0.1_5000_', 'server = "http://127.0.0.1:5000"\n[host."http://underscore"]\n');
    expect((await loadHostsConfig(root, '127.0.0.1:5000'))!.hosts[0]!.host).toBe('underscore');
    await hostsFile('_default', '[host."http://default-mirror"]\n');
    const other = await loadHostsConfig(root, 'other.example.com');
    expect(other!.dir).toBe(join(root, '_default'));
    expect(other!.hosts[0]!.host).toBe('default-mirror');
  });

  it("a host dir without hosts.toml uses Docker's certificate files for the registry itself", async () => {
    const dir = join(root, 'certs.example.com');
    await mkdir(dir);
    await writeFile(join(dir, 'ca.crt'), 'x');
    await writeFile(join(dir, 'client.cert'), 'x');
    await writeFile(join(dir, 'client.key'), 'x');
    const loaded = await loadHostsConfig(root, 'certs.example.com');
    expect(loaded!.hosts).toHaveLength(1);
    expect(loaded!.hosts[0]).toMatchObject({
      isServer: true,
      ca: [join(dir, 'ca.crt')],
      client: [[join(dir, 'client.cert'), join(dir, 'client.key')]],
    });
  });

  it('--hosts-dir, then CLIP_HOSTS_DIR, then /etc/containerd/certs.d if it exists; empty turns it off', () => {
    expect(resolveHostsDir('/flag', { CLIP_HOSTS_DIR: '/env' })).toBe('/flag');
    expect(resolveHostsDir('', { CLIP_HOSTS_DIR: '/env' })).toBeUndefined();
    expect(resolveHostsDir(undefined, { CLIP_HOSTS_DIR: '/env' })).toBe('/env');
    expect(resolveHostsDir(undefined, {}, root)).toBe(root);
    expect(resolveHostsDir(undefined, {}, join(root, 'missing'))).toBeUndefined();
  });
});

describe('dial_timeout', () => {
  it('takes Go durations and rejects anything else, naming the file', () => {
    expect(parseGoDuration('500ms')).toBe(500);
    expect(parseGoDuration('1m30s')).toBe(90_000);
    expect(parseGoDuration('1.5s')).toBe(1500);
    expect(parseGoDuration('5')).toBeUndefined();
    expect(parseGoDuration('')).toBeUndefined();
    expect(parseHostsToml('[host."http://m"]\ndial_timeout = "250ms"\n', 'f', '/')[0]!.dialTimeoutMs).toBe(250);
    expect(() => parseHostsToml('[host."http://m"]\ndial_timeout = 3\n', '/d/hosts.toml', '/d')).toThrow(
      /\/d\/hosts\.toml: \[host."http:\/\/m"\]: dial_timeout must be a duration/,
    );
  });
});
