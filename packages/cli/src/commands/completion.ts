/**
 * `credproxy completion bash|zsh|fish`: a completion script generated from the program's own
 * command tree (every command, subcommand and option, as registered), which completes provider,
 * client, key and route names by calling `credproxy __complete KIND` — a hidden command that
 * prints names one per line from the running proxy (routes, and providers when it is down, from
 * the config file), prints nothing when it cannot, always exits 0, and loads only the client part
 * of core.
 */
import { promises as fs } from 'node:fs';
import type { Command } from 'commander';
import type { CommandContext } from '../command-kit.js';
import { FLOW_TYPES, ProxyClient, resolvePaths } from '../core-client.js';
import { ExitCode, UsageError } from '../exit-codes.js';
import type { CliIO } from '../output.js';
import { socketPathFor } from '../socket.js';

export const SHELLS = ['bash', 'zsh', 'fish'] as const;
export type Shell = (typeof SHELLS)[number];
export const NAME_KINDS = ['providers', 'clients', 'keys', 'routes'] as const;
export type NameKind = (typeof NAME_KINDS)[number];

/**
 * What a word can be: nothing to offer (`value`), a path, a command, names asked of the proxy,
 * or fixed words. Flags (options without a value) have no kind.
 */
export type ValueKind = 'value' | 'file' | 'command' | NameKind | `words:${string}`;

export interface CompletionNode {
  /** The command words from the top, space-separated; '' for `credproxy` itself. */
  path: string;
  subcommands: string[];
  options: string[];
  /** Options that take a value, and what that value is. */
  valueOptions: Record<string, ValueKind>;
  /** Each positional argument's kind; the last repeats when `variadic`. */
  args: ValueKind[];
  variadic: boolean;
}

/** Options whose values are names credproxy knows, by the option's long name. */
const OPTION_KINDS: Record<string, ValueKind> = {
  '--provider': 'providers',
  '--account': 'providers',
  '--api-key': 'keys',
  '--client': 'clients',
  '--route': 'routes',
  '--socket': 'file',
  '--listen': 'file',
  '--flow': `words:${FLOW_TYPES.join(' ')}`,
};

/** Under which command a positional `<name>` is a known name (`add` names a new one). */
const NAME_ARGUMENT_KINDS: Record<string, NameKind> = { provider: 'providers', client: 'clients', key: 'keys', route: 'routes' };

function argumentKind(words: readonly string[], name: string, choices: readonly string[] | undefined): ValueKind {
  if (choices && choices.length > 0) return `words:${choices.join(' ')}`;
  if (name === 'provider') return 'providers';
  if (name === 'cmd') return 'command';
  const top = words[0];
  if (name === 'name' && top !== undefined && words[words.length - 1] !== 'add' && NAME_ARGUMENT_KINDS[top]) return NAME_ARGUMENT_KINDS[top]!;
  return 'value';
}

/** The tree as the shells need it, from the program with every command registered. */
export function completionTree(program: Command): CompletionNode[] {
  const nodes: CompletionNode[] = [];
  const walk = (cmd: Command, words: string[]): void => {
    const subs = cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
    const options: string[] = [];
    const valueOptions: Record<string, ValueKind> = {};
    for (const o of cmd.options) {
      if (o.hidden) continue;
      const flags = [o.long, o.short].filter((f): f is string => f !== undefined);
      options.push(...flags);
      if (o.required || o.optional) {
        const kind = o.argChoices?.length ? (`words:${o.argChoices.join(' ')}` as const) : (OPTION_KINDS[o.long ?? ''] ?? 'value');
        for (const f of flags) valueOptions[f] = kind;
      }
    }
    options.push('--help');
    const args = cmd.registeredArguments.map((a) => argumentKind(words, a.name(), a.argChoices));
    nodes.push({
      path: words.join(' '),
      subcommands: subs.flatMap((c) => [c.name(), ...c.aliases()]),
      options,
      valueOptions,
      args,
      variadic: cmd.registeredArguments.at(-1)?.variadic ?? false,
    });
    for (const sub of subs) walk(sub, [...words, sub.name()]);
  };
  walk(program, []);
  for (const n of nodes) {
    for (const word of [n.path, ...n.subcommands, ...n.options, ...Object.values(n.valueOptions), ...n.args]) {
      // Everything goes into shell code unquoted-safe: refuse anything a shell would read twice.
      if (!/^[\w:. -]*$/.test(word)) throw new Error(`completion: unexpected characters in ${JSON.stringify(word)}`);
    }
  }
  return nodes;
}

// ---- the scripts ----------------------------------------------------------------------------
// Three lookup functions per shell, generated from the tree, and a walker written once per
// shell: it follows the words before the cursor down the tree (skipping options and the values
// they take), then offers options, subcommands, or the values of the option or argument there.

