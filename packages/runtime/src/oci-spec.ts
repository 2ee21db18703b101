// Image config → OCI runtime spec (config.json), following the image spec's conversion rules
// (image-spec config.md "Conversion to OCI Runtime Configuration") with Docker's defaults:
// Entrypoint + Cmd, Env (+ default PATH), WorkingDir, resolved User, Labels and StopSignal as
// annotations, the usual kernel file systems, Docker's default capability set.
import { isAbsolute, posix } from 'node:path';
import type { ArchiveMetadata } from '@clip/archive-format';
import { ContainerConfigError } from './errors.js';
import type { ResolvedUser } from './users.js';

/** The runtime-relevant part of an image config, as the .clip archive keeps it. */
export type ImageRuntimeConfig = ArchiveMetadata['imageConfig'];

export type NetworkMode = 'host' | 'none';

export interface VolumeSpec {
  source: string;
  destination: string;
  readonly: boolean;
}

export interface ContainerOptions {
  /** Replaces the image's Cmd (the words after `--`). */
  command?: string[];
  /** Replaces the image's Entrypoint; `[]` clears it. */
  entrypoint?: string[];
  /** KEY=VALUE, added to / overriding the image's Env. */
  env?: string[];
  workingDir?: string;
  /** Overrides the image's User. */
  user?: string;
  /** Default 'none': the container gets only a loopback interface of its own. */
  network?: NetworkMode;
  hostname?: string;
  volumes?: VolumeSpec[];
}

/** The subset of the OCI runtime spec we write (runtime-spec v1.0.2). */
export interface RuntimeSpec {
  ociVersion: string;
  process: {
    terminal: boolean;
    user: { uid: number; gid: number; additionalGids?: number[] };
    args: string[];
    env: string[];
    cwd: string;
    capabilities: Record<'bounding' | 'effective' | 'permitted' | 'inheritable' | 'ambient', string[]>;
    rlimits: Array<{ type: string; hard: number; soft: number }>;
    noNewPrivileges: boolean;
  };
  root: { path: string; readonly: boolean };
  hostname: string;
  mounts: Array<{ destination: string; type: string; source: string; options?: string[] }>;
  annotations: Record<string, string>;
  linux: {
    namespaces: Array<{ type: string }>;
    cgroupsPath?: string;
    resources: { devices: Array<{ allow: boolean; access: string }> };
    maskedPaths: string[];
    readonlyPaths: string[];
  };
}

