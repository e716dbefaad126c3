/** The checks `homecloud check` runs on each machine, in order. */
export const checkKinds = ['build', 'shellcheck', 'units', 'nginx', 'boot'] as const;
export type CheckKind = (typeof checkKinds)[number];

/** One thing wrong, where it is. */
export interface Problem {
  /** The file, as the user finds it: the source in the repository, else the path on the machine. */
  file?: string;
  line?: number;
  /** Where else it is: the path on the machine of a source file, the template a rendered file came from. */
  note?: string;
  message: string;
}

/** The outcome of one check of one machine. */
export interface CheckResult {
  check: CheckKind;
  machine: string;
  ok: boolean;
  /** What was checked, or why nothing was ("12 units", "no nginx configuration"). */
  summary: string;
  problems: Problem[];
  milliseconds: number;
}

/** A problem as one line: file, line, message. */
export function describeProblem(problem: Problem): string {
  const place = problem.file ? `${problem.file}${problem.line ? `:${problem.line}` : ''}${problem.note ? ` (${problem.note})` : ''}: ` : '';
  return place + problem.message;
}

/** Time a check: its result with how long it took. */
export async function timed(
  check: CheckKind,
  machine: string,
  work: () => Promise<Omit<CheckResult, 'check' | 'machine' | 'milliseconds'>>,
): Promise<CheckResult> {
  const started = performance.now();
  const result = await work();
  return { check, machine, ...result, milliseconds: performance.now() - started };
}
