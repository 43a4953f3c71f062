// The `walkeeper` command line: the data-plane processes. `safekeeper` is one member of the WAL quorum;
// `proposer` is the sidecar that pushes a PostgreSQL primary's WAL to the quorum; `backup`,
// `restore` and `wal-fetch` rebuild a lost primary from the bucket and the safekeepers.
import { Command } from 'commander';
import { flag } from './flags.js';
import { DEFAULT_DISK_HIGH_WATER, DEFAULT_DISK_RESERVE, DEFAULT_MAX_RECYCLED_SEGMENTS, DEFAULT_WAL_KEEP_SIZE, runSafekeeper, type SafekeeperHooks, type SafekeeperOptions } from '../safekeeper/main.js';
import { runProposer, type ProposerHooks, type ProposerOptions } from '../proposer/main.js';
import { addBackupCommands } from './backupCommands.js';
import { addRemoteStorageFlags } from './remoteStorageFlags.js';

/**
 * Test hooks for the processes this command starts. Only the testkit's entrypoint passes
 * any (bin/walkeeper.js passes none), so product code never reads them from the environment.
 */
export interface WalkeeperHooks {
  safekeeper?: SafekeeperHooks;
  proposer?: ProposerHooks;
}

/** Parses argv (process.argv shape) and runs the chosen command; exits 1 with the error on failure. */
export function runWalkeeper(argv: readonly string[], hooks: WalkeeperHooks = {}): void {
  const program = new Command('walkeeper').description('walkeeper WAL service').showHelpAfterError();

  addRemoteStorageFlags(
    program.command('safekeeper'),
    'offload committed WAL segments to s3://bucket/prefix or file:///dir, and read WAL removed locally back from there',
  )
    .description('run a safekeeper: stores WAL durably, votes in elections, serves readers')
    .addOption(flag('--id <n>', 'safekeeper id (positive integer), pinned to the data directory'))
    .addOption(flag('--id-from-hostname', 'take the id from a StatefulSet hostname: ordinal N gives id N+1'))
    .addOption(flag('--datadir <dir>', 'data directory', './safekeeper-data'))
    .addOption(flag('--listen-pg <host:port>', 'Postgres-protocol address (proposers and readers)', '0.0.0.0:5454'))
    .addOption(flag('--listen-http <host:port>', 'HTTP API and metrics address', '0.0.0.0:7676'))
    .addOption(flag('--auth-public-key <file>', 'PEM public key; when set, every connection and request needs a JWT'))
    .addOption(flag('--tls-cert <file>', 'PEM certificate (chain); with --tls-key, both ports require TLS'))
    .addOption(flag('--tls-key <file>', 'PEM private key of --tls-cert'))
    .addOption(flag('--max-slot-wal-keep-size <size>', 'most WAL a reader\'s replication slot may hold below the commit LSN (64MB, 1GB; -1 = unlimited); a slot further behind is invalidated', '-1'))
    .addOption(flag('--wal-keep-size <size>', 'WAL always kept below the commit LSN, in PostgreSQL units (64MB, 1GB; a bare number is MB)', DEFAULT_WAL_KEEP_SIZE))
    .addOption(flag('--disk-high-water <percent>', 'disk use from which status and metrics report the disk as nearly full', DEFAULT_DISK_HIGH_WATER))
    .addOption(flag('--disk-reserve <size>', 'space held in <datadir>/reserve and released on a full disk so removal can proceed', DEFAULT_DISK_RESERVE))
    .addOption(flag('--max-recycled-segments <n>', 'removed WAL segment files kept per timeline and reused as future segments, with the next segment prepared ahead; 0 = unlink removed segments and create each segment when it is needed', String(DEFAULT_MAX_RECYCLED_SEGMENTS)))
    .addOption(flag('--log-format <format>', 'json or text', 'json'))
    .addOption(flag('--remote-storage-members <n>', 'cluster size N (member ids 1..N): chooses each timeline\'s uploader', '3'))
    .addOption(flag('--remote-storage-grace-ms <ms>', 'a member that is not a timeline\'s designated uploader uploads a segment still missing from the bucket this long (times its rank) after it was committed', '30000'))
    .action((opts: SafekeeperOptions) => runSafekeeper(opts, hooks.safekeeper));

  addRemoteStorageFlags(
    program.command('proposer'),
    'the bucket base backups go to (POST /v1/backups), the one the safekeepers offload WAL to',
  )
    .description('run the proposer sidecar beside a PostgreSQL primary')
    .addOption(flag('--pg <connstr>', 'libpq-style connection string of the primary (key=value or postgresql:// URL)'))
    .addOption(flag('--safekeepers <list>', 'comma-separated host:port of the safekeepers\' Postgres-protocol ports'))
    .addOption(flag('--tenant <id>', 'tenant id (32 hex)'))
    .addOption(flag('--timeline <id>', 'timeline id (32 hex)'))
    .addOption(flag('--listen-http <host:port>', 'HTTP status and metrics address', '0.0.0.0:7677'))
    .addOption(flag('--auth-token <jwt>', 'JWT presented to the safekeepers'))
    .addOption(flag('--tls-ca <file>', 'PEM CA certificate(s): connect to the safekeepers over TLS and verify their certificates against it'))
    .addOption(flag('--promote', 'failover: --pg may be a hot standby following a safekeeper; once this proposer holds the quorum and the standby has replayed all committed WAL, promote it and push its new timeline (docs/operations.md)'))
    .addOption(flag('--log-format <format>', 'json or text', 'json'))
    .action((opts: ProposerOptions) => runProposer(opts, hooks.proposer));

  addBackupCommands(program);

  program.parseAsync([...argv]).catch((err: Error) => {
    process.stderr.write(`walkeeper: error: ${err.message}\n`);
    process.exit(1);
  });
}
