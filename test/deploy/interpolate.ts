// Compose-file variable interpolation, as the compose specification defines it ("Interpolation"):
// $$ is a literal $, $VAR and ${VAR} substitute, ${VAR:-default} / ${VAR-default} default
// when unset-or-empty / unset, ${VAR:?message} / ${VAR?message} fail with the message, and
// ${VAR:+alt} / ${VAR+alt} substitute alt when set. What `docker compose config` does before it
// validates, so the tests can check the file both with and without its secrets.

export interface Reference {
  name: string;
  /** '', ':-', '-', ':?', '?', ':+' or '+'. */
  operator: string;
  argument: string;
}

const REFERENCE =
  /\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

/** Every variable reference in `text` (a $$ escape is none). */
export function references(text: string): Reference[] {
  return [...text.matchAll(REFERENCE)]
    .filter((m) => m[0] !== '$$')
    .map((m) => ({ name: m[1] ?? m[4] ?? '', operator: m[2] ?? '', argument: m[3] ?? '' }));
}

export class MissingVariableError extends Error {}

export function interpolate(
  text: string,
  env: Readonly<Record<string, string | undefined>>,
): string {
  return text.replace(
    REFERENCE,
    (
      whole: string,
      braced: string | undefined,
      operator: string | undefined,
      argument: string | undefined,
      bare: string | undefined,
    ): string => {
      if (whole === '$$') return '$';
      const name = braced ?? bare ?? '';
      const value = env[name];
      const unset = value === undefined;
      const empty = unset || value === '';
      const arg = argument ?? '';
      const current = value ?? '';
      switch (operator) {
        case ':-':
          return empty ? arg : current;
        case '-':
          return unset ? arg : current;
        case ':?':
        case '?':
          if (operator === ':?' ? empty : unset) {
            throw new MissingVariableError(`required variable ${name} is missing a value: ${arg}`);
          }
          return current;
        case ':+':
          return empty ? '' : arg;
        case '+':
          return unset ? '' : arg;
        default:
          return current;
      }
    },
  );
}
