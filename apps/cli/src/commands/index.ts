// Registry of subcommands: add one import and one list entry per command file.
import type { Command } from 'commander';
import { register as indexImage } from './index-image.js';
import { register as inspect } from './inspect.js';
import { register as ls } from './ls.js';
import { register as cat } from './cat.js';
import { register as mount } from './mount.js';
import { register as push } from './push.js';
import { register as publish } from './publish.js';
import { register as pullArchive } from './pull-archive.js';
import { register as archive } from './archive.js';
import { register as snapshotter } from './snapshotter.js';
import { register as run } from './run.js';
import { register as bundle } from './bundle.js';
import { register as warm } from './warm.js';
import { register as profile } from './profile.js';

export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [
  indexImage,
  inspect,
  ls,
  cat,
  mount,
  push,
  publish,
  pullArchive,
  archive,
  snapshotter,
  run,
  bundle,
  warm,
  profile,
];
