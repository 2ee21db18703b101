import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRegistry, type RunningRegistry } from '@clip/testkit/registry';

describe('startRegistry', () => {
  let registry: RunningRegistry;
  beforeAll(async () => {
    registry = await startRegistry();
  });
  afterAll(async () => {
    await registry?.stop();
  });

  it('serves the distribution v2 API on loopback', async () => {
    const response = await fetch(`${registry.url}/v2/`);
    expect(response.status).toBe(200);
    expect(response.headers.get('docker-distribution-api-version')).toBe('registry/2.0');
  });

  it('answers 404 for an unknown repository manifest', async () => {
    const response = await fetch(`${registry.url}/v2/nope/manifests/latest`);
    expect(response.status).toBe(404);
  });
});
