import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { newId } from '../../src/common/ids.js';
import { StorageError } from '../../src/storage/errors.js';
import { DataDirLayout } from '../../src/storage/layout.js';

describe('DataDirLayout', () => {
  let datadir: string;
  beforeEach(() => {
    datadir = mkdtempSync(join(tmpdir(), 'walkeeper-layout-'));
  });
  afterEach(() => rmSync(datadir, { recursive: true, force: true }));

  it('pins the node id on first start and accepts the same id again', async () => {
    const layout = new DataDirLayout(datadir);
    await layout.pinNodeId(3);
    expect(readFileSync(join(datadir, 'safekeeper.id'), 'utf8')).toBe('3\n');
    await layout.pinNodeId(3n);
    expect(await layout.readNodeId()).toBe(3n);
  });

  it('refuses to start with a different id, naming both', async () => {
    const layout = new DataDirLayout(datadir);
    await layout.pinNodeId(1);
    await expect(layout.pinNodeId(2)).rejects.toThrow(/belongs to safekeeper 1 .*refusing to start as safekeeper 2/);
    await expect(layout.pinNodeId(2)).rejects.toMatchObject({ code: 'id_mismatch' });
  });

  it('refuses a garbled id file rather than overwriting it', async () => {
    writeFileSync(join(datadir, 'safekeeper.id'), 'banana');
    await expect(new DataDirLayout(datadir).pinNodeId(1)).rejects.toThrow(/does not hold a safekeeper id/);
  });

  it('creates, lists and deletes tenants and timelines under tenants/<tenant>/<timeline>', async () => {
    const layout = new DataDirLayout(datadir);
    const tenant = newId();
    const timeline = newId();
    expect(await layout.listTenants()).toEqual([]);
    const tenantDir = await layout.createTenant(tenant);
    expect(tenantDir).toBe(join(datadir, 'tenants', tenant));
    const timelineDir = await layout.createTimeline(tenant, timeline);
    expect(timelineDir).toBe(join(datadir, 'tenants', tenant, timeline));
    expect(await layout.listTenants()).toEqual([tenant]);
    expect(await layout.listTimelines(tenant)).toEqual([timeline]);
    expect(await layout.timelineExists(tenant, timeline)).toBe(true);

    await expect(layout.createTenant(tenant)).rejects.toMatchObject({ code: 'already_exists' });
    await expect(layout.createTimeline(tenant, timeline)).rejects.toMatchObject({ code: 'already_exists' });

    await layout.deleteTimeline(tenant, timeline);
    expect(await layout.listTimelines(tenant)).toEqual([]);
    await layout.deleteTenant(tenant);
    expect(await layout.listTenants()).toEqual([]);
    expect(readdirSync(join(datadir, 'tenants'))).toEqual([]);
  });

  it('validates ids before touching the filesystem', async () => {
    const layout = new DataDirLayout(datadir);
    await expect(layout.createTenant('../../etc')).rejects.toBeInstanceOf(StorageError);
    await expect(layout.createTenant('ABCDEF0123456789ABCDEF0123456789')).rejects.toThrow(/invalid tenant_id/);
    expect(() => layout.timelineDir(newId(), 'x')).toThrow(/invalid timeline_id/);
    expect(existsSync(join(datadir, 'tenants'))).toBe(false);
  });

  it('a timeline needs its tenant; deleting what does not exist is not_found', async () => {
    const layout = new DataDirLayout(datadir);
    await expect(layout.createTimeline(newId(), newId())).rejects.toMatchObject({ code: 'not_found' });
    await expect(layout.deleteTenant(newId())).rejects.toMatchObject({ code: 'not_found' });
  });

  it('cleans up deletions interrupted by a crash', async () => {
    const layout = new DataDirLayout(datadir);
    const tenant = newId();
    await layout.createTenant(tenant);
    const leftover = join(datadir, 'tenants', `.deleting-${newId()}-1-1`);
    writeFileSync(leftover, 'x');
    await layout.removeInterruptedDeletions();
    expect(existsSync(leftover)).toBe(false);
    expect(await layout.listTenants()).toEqual([tenant]);
  });
});
