import { bashFile } from '../util/bash-file.ts';
import { rootFunctions } from './target-paths.ts';

/** Bash: stat_records, record_paths and inspect, which read managed paths on a target (inspect.bash). */
export const inspectBash = bashFile(new URL('./inspect.bash', import.meta.url));

/** root.bash and inspect.bash, for a script that only inspects (diff); read once, when this module loads. */
export const inspectFunctions = rootFunctions() + inspectBash();
