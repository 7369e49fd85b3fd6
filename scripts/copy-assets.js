// Copies the non-TypeScript files the compiled code reads at run time (Lua scripts, static pages).
import { cpSync, existsSync } from 'node:fs';

for (const dir of ['redis/lua', 'server/public']) {
  if (existsSync(`src/${dir}`)) cpSync(`src/${dir}`, `dist/${dir}`, { recursive: true });
}
