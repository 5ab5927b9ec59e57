/**
 * Small assert helpers for payloads as they enter. Each message names the field and the fix.
 */
import { isPlainObject } from './codec.js';
import { ErrorCode, ProxyError } from './errors.js';

export const NAME_PATTERN = /^[A-Za-z0-9._@-]{1,64}$/;

function invalid(message: string): never {
  throw new ProxyError(ErrorCode.INVALID_REQUEST, message);
}

// Defined beside the frame codec, which the light client entry loads without this module.
export { isPlainObject };

export function assertObject(value: unknown, field = 'payload'): asserts value is Record<string, unknown> {
  if (!isPlainObject(value)) invalid(`${field} must be a JSON object`);
}

/** A provider, bucket, key or client name (SPEC §3): it may become a file name. */
export function isName(value: unknown): value is string {
  return typeof value === 'string' && NAME_PATTERN.test(value) && value !== '.' && value !== '..';
}

/** A provider, bucket, key or client name: it may become a file name. */
export function assertName(value: unknown, field: string): asserts value is string {
  if (!isName(value)) {
    invalid(
      `${field} must be 1-64 characters of letters, digits, '.', '_', '@' or '-' (and not '.' or '..')`,
    );
  }
}

export function assertOptionalName(value: unknown, field: string): asserts value is string | undefined {
  if (value !== undefined) assertName(value, field);
}

export function assertString(value: unknown, field: string, maxLength = 65_536): asserts value is string {
  if (typeof value !== 'string' || value.length === 0) invalid(`${field} must be a non-empty string`);
  if (value.length > maxLength) invalid(`${field} is longer than ${maxLength} characters`);
}

export function assertOptionalString(value: unknown, field: string, maxLength?: number): asserts value is string | undefined {
  if (value !== undefined) assertString(value, field, maxLength);
}

export function assertOptionalBoolean(value: unknown, field: string): asserts value is boolean | undefined {
  if (value !== undefined && typeof value !== 'boolean') invalid(`${field} must be true or false`);
}

export function assertOptionalNumber(
  value: unknown,
  field: string,
  { min = -Infinity, max = Infinity, integer = false } = {},
): asserts value is number | undefined {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value)) invalid(`${field} must be a number`);
  if (integer && !Number.isInteger(value)) invalid(`${field} must be a whole number`);
  if (value < min || value > max) invalid(`${field} must be between ${min} and ${max}`);
}

export function assertStringArray(value: unknown, field: string, assertItem: (v: unknown, f: string) => void): asserts value is string[] {
  if (!Array.isArray(value)) invalid(`${field} must be an array`);
  value.forEach((item, i) => assertItem(item, `${field}[${i}]`));
}
