#!/usr/bin/env node
// Builds a package's N-API addon with node-gyp, offline: it compiles against the headers
// installed next to the running node (<prefix>/include/node) and uses npm's bundled node-gyp.
// Usage: node scripts/build-native-addon.mjs <package dir> <target name>
//   e.g. packages/native-zran clip_zran → packages/native-zran/build/Release/clip_zran.node
// Exit code 0 on success; non-zero with a one-line reason otherwise.
// CLIP_NODE_GYP overrides the node-gyp script (set it to a failing path to simulate no toolchain).
import { spawnSync } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const [packageArg, target] = process.argv.slice(2);
if (!packageArg || !target) {
  console.error('usage: build-native-addon.mjs <package dir> <target name>');
  process.exit(2);
}
const packageDir = resolve(packageArg);
const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function findNodeGyp() {
  const candidates = [];
  if (process.env.CLIP_NODE_GYP) return process.env.CLIP_NODE_GYP;
  if (process.env.npm_config_node_gyp) candidates.push(process.env.npm_config_node_gyp);
  if (process.env.npm_execpath)
    candidates.push(join(dirname(process.env.npm_execpath), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  const prefix = resolve(dirname(realpathSync(process.execPath)), '..');
  candidates.push(join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  candidates.push(join(repoRoot, 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'));
  return candidates.find((candidate) => existsSync(candidate));
}

/** A directory whose include/node holds node_api.h for this node: no header download needed. */
function findNodeDir() {
  const prefix = resolve(dirname(realpathSync(process.execPath)), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : undefined;
}

const nodeGyp = findNodeGyp();
if (!nodeGyp) {
  console.error(`${target}: node-gyp not found (looked in npm's bundled copy)`);
  process.exit(2);
}
const args = [nodeGyp, 'rebuild', '--loglevel=error'];
const nodeDir = findNodeDir();
if (nodeDir) args.push(`--nodedir=${nodeDir}`);
const result = spawnSync(process.execPath, args, { cwd: packageDir, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (result.status !== 0) {
  process.stderr.write(result.stdout ?? '');
  process.stderr.write(result.stderr ?? '');
  console.error(`${target}: node-gyp rebuild failed (${result.error?.message ?? `exit ${result.status}`})`);
  process.exit(1);
}
if (!existsSync(join(packageDir, 'build', 'Release', `${target}.node`))) {
  console.error(`${target}: node-gyp succeeded but build/Release/${target}.node is missing`);
  process.exit(1);
}
