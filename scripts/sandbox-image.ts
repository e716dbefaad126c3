// Make a sandbox image the end-to-end tests boot, if missing: scripts/test.sh runs one per profile beside the unit
// tests, so that no end-to-end file holds a test slot making its own copy (parallel files each made one).
import { ensureImage, isImageProfile } from '../src/sandbox/image.ts';
import { SandboxPaths } from '../src/sandbox/paths.ts';
import { checkPrerequisites } from '../src/sandbox/prerequisites.ts';

const profile = process.argv[2] ?? '';
if (!isImageProfile(profile)) {
  console.error(`usage: sandbox-image.ts base|cloud, not "${profile}"`);
  process.exit(2);
}
try {
  checkPrerequisites();
} catch (error) {
  // The end-to-end tests say it: skipped, or failed with CI=true.
  console.error(`no ${profile} image made: ${(error as Error).message}`);
  process.exit(0);
}
ensureImage(new SandboxPaths().imageCache, (line) => console.error(line), profile);
