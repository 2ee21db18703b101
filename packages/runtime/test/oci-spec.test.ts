// Image config → OCI runtime spec conversion, and user resolution inside an image root.
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildRuntimeSpec, containerArgs, containerEnv, DEFAULT_PATH, parseVolume } from '../src/oci-spec.js';
import { resolveUser } from '../src/users.js';

const root = { uid: 0, gid: 0, additionalGids: [], home: '/root' };
const app = { uid: 1000, gid: 1000, additionalGids: [2000], home: '/home/app' };

describe('image config to runtime spec', () => {
  it('joins Entrypoint and Cmd; a command replaces Cmd, --entrypoint replaces Entrypoint and drops Cmd', () => {
    const config = { entrypoint: ['/entry', '-x'], cmd: ['serve', '--port', '80'] };
    expect(containerArgs(config, {})).toEqual(['/entry', '-x', 'serve', '--port', '80']);
    expect(containerArgs(config, { command: ['shell'] })).toEqual(['/entry', '-x', 'shell']);
    expect(containerArgs(config, { entrypoint: ['/other'] })).toEqual(['/other']);
    expect(containerArgs(config, { entrypoint: [], command: ['id'] })).toEqual(['id']);
    expect(() => containerArgs({}, {})).toThrow(/neither Entrypoint nor Cmd/);
  });

  it("keeps the image's Env, applies -e overrides, defaults PATH, HOME and HOSTNAME", () => {
    expect(containerEnv(['A=1', 'B=2'], ['B=3'], '/home/app', 'box')).toEqual([
      'A=1',
      'B=3',
      `PATH=${DEFAULT_PATH}`,
      'HOSTNAME=box',
      'HOME=/home/app',
    ]);
    expect(containerEnv(['PATH=/opt/bin', 'HOME=/data'], [], '/root', 'box')).toEqual(['PATH=/opt/bin', 'HOME=/data', 'HOSTNAME=box']);
    expect(() => containerEnv([], ['NOEQUALS'], '/', 'box')).toThrow(/expected KEY=VALUE/);
  });

  it('writes user, cwd, annotations, namespaces, mounts and capabilities', () => {
    const config = { cmd: ['sh'], env: ['X=1'], workingDir: '/srv', labels: { a: 'b' }, stopSignal: 'SIGQUIT' };
    const spec = buildRuntimeSpec({
      config,
      options: { volumes: [parseVolume('/host/data:/data:ro')] },
      user: app,
      id: 'abcdef0123456789',
      init: '/usr/bin/tini-static',
    });
    expect(spec.process.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [2000] });
    expect(spec.process.cwd).toBe('/srv');
    expect(spec.process.args).toEqual(['/dev/init', '--', 'sh']);
    expect(spec.hostname).toBe('abcdef012345');
    expect(spec.annotations).toEqual({ a: 'b', 'org.opencontainers.image.stopSignal': 'SIGQUIT' });
    expect(spec.linux.namespaces.map((n) => n.type)).toEqual(['pid', 'ipc', 'uts', 'mount', 'network']);
    expect(spec.mounts.map((m) => m.destination)).toEqual([
      '/proc',
      '/dev',
      '/dev/pts',
      '/dev/shm',
      '/dev/mqueue',
      '/sys',
      '/sys/fs/cgroup',
      '/dev/init',
      '/data',
    ]);
    expect(spec.mounts.at(-1)).toEqual({ destination: '/data', type: 'bind', source: '/host/data', options: ['rbind', 'rprivate', 'ro'] });
    // A non-root user gets no effective capabilities (as with Docker); root gets Docker's set.
    expect(spec.process.capabilities.effective).toEqual([]);
    expect(spec.process.capabilities.bounding).toContain('CAP_NET_BIND_SERVICE');
    const rootSpec = buildRuntimeSpec({ config, options: { network: 'host' }, user: root, id: 'c1' });
    expect(rootSpec.process.capabilities.effective).toContain('CAP_CHOWN');
    expect(rootSpec.process.args).toEqual(['sh']);
    expect(rootSpec.linux.namespaces.map((n) => n.type)).not.toContain('network');
    expect(rootSpec.mounts.map((m) => m.destination)).toContain('/etc/resolv.conf');
  });

  it('rejects malformed image configs (an archive only promises an object)', () => {
    const spec = (config: Record<string, unknown>) => buildRuntimeSpec({ config: config as never, options: {}, user: root, id: 'c' });
    expect(() => spec({ cmd: 'sh -c true' })).toThrow("the image config's cmd is malformed");
    expect(() => spec({ cmd: ['sh'], env: [1] })).toThrow("the image config's env is malformed");
    expect(() => spec({ cmd: ['sh'], labels: { a: 1 } })).toThrow("the image config's labels is malformed");
    expect(() => spec({ cmd: ['sh'], user: 0 })).toThrow("the image config's user is malformed");
  });

  it('rejects malformed volumes and relative working directories', () => {
    expect(() => parseVolume('data:/data')).toThrow(/must be absolute/);
    expect(() => parseVolume('/a:/b:rx')).toThrow(/expected/);
    expect(() => buildRuntimeSpec({ config: { cmd: ['sh'] }, options: { workingDir: 'rel' }, user: root, id: 'c' })).toThrow(
      /must be absolute/,
    );
  });
});

describe('user resolution from the image', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'clip-users-'));
    await mkdir(join(dir, 'etc'), { recursive: true });
    await mkdir(join(dir, 'usr/lib'), { recursive: true });
    // An absolute symlink must resolve inside the image, never to the host's /usr/lib/passwd.
    await writeFile(
      join(dir, 'usr/lib/passwd'),
      'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\nweb:x:33:33::/var/www:/bin/sh\n',
    );
    await symlink('/usr/lib/passwd', join(dir, 'etc/passwd'));
    await writeFile(join(dir, 'etc/group'), 'root:x:0:\napp:x:1000:\nextra:x:2000:app,web\nwww:x:33:\n');
  });
  afterAll(async () => rm(dir, { recursive: true, force: true }));

  it('resolves names, ids and groups like Docker', async () => {
    expect(await resolveUser(dir, undefined)).toEqual({ uid: 0, gid: 0, additionalGids: [], home: '/root' });
    expect(await resolveUser(dir, 'app')).toEqual({ uid: 1000, gid: 1000, additionalGids: [2000], home: '/home/app' });
    expect(await resolveUser(dir, '33')).toEqual({ uid: 33, gid: 33, additionalGids: [2000], home: '/var/www' });
    expect(await resolveUser(dir, 'app:www')).toEqual({ uid: 1000, gid: 33, additionalGids: [2000], home: '/home/app' });
    expect(await resolveUser(dir, '4242:4343')).toEqual({ uid: 4242, gid: 4343, additionalGids: [], home: '/' });
    expect(await resolveUser(dir, '4242')).toMatchObject({ uid: 4242, gid: 0 });
  });

  it('fails clearly on unknown users and groups', async () => {
    await expect(resolveUser(dir, 'ghost', 'img')).rejects.toThrow("unable to find user ghost: no matching entry in img's /etc/passwd");
    await expect(resolveUser(dir, 'app:nogroup', 'img')).rejects.toThrow(
      "unable to find group nogroup: no matching entry in img's /etc/group",
    );
    await expect(resolveUser(dir, 'app:')).rejects.toThrow(/invalid user/);
    await expect(resolveUser(join(dir, 'usr'), 'app', 'img')).rejects.toThrow(/the image has no \/etc\/passwd/);
  });
});
