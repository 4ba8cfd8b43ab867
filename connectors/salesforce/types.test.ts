import { describe, expect, it } from 'vitest';
import { audienceOf } from './destination.ts';
import { parseCsv, csvOf } from './bulk.ts';
import { cellText, fieldOf, fieldValue, type SalesforceField } from './types.ts';

const f = (type: string, extra: Partial<SalesforceField> = {}): SalesforceField => ({
  name: 'F',
  type,
  ...extra,
});

describe('salesforce values', () => {
  it('converts model values to what each field type takes', () => {
    expect(fieldValue(f('date'), '2024-02-29')).toBe('2024-02-29');
    expect(fieldValue(f('date'), '2024-02-30')).toMatchObject({
      refused: expect.stringMatching(/not a date/),
    });
    expect(fieldValue(f('datetime'), '2024-02-29 12:34:56.789123+02')).toBe('2024-02-29T10:34:56.789Z');
    expect(fieldValue(f('boolean'), 't')).toBe(true);
    expect(
      JSON.stringify({
        v: fieldValue(f('currency', { precision: 38, scale: 2 }), '12345678901234567890.55'),
      }),
    ).toBe('{"v":12345678901234567890.55}');
    expect(fieldValue(f('double', { precision: 5, scale: 2 }), '1234.5')).toMatchObject({
      refused: expect.stringMatching(/at most 3/),
    });
    const picklist = f('picklist', { restrictedPicklist: true, picklistValues: [{ value: 'Web' }] });
    expect(fieldValue(picklist, 'Web')).toBe('Web');
    expect(fieldValue(picklist, 'web')).toMatchObject({
      refused: expect.stringMatching(/"web" is not a value/),
    });
    expect(fieldValue(f('string', { length: 3 }), 'abcd')).toMatchObject({
      refused: expect.stringMatching(/at most 3/),
    });
    expect(fieldValue(f('string'), '')).toBeNull();
    expect(cellText(null)).toBe('#N/A');
  });

  it('discovers fields', () => {
    expect(fieldOf(f('reference', { createable: true, updateable: true }))).toMatchObject({
      type: 'reference',
    });
    expect(fieldOf(f('string', { externalId: true }))).toMatchObject({ unique: true });
    // Unique or idLookup without External ID cannot match records through /sobjects/{S}/{field}/{value}.
    expect(fieldOf(f('email', { unique: true, idLookup: true })).unique).toBeUndefined();
    expect(fieldOf({ ...f('id'), name: 'Id' })).toMatchObject({ unique: true });
    expect(fieldOf(f('datetime', { createable: false, updateable: false }))).toMatchObject({
      readOnly: true,
    });
    expect(
      fieldOf(f('picklist', { picklistValues: [{ value: 'A' }, { value: 'B', active: false }] })),
    ).toMatchObject({
      type: 'enumeration',
      options: ['A'],
    });
  });

  it('writes and reads Bulk CSV, and picks the JWT audience', () => {
    const text = csvOf(
      ['Id', 'Name'],
      [
        { cells: { Id: '1', Name: 'a, "b"\nc' }, keys: '1' },
        { cells: { Id: '2' }, keys: '2' },
      ],
    );
    expect(parseCsv(text)).toEqual([
      ['Id', 'Name'],
      ['1', 'a, "b"\nc'],
      ['2', ''],
    ]);
    expect(audienceOf('https://acme.my.salesforce.com')).toBe('https://login.salesforce.com');
    expect(audienceOf('https://acme--dev.sandbox.my.salesforce.com')).toBe('https://test.salesforce.com');
  });
});
