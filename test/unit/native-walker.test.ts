// The native walker lists a tree exactly as lstat and readdir see it: the same paths, kinds and numbers, in the same order.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { handOverTreeSignatures, hasNativeWalker, nativeFilesSignature, nativeTreeSignatures, nativeWalkTree } from '../../src/util/native.ts';
import { makeRepo } from '../helpers/repo.ts';

const skip = !hasNativeWalker() && process.env.CI !== 'true' ? 'the native walker is not built (npm run build)' : false;

/** Depth first, names sorted by their bytes: paths, kinds (d, f, l) and lstat numbers, plus the target's for followed links. */
function listInJavaScript(root: string) {
  const paths: string[] = [];
  let kinds = '';
  const numbers: number[] = [];
  const numbersOf = (stats: Stats) => [stats.mtimeMs, stats.ctimeMs, stats.size, stats.ino, stats.mode].map(Number);
  const visit = (rel: string) => {
    const names = readdirSync(root + rel).sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    for (const name of names) {
      const path = `${rel}/${name}`;
      const stats = lstatSync(root + path);
      paths.push(path);
      if (stats.isDirectory()) {
        kinds += 'd';
        visit(path);
        continue;
      }
      kinds += stats.isSymbolicLink() ? 'l' : 'f';
      numbers.push(...numbersOf(stats));
      if (stats.isSymbolicLink() && (name.startsWith('!') || name.includes('.m4.'))) numbers.push(...numbersOf(statSync(root + path)));
    }
  };
  visit('');
  return { paths, kinds, numbers };
}

test('the native listing equals lstat and readdir: nested and empty directories, files, kept and followed links, byte order', { skip }, () => {
  const root = makeRepo({
    'tree/usr/local/etc/B.conf': 'B\n',
    'tree/usr/local/etc/a.conf': 'a\n',
    'tree/usr/local/etc/a-b/deep/x': 'x\n',
    'tree/usr/local/etc/é.conf': 'e\n',
    'tree/usr/local/bin/tool': { content: '#!/bin/sh\n', mode: 0o755 },
    'tree/usr/local/share/target.txt': 'target\n',
    'tree/usr/local/share/kept': { link: 'target.txt' },
    'tree/usr/local/share/!followed': { link: 'target.txt' },
    'tree/usr/local/share/t.m4.conf': { link: 'target.txt' },
  });
  const tree = join(root, 'tree');
  mkdirSync(join(tree, 'usr/local/empty'));
  const walked = nativeWalkTree(tree)!;
  assert.ok(walked, 'the native walker lists the tree');
  assert.deepEqual({ paths: walked.paths, kinds: walked.kinds, numbers: [...walked.numbers] }, listInJavaScript(tree));
});

test('the native signature moves when a file changes, when a file becomes a directory of the same name, and not otherwise', { skip }, () => {
  const root = makeRepo({ 'tree/etc/a': 'a\n', 'tree/etc/b': 'b\n' });
  const tree = join(root, 'tree');
  const signature = () => nativeTreeSignatures([tree]).get(tree);
  const first = signature();
  assert.match(first!, /^[0-9a-f]{16}$/);
  assert.equal(signature(), first);
  writeFileSync(join(tree, 'etc/a'), 'a changed\n');
  const second = signature();
  assert.notEqual(second, first);
  rmSync(join(tree, 'etc/b'));
  mkdirSync(join(tree, 'etc/b'));
  assert.notEqual(signature(), second);
});

test('a tree with a special file gets no native signature: the JavaScript walker reports it', { skip }, () => {
  const root = makeRepo({ 'tree/etc/a': 'a\n' });
  const tree = join(root, 'tree');
  const fifo = join(tree, 'etc/fifo');
  assert.equal(spawnSync('mkfifo', [fifo]).status, 0);
  assert.equal(nativeTreeSignatures([tree]).get(tree), undefined);
  assert.equal(nativeWalkTree(tree), undefined);
});

test('signatures handed over are taken once, for their trees only: the others are walked', { skip }, () => {
  const root = makeRepo({ 'a/x': 'x\n', 'b/y': 'y\n' });
  const [a, b] = [join(root, 'a'), join(root, 'b')];
  const walked = nativeTreeSignatures([a, b]);
  handOverTreeSignatures(new Map([[a, 'handed']]));
  assert.deepEqual(
    nativeTreeSignatures([a, b]),
    new Map([
      [a, 'handed'],
      [b, walked.get(b)],
    ]),
  );
  assert.deepEqual(nativeTreeSignatures([a, b]), walked, 'once only');
  // A listing walked for a handed-over tree is still there to list.
  handOverTreeSignatures(nativeTreeSignatures([a]));
  nativeTreeSignatures([a]);
  assert.deepEqual(nativeWalkTree(a)?.paths, ['/x']);
});

test('the files signature moves when a file changes, appears or goes, and not otherwise', { skip }, () => {
  const root = makeRepo({ 'a.json': '{}\n', 'dir/b': 'b\n' });
  const paths = [join(root, 'a.json'), join(root, 'dir'), join(root, 'absent.env')];
  const signature = (paths: string[]) => nativeFilesSignature(paths)?.signature;
  const first = signature(paths);
  assert.match(first ?? '', /^[0-9a-f]{16}$/);
  const newest = Math.max(...paths.slice(0, 2).flatMap((path) => [statSync(path).mtimeMs, statSync(path).ctimeMs]));
  assert.ok(Math.abs(nativeFilesSignature(paths)!.newest - newest) < 0.001, 'the latest time of the files there');
  assert.equal(signature(paths), first, 'the same files, the same signature');
  assert.notEqual(signature([...paths].reverse()), first, 'the paths are part of it');
  writeFileSync(join(root, 'absent.env'), 'X=1\n');
  const appeared = signature(paths);
  assert.notEqual(appeared, first, 'a file that appears');
  writeFileSync(join(root, 'a.json'), '{ }\n');
  assert.notEqual(signature(paths), appeared, 'a file rewritten');
  const rewritten = signature(paths);
  writeFileSync(join(root, 'dir/c'), 'c\n');
  assert.notEqual(signature(paths), rewritten, 'a directory whose entries change');
  assert.equal(nativeFilesSignature([join(root, 'x'.repeat(5000))]), undefined, 'a path it cannot look at');
});
