/**
 * The credproxy program: pick the command, load only its module, let commander parse, and turn
 * any error into a message and an exit code — in the one catch below.
 */
import type { CommandContext, CommandModule } from './command-kit.js';
// Loaded with main, not on demand: `credproxy token` runs per request in scripts, and a dynamic
// import would add two more sequential module loads to its start (token-fast.ts is small).
import { runFast as runTokenFast } from './commands/token-fast.js';
import { CREDPROXY_VERSION, defaultSocketPath } from './core-client.js';
import { reportError } from './exit-codes.js';
import { type CliIO, processIO } from './output.js';

interface CommandEntry {
  name: string;
  load(): Promise<CommandModule>;
  /** Tried first, without commander, when the command word comes first; undefined: not handled. */
  runFast?: CommandModule['runFast'];
  /** Needs the whole program registered (completion walks it), not only its own module. */
  needsAll?: true;
}

/** Every top-level command. Adding one is one line; a module loads only when its command runs. */
export const COMMANDS: readonly CommandEntry[] = [
  // In the order of --help: what a person does most first.
  { name: 'login', load: () => import('./commands/login.js') },
  { name: 'logout', load: () => import('./commands/logout.js') },
  { name: 'status', load: () => import('./commands/status.js') },
  { name: 'token', load: () => import('./commands/token.js'), runFast: runTokenFast },
  { name: 'exec', load: () => import('./commands/exec.js') },
  { name: 'session', load: () => import('./commands/session.js') },
  { name: 'provider', load: () => import('./commands/provider.js') },
  { name: 'key', load: () => import('./commands/key.js') },
  { name: 'client', load: () => import('./commands/client.js') },
  { name: 'route', load: () => import('./commands/route.js') },
  { name: 'access', load: () => import('./commands/access.js') },
  { name: 'serve', load: () => import('./commands/serve.js') },
  { name: 'stop', load: () => import('./commands/stop.js') },
  { name: 'ping', load: () => import('./commands/ping.js') },
  { name: 'doctor', load: () => import('./commands/doctor.js') },
  { name: 'service', load: () => import('./commands/service.js') },
  { name: 'completion', load: () => import('./commands/completion.js'), needsAll: true },
  // Hidden: what the completion scripts call back for names (providers, clients, keys, routes).
  { name: '__complete', load: () => import('./commands/completion.js') },
  { name: 'store', load: () => import('./commands/store.js') },
  { name: 'audit', load: () => import('./commands/audit.js') },
  { name: 'panic', load: () => import('./commands/panic.js') },
  { name: 'unlock', load: () => import('./commands/panic.js') },
];

/** Examples at the end of each command's --help (commands that carry their own add to them). */
export const COMMAND_EXAMPLES: Readonly<Record<string, readonly string[]>> = {
  login: ['credproxy login github', 'credproxy login github --bucket work --flow device_code', 'credproxy login google --no-browser', 'echo "$TOKEN" | credproxy login imported --with-token'],
  logout: ['credproxy logout github', 'credproxy logout github --bucket work --no-revoke'],
  status: ['credproxy status', 'credproxy status --json | jq .accounts'],
  session: ['id=$(credproxy session start github --flow device_code --json | jq -r .session_id)', 'credproxy session status "$id" --wait --timeout 600', 'credproxy session list', 'credproxy session cancel "$id"'],
  provider: ['credproxy provider presets', 'credproxy provider add github --preset github --client-id Iv1.0123', 'credproxy provider add corp --issuer https://login.example.com --client-id cli', 'credproxy provider list'],
  key: ['credproxy key set openai < ~/.openai-key', 'credproxy key list', 'credproxy key get openai        # in a sandbox: with $CREDPROXY_CAPABILITY_TOKEN', 'credproxy key remove openai'],
  client: ['credproxy client add agent --provider github --api-key openai --ttl 12h', 'credproxy client add ci --provider github:work --listen /run/user/$UID/ci.sock', 'credproxy client add sdk --route openai --http 127.0.0.1:0', 'credproxy client list', 'credproxy client remove agent'],
  route: ['credproxy route presets', 'credproxy route add openai --preset openai --api-key openai', 'credproxy route add gh --preset github --account github', 'credproxy route list'],
  access: ['credproxy access list', 'credproxy access approve ID --ttl 30m', 'credproxy access deny ID'],
  serve: ['credproxy serve', 'credproxy serve --detach', 'CREDPROXY_SOCKET=/tmp/p.sock credproxy serve'],
  stop: ['credproxy stop'],
  ping: ['credproxy ping', 'credproxy ping --json'],
  store: ['credproxy store status', 'credproxy store rekey'],
  audit: ['credproxy audit verify', 'credproxy audit tail -n 50 --client agent', 'credproxy audit tail --follow --json'],
  panic: ['credproxy panic', 'credproxy status      # LOCKED', 'credproxy unlock'],
  unlock: ['credproxy unlock'],
  doctor: ['credproxy doctor', 'credproxy doctor --json'],
  service: ['credproxy service install', 'credproxy service status', 'credproxy service uninstall'],
  completion: ['credproxy completion bash >> ~/.bashrc', 'credproxy completion zsh > "${fpath[1]}/_credproxy"', 'credproxy completion fish > ~/.config/fish/completions/credproxy.fish'],
};

