/** Shell-style glob: `*` within a path segment, `**` across segments, `?` one character. */
export function globMatches(glob: string, path: string): boolean {
  const pattern = glob
    .split('**')
    .map((part) =>
      part
        .split('*')
        .map((piece) => piece.split('?').map(escape).join('[^/]'))
        .join('[^/]*'),
    )
    .join('.*');
  return new RegExp(`^${pattern}$`).test(path);
}

function escape(text: string): string {
  return text.replace(/[.+^${}()|[\]\\]/g, '\\$&');
}