interface Tables {
  subs: Array<[string, string]>;
  opts: Array<[string, string]>;
  optKinds: Array<[string, string]>;
  argKinds: Array<[string, string]>;
  /** key prefix "path|" of a node whose last argument repeats, and that argument's kind. */
  variadic: Array<[string, string]>;
}

function tables(nodes: readonly CompletionNode[]): Tables {
  const t: Tables = { subs: [], opts: [], optKinds: [], argKinds: [], variadic: [] };
  for (const n of nodes) {
    if (n.subcommands.length > 0) t.subs.push([n.path, n.subcommands.join(' ')]);
    t.opts.push([n.path, n.options.join(' ')]);
    for (const [opt, kind] of Object.entries(n.valueOptions)) t.optKinds.push([`${n.path}|${opt}`, kind]);
    n.args.forEach((kind, i) => t.argKinds.push([`${n.path}|${i}`, kind]));
    // A repeated `<cmd...>` is a command first, then its arguments (paths).
    const last = n.args.at(-1);
    if (n.variadic && last !== undefined) t.variadic.push([`${n.path}|`, last === 'command' ? 'file' : last]);
  }
  return t;
}

function posixCase(name: string, rows: Array<[string, string]>, fallback: string, extra: Array<[string, string]> = []): string {
  const lines = rows.map(([k, v]) => `    '${k}') REPLY='${v}' ;;`);
  const globs = extra.map(([k, v]) => `    '${k}'*) REPLY='${v}' ;;`);
  return `${name}() {\n  case "$1" in\n${[...lines, ...globs].join('\n')}\n    *) REPLY='${fallback}' ;;\n  esac\n}\n`;
}

function posixTables(t: Tables, fn: string): string {
  return [
    `# $1: the command path; REPLY: its subcommands`,
    posixCase(`${fn}_subs`, t.subs, ''),
    `# $1: the command path; REPLY: its options`,
    posixCase(`${fn}_opts`, t.opts, '--help'),
    `# $1: "path|option"; REPLY: what the option's value is ("none": it takes none)`,
    posixCase(`${fn}_optkind`, t.optKinds, 'none'),
    `# $1: "path|index"; REPLY: what the positional argument is`,
    posixCase(`${fn}_argkind`, t.argKinds, 'value', t.variadic),
  ].join('\n');
}

/**
 * The end of the bash and zsh completion functions (the same in both shells): options after a
 * dash, else subcommands and the argument's values at node `$node` with `$nargs` arguments so far.
 */
function completeAtNode(fn: string): string {
  return `  if [[ $cur == -* ]]; then
    ${fn}_opts "$node"
    ${fn}_values "words:$REPLY" "$cur"
    return 0
  fi
  if ((nargs == 0)); then
    ${fn}_subs "$node"
    [[ -n $REPLY ]] && ${fn}_values "words:$REPLY" "$cur"
  fi
  ${fn}_argkind "$node|$nargs"
  ${fn}_values "$REPLY" "$cur"
  return 0
}
`;
}

export function bashScript(nodes: readonly CompletionNode[]): string {
  const fn = '_credproxy';
  return `# bash completion for credproxy — generated by \`credproxy completion bash\`.
# Load it now: source <(credproxy completion bash)
# Or for every shell: credproxy completion bash > ~/.local/share/bash-completion/completions/credproxy

${posixTables(tables(nodes), fn)}
# $1: a kind, $2: the word so far; adds the candidates to COMPREPLY
${fn}_values() {
  local IFS=$'\\n'
  case "$1" in
    none|value) ;;
    file) compopt -o filenames 2>/dev/null; COMPREPLY+=($(compgen -f -- "$2")) ;;
    command) COMPREPLY+=($(compgen -c -- "$2")) ;;
    words:*) IFS=$' \\n'; COMPREPLY+=($(compgen -W "\${1#words:}" -- "$2")) ;;
    *) COMPREPLY+=($(compgen -W "$("\${COMP_WORDS[0]}" __complete "$1" 2>/dev/null)" -- "$2")) ;;
  esac
}

${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" node='' w REPLY
  local -i i nargs=0 after=-1
  COMPREPLY=()
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if ((after >= 0)); then after+=1; continue; fi
    if [[ $w == -- ]]; then after=0; continue; fi
    if [[ $w == -* ]]; then
      if [[ $w != *=* ]]; then
        ${fn}_optkind "$node|$w"
        [[ $REPLY != none ]] && i+=1
      fi
      continue
    fi
    ${fn}_subs "$node"
    if ((nargs == 0)) && [[ " $REPLY " == *" $w "* ]]; then
      node="\${node:+$node }$w"
    else
      nargs+=1
    fi
  done
  if ((after >= 0)); then
    if ((after == 0)); then ${fn}_values command "$cur"; else ${fn}_values file "$cur"; fi
    return 0
  fi
  local prev="\${COMP_WORDS[COMP_CWORD-1]}"
  if ((COMP_CWORD > 1)) && [[ $prev == -* && $prev != *=* && $prev != -- ]]; then
    ${fn}_optkind "$node|$prev"
    if [[ $REPLY != none ]]; then ${fn}_values "$REPLY" "$cur"; return 0; fi
  fi
${completeAtNode(fn)}
complete -F ${fn} credproxy
`;
}

