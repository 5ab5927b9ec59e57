import { ErrorCode, ProxyError } from '../protocol/errors.js';

export function providerNotConfigured(provider: string): ProxyError {
  return new ProxyError(
    ErrorCode.PROVIDER_NOT_CONFIGURED,
    `no provider named ${provider} is configured — add one with \`credproxy provider add ${provider} --issuer URL --client-id ID\``,
  );
}
