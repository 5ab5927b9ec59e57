/** What every command module shares: its shape, its context, and the common options. */
import type { Command } from 'commander';
import type { CliIO } from './output.js';

export interface CommandContext {
  io: CliIO;
  /** The action sets this; main returns it. */
  exitCode: number;
}

export interface CommandModule {
  /** Add the command (and its subcommands) to the program. */
  register(program: Command, ctx: CommandContext): void;
  /**
   * Run without loading commander when the arguments are simple, for commands whose startup
   * time matters. Returns undefined to let commander parse (help, errors, anything unusual).
   */
  runFast?(args: readonly string[], io: CliIO): Promise<number> | undefined;
}

export interface CommonOptions {
  socket?: string;
  json?: boolean;
}

/** main() rewrites the description with the socket as it resolves for the command's env. */
export function socketOption(cmd: Command): Command {
  return cmd.option('--socket <path>', 'owner socket');
}

/** --socket and --json: for every command that prints data. */
export function dataOptions(cmd: Command): Command {
  return socketOption(cmd).option('--json', "print the op's data as JSON");
}
