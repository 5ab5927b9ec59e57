/**
 * The credproxy program: pick the command, load only its module, let commander parse, and turn
 * any error into a message and an exit code — in the one catch below.
 */
import type { CommandContext, CommandModule } from './command-kit.js';
// Loaded with main, not on demand: `credproxy token` runs per request in scripts, and a dynamic
// import would add two more sequential module loads to its start (token-fast.ts is small).
import { runFast as runTokenFast } from './commands/token-fast.js';
import { CREDPROXY_VERSION } from './core-client.js';
import { describeError } from './exit-codes.js';
import { type CliIO, processIO } from './output.js';

interface CommandEntry {
  name: string;
  load(): Promise<CommandModule>;
  /** Tried first, without commander, when the command word comes first; undefined: not handled. */
  runFast?: CommandModule['runFast'];
}

/** Every top-level command. Adding one is one line; a module loads only when its command runs. */
export const COMMANDS: readonly CommandEntry[] = [
  { name: 'serve', load: () => import('./commands/serve.js') },
  { name: 'stop', load: () => import('./commands/stop.js') },
  { name: 'ping', load: () => import('./commands/ping.js') },
  { name: 'status', load: () => import('./commands/status.js') },
  { name: 'token', load: () => import('./commands/token.js'), runFast: runTokenFast },
  { name: 'exec', load: () => import('./commands/exec.js') },
  { name: 'logout', load: () => import('./commands/logout.js') },
  { name: 'key', load: () => import('./commands/key.js') },
  { name: 'client', load: () => import('./commands/client.js') },
  { name: 'login', load: () => import('./commands/login.js') },
  { name: 'session', load: () => import('./commands/session.js') },
  { name: 'provider', load: () => import('./commands/provider.js') },
  { name: 'audit', load: () => import('./commands/audit.js') },
];

export async function main(argv: readonly string[], io: CliIO = processIO()): Promise<number> {
  try {
    // The program has no options of its own besides --help/--version, so the first word that is
    // not an option is the command.
    const name = argv.find((arg) => !arg.startsWith('-'));
    const entry = COMMANDS.find((c) => c.name === name);
    if (entry?.runFast && argv[0] === entry.name) {
      const fast = entry.runFast(argv.slice(1), io);
      if (fast !== undefined) return await fast;
    }
    const modules = entry ? [await entry.load()] : await Promise.all(COMMANDS.map((c) => c.load()));

    if (entry && argv[0] === entry.name) {
      const fast = modules[0]?.runFast?.(argv.slice(1), io);
      if (fast !== undefined) return await fast;
    }

    const { Command } = await import('commander');
    const ctx: CommandContext = { io, exitCode: 0 };
    const program = new Command('credproxy')
      .description('credential proxy: holds OAuth tokens and API keys, hands out short-lived access tokens')
      .version(CREDPROXY_VERSION, '-V, --version')
      .exitOverride()
      .configureOutput({
        writeOut: (s) => void io.stdout.write(s),
        writeErr: (s) => void io.stderr.write(s),
      })
      .showHelpAfterError('(add --help for usage)')
      .enablePositionalOptions();
    for (const mod of modules) mod.register(program, ctx);
    await program.parseAsync([...argv], { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    const report = describeError(err);
    if (report.message !== undefined) io.stderr.write(report.message + '\n');
    if (io.env.CREDPROXY_DEBUG && err instanceof Error && err.stack) io.stderr.write(err.stack + '\n');
    return report.exitCode;
  }
}
