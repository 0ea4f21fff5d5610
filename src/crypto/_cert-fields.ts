/**
 * Checks on the values the CA writes into a certificate. They come from the caller, not from the
 * request, but a stray comma or space would still make a certificate that names something else
 * or that TLS peers refuse, so they are held to the plain forms secretd uses.
 */
import { SecretdError } from '../errors.ts';

/** RFC 5280 caps serials at 20 octets. */
const serialBytesMax = 20;
/** Node and cluster ids are base 36 (ids.ts); admin names given by people get a little more room. */
const subjectValuePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const dnsLabel = '[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?';
const dnsNamePattern = new RegExp(`^(?=.{1,253}$)${dnsLabel}(\\.${dnsLabel})*$`);
const ipv4Octet = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const ipv4Pattern = new RegExp(`^(${ipv4Octet}\\.){3}${ipv4Octet}$`);
/** Loose on purpose: @peculiar/x509 parses the groups; this only keeps other text out. */
const ipv6Pattern = /^(?=.*:)[0-9A-Fa-f:]{2,39}$/;

export function checkSubjectValue(value: string, what: string): void {
  if (!subjectValuePattern.test(value)) {
    throw invalid(`${what} '${value}' must match ${subjectValuePattern.source}`);
  }
}

export function checkDnsName(name: string): void {
  if (!dnsNamePattern.test(name)) throw invalid(`'${name}' is not a DNS name`);
}

export function checkIpAddress(ip: string): void {
  if (!ipv4Pattern.test(ip) && !ipv6Pattern.test(ip)) throw invalid(`'${ip}' is not an IP address`);
}

/** A copy of `bytes` with the top bit cleared, refusing serials that are empty, too long or zero. */
export function positiveSerial(bytes: Uint8Array): Uint8Array {
  const serial = bytes.slice();
  if (serial.length > 0) serial[0] = serial[0]! & 0x7f;
  // @peculiar/x509 silently draws its own random serial for a zero one; refuse it instead.
  if (serial.length === 0 || serial.length > serialBytesMax || serial.every((b) => b === 0)) {
    throw new SecretdError(
      'internal',
      `Certificate serial must be 1 to ${serialBytesMax} bytes and not zero`,
    );
  }
  return serial;
}

export { toHex } from './ids.ts';

function invalid(reason: string): SecretdError {
  return new SecretdError('invalid', `Cannot issue certificate: ${reason}`);
}
