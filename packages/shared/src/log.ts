// Structured logging to stderr. Default format is logfmt (`level=info msg="..." key=value`),
// `CLIP_LOG_FORMAT=json` switches to one JSON object per line; `CLIP_LOG_LEVEL` sets the
// threshold (debug, info, warn, error; default info). Never pass secrets as fields.
import { redactUserinfo } from './redact.js';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, string | number | boolean | bigint | null | undefined>;

const LEVELS: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  child(fields: LogFields): Logger;
}

export interface LoggerOptions {
  level?: LogLevel;
  format?: 'logfmt' | 'json';
  write?: (line: string) => void;
  fields?: LogFields;
}

function quote(value: string): string {
  return /^[A-Za-z0-9_./:@+-]+$/.test(value) ? value : JSON.stringify(value);
}

export function formatLogfmt(level: LogLevel, msg: string, fields: LogFields): string {
  const parts = [`time=${new Date().toISOString()}`, `level=${level}`, `msg=${JSON.stringify(msg)}`];
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    parts.push(`${key}=${quote(String(value))}`);
  }
  return parts.join(' ');
}

function formatJson(level: LogLevel, msg: string, fields: LogFields): string {
  const record: Record<string, unknown> = { time: new Date().toISOString(), level, msg };
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    record[key] = typeof value === 'bigint' ? value.toString() : value;
  }
  return JSON.stringify(record);
}

function envLevel(): LogLevel {
  const value = process.env['CLIP_LOG_LEVEL'];
  return value === 'debug' || value === 'warn' || value === 'error' ? value : 'info';
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? envLevel();
  const format = options.format ?? (process.env['CLIP_LOG_FORMAT'] === 'json' ? 'json' : 'logfmt');
  const write = options.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  const base = options.fields ?? {};
  const emit = (lvl: LogLevel, msg: string, fields?: LogFields) => {
    if (LEVELS[lvl] < LEVELS[level]) return;
    const all = { ...base, ...fields };
    // A reference typed with userinfo (user:PASS@host/…) must not reach the log.
    write(redactUserinfo(format === 'json' ? formatJson(lvl, msg, all) : formatLogfmt(lvl, msg, all)));
  };
  return {
    debug: (msg, fields) => emit('debug', msg, fields),
    info: (msg, fields) => emit('info', msg, fields),
    warn: (msg, fields) => emit('warn', msg, fields),
    error: (msg, fields) => emit('error', msg, fields),
    child: (fields) => createLogger({ level, format, write, fields: { ...base, ...fields } }),
  };
}

/** A logger that drops everything; the default for library calls that were given none. */
export const silentLogger: Logger = createLogger({ level: 'error', write: () => {} });
