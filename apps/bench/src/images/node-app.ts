// A Node.js service image: Debian's nodejs (18 in bookworm) as the runtime and a large
// node_modules installed from the npm registry, in Dockerfile order: base system + nodejs,
// `npm install` (package.json, lockfile, node_modules), then the app source.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { run } from '../util/exec.js';
import { cachedDir } from './cache.js';
import type { DebianSpec } from './debian.js';
import type { LayerSource } from './oci-layout.js';

export const NODE_APP_SPEC: DebianSpec = { name: 'node-app', suite: 'bookworm', packages: ['nodejs', 'ca-certificates'] };

/** A typical service's dependencies plus its build and test tooling (shipped, as many images do). */
export const NODE_APP_DEPENDENCIES: Record<string, string> = {
  express: '^4',
  lodash: '^4',
  moment: '^2',
  rxjs: '^7',
  axios: '^1',
  'date-fns': '^3',
  'aws-sdk': '^2',
  '@aws-sdk/client-s3': '^3',
  typescript: '^5',
  webpack: '^5',
  'webpack-cli': '^5',
  '@babel/core': '^7',
  '@babel/preset-env': '^7',
  eslint: '^8',
  jest: '^29',
  react: '^18',
  'react-dom': '^18',
  '@mui/material': '^5',
  '@mui/icons-material': '^5',
  '@emotion/react': '^11',
  '@emotion/styled': '^11',
};

/** Resolve as of this date, so a rebuild installs the same versions (and ones Node 18 runs). */
const NPM_BEFORE = '2025-05-20';

/** What the workload loads: a part of node_modules, one big single-file package among them. */
export const NODE_APP_WORKLOAD_MODULES = ['express', 'lodash', 'moment', 'rxjs', '@aws-sdk/client-s3', 'aws-sdk', 'typescript'];

export const NODE_APP_INDEX = `'use strict';
// Start-up of a service: framework, AWS clients (v3 and v2), utilities, a TypeScript transpile.
process.env.AWS_SDK_JS_SUPPRESS_MAINTENANCE_MODE_MESSAGE = '1';
const express = require('express');
const _ = require('lodash');
const moment = require('moment');
const { firstValueFrom, from } = require('rxjs');
const { S3Client } = require('@aws-sdk/client-s3');
const AWS = require('aws-sdk');
const ts = require('typescript');

const app = express();
app.get('/health', (_req, res) => res.json({ ok: true }));
const s3 = new S3Client({ region: 'us-east-1' });
const legacyS3 = new AWS.S3({ region: 'us-east-1' });
const code = ts.transpileModule('export const answer: number = 42;', { compilerOptions: { module: ts.ModuleKind.CommonJS } }).outputText;
firstValueFrom(from([3, 1, 2])).then((first) => {
  console.log(JSON.stringify({ first, sorted: _.sortBy([3, 1, 2]), day: moment(0).utc().format('YYYY-MM-DD'), s3: typeof s3.send, legacy: typeof legacyS3.getObject, code: code.length > 0 }));
});
`;

/** npm's own environment (from `npm run bench`) must not steer the install. */
function npmEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.toLowerCase().startsWith('npm_')));
}

/** Staged on the host (the image has no npm), cached like the root filesystems. */
export async function nodeAppLayers(rootfs: string): Promise<LayerSource[]> {
  const spec = { dependencies: NODE_APP_DEPENDENCIES, before: NPM_BEFORE, source: NODE_APP_INDEX, version: 1 };
  const { dir } = await cachedDir('apps', 'node-app', spec, async (target) => {
    const deps = join(target, 'deps', 'app');
    await mkdir(deps, { recursive: true });
    await writeFile(
      join(deps, 'package.json'),
      `${JSON.stringify({ name: 'bench-node-app', version: '1.0.0', private: true, main: 'index.js', dependencies: NODE_APP_DEPENDENCIES }, null, 2)}\n`,
    );
    // --ignore-scripts: no install script may reach beyond the npm registry.
    await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', `--before=${NPM_BEFORE}`], {
      cwd: deps,
      env: npmEnv(),
      timeoutMs: 30 * 60_000,
    });
    await mkdir(join(target, 'src', 'app'), { recursive: true });
    await writeFile(join(target, 'src', 'app', 'index.js'), NODE_APP_INDEX);
    return { built: new Date().toISOString() };
  });
  return [{ root: rootfs }, { root: join(dir, 'deps'), include: ['app'] }, { root: join(dir, 'src'), include: ['app'] }];
}