/** Docker's default PATH, used when the image sets none. */
export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Docker's default capability set (moby oci/caps/defaults.go). */
export const DEFAULT_CAPABILITIES = [
  'CAP_CHOWN',
  'CAP_DAC_OVERRIDE',
  'CAP_FSETID',
  'CAP_FOWNER',
  'CAP_MKNOD',
  'CAP_NET_RAW',
  'CAP_SETGID',
  'CAP_SETUID',
  'CAP_SETFCAP',
  'CAP_SETPCAP',
  'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT',
  'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

/** Annotation keys from the image spec (annotations.md / config conversion). */
export const STOP_SIGNAL_ANNOTATION = 'org.opencontainers.image.stopSignal';

const MASKED_PATHS = [
  '/proc/acpi',
  '/proc/asound',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
const READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];

/** Parses `-v host:container[:ro|rw]`. */
export function parseVolume(text: string): VolumeSpec {
  const parts = text.split(':');
  const [source, destination, mode] = parts;
  if (parts.length < 2 || parts.length > 3 || !source || !destination || (mode !== undefined && mode !== 'ro' && mode !== 'rw')) {
    throw new ContainerConfigError(`invalid volume ${JSON.stringify(text)}: expected /host/path:/container/path[:ro]`);
  }
  if (!isAbsolute(source) || !destination.startsWith('/')) {
    throw new ContainerConfigError(`invalid volume ${JSON.stringify(text)}: both paths must be absolute`);
  }
  return { source, destination: posix.normalize(destination), readonly: mode === 'ro' };
}

function envName(entry: string): string {
  const eq = entry.indexOf('=');
  return eq < 0 ? entry : entry.slice(0, eq);
}

/** The image's Env with `overrides` applied (later wins), PATH and HOME defaulted like Docker. */
export function containerEnv(image: string[] | undefined, overrides: string[] | undefined, home: string, hostname: string): string[] {
  const env = new Map<string, string>();
  for (const entry of [...(image ?? []), ...(overrides ?? [])]) {
    if (!entry.includes('=')) throw new ContainerConfigError(`invalid environment variable ${JSON.stringify(entry)}: expected KEY=VALUE`);
    env.set(envName(entry), entry);
  }
  if (!env.has('PATH')) env.set('PATH', `PATH=${DEFAULT_PATH}`);
  if (!env.has('HOSTNAME')) env.set('HOSTNAME', `HOSTNAME=${hostname}`);
  if (!env.has('HOME')) env.set('HOME', `HOME=${home}`);
  return [...env.values()];
}

/** Entrypoint + Cmd after the run's overrides (a new Entrypoint also drops the image's Cmd, as Docker does). */
export function containerArgs(config: ImageRuntimeConfig, options: Pick<ContainerOptions, 'command' | 'entrypoint'>): string[] {
  const entrypoint = options.entrypoint ?? config.entrypoint ?? [];
  const cmd = options.command && options.command.length > 0 ? options.command : options.entrypoint ? [] : (config.cmd ?? []);
  const args = [...entrypoint, ...cmd];
  if (args.length === 0) throw new ContainerConfigError('no command: the image sets neither Entrypoint nor Cmd; give one after --');
  return args;
}

export interface SpecInput {
  config: ImageRuntimeConfig;
  options: ContainerOptions;
  user: ResolvedUser;
  /** Container id: default hostname and cgroup name. */
  id: string;
  /** Static init bind-mounted into the container as pid 1 (signal forwarding, reaping); undefined = none. */
  init?: string;
}

/** Where the init binary appears inside the container (a tmpfs, so nothing is added to the root). */
export const INIT_PATH = '/dev/init';

const isStringArray = (value: unknown): value is string[] => Array.isArray(value) && value.every((item) => typeof item === 'string');

/** The archive's config is only checked to be an object; a container needs the right shapes. */
export function checkImageConfig(config: ImageRuntimeConfig): void {
  const bad = (field: string) => {
    throw new ContainerConfigError(`the image config's ${field} is malformed`);
  };
  for (const field of ['entrypoint', 'cmd', 'env'] as const) if (config[field] !== undefined && !isStringArray(config[field])) bad(field);
  for (const field of ['workingDir', 'user', 'stopSignal'] as const)
    if (config[field] !== undefined && typeof config[field] !== 'string') bad(field);
  const labels: unknown = config.labels;
  if (labels !== undefined && (typeof labels !== 'object' || labels === null || Object.values(labels).some((v) => typeof v !== 'string')))
    bad('labels');
}

export function buildRuntimeSpec(input: SpecInput): RuntimeSpec {
  const { config, options, user, id } = input;
  checkImageConfig(config);
  const hostname = options.hostname ?? id.slice(0, 12);
  const args = containerArgs(config, options);
  const cwd = options.workingDir ?? (config.workingDir || '/');
  if (!cwd.startsWith('/')) throw new ContainerConfigError(`invalid working directory ${JSON.stringify(cwd)}: must be absolute`);
  const network = options.network ?? 'none';
  const root = user.uid === 0;
  const mounts: RuntimeSpec['mounts'] = [
    { destination: '/proc', type: 'proc', source: 'proc' },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    {
      destination: '/dev/pts',
      type: 'devpts',
      source: 'devpts',
      options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'],
    },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
  ];
  if (network === 'host') {
    // The host's name resolution, as Docker gives a host-network container.
    for (const file of ['/etc/resolv.conf', '/etc/hosts'])
      mounts.push({ destination: file, type: 'bind', source: file, options: ['rbind', 'ro'] });
  }
  if (input.init) mounts.push({ destination: INIT_PATH, type: 'bind', source: input.init, options: ['bind', 'ro'] });
  for (const volume of options.volumes ?? []) {
    mounts.push({
      destination: volume.destination,
      type: 'bind',
      source: volume.source,
      options: ['rbind', 'rprivate', volume.readonly ? 'ro' : 'rw'],
    });
  }

  const annotations: Record<string, string> = { ...(config.labels ?? {}) };
  if (config.stopSignal) annotations[STOP_SIGNAL_ANNOTATION] = config.stopSignal;

  const namespaces = ['pid', 'ipc', 'uts', 'mount', ...(network === 'none' ? ['network'] : [])].map((type) => ({ type }));
  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: user.uid, gid: user.gid, ...(user.additionalGids.length > 0 ? { additionalGids: user.additionalGids } : {}) },
      args: input.init ? [INIT_PATH, '--', ...args] : args,
      env: containerEnv(config.env, options.env, user.home, hostname),
      cwd,
      // Like Docker: the bounding set always, effective/permitted only for root.
      capabilities: {
        bounding: DEFAULT_CAPABILITIES,
        effective: root ? DEFAULT_CAPABILITIES : [],
        permitted: root ? DEFAULT_CAPABILITIES : [],
        inheritable: [],
        ambient: [],
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: false,
    },
    root: { path: 'rootfs', readonly: false },
    hostname,
    mounts,
    annotations,
    linux: {
      namespaces,
      cgroupsPath: `/clip/${id}`,
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      maskedPaths: MASKED_PATHS,
      readonlyPaths: READONLY_PATHS,
    },
  };
}
