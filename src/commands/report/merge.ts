import { readFile, writeFile } from 'node:fs/promises';
import { Args, Flags } from '@oclif/core';
import { FsaleCommand } from '../../cli/base.js';
import { UsageError } from '../../domain/errors.js';
import { mergeParts } from '../../load/merge.js';
import { asPart, MergeError, type NamedSummary } from '../../load/part-checks.js';
import { OUTCOME_CLASSES } from '../../load/outcomes.js';
import { renderHtmlReport } from '../../load/report-html.js';
import { renderSummary } from '../../load/report-text.js';
import { outputStyle } from '../../cli/colors.js';
import type { FloodSummary } from '../../load/summary.js';
import { parseThreshold, ThresholdSyntaxError } from '../../load/thresholds.js';

export default class ReportMerge extends FsaleCommand {
  static override summary =
    'Merge the --json summaries of the parts of one sale (flood --part K/N) into one summary and one verdict.';
  static override description = `Each part of a sale run on many machines (fsale flood --part K/N --start-at T --json > partK.json) writes a summary with lossless HDR histograms. This command adds them up: counts and timelines add (aligned on each part's start), latencies come from the merged histograms (the percentiles of the union, not an average of percentiles), the generator is as limited as its most limited part, the audit is the one of the part that finished last unless a part's audit failed, and --threshold gates are evaluated on the merged figures.

Refused (exit 2): files that are not flood summaries or have no histograms, parts of different products or shapes (every load setting but the part must match, --seed included), parts of different splits, the same part twice, or a missing part.

Exit codes as fsale flood: 0 pass, 1 an invariant is violated, 2 bad input (or an audit that could not run), 3 a threshold was missed, 4 inconclusive (a part's generator was limited).`;
  static override examples = [
    '<%= config.bin %> report merge part1.json part2.json part3.json',
    "<%= config.bin %> report merge part*.json --threshold 'p99<50ms' --html sale.html --json > sale.json",
  ];
  static override enableJsonFlag = true;
  static override strict = false;
  static override args = {
    parts: Args.string({
      description: 'summaries written by fsale flood --part K/N --json',
      required: true,
    }),
  };
  static override flags = {
    threshold: Flags.string({
      description: "gate on the merged figures, as fsale flood's (repeatable; exit 3 if missed)",
      multiple: true,
    }),
    html: Flags.string({ description: 'write a self-contained HTML report of the merged sale' }),
  };

  async run(): Promise<FloodSummary> {
    const { flags, argv } = await this.parse(ReportMerge);
    const files = argv.filter((a): a is string => typeof a === 'string');
    let thresholds;
    try {
      thresholds = (flags.threshold ?? []).map((t) => parseThreshold(t, OUTCOME_CLASSES));
    } catch (error) {
      if (error instanceof ThresholdSyntaxError) throw new UsageError(error.message);
      throw error;
    }
    const parts: NamedSummary[] = [];
    for (const file of files) parts.push({ name: file, summary: await readPart(file) });
    let merged: FloodSummary;
    try {
      merged = mergeParts(parts, thresholds);
    } catch (error) {
      if (error instanceof MergeError) throw new UsageError(error.message);
      throw error;
    }
    if (flags.html !== undefined) await writeFile(flags.html, renderHtmlReport(merged));
    if (!this.jsonEnabled()) {
      this.log(`merged ${parts.length} parts: ${files.join(', ')}`);
      this.log(renderSummary(merged, outputStyle()));
      if (flags.html !== undefined) this.log(`report: ${flags.html}`);
    }
    process.exitCode = merged.verdict.exitCode;
    return merged;
  }
}

async function readPart(file: string): Promise<FloodSummary> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new UsageError(
      `cannot read ${file}: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`${file} is not JSON (write parts with fsale flood --part K/N --json)`);
  }
  try {
    return asPart(file, value);
  } catch (error) {
    if (error instanceof MergeError) throw new UsageError(error.message);
    throw error;
  }
}
