import { describe, expect, it } from 'vitest';
import { rawJson } from '../shared/values.ts';
import { closest, fieldOf, propertyValue, type HubSpotProperty } from './types.ts';

const p = (type: string, extra: Partial<HubSpotProperty> = {}): HubSpotProperty => ({
  name: 'x',
  type,
  ...extra,
});

describe('propertyValue', () => {
  it('dates as midnight-UTC epoch ms, datetimes as epoch ms', () => {
    expect(propertyValue(p('date'), '2024-02-29')).toBe(String(Date.UTC(2024, 1, 29)));
    expect(propertyValue(p('date'), '2024-02-29T23:30:00.000Z')).toBe(String(Date.UTC(2024, 1, 29)));
    expect(propertyValue(p('datetime'), '2024-02-29 12:34:56.789123')).toBe(
      String(Date.UTC(2024, 1, 29, 12, 34, 56, 789)),
    );
    expect(propertyValue(p('datetime'), '2024-02-29T12:00:00+02:00')).toBe(String(Date.UTC(2024, 1, 29, 10)));
    expect(propertyValue(p('date'), 'soon')).toEqual({ refused: '"soon" is not a date (YYYY-MM-DD)' });
  });
  it('numbers exact, booleans as true/false, NULL left to the caller', () => {
    expect(propertyValue(p('number'), '12345678901234567891.500000')).toBe('12345678901234567891.500000');
    expect(propertyValue(p('number'), rawJson('9007199254740993'))).toBe('9007199254740993');
    expect(propertyValue(p('number'), 'NaN')).toHaveProperty('refused');
    expect(propertyValue(p('bool'), true)).toBe('true');
    expect(propertyValue(p('bool'), 'F')).toBe('false');
    expect(propertyValue(p('string'), null)).toBeUndefined();
  });
  it('enumerations checked against the options', () => {
    const stage = p('enumeration', {
      name: 'lifecyclestage',
      options: [{ value: 'lead' }, { value: 'customer' }],
    });
    expect(propertyValue(stage, 'Lead')).toBe('lead');
    expect(propertyValue(stage, 'prospect')).toEqual({
      refused: '"prospect" is not an option of lifecyclestage (options: "lead", "customer")',
    });
    const multi = p('enumeration', { fieldType: 'checkbox', options: [{ value: 'a' }, { value: 'b' }] });
    expect(propertyValue(multi, ['a', 'b'])).toBe('a;b');
  });
});

describe('fieldOf and closest', () => {
  it('discovers unique, read-only and options', () => {
    expect(fieldOf('contacts', { name: 'email', label: 'Email', type: 'string' })).toEqual({
      name: 'email',
      label: 'Email',
      type: 'string',
      unique: true,
    });
    expect(
      fieldOf('deals', p('enumeration', { name: 's', options: [{ value: 'a' }], calculated: true })),
    ).toMatchObject({ type: 'enumeration', options: ['a'], readOnly: true });
    expect(closest('fristname', ['firstname', 'lastname', 'email'], 1)).toEqual(['firstname']);
  });
});
