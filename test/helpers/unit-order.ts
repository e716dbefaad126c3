// The one directive order of unit files (test/unit/unit-order.test.ts).

/** Where a unit file breaks the order, in words (none when it keeps it). */
export function orderProblems(text: string): string[] {
  const problems: string[] = [];
  const sections: string[] = [];
  const first = new Map<string, string>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';')) continue;
    // A template's section is quoted for m4: [[Unit]].
    const section = /^\[(\w+)\]$/.exec(line) ?? /^\[\[(\w+)\]\]$/.exec(line);
    if (section) {
      sections.push(section[1]!);
      continue;
    }
    const current = sections[sections.length - 1] ?? '';
    if (!first.has(current)) first.set(current, line.slice(0, line.indexOf('=')).trim());
  }
  const rank = (section: string) => (section === 'Unit' ? 0 : section === 'Install' ? 2 : 1);
  if (sections.some((section, i) => i > 0 && rank(section) < rank(sections[i - 1]!)))
    problems.push(`sections in the order ${sections.join(', ')}: [Unit] first, [Install] last`);
  if (/^Description=/m.test(text) && first.get('Unit') !== 'Description') problems.push('Description= is not the first line of [Unit]');
  if (/^Type=/m.test(text) && first.get('Service') !== 'Type') problems.push('Type= is not the first line of [Service]');
  return problems;
}