export function zshScript(nodes: readonly CompletionNode[]): string {
  const fn = '_credproxy';
  return `#compdef credproxy
# zsh completion for credproxy — generated by \`credproxy completion zsh\`.
# Load it now (after compinit): source <(credproxy completion zsh)
# Or for every shell: credproxy completion zsh > "\${fpath[1]}/_credproxy"

${posixTables(tables(nodes), fn)}
# $1: a kind, $2: the word so far
${fn}_values() {
  case "$1" in
    none|value) ;;
    file) _files ;;
    command) _command_names ;;
    words:*) compadd -- \${=\${1#words:}} ;;
    *) compadd -- \${(f)"$(\${words[1]} __complete "$1" 2>/dev/null)"} ;;
  esac
}

${fn}() {
  local cur="\${words[CURRENT]}" node='' w REPLY prev
  integer i nargs=0 after=-1
  for ((i = 2; i < CURRENT; i++)); do
    w="\${words[i]}"
    if ((after >= 0)); then ((after++)); continue; fi
    if [[ $w == -- ]]; then after=0; continue; fi
    if [[ $w == -* ]]; then
      if [[ $w != *=* ]]; then
        ${fn}_optkind "$node|$w"
        [[ $REPLY != none ]] && ((i++))
      fi
      continue
    fi
    ${fn}_subs "$node"
    if ((nargs == 0)) && [[ " $REPLY " == *" $w "* ]]; then
      node="\${node:+$node }$w"
    else
      ((nargs++))
    fi
  done
  if ((after >= 0)); then
    if ((after == 0)); then ${fn}_values command "$cur"; else ${fn}_values file "$cur"; fi
    return 0
  fi
  prev="\${words[CURRENT-1]}"
  if ((CURRENT > 2)) && [[ $prev == -* && $prev != *=* && $prev != -- ]]; then
    ${fn}_optkind "$node|$prev"
    if [[ $REPLY != none ]]; then ${fn}_values "$REPLY" "$cur"; return 0; fi
  fi
${completeAtNode(fn)}
if [[ \${funcstack[1]} == ${fn} ]]; then
  ${fn} "$@"
else
  compdef ${fn} credproxy
fi
`;
}

function fishSwitch(name: string, rows: Array<[string, string]>, fallback: string, extra: Array<[string, string]> = []): string {
  const lines = rows.map(([k, v]) => `    case '${k}'\n      echo '${v}'`);
  const globs = extra.map(([k, v]) => `    case '${k}*'\n      echo '${v}'`);
  return `function ${name}\n  switch $argv[1]\n${[...lines, ...globs].join('\n')}\n    case '*'\n      echo '${fallback}'\n  end\nend\n`;
}

export function fishScript(nodes: readonly CompletionNode[]): string {
  const t = tables(nodes);
  const fn = '__credproxy';
  return `# fish completion for credproxy — generated by \`credproxy completion fish\`.
# Load it now: credproxy completion fish | source
# Or for every shell: credproxy completion fish > ~/.config/fish/completions/credproxy.fish

${fishSwitch(`${fn}_subs`, t.subs, '')}
${fishSwitch(`${fn}_opts`, t.opts, '--help')}
${fishSwitch(`${fn}_optkind`, t.optKinds, 'none')}
${fishSwitch(`${fn}_argkind`, t.argKinds, 'value', t.variadic)}
# $argv[1]: a kind, $argv[2]: the command word; prints candidates one per line
function ${fn}_values
  switch $argv[1]
    case none value
      return 0
    case file
      __fish_complete_path (commandline -ct)
    case command
      __fish_complete_command
    case 'words:*'
      string split ' ' -- (string replace -r '^words:' '' -- $argv[1])
    case '*'
      $argv[2] __complete $argv[1] 2>/dev/null
  end
end

function ${fn}_complete
  set -l tokens (commandline -opc)
  set -l cur (commandline -ct)
  set -l node ''
  set -l nargs 0
  set -l after -1
  set -l skip 0
  for w in $tokens[2..-1]
    if test $skip -eq 1
      set skip 0
      continue
    end
    if test $after -ge 0
      set after (math $after + 1)
      continue
    end
    if test "$w" = '--'
      set after 0
      continue
    end
    if string match -q -- '-*' $w
      if not string match -q -- '*=*' $w; and test (${fn}_optkind "$node|$w") != none
        set skip 1
      end
      continue
    end
    if test $nargs -eq 0; and contains -- $w (string split ' ' -- (${fn}_subs "$node"))
      set node (string trim -- "$node $w")
    else
      set nargs (math $nargs + 1)
    end
  end
  if test $after -ge 0
    if test $after -eq 0
      ${fn}_values command $tokens[1]
    else
      ${fn}_values file $tokens[1]
    end
    return 0
  end
  if test $skip -eq 1
    ${fn}_values (${fn}_optkind "$node|$tokens[-1]") $tokens[1]
    return 0
  end
  if string match -q -- '-*' "$cur"
    string split ' ' -- (${fn}_opts "$node")
    return 0
  end
  if test $nargs -eq 0
    set -l subs (${fn}_subs "$node")
    test -n "$subs"; and string split ' ' -- $subs
  end
  ${fn}_values (${fn}_argkind "$node|$nargs") $tokens[1]
end

complete -c credproxy -f -a '(${fn}_complete)'
`;
}