/** The end of `credproxy --help`: examples, the environment, the exit codes (SPEC §5). */
export const TOP_LEVEL_HELP = `
Examples:
  credproxy login github                      log in (starts the proxy if needed)
  credproxy token github                      print an access token, for $(...) and scripts
  credproxy exec --provider github -- gh api user
  credproxy client add agent --provider github --ttl 12h --listen /run/user/$UID/agent.sock
  credproxy session start github --json       CI: start a login and return at once

Environment:
  CREDPROXY_SOCKET            the owner socket (--socket overrides it)
  CREDPROXY_CONFIG            the config file (providers, routes, store)
  CREDPROXY_DATA_DIR          tokens, API keys, the client registry, audit.log
  CREDPROXY_KEY_FILE          the key file that wraps the data key (encryption at rest)
  CREDPROXY_PASSPHRASE_FILE   a file holding the passphrase that wraps the data key
  CREDPROXY_CAPABILITY_TOKEN  in a sandbox: the client's token, for token, exec and key (or --token-fd N)
  CREDPROXY_DEBUG             print stack traces with errors

Exit codes:
  0 ok   1 error   2 usage   3 pending (login not finished)   4 denied, expired or failed
  5 proxy not running or not reachable   6 not logged in, or a new login is needed
`;


export async function main(argv: readonly string[], io: CliIO = processIO()): Promise<number> {
  const json = argv.includes('--json');
  /** Under --json, commander's own usage errors are collected and printed as one JSON object. */
  let usage = '';
  try {
    // The program has no options of its own besides --help/--version, so the first word that is
    // not an option is the command.
    const name = argv.find((arg) => !arg.startsWith('-'));
    const entry = COMMANDS.find((c) => c.name === name);
    if (entry?.runFast && argv[0] === entry.name) {
      const fast = entry.runFast(argv.slice(1), io);
      if (fast !== undefined) return await fast;
    }
    const modules = entry && !entry.needsAll ? [await entry.load()] : await Promise.all(COMMANDS.map((c) => c.load()));

    if (entry && argv[0] === entry.name) {
      const fast = (await entry.load()).runFast?.(argv.slice(1), io);
      if (fast !== undefined) return await fast;
    }

    const { Command, Help } = await import('commander');
    const ctx: CommandContext = { io, exitCode: 0 };
    const program = new Command('credproxy')
      .description('credential proxy: holds OAuth tokens and API keys, hands out short-lived access tokens')
      .version(CREDPROXY_VERSION, '-V, --version')
      .exitOverride()
      .configureOutput({
        writeOut: (s) => void io.stdout.write(s),
        writeErr: (s) => void (json ? (usage += s) : io.stderr.write(s)),
        // Every error line has one prefix, commander's included ("error: …" → "credproxy: …").
        outputError: (s, write) => write(s.replace(/^error: /, 'credproxy: ')),
        // Wrapped to the terminal it is shown on; 80 columns for a pipe.
        getOutHelpWidth: () => (io.stdout as { columns?: number }).columns ?? 80,
        getErrHelpWidth: () => (io.stderr as { columns?: number }).columns ?? 80,
      })
      .configureHelp({
        // Repeatable options collect into an array: "(default: [])" tells nobody anything.
        optionDescription: (option) => new Help().optionDescription(option).replace(/ \(default: \[\]\)$/, ''),
      })
      .addHelpText('after', TOP_LEVEL_HELP)
      .showHelpAfterError('(add --help for usage)')
      .enablePositionalOptions();
    // A module may serve two command words (panic and unlock): register it once.
    for (const mod of new Set(modules)) mod.register(program, ctx);
    describeSocketDefault(program, `owner socket (default: ${defaultSocketPath({ env: io.env })})`);
    for (const command of program.commands) {
      const examples = COMMAND_EXAMPLES[command.name()];
      if (examples) command.addHelpText('after', `\nExamples:\n${examples.map((e) => `  ${e}`).join('\n')}\n`);
    }
    if (argv.length === 0) {
      // A bare `credproxy` asks what it can do: the help, on stdout, and no error.
      program.outputHelp();
      return 0;
    }
    await program.parseAsync([...argv], { from: 'user' });
    return ctx.exitCode;
  } catch (err) {
    return reportError(err, io, { json, usage });
  }
}

/** Every --socket option's help names the socket as it really resolves ($CREDPROXY_SOCKET, …). */
function describeSocketDefault(command: import('commander').Command, description: string): void {
  for (const option of command.options) if (option.long === '--socket') option.description = description;
  for (const sub of command.commands) describeSocketDefault(sub, description);
}
