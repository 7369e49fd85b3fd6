// What the deploy files must never carry, as checks that return what they found (the tests run
// them on the real files, and on planted bad ones to prove they find it):
// - compose: a secret that is not exactly one required `${VAR:?message}` reference, in either
//   form of `environment:` (map or `- NAME=value` list) or as a URL's password; any `env_file`
//   (every variable is named in the compose file, none comes from a file beside it); a
//   `--jwt-secret` on any command line (argv shows in `ps`; the secret goes by environment);
// - Kubernetes: `--demo-auth` (or `--allow-public-demo-auth`) in any container's command or args.
import { references } from './interpolate.js';

export const SECRET_NAME = /SECRET|PASSWORD|TOKEN|CREDENTIAL/i;
const REQUIRED_REFERENCE = /^\$\{[A-Z_]+:\?[^}]+\}$/;
const DEMO_AUTH_FLAGS = /^--(allow-public-)?demo-auth(=|$)/;

type Json = Record<string, unknown>;
const isRecord = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** `environment:` as (name, value) pairs; a name without value passes the shell's through. */
function environmentEntries(environment: unknown): [string, string | undefined][] {
  if (Array.isArray(environment))
    return environment.map((entry) => {
      const text = String(entry);
      const equals = text.indexOf('=');
      return equals === -1 ? [text, undefined] : [text.slice(0, equals), text.slice(equals + 1)];
    });
  if (isRecord(environment))
    return Object.entries(environment).map(([name, value]) => [
      name,
      typeof value === 'string'
        ? value
        : value === null || value === undefined
          ? undefined
          : JSON.stringify(value),
    ]);
  return [];
}

/** A command line's words (the string form is split as compose splits it, on blanks). */
function commandWords(command: unknown): string[] {
  if (Array.isArray(command)) return command.map(String);
  if (typeof command === 'string') return command.split(/\s+/).filter((word) => word !== '');
  return [];
}

/** Every secret problem of a parsed compose file (merge keys resolved), one line each. */
export function composeSecretFindings(compose: unknown): string[] {
  const services = isRecord(compose) && isRecord(compose.services) ? compose.services : {};
  const findings: string[] = [];
  for (const [name, service] of Object.entries(services)) {
    if (!isRecord(service)) continue;
    for (const [variable, value] of environmentEntries(service.environment)) {
      if (value === undefined) continue;
      const credentials = /^[a-z]+:\/\/[^/@:]*:([^@]*)@/.exec(value)?.[1];
      if (!SECRET_NAME.test(variable) && credentials === undefined) continue;
      const secret = credentials ?? value;
      const refs = references(secret);
      if (!REQUIRED_REFERENCE.test(secret) || refs.length !== 1 || refs[0]?.operator !== ':?')
        findings.push(`${name}: ${variable} is not one required reference \${VAR:?message}`);
    }
    if (service.env_file !== undefined)
      findings.push(`${name}: env_file (name every variable in the compose file instead)`);
    for (const key of ['command', 'entrypoint'] as const) {
      if (commandWords(service[key]).some((word) => /^--jwt-secret(=|$)/.test(word)))
        findings.push(`${name}: --jwt-secret in its ${key} (pass FSALE_JWT_SECRET by environment)`);
    }
  }
  return findings;
}

/** `--demo-auth` anywhere in the command or args of the Kubernetes `documents` of `file`. */
export function demoAuthFindings(file: string, documents: unknown[]): string[] {
  const findings: string[] = [];
  const walk = (node: unknown, path: string): void => {
    if (Array.isArray(node)) return node.forEach((item, i) => walk(item, `${path}[${i}]`));
    if (!isRecord(node)) return;
    for (const [key, value] of Object.entries(node)) {
      if ((key === 'command' || key === 'args') && Array.isArray(value)) {
        for (const word of value.map(String))
          if (DEMO_AUTH_FLAGS.test(word)) findings.push(`${file}: ${word} in ${path}.${key}`);
      } else walk(value, `${path}.${key}`);
    }
  };
  documents.forEach((document, i) => walk(document, `document ${i}`));
  return findings;
}
