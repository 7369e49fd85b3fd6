import {
  HISTOGRAM_ENCODING,
  SUMMARY_VERSION,
  type FloodSummary,
  type LoadSettings,
} from './summary.js';

// Whether summaries can be merged as the parts of one sale (`fsale report merge`): each is a
// flood summary of a version this build reads, all ran the same sale with the same load
// settings, and together they are every part once. src/load/merge.ts merges them.

export class MergeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MergeError';
  }
}

/** A summary to merge, and what to call it in an error (a file name, "thread 2"). */
export interface NamedSummary {
  name: string;
  summary: FloodSummary;
}

/** The load settings that must be the same in every part of one sale. */
const SAME_SALE_KEYS = [
  'model',
  'rate',
  'rampSeconds',
  'spikes',
  'stages',
  'arrivals',
  'connections',
  'durationSeconds',
  'requests',
  'users',
  'retryRatio',
  'doubleClick',
  'seed',
  'follow',
] as const satisfies readonly (keyof LoadSettings)[];

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * A part's JSON (`fsale flood --part K/N --json`) as a summary, or a MergeError saying why it
 * cannot be merged. Only what merging relies on is checked here; the schema says the rest.
 */
export function asPart(name: string, value: unknown): FloodSummary {
  if (!isRecord(value) || value.tool !== 'fsale flood')
    throw new MergeError(`${name} is not the --json summary of fsale flood`);
  if (value.version !== SUMMARY_VERSION)
    throw new MergeError(
      `${name} is a version ${JSON.stringify(value.version)} summary; this fsale merges version ${SUMMARY_VERSION}`,
    );
  const histograms = value.histograms;
  if (!isRecord(histograms) || histograms.encoding !== HISTOGRAM_ENCODING)
    throw new MergeError(
      `${name} has no lossless histograms (written by an older fsale flood): rerun it with this one`,
    );
  const load = value.load;
  const slice = isRecord(load) ? load.slice : undefined;
  if (!isRecord(slice) || typeof slice.index !== 'number' || typeof slice.count !== 'number')
    throw new MergeError(`${name} does not say which part of the sale it is (load.slice)`);
  return value as unknown as FloodSummary;
}

/**
 * Refuses summaries that are not the parts of one sale: written without histograms, of
 * another product or shape, of another split, overlapping or missing a part.
 */
export function checkParts(parts: readonly NamedSummary[]): void {
  const first = parts[0];
  if (first === undefined) throw new MergeError('nothing to merge: give the parts’ JSON files');
  const a = first.summary;
  for (const { name, summary: b } of parts.slice(1)) {
    if (b.target.productId !== a.target.productId || b.target.qty !== a.target.qty)
      throw new MergeError(
        `${first.name} and ${name} are not one sale: product ${a.target.productId} x${a.target.qty} vs ${b.target.productId} x${b.target.qty}`,
      );
    for (const key of SAME_SALE_KEYS) {
      if (JSON.stringify(a.load[key]) !== JSON.stringify(b.load[key]))
        throw new MergeError(
          `${first.name} and ${name} are not one sale: load.${key} is ${JSON.stringify(a.load[key])} vs ${JSON.stringify(b.load[key])}`,
        );
    }
    if (b.load.slice.count !== a.load.slice.count)
      throw new MergeError(
        `${first.name} and ${name} split the sale differently: parts of ${a.load.slice.count} vs ${b.load.slice.count}`,
      );
  }
  const seen = new Map<number, string>();
  for (const { name, summary } of parts) {
    const index = summary.load.slice.index;
    const other = seen.get(index);
    if (other !== undefined)
      throw new MergeError(
        `${other} and ${name} are the same part (${index + 1}/${summary.load.slice.count}): they overlap`,
      );
    seen.set(index, name);
  }
  const count = a.load.slice.count;
  const missing = Array.from({ length: count }, (_, i) => i).filter((i) => !seen.has(i));
  if (missing.length > 0)
    throw new MergeError(
      `part${missing.length > 1 ? 's' : ''} ${missing.map((i) => `${i + 1}/${count}`).join(', ')} missing: merge every part of the sale`,
    );
}
