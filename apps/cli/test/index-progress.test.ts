import { describe, expect, it } from 'vitest';
import { formatSummary, progressReporter } from '../src/commands/index-image.js';
import { modeString, formatMtime } from '../src/commands/ls.js';

function fakeStream(isTTY: boolean): { stream: NodeJS.WriteStream; output: string[] } {
  const output: string[] = [];
  const stream = { isTTY, write: (text: string) => output.push(text) > 0 } as unknown as NodeJS.WriteStream;
  return { stream, output };
}

const MiB = 1024 * 1024;

describe('index progress', () => {
  it('on a terminal: one redrawn bar with layers, bytes and rate, throttled, ended by a newline', () => {
    const { stream, output } = fakeStream(true);
    let clock = 0;
    const progress = progressReporter(stream, () => clock);
    progress.update({ layersDone: 0, layersTotal: 2, bytesRead: 0, bytesTotal: 8 * MiB });
    clock = 10; // too soon: not redrawn
    progress.update({ layersDone: 0, layersTotal: 2, bytesRead: MiB, bytesTotal: 8 * MiB });
    clock = 1000;
    progress.update({ layersDone: 1, layersTotal: 2, bytesRead: 4 * MiB, bytesTotal: 8 * MiB });
    clock = 1010; // the final state is always drawn
    progress.update({ layersDone: 2, layersTotal: 2, bytesRead: 8 * MiB, bytesTotal: 8 * MiB });
    progress.finish();
    expect(output).toHaveLength(4);
    expect(output[1]).toBe('\r\x1b[2Kindexing [############------------] 1/2 layers  4.0 MiB / 8.0 MiB  4.0 MiB/s');
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the progress line starts with an ANSI escape
    expect(output[2]).toMatch(/^\r\x1b\[2Kindexing \[#{24}\] 2\/2 layers {2}8\.0 MiB \/ 8\.0 MiB/);
    expect(output[3]).toBe('\n');
  });

  it('elsewhere: a plain line each time a layer finishes', () => {
    const { stream, output } = fakeStream(false);
    let clock = 0;
    const progress = progressReporter(stream, () => clock);
    clock = 2000;
    progress.update({ layersDone: 0, layersTotal: 1, bytesRead: 0, bytesTotal: 100 });
    progress.update({ layersDone: 0, layersTotal: 1, bytesRead: 50, bytesTotal: 100 });
    progress.update({ layersDone: 1, layersTotal: 1, bytesRead: 100, bytesTotal: 100 });
    progress.finish();
    expect(output).toEqual(['indexing: 0/1 layers  0 B / 100 B  0 B/s\n', 'indexing: 1/1 layers  100 B / 100 B  50 B/s\n']);
  });

  it('summary line', () => {
    const text = formatSummary({
      files: 3,
      directories: 2,
      layers: 1,
      checkpoints: 4,
      archiveBytes: 2048,
      seconds: 1.25,
      bytesRead: 3 * MiB,
      networkBytes: 0,
      manifestDigest: 'sha256:x',
      output: 'out.clip',
    });
    expect(text).toBe(
      'wrote out.clip: 3 files, 2 directories, 1 layers, 4 checkpoints, archive 2.0 KiB; read 3.0 MiB (0 B over the network) in 1.3 s\n',
    );
  });
});

describe('ls formatting', () => {
  it.each([
    ['file', 0o644, '-rw-r--r--'],
    ['file', 0o4755, '-rwsr-xr-x'],
    ['file', 0o4644, '-rwSr--r--'],
    ['file', 0o2755, '-rwxr-sr-x'],
    ['file', 0o2745, '-rwxr-Sr-x'],
    ['directory', 0o1777, 'drwxrwxrwt'],
    ['directory', 0o1776, 'drwxrwxrwT'],
    ['symlink', 0o777, 'lrwxrwxrwx'],
    ['char', 0o666, 'crw-rw-rw-'],
    ['block', 0o660, 'brw-rw----'],
    ['fifo', 0o600, 'prw-------'],
    ['socket', 0o755, 'srwxr-xr-x'],
  ] as const)('%s %o → %s', (type, mode, expected) => {
    expect(modeString(type, mode)).toBe(expected);
  });

  it('mtimes in UTC', () => {
    expect(formatMtime(1_700_000_000)).toBe('2023-11-14 22:13');
    expect(formatMtime(0)).toBe('1970-01-01 00:00');
  });
});
