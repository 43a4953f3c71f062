// The proposer node's member feeding: a failure to send after an asynchronous WAL read
// drops that member (it reconnects) instead of escaping as an unhandled rejection.
import { Proposer } from '../../src/consensus/proposer.js';
import type { AcceptorMessage, ProposerMessage } from '../../src/consensus/messages.js';
import { ProposerNode } from '../../src/proposer/proposerNode.js';
import { SimClock } from '@walkeeper/testkit/sim/clock';

const MCONF = { generation: 0, members: [], newMembers: null };

function electedNode(send: (member: number, msg: ProposerMessage) => void, read: () => Promise<Uint8Array>) {
  const dropped: { member: number; reason: string }[] = [];
  const core = new Proposer({
    tenantId: 'ab'.repeat(16), timelineId: 'cd'.repeat(16), pgVersion: 160004, systemId: 7n,
    walSegSize: 16 * 1024 * 1024, memberCount: 3, startLsnIfEmpty: 0x1000000n, broadcastCommit: false,
  });
  const node = new ProposerNode({
    core,
    clock: new SimClock(),
    transport: { send, close: (member, reason) => dropped.push({ member, reason }) },
    wal: { read },
    events: { elected: () => undefined, commitAdvanced: () => undefined, fenced: () => undefined },
  });
  for (let m = 0; m < 3; m++) node.connected(m);
  for (let m = 0; m < 3; m++) node.received(m, { tag: 'acceptor_greeting', nodeId: BigInt(m), mconf: MCONF, term: 0n } as AcceptorMessage);
  for (let m = 0; m < 3; m++) {
    node.received(m, { tag: 'vote_response', generation: 0, term: 1n, voteGiven: true, flushLsn: 0n, truncateLsn: 0n, termHistory: [] });
  }
  return { node, core, dropped };
}

describe('proposer node feeding a member', () => {
  it('drops the member whose link throws on the send after an asynchronous WAL read', async () => {
    const { node, core, dropped } = electedNode(
      (member, msg) => {
        if (member === 1 && msg.tag === 'append_request' && msg.walData.length > 0) throw new Error('link closed');
      },
      async () => new Uint8Array(16),
    );
    expect(core.phase).toBe('elected');
    node.walAppended(core.walEnd + 16n);
    await new Promise((r) => setImmediate(r));
    expect(dropped).toEqual([{ member: 1, reason: 'cannot feed safekeeper: link closed' }]);
    node.stop();
  });
  it('drops the member whose WAL cannot be read, and only it', async () => {
    const { node, core, dropped } = electedNode(() => undefined, async () => {
      throw new Error('peer gone');
    });
    node.walAppended(core.walEnd + 16n);
    await new Promise((r) => setImmediate(r));
    expect(dropped.map((d) => d.member).sort()).toEqual([0, 1, 2]);
    expect(dropped[0].reason).toBe('cannot feed safekeeper: peer gone');
    node.stop();
  });
});
