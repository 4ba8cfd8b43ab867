import { describe, expect, it } from 'vitest';
import { BULK_BATCH_SIZE, resolveDelivery } from './settings.ts';

const caps = { defaultBatchSize: 100 };

describe('resolveDelivery', () => {
  it('takes the defaults of the schemas and of the destination type', () => {
    expect(resolveDelivery({}, {}, caps)).toEqual({
      batchSize: 100,
      bulkBatchSize: BULK_BATCH_SIZE,
      concurrency: 4,
      maxRetries: 5,
      requestsPerSecond: undefined,
    });
  });

  it('lets a Sync lower the limits of its Destination, never raise them', () => {
    const destination = { rateLimit: { concurrency: 8, requestsPerSecond: 10 } };
    expect(
      resolveDelivery(
        destination,
        { delivery: { concurrency: 2, requestsPerSecond: 50, maxRetries: 1 } },
        caps,
      ),
    ).toMatchObject({
      concurrency: 2,
      requestsPerSecond: 10,
      maxRetries: 1,
    });
    expect(
      resolveDelivery(destination, { delivery: { concurrency: 16, maxRetries: 5 } }, caps).concurrency,
    ).toBe(8);
    expect(
      resolveDelivery({}, { delivery: { requestsPerSecond: 3, maxRetries: 5 } }, caps).requestsPerSecond,
    ).toBe(3);
  });

  it('uses the Sync batch size on both paths', () => {
    expect(resolveDelivery({}, { delivery: { batchSize: 7, maxRetries: 5 } }, caps)).toMatchObject({
      batchSize: 7,
      bulkBatchSize: 7,
    });
  });
});
