#!/usr/bin/env node
// The `clip` command line. Each subcommand lives in commands/<name>.ts and exports
// `register(program)`; this file only wires them together and turns errors into exit codes.
import { readFileSync } from 'node:fs';
import { Command, CommanderError } from 'commander';
import { isClipError, redactUserinfo } from '@clip/shared';
import { commands } from './commands/index.js';
import { EXIT } from './exit-codes.js';

/** The version of this build (apps/cli/package.json, next to dist/), never a second copy to keep in step. */
const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('clip')
    .description(
      'Start containers without pulling their images: index an OCI image into a small .clip archive, ' +
        'then mount it anywhere through FUSE, fetching only the bytes that are read.',
    )
    .version(VERSION)
    .showHelpAfterError('(run "clip --help" for usage)')
    .configureOutput({ outputError: (text, write) => write(redactUserinfo(text)) })
    .exitOverride();
  for (const register of commands) register(program);
  return program;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return process.exitCode === undefined ? EXIT.ok : Number(process.exitCode);
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help and --version end up here with exit code 0.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    if (isClipError(error)) {
      process.stderr.write(`clip: error: ${redactUserinfo(error.message)} [${error.code}]\n`);
      return error.code === 'CLIP_E_USAGE' || error.code === 'CLIP_E_REFERENCE' ? EXIT.usage : EXIT.failure;
    }
    process.stderr.write(
      `clip: internal error: ${redactUserinfo(error instanceof Error ? (error.stack ?? error.message) : String(error))}\n`,
    );
    return EXIT.internal;
  }
}

process.exitCode = await main(process.argv);
