// Splits one Debian root filesystem into layers the way a Dockerfile with several
// `apt-get install` steps would: layer i holds the files of the packages that the i-th group
// of seed packages pulls in (dependency closure, minus earlier layers). Building one rootfs
// and splitting it by dpkg's file lists avoids one mmdebstrap run and a tree diff per layer.
import { mkdtemp, readdir, readFile, readlink, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sh } from '../util/exec.js';

interface DpkgPackage {
  name: string;
  essential: boolean;
  priority: string;
  /** Dependencies (Depends + Pre-Depends), each a list of alternatives. */
  depends: string[][];
  provides: string[];
}

function parseRelations(field: string | undefined): string[][] {
  if (!field) return [];
  return field.split(',').map((group) =>
    group
      .split('|')
      // "python3:any (>= 3.11~)" → "python3"
      .map((alt) => alt.trim().split(/[\s(:]/)[0]!)
      .filter((alt) => alt.length > 0),
  );
}

async function installedPackages(rootfs: string): Promise<Map<string, DpkgPackage>> {
  const status = await readFile(join(rootfs, 'var/lib/dpkg/status'), 'utf8');
  const packages = new Map<string, DpkgPackage>();
  for (const stanza of status.split(/\n\n+/)) {
    const fields = new Map<string, string>();
    let last = '';
    for (const line of stanza.split('\n')) {
      if (/^\s/.test(line) && last) fields.set(last, `${fields.get(last)!} ${line.trim()}`);
      else {
        const colon = line.indexOf(':');
        if (colon < 0) continue;
        last = line.slice(0, colon);
        fields.set(last, line.slice(colon + 1).trim());
      }
    }
    const name = fields.get('Package');
    if (!name || !fields.get('Status')?.endsWith(' installed')) continue;
    packages.set(name, {
      name,
      essential: fields.get('Essential') === 'yes',
      priority: fields.get('Priority') ?? '',
      depends: [...parseRelations(fields.get('Pre-Depends')), ...parseRelations(fields.get('Depends'))],
      provides: parseRelations(fields.get('Provides')).flat(),
    });
  }
  return packages;
}

/** Installed packages reachable from `seeds` (every installed alternative and provider counts). */
function closure(packages: Map<string, DpkgPackage>, providers: Map<string, string[]>, seeds: string[]): Set<string> {
  const seen = new Set<string>();
  const queue = [...seeds];
  while (queue.length > 0) {
    const name = queue.pop()!;
    for (const candidate of packages.has(name) ? [name] : (providers.get(name) ?? [])) {
      if (seen.has(candidate)) continue;
      seen.add(candidate);
      for (const group of packages.get(candidate)!.depends) queue.push(...group);
    }
  }
  return seen;
}

/** dpkg lists paths as shipped (/lib/…); on a merged-/usr system they live under /usr. */
async function usrMergeAliases(rootfs: string): Promise<Map<string, string>> {
  const aliases = new Map<string, string>();
  for (const top of ['bin', 'sbin', 'lib', 'lib32', 'lib64', 'libx32']) {
    const target = await readlink(join(rootfs, top)).catch(() => undefined);
    if (target) aliases.set(top, target.replace(/^\//, ''));
  }
  return aliases;
}

/** Every path under `root`, relative; through a file, since the list outgrows captured stdout. */
async function treeEntries(root: string): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'clipbench-find-'));
  try {
    await sh(`cd '${root}' && find . -xdev -mindepth 1 -printf '%P\\0' > '${join(dir, 'entries')}'`);
    return (await readFile(join(dir, 'entries'), 'utf8')).split('\0').filter((path) => path.length > 0);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Returns, per layer, the entries to archive (relative paths, parents before children).
 * Layer 0 also gets the minbase set (Essential and Priority: required packages, apt); files
 * no package owns (configuration, the dpkg database, byte-compiled Python) go to the layer of
 * the first owner of their nearest owned ancestor directory; packages no group reaches go
 * to the last layer.
 */
export async function splitByPackages(rootfs: string, groups: string[][]): Promise<string[][]> {
  const packages = await installedPackages(rootfs);
  const providers = new Map<string, string[]>();
  for (const pkg of packages.values())
    for (const virtual of pkg.provides) providers.set(virtual, [...(providers.get(virtual) ?? []), pkg.name]);
  const minbase = [...packages.values()].filter((pkg) => pkg.essential || pkg.priority === 'required').map((pkg) => pkg.name);
  const layerOfPackage = new Map<string, number>();
  groups.forEach((seeds, layer) => {
    for (const name of closure(packages, providers, layer === 0 ? [...minbase, 'apt', ...seeds] : seeds)) {
      if (!layerOfPackage.has(name)) layerOfPackage.set(name, layer);
    }
  });

  const aliases = await usrMergeAliases(rootfs);
  const canonical = (path: string): string => {
    const slash = path.indexOf('/');
    const top = slash < 0 ? path : path.slice(0, slash);
    const alias = aliases.get(top);
    return alias === undefined ? path : alias + path.slice(top.length);
  };
  const owner = new Map<string, number>();
  const infoDir = join(rootfs, 'var/lib/dpkg/info');
  for (const file of await readdir(infoDir)) {
    if (!file.endsWith('.list')) continue;
    const name = file.slice(0, -'.list'.length).split(':')[0]!;
    const layer = layerOfPackage.get(name) ?? groups.length - 1;
    for (const line of (await readFile(join(infoDir, file), 'utf8')).split('\n')) {
      const path = canonical(line.replace(/^\/+/, ''));
      if (path === '' || path === '.') continue;
      owner.set(path, Math.min(owner.get(path) ?? layer, layer));
    }
  }

  const layerOf = (path: string): number => {
    for (let probe = path; ; probe = probe.slice(0, Math.max(0, probe.lastIndexOf('/')))) {
      const layer = owner.get(probe);
      if (layer !== undefined) return layer;
      if (!probe.includes('/')) return 0;
    }
  };
  const entries = await treeEntries(rootfs);
  const layers = groups.map(() => new Set<string>());
  for (const path of entries) {
    const members = layers[layerOf(path)]!;
    members.add(path);
    // Every layer carries the parent directories of its entries, as image builders write them.
    for (
      let parent = path.slice(0, Math.max(0, path.lastIndexOf('/')));
      parent && !members.has(parent);
      parent = parent.slice(0, Math.max(0, parent.lastIndexOf('/')))
    ) {
      members.add(parent);
    }
  }
  return layers.map((members) => [...members].sort());
}
