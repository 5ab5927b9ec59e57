/**
 * A desktop notification where one can be shown (`notify-send`, on Linux desktops), so the owner
 * learns of an access request without watching `credproxy status`. Never required: without a
 * notifier, or when it fails, nothing happens.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import path from 'node:path';

export type Notifier = (title: string, body: string) => void;

/** `notify-send` on PATH when there is a desktop session to show it; undefined otherwise. */
export function desktopNotifier(env: NodeJS.ProcessEnv = process.env): Notifier | undefined {
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY && !env.DBUS_SESSION_BUS_ADDRESS) return undefined;
  const bin = (env.PATH ?? '')
    .split(path.delimiter)
    .filter((dir) => dir !== '')
    .map((dir) => path.join(dir, 'notify-send'))
    .find((file) => {
      try {
        accessSync(file, constants.X_OK);
        return true;
      } catch {
        return false;
      }
    });
  if (!bin) return undefined;
  return (title, body) => {
    // No shell: the body holds a client's text. Detached and unwaited: a hung notifier costs nothing.
    const child = spawn(bin, ['--app-name=credproxy', title, body], { stdio: 'ignore', detached: true, env });
    child.on('error', () => undefined);
    child.unref();
  };
}
