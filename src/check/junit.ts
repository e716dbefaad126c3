import { checkKinds, describeProblem, type CheckResult } from './results.ts';

/** Text as XML character data or an attribute value. Characters XML 1.0 cannot hold are dropped. */
function xml(text: string): string {
  return text
    .replace(/[^\t\n\r\x20-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu, '')
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;');
}

const seconds = (milliseconds: number) => (milliseconds / 1000).toFixed(3);

/**
 * JUnit XML, as CI systems read it: a test suite per kind of check, a test case per machine, a failure with
 * every problem of that machine.
 */
export function junitReport(results: CheckResult[]): string {
  const suites = checkKinds
    .map((kind) => results.filter((result) => result.check === kind))
    .filter((cases) => cases.length > 0)
    .map((cases) => {
      const failures = cases.filter((result) => !result.ok).length;
      const time = cases.reduce((sum, result) => sum + result.milliseconds, 0);
      const body = cases.map((result) => {
        const open = `    <testcase classname="homecloud.${result.check}" name="${xml(result.machine)}" time="${seconds(result.milliseconds)}"`;
        if (result.ok) return `${open}>\n      <system-out>${xml(result.summary)}</system-out>\n    </testcase>`;
        const details = result.problems.map(describeProblem).join('\n');
        return `${open}>\n      <failure message="${xml(result.summary)}" type="${result.check}">${xml(details)}</failure>\n    </testcase>`;
      });
      return `  <testsuite name="${cases[0]!.check}" tests="${cases.length}" failures="${failures}" errors="0" time="${seconds(time)}">\n${body.join('\n')}\n  </testsuite>`;
    });
  const failures = results.filter((result) => !result.ok).length;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="homecloud check" tests="${results.length}" failures="${failures}">\n${suites.join('\n')}\n</testsuites>\n`;
}
