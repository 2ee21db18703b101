// Registry of subcommands: add one import and one list entry per command file.
import type { Command } from 'commander';
import { register as inspect } from './inspect.js';
import { register as ls } from './ls.js';

export type RegisterCommand = (program: Command) => void;

export const commands: RegisterCommand[] = [
  inspect,
  ls,
];
