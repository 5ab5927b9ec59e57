/**
 * Structured log lines. Callers pass op names, codes and counts — never payloads — so no secret
 * byte can reach a log through here.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  log(level: LogLevel, message: string, fields?: LogFields): void;
}

export const silentLogger: Logger = { log: () => undefined };

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * A field's value as written: bare when it is one plain word, else quoted JSON with every control
 * character escaped (a value cannot break the line, forge another, or drive the terminal).
 */
function fieldText(value: string): string {
  if (!/[\s\u0000-\u001f\u007f-\u009f"]/.test(value)) return value;
  return JSON.stringify(value).replace(/[\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** One line per event on a stream: `2026-11-23T12:00:00.000Z info message key=value ...`. */
export function streamLogger(
  stream: { write(chunk: string): unknown },
  minLevel: LogLevel = 'info',
  now: () => Date = () => new Date(),
): Logger {
  return {
    log(level, message, fields) {
      if (ORDER[level] < ORDER[minLevel]) return;
      let line = `${now().toISOString()} ${level} ${message}`;
      if (fields) {
        for (const [k, v] of Object.entries(fields)) {
          if (v !== undefined) line += ` ${k}=${typeof v === 'string' ? fieldText(v) : String(v)}`;
        }
      }
      stream.write(line + '\n');
    },
  };
}
