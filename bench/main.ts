// npm run bench [-- suite...]: benchmarks that print medians. Suites: build (default: all).
import { benchBuild } from './build.ts';

const suites: Record<string, () => Promise<unknown>> = { build: () => benchBuild() };
const chosen = process.argv.slice(2);
for (const name of chosen.length ? chosen : Object.keys(suites)) {
  const suite = suites[name];
  if (!suite) {
    console.error(`unknown benchmark "${name}"; known: ${Object.keys(suites).join(', ')}`);
    process.exit(2);
  }
  await suite();
}
