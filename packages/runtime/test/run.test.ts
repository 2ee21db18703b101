// `clip run` end to end: real registry, real FUSE mount (served by a detached `clip mount`),
// real overlayfs, real runc; the image's config applied; exit codes, signals, cleanup.
import { spawn } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningRegistry, startRangeServer } from '@clip/testkit';
import type { ContainerSummary } from '../src/container.js';
import { ImageMountPool } from '../src/mount-pool.js';
import { CLI, cli, mountsUnder, run, startCli, startRuntimeWorld, type RuntimeTestWorld } from './helpers.js';

let registry: RunningRegistry;
let work: string;
let stateDir: string;
let image: string;

async function runtimeContainers(): Promise<string> {
  return (await run('runc', ['--root', join(stateDir, 'runtime'), 'list', '-q']).catch(() => ({ stdout: '' }))).stdout.trim();
}

const clipRun = (...args: string[]) => cli(['run', '--state-dir', stateDir, ...args]);

let world: RuntimeTestWorld | undefined;

beforeAll(async () => {
  world = await startRuntimeWorld('run');
  ({ registry, work, stateDir, image } = world);
});

afterAll(async () => {
  await world?.close();
});

describe('clip run', () => {
  it("runs the image's Cmd with its Env, WorkingDir and User, then leaves nothing behind", async () => {
    const result = await clipRun(image);
    expect(result.stderr).toMatch(
      /msg="container started" .*image=\S+busybox:v1 .*archive_digest=sha256:[0-9a-f]{64} .*mount_reused=false .*time_to_exec_ms=\d+/,
    );
    expect(result.stdout).toBe('hello from clip in /work as app\n');
    expect(result.code).toBe(0);
    expect(await mountsUnder(stateDir)).toEqual([]);
    expect(await runtimeContainers()).toBe('');
  });

  it('applies the config and options: uid and groups, workdir, env, default PATH and HOME, --entrypoint, capabilities, mounts, --net', async () => {
    // Held for the whole test, so every run reuses one mount (and the test stays fast).
    const hold = await new ImageMountPool({ stateDir }).acquire(image, 'test:hold');
    try {
      // `true` may exit before the start is polled: the start is still logged.
      expect((await clipRun(image, '--', 'true')).stderr).toMatch(/msg="container started" .*mount_reused=true/);
      expect((await clipRun(image, '--', 'id', '-u')).stdout).toBe('1000\n');
      expect((await clipRun(image, '--', 'id', '-G')).stdout).toBe('1000 2000\n');
      expect((await clipRun(image, '--', 'pwd')).stdout).toBe('/work\n');
      expect((await clipRun(image, '--', 'sh', '-c', 'echo $VAR $PATH $HOME')).stdout).toBe(
        'from-image /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /home/app\n',
      );
      expect(
        (await clipRun('-e', 'VAR=override', '-w', '/tmp', '-u', '0:0', image, '--', 'sh', '-c', 'echo $VAR $(pwd) $(id -u):$(id -g)'))
          .stdout,
      ).toBe('override /tmp 0:0\n');
      expect((await clipRun('--hostname', 'box', image, '--', 'hostname')).stdout).toBe('box\n');
      // --entrypoint replaces the Entrypoint and, as with Docker, drops the image's Cmd.
      expect((await clipRun('--entrypoint', 'echo', image, '--', 'from', 'entrypoint')).stdout).toBe('from entrypoint\n');
      expect((await clipRun('--entrypoint', 'echo', image)).stdout).toBe('\n');
      // Docker's default capabilities (0xa80425fb): effective for root, only bounding for a user.
      const caps = ['sh', '-c', 'while read k v; do case $k in CapEff:|CapBnd:) echo $k $v;; esac; done < /proc/self/status'];
      expect((await clipRun('-u', 'root', image, '--', ...caps)).stdout).toBe('CapEff: 00000000a80425fb\nCapBnd: 00000000a80425fb\n');
      expect((await clipRun(image, '--', ...caps)).stdout).toBe('CapEff: 0000000000000000\nCapBnd: 00000000a80425fb\n');
      // The usual kernel file systems, mounted by the runtime from the spec.
      const mounts = (await clipRun(image, '--', 'sh', '-c', 'while read dev dir type rest; do echo $dir $type; done < /proc/mounts'))
        .stdout;
      for (const line of ['/ overlay', '/proc proc', '/dev tmpfs', '/dev/pts devpts', '/dev/shm tmpfs', '/dev/mqueue mqueue', '/sys sysfs'])
        expect(mounts.split('\n'), line).toContain(line);
      // --net none (the default): a network namespace with loopback only; --net host: the host's interfaces.
      const interfaces = ['sh', '-c', 'while read name rest; do case $name in *:) echo $name;; esac; done < /proc/net/dev'];
      expect((await clipRun(image, '--', ...interfaces)).stdout).toBe('lo:\n');
      expect((await clipRun('--net', 'none', image, '--', ...interfaces)).stdout).toBe('lo:\n');
      const hostInterfaces = (await readFile('/proc/net/dev', 'utf8')).split('\n').slice(2).filter(Boolean).length;
      if (hostInterfaces > 1) expect((await clipRun('--net', 'host', image, '--', ...interfaces)).stdout).toMatch(/^(?!lo:)\S+:$/m);
    } finally {
      await hold.release();
    }
    expect(await mountsUnder(stateDir)).toEqual([]);
  });

  it('gives the container a writable root and bind mounts (rw, ro); --keep keeps the upper directory', async () => {
    const host = join(work, 'volume');
    await run('mkdir', ['-p', host]);
    await run('sh', ['-c', `echo from-host > ${host}/in.txt`]);
    const result = await clipRun(
      '-u',
      'root',
      '-v',
      `${host}:/data`,
      '-v',
      `${host}:/ro:ro`,
      '--keep',
      '--json',
      '--cache-dir',
      join(work, 'fresh-cache'),
      image,
      '--',
      'sh',
      '-c',
      'cat /data/in.txt && echo written > /work/new.txt && echo out > /data/out.txt && cat /work/data.txt && (touch /ro/x 2>/dev/null && echo writable || echo read-only)',
    );
    expect(result.stdout).toBe('from-host\nimage data\nread-only\n');
    expect(result.code).toBe(0);
    const summary = JSON.parse(result.stderr.trim().split('\n').pop()!) as ContainerSummary & { keptUpper: string; fetchedBytes: number };
    expect(summary.exitCode).toBe(0);
    expect(summary.fetchedBytes).toBeGreaterThan(0);
    expect(summary).toMatchObject({ mountReused: false, archiveDigest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) });
    for (const key of ['acquireAndPrepareMs', 'timeToExecMs', 'runMs', 'cleanupMs', 'totalMs'])
      expect(summary.timings[key as keyof typeof summary.timings], key).toBeGreaterThanOrEqual(0);
    expect((await run('cat', [join(summary.keptUpper, 'work/new.txt')])).stdout).toBe('written\n');
    expect((await run('cat', [join(host, 'out.txt')])).stdout).toBe('out\n');
    // The kept upper is the bundle state's only remainder: removing its directory leaves nothing.
    await rm(dirname(summary.keptUpper), { recursive: true, force: true });
    expect(await mountsUnder(stateDir)).toEqual([]);
  });

  it("passes stdin/stdout/stderr through and exits with the container's exit code", async () => {
    const result = await startCli(
      ['run', '--state-dir', stateDir, image, '--', 'sh', '-c', 'cat; echo to-stderr >&2; exit 7'],
      {},
      'from stdin\n',
    ).done;
    expect(result.stdout).toBe('from stdin\n');
    expect(result.stderr).toMatch(/^to-stderr$/m);
    expect(result.code).toBe(7);
    // A process killed by a signal (not one clip forwarded): 128 + its number.
    expect((await clipRun(image, '--', 'sh', '-c', 'kill -KILL $$')).code).toBe(137);
    expect((await clipRun(image, '--', 'sh', '-c', 'kill -USR1 $$')).code).toBe(138);
  });

  it('runs with another OCI runtime given by path; crun where the host allows it, else its error', async () => {
    const runc = await clipRun('--runtime', '/usr/sbin/runc', image, '--', 'sh', '-c', 'id -u; exit 3');
    expect(runc.stdout).toBe('1000\n');
    expect(runc.code).toBe(3);
    // crun refuses cgroup v1 hybrid hosts whose cgroup2 hierarchy has controllers (docs/runtime.md
    // says how to move them to v1); anywhere else it must run the container like runc.
    const v2Controllers = (await readFile('/sys/fs/cgroup/unified/cgroup.controllers', 'utf8').catch(() => '')).trim();
    const crun = await clipRun('--runtime', 'crun', '--runtime-flag=--cgroup-manager=disabled', image, '--', 'sh', '-c', 'id -u; exit 3');
    if (v2Controllers !== '') {
      expect(crun.code).toBe(1);
      expect(crun.stderr).toMatch(/clip: error: crun could not start container \S+: .*cgroup.* \[CLIP_E_OCI_RUNTIME\]/);
    } else {
      expect(crun.stdout).toBe('1000\n');
      expect(crun.code).toBe(3);
    }
    expect(await mountsUnder(stateDir)).toEqual([]);
  });

  it('forwards SIGTERM to the container and exits 143, leaving nothing behind', async () => {
    const running = startCli(['run', '--state-dir', stateDir, image, '--', 'sleep', '60']);
    for (let i = 0; i < 400 && !/container started/.test(running.output().stderr); i++) await new Promise((r) => setTimeout(r, 50));
    expect(running.output().stderr).toMatch(/container started/);
    running.child.kill('SIGTERM');
    const result = await running.done;
    expect(result.code).toBe(143);
    expect(await mountsUnder(stateDir)).toEqual([]);
    expect(await runtimeContainers()).toBe('');
    for (const dir of ['containers', 'bundles', 'mounts']) expect(await readdir(join(stateDir, dir)), dir).toEqual([]);
  });

  it('in a terminal: stdin is passed through and Ctrl-C reaches the container once (exit 130)', async () => {
    // script(1) gives clip run a pty: typed input, then ^C from the terminal's line discipline.
    // The ^C reaches the whole foreground group, this shell too: its trap keeps it alive to print
    // clip's exit code (a trapped signal is reset to default in the child, so clip still sees it).
    const command = `trap : INT; ${process.execPath} ${CLI} run --state-dir ${stateDir} ${image} -- sh -c 'read line; echo got:$line; sleep 30'; echo exit=$?`;
    const child = spawn('script', ['-qfec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const closed = new Promise((resolve) => child.once('close', resolve));
    const waitFor = async (pattern: RegExp) => {
      for (let i = 0; i < 600 && !pattern.test(output); i++) await new Promise((r) => setTimeout(r, 25));
    };
    await waitFor(/container started/);
    child.stdin.write('typed\n');
    await waitFor(/got:typed/);
    child.stdin.write('\x03');
    await waitFor(/exit=\d+/);
    child.stdin.end();
    await closed;
    expect(output).toMatch(/got:typed/);
    expect(output.match(/forwarding signal to container/g)).toHaveLength(1);
    expect(output).toMatch(/exit=130/);
    expect(await mountsUnder(stateDir)).toEqual([]);
  });

  it('the next clip run cleans up after a clip run that was killed (SIGKILL)', async () => {
    const killed = startCli(['run', '--state-dir', stateDir, '--name', 'doomed', image, '--', 'sleep', '60']);
    for (let i = 0; i < 400 && !/container started/.test(killed.output().stderr); i++) await new Promise((r) => setTimeout(r, 50));
    const exited = new Promise((resolve) => killed.child.once('exit', resolve));
    killed.child.kill('SIGKILL');
    // Not `done`: the orphaned container still holds the output pipes.
    await exited;
    expect((await mountsUnder(stateDir)).length).toBeGreaterThan(0);
    expect(await runtimeContainers()).toBe('doomed');
    const next = await clipRun(image, '--', 'true');
    expect(next.code).toBe(0);
    expect(next.stderr).toMatch(/msg="removing a container whose clip run is gone" id=doomed/);
    expect(await mountsUnder(stateDir)).toEqual([]);
    expect(await runtimeContainers()).toBe('');
  });

  it('runs from a .clip file and from an archive URL (data-carrying archive read by range)', async () => {
    const rootfs = join(work, 'plain-rootfs');
    await run('sh', [
      '-c',
      `mkdir -p ${rootfs}/bin ${rootfs}/etc && cp /bin/busybox ${rootfs}/bin/ && ln -sf busybox ${rootfs}/bin/sh && ln -sf busybox ${rootfs}/bin/cat && echo plain > ${rootfs}/etc/motd`,
    ]);
    const archive = join(work, 'plain.clip');
    await run(process.execPath, [CLI, 'archive', rootfs, '-o', archive]);
    const fromFile = await clipRun(archive, '--', 'cat', '/etc/motd');
    expect(fromFile.stdout).toBe('plain\n');
    expect(fromFile.code).toBe(0);
    const server = await startRangeServer(new Map([['plain.clip', archive]]));
    try {
      const fromUrl = await clipRun(server.url('plain.clip'), '--', 'cat', '/etc/motd');
      expect(fromUrl.stdout).toBe('plain\n');
      expect(fromUrl.code).toBe(0);
      expect(server.stats.ranges.length).toBeGreaterThan(0);
      // Userinfo typed in the URL (clip takes no credentials that way) is never printed.
      const withSecret = server.url('plain.clip').replace('://', '://bob:S3cretRUN@');
      const redacted = await clipRun('--json', withSecret, '--', 'cat', '/etc/motd');
      expect(redacted.code, redacted.stderr).toBe(0);
      expect(redacted.stdout + redacted.stderr).not.toContain('S3cretRUN');
      expect(redacted.stderr).toMatch(/"image":"http:\/\/bob:\*\*\*@/);
    } finally {
      await server.close();
    }
    expect(await mountsUnder(stateDir)).toEqual([]);
  });

  it('refuses a --name that a running container has', async () => {
    const first = startCli(['run', '--state-dir', stateDir, '--name', 'twin', image, '--', 'sleep', '30']);
    for (let i = 0; i < 400 && !/container started/.test(first.output().stderr); i++) await new Promise((r) => setTimeout(r, 25));
    const second = await clipRun('--name', 'twin', image, '--', 'true');
    expect(second.code).toBe(1);
    expect(second.stderr).toMatch(/clip: error: a container named twin exists in .*\[CLIP_E_STATE_DIR\]/);
    first.child.kill('SIGTERM');
    expect((await first.done).code).toBe(143);
    expect(await mountsUnder(stateDir)).toEqual([]);
  });

  it('fails clearly on an unknown user', async () => {
    const result = await clipRun('-u', 'nobody-here', image, '--', 'true');
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /clip: error: unable to find user nobody-here: no matching entry in \S+'s \/etc\/passwd \[CLIP_E_CONTAINER_CONFIG\]/,
    );
    expect(result.stderr).not.toMatch(/\n\s+at /);
    expect(await mountsUnder(stateDir)).toEqual([]);
  });

  it('fails clearly on bad input: unknown image, image without archive, bad state directory, bad options', async () => {
    const unknown = await clipRun(`${registry.host}/test/nothing:v1`, '--', 'true');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/clip: error: manifest not found: .*test\/nothing/);

    const bare = `${registry.host}/test/bare:v1`;
    const { buildBusyboxLayout } = await import('./helpers.js');
    // Another image (its own manifest digest) that is pushed but never published.
    const layout = await buildBusyboxLayout(join(work, 'bare-layout'), 'v1', { 'org.example.variant': 'unpublished' });
    await run('skopeo', ['copy', '--dest-tls-verify=false', `oci:${layout.dir}:v1`, `docker://${bare}`]);
    const unpublished = await clipRun(bare);
    expect(unpublished.code).toBe(1);
    expect(unpublished.stderr).toMatch(/clip: error: no clip archive is published for .*test\/bare/);

    const file = join(work, 'not-a-dir');
    await run('touch', [file]);
    const badState = await cli(['run', '--state-dir', file, image, '--', 'true']);
    expect(badState.code).toBe(1);
    expect(badState.stderr).toMatch(/clip: error: cannot use the state directory .*not-a-dir.* \[CLIP_E_STATE_DIR\]/);

    // The trust rules of clip mount apply: an archive digest that is not the published one.
    const wrongDigest = await clipRun('--archive-digest', `sha256:${'0'.repeat(64)}`, image, '--', 'true');
    expect(wrongDigest.code).toBe(1);
    expect(wrongDigest.stderr).toMatch(/clip: error: layer not found: sha256:0{64} in \S+test\/busybox:v1 .*\[CLIP_E_LAYER_NOT_FOUND\]/);

    const badVolume = await clipRun('-v', 'relative:/x', image);
    expect(badVolume.code).toBe(2);
    const badNet = await clipRun('--net', 'bridge', image);
    expect(badNet.code).toBe(2);
    const badRuntime = await clipRun('--runtime', '/nonexistent/runc', image);
    expect(badRuntime.code).toBe(1);
    expect(badRuntime.stderr).toMatch(/OCI runtime \/nonexistent\/runc not found/);
    expect(await mountsUnder(stateDir)).toEqual([]);
  });
});
