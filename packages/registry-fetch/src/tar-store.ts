// An OCI layout inside a tar file (an `oci-archive:`): files are read by offset from the tar.
import { createReadStream } from 'node:fs';
import { PassThrough, type Readable } from 'node:stream';
import { readExactly, type LayoutStore } from './layout-store.js';
import { indexTar, type TarMember } from './tar-index.js';

export class TarStore implements LayoutStore {
  private entries: Promise<Map<string, TarMember>> | undefined;

  constructor(private readonly file: string) {}

  private index(): Promise<Map<string, TarMember>> {
    this.entries ??= indexTar(this.file);
    return this.entries;
  }

  private async entry(path: string): Promise<TarMember | undefined> {
    return (await this.index()).get(path);
  }

  async size(path: string): Promise<number | undefined> {
    return (await this.entry(path))?.size;
  }

  async readFile(path: string): Promise<Buffer | undefined> {
    const entry = await this.entry(path);
    return entry ? readExactly(this.file, entry.offset, entry.size) : undefined;
  }

  async readRange(path: string, start: number, end: number): Promise<Buffer> {
    const entry = await this.entry(path);
    if (!entry) throw new Error(`${path} is not in ${this.file}`);
    return readExactly(this.file, entry.offset + start, end - start);
  }

  createStream(path: string): Readable {
    // The index is loaded before any stream is opened (the source checks the size first).
    const entries = this.entries;
    if (!entries) throw new Error('TarStore.createStream called before the tar was indexed');
    let stream: Readable | undefined;
    const out = new PassThrough();
    entries.then(
      (map) => {
        const entry = map.get(path);
        if (!entry) return out.destroy(new Error(`${path} is not in ${this.file}`));
        if (entry.size === 0) return out.end();
        stream = createReadStream(this.file, { start: entry.offset, end: entry.offset + entry.size - 1 });
        stream.on('error', (error) => out.destroy(error));
        stream.pipe(out);
      },
      (error: unknown) => out.destroy(error as Error),
    );
    out.on('close', () => stream?.destroy());
    return out;
  }

  async close(): Promise<void> {}
}
