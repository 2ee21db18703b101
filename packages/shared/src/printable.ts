// Names from images are arbitrary bytes: print them escaped, never raw (a newline or an escape
// sequence in a file name must not forge output lines or drive the terminal).

/** Printable form of a name, like `ls -b`: C escapes for control characters and `\\`. */
export function escapeName(name: string): string {
  let text = '';
  for (const char of name) {
    const code = char.codePointAt(0)!;
    if (char === '\\') text += '\\\\';
    else if (char === '\n') text += '\\n';
    else if (char === '\t') text += '\\t';
    else if (char === '\r') text += '\\r';
    // C0 and C1 controls and DEL (C1 CSI, U+009B, starts terminal sequences too).
    else if (code < 0x20 || (code >= 0x7f && code <= 0x9f)) text += `\\${code.toString(8).padStart(3, '0')}`;
    else text += char;
  }
  return text;
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
