// Names from images are arbitrary bytes: print them escaped, never raw (a newline or an escape
// sequence in a file name must not forge output lines or drive the terminal).

/** Printable form of a name, like `ls -b`: C escapes for control characters and `\\`. */
export function escapeName(name: string): string {
  return name.replace(/[\\\x00-\x1f\x7f-\x9f]/g, (char) => {
    switch (char) {
      case '\\': return '\\\\';
      case '\n': return '\\n';
      case '\t': return '\\t';
      case '\r': return '\\r';
      default: return `\\${char.charCodeAt(0).toString(8).padStart(3, '0')}`;
    }
  });
}

/** Raw bytes (e.g. a name that is not UTF-8) as text: printable ASCII kept, the rest `\\xNN`. */
export function escapeBytes(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) {
    if (byte === 0x5c) text += '\\\\';
    else if (byte >= 0x20 && byte < 0x7f) text += String.fromCharCode(byte);
    else text += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  return text;
}
