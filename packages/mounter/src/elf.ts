// Just enough ELF to know what a dynamic executable will load: its program interpreter
// (PT_INTERP), the libraries it names (DT_NEEDED) and its search paths (DT_RPATH /
// DT_RUNPATH). Reads go through a random-access function (a file of the image read by range),
// so only the headers, the dynamic segment and the string table are touched. 32 and 64 bit,
// both byte orders. Anything malformed yields `undefined`, never an exception: this feeds a
// best-effort prefetch.

/**
 * Reads `length` bytes at `offset` of one file in the image (short at the end of the file). Not a
 * second FetchRange: it reads a file's decoded contents (LayerReader.readFile), not a layer blob.
 */
export type ReadAt = (offset: number, length: number) => Promise<Buffer>;

export interface ElfDependencies {
  /** e_machine (62 = x86-64, 183 = AArch64, 3 = i386, …). */
  machine: number;
  is64: boolean;
  interpreter?: string;
  needed: string[];
  /** DT_RPATH entries (used only when there is no DT_RUNPATH). */
  rpath: string[];
  runpath: string[];
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
/** Bounds against hostile headers: a prefetch guess never reads much. */
const MAX_PHNUM = 256;
const MAX_DYNAMIC_BYTES = 64 * 1024;
const MAX_STRTAB_BYTES = 1024 * 1024;
const MAX_INTERP_BYTES = 4096;

interface Segment {
  type: number;
  offset: number;
  vaddr: number;
  filesz: number;
}

/** Whether `head` starts like an ELF file. */
export function isElf(head: Uint8Array): boolean {
  return head.length >= 4 && head[0] === 0x7f && head[1] === 0x45 && head[2] === 0x4c && head[3] === 0x46;
}

/** The `#!` line of a script: interpreter path and its optional argument. */
export function parseShebang(head: Uint8Array): { interpreter: string; argument?: string } | undefined {
  if (head.length < 3 || head[0] !== 0x23 || head[1] !== 0x21) return undefined;
  const newline = head.indexOf(0x0a);
  const line = Buffer.from(head.subarray(2, newline < 0 ? Math.min(head.length, 256) : newline))
    .toString('latin1')
    .trim();
  const match = /^(\S+)(?:\s+(.*))?$/.exec(line);
  if (!match) return undefined;
  return match[2] ? { interpreter: match[1]!, argument: match[2].trim() } : { interpreter: match[1]! };
}

export async function readElfDependencies(readAt: ReadAt): Promise<ElfDependencies | undefined> {
  const head = await readAt(0, 64);
  if (!isElf(head) || head.length < 52) return undefined;
  const is64 = head[4] === 2;
  const little = head[5] === 1;
  if ((head[4] !== 1 && !is64) || (head[5] !== 1 && head[5] !== 2)) return undefined;
  if (is64 && head.length < 64) return undefined;
  const u16 = (b: Buffer, at: number) => (little ? b.readUInt16LE(at) : b.readUInt16BE(at));
  const u32 = (b: Buffer, at: number) => (little ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const addr = (b: Buffer, at: number) => (is64 ? Number(little ? b.readBigUInt64LE(at) : b.readBigUInt64BE(at)) : u32(b, at));
  const machine = u16(head, 18);
  const phoff = addr(head, is64 ? 32 : 28);
  const phentsize = u16(head, is64 ? 54 : 42);
  const phnum = u16(head, is64 ? 56 : 44);
  const minEntry = is64 ? 56 : 32;
  if (phnum === 0 || phnum > MAX_PHNUM || phentsize < minEntry || !Number.isSafeInteger(phoff)) return undefined;
  const table = await readAt(phoff, phnum * phentsize);
  if (table.length < phnum * phentsize) return undefined;
  const segments: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = i * phentsize;
    segments.push(
      is64
        ? { type: u32(table, at), offset: addr(table, at + 8), vaddr: addr(table, at + 16), filesz: addr(table, at + 32) }
        : { type: u32(table, at), offset: u32(table, at + 4), vaddr: u32(table, at + 8), filesz: u32(table, at + 16) },
    );
  }
  const result: ElfDependencies = { machine, is64, needed: [], rpath: [], runpath: [] };
  const interp = segments.find((segment) => segment.type === PT_INTERP);
  if (interp && interp.filesz > 0 && interp.filesz <= MAX_INTERP_BYTES) {
    const bytes = await readAt(interp.offset, interp.filesz);
    const end = bytes.indexOf(0);
    const path = bytes.subarray(0, end < 0 ? bytes.length : end).toString('utf8');
    if (path) result.interpreter = path;
  }
  const dynamic = segments.find((segment) => segment.type === PT_DYNAMIC);
  if (!dynamic || dynamic.filesz === 0) return result;
  const dyn = await readAt(dynamic.offset, Math.min(dynamic.filesz, MAX_DYNAMIC_BYTES));
  const entrySize = is64 ? 16 : 8;
  const entries: Array<[number, number]> = [];
  for (let at = 0; at + entrySize <= dyn.length; at += entrySize) {
    const tag = is64 ? Number(little ? dyn.readBigInt64LE(at) : dyn.readBigInt64BE(at)) : u32(dyn, at);
    if (tag === DT_NULL) break;
    entries.push([tag, addr(dyn, at + entrySize / 2)]);
  }
  const strtabAddr = entries.find(([tag]) => tag === DT_STRTAB)?.[1];
  const strsz = entries.find(([tag]) => tag === DT_STRSZ)?.[1];
  if (strtabAddr === undefined || strsz === undefined || strsz > MAX_STRTAB_BYTES) return result;
  // DT_STRTAB is an address: the PT_LOAD segment holding it says where it lies in the file.
  const load = segments.find((s) => s.type === PT_LOAD && strtabAddr >= s.vaddr && strtabAddr < s.vaddr + s.filesz);
  if (!load) return result;
  const strtab = await readAt(load.offset + (strtabAddr - load.vaddr), strsz);
  const stringAt = (offset: number): string | undefined => {
    if (offset >= strtab.length) return undefined;
    const end = strtab.indexOf(0, offset);
    return strtab.subarray(offset, end < 0 ? strtab.length : end).toString('utf8');
  };
  for (const [tag, value] of entries) {
    const text = tag === DT_NEEDED || tag === DT_RPATH || tag === DT_RUNPATH ? stringAt(value) : undefined;
    if (!text) continue;
    if (tag === DT_NEEDED) result.needed.push(text);
    else (tag === DT_RPATH ? result.rpath : result.runpath).push(...text.split(':').filter(Boolean));
  }
  return result;
}

/** Debian/Ubuntu multiarch directory of a machine, as ld.so searches it. */
export function multiarchTriplet(machine: number, is64: boolean): string | undefined {
  switch (machine) {
    case 62:
      return is64 ? 'x86_64-linux-gnu' : undefined;
    case 3:
      return 'i386-linux-gnu';
    case 183:
      return 'aarch64-linux-gnu';
    case 40:
      return 'arm-linux-gnueabihf';
    case 243:
      return 'riscv64-linux-gnu';
    case 21:
      return 'powerpc64le-linux-gnu';
    case 22:
      return 's390x-linux-gnu';
    default:
      return undefined;
  }
}

/**
 * Where ld.so looks for a DT_NEEDED name, in its order: DT_RPATH (without DT_RUNPATH),
 * DT_RUNPATH, then the usual ld.so.conf directories of Debian-like and other distributions
 * and the trusted defaults. `$ORIGIN` is the directory of the object.
 */
export function librarySearchPath(elf: ElfDependencies, origin: string): string[] {
  const expand = (dir: string) => dir.replace(/\$(ORIGIN|\{ORIGIN\})/g, origin);
  const dirs = [...(elf.runpath.length === 0 ? elf.rpath : []), ...elf.runpath].map(expand);
  const triplet = multiarchTriplet(elf.machine, elf.is64);
  if (triplet) dirs.push(`/usr/local/lib/${triplet}`, `/lib/${triplet}`, `/usr/lib/${triplet}`);
  dirs.push('/usr/local/lib');
  if (elf.is64) dirs.push('/lib64', '/usr/lib64');
  dirs.push('/lib', '/usr/lib');
  return dirs;
}
