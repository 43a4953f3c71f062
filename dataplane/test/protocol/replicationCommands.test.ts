// Replication-connection command parser over the exact commands stock clients sent in the
// reference captures, plus the tolerance and the errors of the real server's grammar.
import { ProtocolError } from '../../src/protocol/errors.js';
import { parseReplicationCommand } from '../../src/protocol/replicationCommands.js';

describe('commands captured from pg_receivewal, walreceiver and pg_basebackup (PG 15)', () => {
  test.each([
    ['SHOW data_directory_mode', { kind: 'show', name: 'data_directory_mode' }],
    ['SHOW wal_segment_size', { kind: 'show', name: 'wal_segment_size' }],
    ['IDENTIFY_SYSTEM', { kind: 'identify_system' }],
    ['READ_REPLICATION_SLOT "slot1"', { kind: 'read_replication_slot', slot: 'slot1' }],
    ['READ_REPLICATION_SLOT slot1', { kind: 'read_replication_slot', slot: 'slot1' }],
    ['TIMELINE_HISTORY 2', { kind: 'timeline_history', timeline: 2 }],
    [
      'START_REPLICATION SLOT "slot1" 0/12000000 TIMELINE 1',
      { kind: 'start_replication', slot: 'slot1', physicalKeyword: false, startLsn: 0x12000000n, timeline: 1, term: null },
    ],
    [
      'START_REPLICATION SLOT "standby1slot" 0/1C000000 TIMELINE 1',
      { kind: 'start_replication', slot: 'standby1slot', physicalKeyword: false, startLsn: 0x1c000000n, timeline: 1, term: null },
    ],
    [
      'START_REPLICATION 0/1C000000 TIMELINE 1',
      { kind: 'start_replication', slot: null, physicalKeyword: false, startLsn: 0x1c000000n, timeline: 1, term: null },
    ],
    [
      'START_REPLICATION SLOT "slot1" 0/1A000000 TIMELINE 1',
      { kind: 'start_replication', slot: 'slot1', physicalKeyword: false, startLsn: 0x1a000000n, timeline: 1, term: null },
    ],
    [
      'CREATE_REPLICATION_SLOT "standby1slot" PHYSICAL ( RESERVE_WAL)',
      { kind: 'create_replication_slot', slot: 'standby1slot', temporary: false, slotType: 'physical', plugin: null, options: { reserve_wal: '' } },
    ],
  ])('%s', (text, expected) => {
    expect(parseReplicationCommand(text)).toEqual(expected);
  });

  test("pg_basebackup's BASE_BACKUP is understood and answered as unsupported", () => {
    const cmd = parseReplicationCommand("BASE_BACKUP ( LABEL 'pg_basebackup base backup', PROGRESS, CHECKPOINT 'fast', WAIT 0,  MANIFEST 'yes',  TARGET 'client')");
    expect(cmd).toMatchObject({ kind: 'unsupported', command: 'BASE_BACKUP', sqlState: '0A000' });
    expect((cmd as { message: string }).message).toMatch(/not supported/);
  });
});

