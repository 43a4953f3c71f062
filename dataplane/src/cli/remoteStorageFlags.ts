// The --remote-storage flags, one definition for every command that speaks to the bucket
// (safekeeper, proposer, backup, restore): the same names, help and WALKEEPER_* variables.
import type { Command } from 'commander';
import { flag } from './flags.js';
import { parseRemoteStorageUrl } from '../remote/url.js';
import type { RemoteStorageConfig } from '../remote/remoteStorage.js';

export interface RemoteStorageFlags {
  remoteStorage?: string;
  remoteStorageEndpoint?: string;
  remoteStorageRegion?: string;
  remoteStoragePathStyle?: string | boolean;
  remoteStorageChecksum?: string;
  remoteStorageAccessKeyId?: string;
  remoteStorageSecretAccessKey?: string;
}

export function addRemoteStorageFlags(cmd: Command, urlHelp: string): Command {
  return cmd
    .addOption(flag('--remote-storage <url>', urlHelp))
    .addOption(flag('--remote-storage-endpoint <url>', 'S3 endpoint of an S3-compatible store, e.g. http://minio:9000 (else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL)'))
    .addOption(flag('--remote-storage-region <region>', 'S3 region (else AWS_REGION, AWS_DEFAULT_REGION; us-east-1 with an endpoint)'))
    .addOption(flag('--remote-storage-path-style <bool>', 'S3 path-style addressing (endpoint/bucket/key), which most S3-compatible stores need: true or false'))
    .addOption(flag('--remote-storage-checksum <mode>', 'S3 request checksums: when_supported (SDK default) or when_required (S3-compatible stores that reject checksum headers, e.g. s3rver)'))
    .addOption(flag('--remote-storage-access-key-id <id>', 'S3 access key id (else AWS_ACCESS_KEY_ID, else the SDK default chain)'))
    .addOption(flag('--remote-storage-secret-access-key <key>', 'S3 secret access key (else AWS_SECRET_ACCESS_KEY); prefer the environment to a command line'));
}

/** The store the flags name, or undefined without --remote-storage; a typo throws naming it. */
export function remoteStorageConfig(o: RemoteStorageFlags): RemoteStorageConfig | undefined {
  if (!o.remoteStorage) return undefined;
  return parseRemoteStorageUrl(o.remoteStorage, {
    endpoint: o.remoteStorageEndpoint,
    region: o.remoteStorageRegion,
    pathStyle: o.remoteStoragePathStyle,
    checksum: o.remoteStorageChecksum,
    accessKeyId: o.remoteStorageAccessKeyId,
    secretAccessKey: o.remoteStorageSecretAccessKey,
  });
}
