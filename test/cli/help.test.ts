import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { cliCommands } from '../helpers/cli-commands.js';

// oclif wraps help text to the terminal's width. A description hard-wrapped in the source as
// well wraps twice: at a width of 200 its source line breaks show up as lines far shorter than
// the width with the paragraph going on below them.
const WIDTH = 200;
const SHORTEST_WRAPPED_LINE = 150;

/** The DESCRIPTION section's paragraphs, each as its lines (indentation removed). */
function descriptionParagraphs(help: string): string[][] {
  const section = /^DESCRIPTION\n([\s\S]*?)(?=^[A-Z][A-Z ]+\n|(?![\s\S]))/m.exec(help)?.[1] ?? '';
  return section
    .split(/\n\s*\n/)
    .map((paragraph) =>
      paragraph
        .split('\n')
        .map((line) => line.trim())
        .filter((line) => line !== ''),
    )
    .filter((lines) => lines.length > 0);
}

describe('help', () => {
  it('finds a source-wrapped paragraph (the check can fail)', () => {
    const help = `DESCRIPTION\n  A first line broken by the source at about ninety characters, as commands used to be\n  written.\n\nEXAMPLES\n  x\n`;
    expect(descriptionParagraphs(help)).toEqual([
      [
        'A first line broken by the source at about ninety characters, as commands used to be',
        'written.',
      ],
    ]);
  });

  it('no description is hard-wrapped in the source: at 200 columns only oclif breaks lines', async () => {
    const commands = await cliCommands();
    const broken: string[] = [];
    let paragraphs = 0;
    for (const command of commands) {
      const help = await runCli([...command.words, '--help'], { OCLIF_COLUMNS: String(WIDTH) });
      expect(help.code, help.stderr).toBe(0);
      for (const lines of descriptionParagraphs(help.stdout)) {
        paragraphs += 1;
        lines.slice(0, -1).forEach((line) => {
          if (line.length < SHORTEST_WRAPPED_LINE)
            broken.push(`${command.words.join(' ')}: ${JSON.stringify(line)}`);
        });
      }
    }
    expect(paragraphs).toBeGreaterThan(commands.length);
    expect(broken).toEqual([]);
  }, 60_000);
});