const RENDER: Record<Shell, (nodes: readonly CompletionNode[]) => string> = { bash: bashScript, zsh: zshScript, fish: fishScript };

export function completionScript(shell: Shell, program: Command): string {
  return RENDER[shell](completionTree(program));
}

// ---- `credproxy __complete KIND` ------------------------------------------------------------

async function configNames(env: NodeJS.ProcessEnv, field: 'providers' | 'routes'): Promise<string[]> {
  try {
    const raw = JSON.parse(await fs.readFile(resolvePaths({ env }).configFile, 'utf8')) as Record<string, unknown>;
    const section = raw[field];
    return section !== null && typeof section === 'object' && !Array.isArray(section) ? Object.keys(section) : [];
  } catch {
    return [];
  }
}

async function proxyNames(socket: string | undefined, env: NodeJS.ProcessEnv, kind: Exclude<NameKind, 'routes'>): Promise<string[] | undefined> {
  let client: ProxyClient | undefined;
  try {
    client = await ProxyClient.connect({ socketPath: socketPathFor(socket, env), timeoutMs: 1_000 });
    if (kind === 'providers') return (await client.call('list_providers', {})).providers;
    if (kind === 'clients') return (await client.call('client_list', {})).clients.map((c) => c.name);
    return (await client.call('list_api_keys', {})).keys;
  } catch {
    return undefined;
  } finally {
    client?.close();
  }
}

/** Names of one kind, one per line; nothing (and exit 0) when there is nobody to ask. */
export async function handleComplete(kind: string, options: { socket?: string }, io: CliIO): Promise<number> {
  if (!(NAME_KINDS as readonly string[]).includes(kind)) return ExitCode.OK;
  let names: string[];
  if (kind === 'routes') names = await configNames(io.env, 'routes');
  else names = (await proxyNames(options.socket, io.env, kind as Exclude<NameKind, 'routes'>)) ?? (kind === 'providers' ? await configNames(io.env, 'providers') : []);
  // Only names that are safe to hand to a shell's word list.
  const safe = [...new Set(names)].filter((n) => /^[\w.:@-]+$/.test(n)).sort();
  if (safe.length > 0) io.stdout.write(safe.join('\n') + '\n');
  return ExitCode.OK;
}

export function handleCompletion(shell: string, program: Command, io: CliIO): number {
  if (!(SHELLS as readonly string[]).includes(shell)) throw new UsageError(`no completion for ${shell} — choose one of ${SHELLS.join(', ')}`);
  io.stdout.write(completionScript(shell as Shell, program));
  return ExitCode.OK;
}

export function register(program: Command, ctx: CommandContext): void {
  program
    .command('completion')
    .description('print a shell completion script (bash, zsh or fish)')
    .addArgument(program.createArgument('<shell>', 'the shell').choices(SHELLS))
    .addHelpText(
      'after',
      `
Completes commands, subcommands and options, and provider, client, key and route names
(asked of the running proxy; routes from the config file).

Examples:
  source <(credproxy completion bash)          bash, now (add it to ~/.bashrc for every shell)
  source <(credproxy completion zsh)           zsh, after compinit
  credproxy completion fish | source           fish
`,
    )
    .action((shell: string, _opts: unknown, cmd: Command) => {
      // main registers every command before this one runs (its entry says needsAll).
      let root = cmd;
      while (root.parent) root = root.parent;
      ctx.exitCode = handleCompletion(shell, root, ctx.io);
    });
  program
    .command('__complete', { hidden: true })
    .argument('<kind>')
    .option('--socket <path>')
    .action(async (kind: string, opts: { socket?: string }) => {
      ctx.exitCode = await handleComplete(kind, opts, ctx.io);
    });
}
