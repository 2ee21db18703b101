// PAX extended header records: `<len> <key>=<value>\n`, where len counts the whole record
// in bytes. Values stay raw bytes because xattrs (e.g. security.capability) are binary.

export type PaxRecords = Map<string, Uint8Array>;

const decoder = new TextDecoder();

export function parsePaxRecords(data: Uint8Array): PaxRecords | string {
  const records: PaxRecords = new Map();
  let at = 0;
  while (at < data.length) {
    // Some writers pad the record block with NULs.
    if (data[at] === 0) break;
    let space = at;
    while (space < data.length && data[space] !== 0x20) space++;
    const length = Number(decoder.decode(data.subarray(at, space)));
    if (!Number.isInteger(length) || length <= space - at + 1 || at + length > data.length) {
      return `malformed PAX record at byte ${at}`;
    }
    const record = data.subarray(space + 1, at + length);
    if (record[record.length - 1] !== 0x0a) return `PAX record at byte ${at} does not end in a newline`;
    const equals = record.indexOf(0x3d);
    if (equals < 0) return `PAX record at byte ${at} has no "="`;
    const key = decoder.decode(record.subarray(0, equals));
    records.set(key, record.slice(equals + 1, record.length - 1));
    at += length;
  }
  return records;
}

export function paxString(records: PaxRecords, key: string): string | undefined {
  const value = records.get(key);
  return value === undefined ? undefined : decoder.decode(value);
}