describe('tolerance of the real grammar', () => {
  test('keywords in any case, extra whitespace and a trailing semicolon', () => {
    expect(parseReplicationCommand('  identify_system ;  ')).toEqual({ kind: 'identify_system' });
    expect(parseReplicationCommand('start_replication\n slot s1\tphysical 1/AbCdEf00 timeline 3;')).toEqual({
      kind: 'start_replication',
      slot: 's1',
      physicalKeyword: true,
      startLsn: 0x1abcdef00n,
      timeline: 3,
      term: null,
    });
  });

  test('PHYSICAL is optional and the timeline may be omitted', () => {
    expect(parseReplicationCommand('START_REPLICATION PHYSICAL 0/0')).toMatchObject({ physicalKeyword: true, startLsn: 0n, timeline: null, slot: null });
  });

  test('quoted slot names keep case and "" escapes; unquoted ones are lower-cased', () => {
    expect(parseReplicationCommand('READ_REPLICATION_SLOT "My""Slot"')).toEqual({ kind: 'read_replication_slot', slot: 'My"Slot' });
    expect(parseReplicationCommand('READ_REPLICATION_SLOT MySlot')).toEqual({ kind: 'read_replication_slot', slot: 'myslot' });
    expect(parseReplicationCommand('START_REPLICATION SLOT "walkeeper_proposer" PHYSICAL 0/3000000')).toMatchObject({ slot: 'walkeeper_proposer' });
  });

  test('the term option of recovery readers, with or without =', () => {
    expect(parseReplicationCommand("START_REPLICATION PHYSICAL 0/1000 (term '5')")).toMatchObject({ term: 5n });
    expect(parseReplicationCommand("START_REPLICATION 0/1000 (term='18446744073709551615')")).toMatchObject({ term: 18446744073709551615n });
  });

  test('START_WAL_PUSH with and without options', () => {
    expect(parseReplicationCommand('START_WAL_PUSH')).toEqual({ kind: 'start_wal_push', options: {} });
    expect(parseReplicationCommand("START_WAL_PUSH (proto_version '3', allow_timeline_creation 'true')")).toEqual({
      kind: 'start_wal_push',
      options: { proto_version: '3', allow_timeline_creation: 'true' },
    });
  });

  test('TIMELINE_STATUS, SHOW of a dotted name, SET as psycopg2 sends it, an empty query', () => {
    expect(parseReplicationCommand('TIMELINE_STATUS')).toEqual({ kind: 'timeline_status' });
    expect(parseReplicationCommand('SHOW neon.safekeeper_proto_version')).toEqual({ kind: 'show', name: 'neon.safekeeper_proto_version' });
    expect(parseReplicationCommand("SET datestyle TO 'ISO'")).toEqual({ kind: 'set', name: 'datestyle', value: 'ISO' });
    expect(parseReplicationCommand('  ; ')).toEqual({ kind: 'empty' });
  });

  test('slot creation and removal are parsed for the shell to answer', () => {
    expect(parseReplicationCommand('CREATE_REPLICATION_SLOT s TEMPORARY PHYSICAL RESERVE_WAL')).toMatchObject({ slot: 's', temporary: true, slotType: 'physical', options: { reserve_wal: 'true' } });
    expect(parseReplicationCommand('CREATE_REPLICATION_SLOT "l" LOGICAL pgoutput (SNAPSHOT \'nothing\')')).toMatchObject({ slotType: 'logical', plugin: 'pgoutput', options: { snapshot: 'nothing' } });
    expect(parseReplicationCommand('DROP_REPLICATION_SLOT "s" WAIT')).toEqual({ kind: 'drop_replication_slot', slot: 's', wait: true });
  });

  test('logical replication is understood and refused clearly', () => {
    expect(parseReplicationCommand('START_REPLICATION SLOT "l" LOGICAL 0/0')).toMatchObject({ kind: 'unsupported', sqlState: '0A000', message: expect.stringMatching(/logical replication is not supported/) });
  });

  test('anything else is unknown, with its text', () => {
    expect(parseReplicationCommand('SELECT 1')).toEqual({ kind: 'unknown', text: 'SELECT 1' });
    expect(parseReplicationCommand('select pg_current_wal_lsn()')).toEqual({ kind: 'unknown', text: 'select pg_current_wal_lsn()' });
    expect(parseReplicationCommand("SELECT 'unterminated")).toEqual({ kind: 'unknown', text: "SELECT 'unterminated" });
  });
});

describe('syntax errors name the bad token', () => {
  function error(text: string): ProtocolError {
    try {
      parseReplicationCommand(text);
    } catch (err) {
      expect(err).toBeInstanceOf(ProtocolError);
      expect((err as ProtocolError).code).toBe('42601');
      return err as ProtocolError;
    }
    throw new Error(`expected ${text} to be refused`);
  }

  test.each([
    ['START_REPLICATION SLOT s 0/XYZ TIMELINE 1', /invalid LSN "0\/XYZ"/],
    ['START_REPLICATION 123456789/0', /invalid LSN "123456789\/0"/],
    ['START_REPLICATION PHYSICAL', /expected a start LSN/],
    ['START_REPLICATION 0/0 TIMELINE x1', /invalid timeline "x1"/],
    ['START_REPLICATION 0/0 TIMELINE 0', /invalid timeline "0"/],
    ['TIMELINE_HISTORY 99999999999', /invalid timeline "99999999999"/],
    ["START_REPLICATION 0/0 (term 'abc')", /invalid term "abc"/],
    ["START_REPLICATION 0/0 (foo '1')", /unrecognized option "foo"/],
    ['IDENTIFY_SYSTEM extra', /unexpected "extra"/],
    ['READ_REPLICATION_SLOT "unterminated', /unterminated quoted identifier/],
    ['READ_REPLICATION_SLOT ""', /zero-length slot name/],
    ["START_WAL_PUSH (proto_version '3'", /unterminated option list/],
  ])('%s', (text, pattern) => {
    expect(error(text).message).toMatch(pattern);
  });
});
