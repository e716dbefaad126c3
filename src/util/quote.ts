/** Quoting, one function per reader of the words: a POSIX shell, and rsync's -e. */

/** A word every reader takes as it is: no quoting needed. */
const plainWord = /^[\w@%+=:,./-]+$/;

/** One word for a POSIX shell: always single-quoted, a quote inside as '\''. */
export function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** A word as a shell reads it, quoted only when it must be (for messages a user may paste). */
export function shellWord(text: string): string {
  return plainWord.test(text) ? text : shellQuote(text);
}

/**
 * rsync's -e value for a command of these words. rsync splits it itself, not
 * through a shell: words at spaces, '…' or "…" keep spaces, a quote doubled
 * inside quotes stands for itself, and a backslash is only a backslash.
 */
export function rsyncShell(words: string[]): string {
  return words.map((word) => (plainWord.test(word) ? word : `'${word.replace(/'/g, "''")}'`)).join(' ');
}
