// The tests' S3-compatible server lives beside the local cluster (the benchmark starts it too).
export { S3RVER_KEY, TestS3Server } from '../../src/local/s3Server.js';
