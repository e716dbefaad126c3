import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface SyntheticShape {
  machines: number;
  layers: number;
  filesPerLayer: number;
  /** Every nth file is an m4 template. */
  templateEvery: number;
  layersPerMachine: number;
  /** layer0 is one of every machine's layers (the others as before, from layer1 on): a layer every machine uses. */
  sharedLayer?: boolean;
}

/** About 10 machines, 30 layers, 3000 files, 10% templates (2% of them run a command, 2% include a fragment), some symlinks and `!` links. */
export const realisticShape: SyntheticShape = { machines: 10, layers: 30, filesPerLayer: 100, templateEvery: 10, layersPerMachine: 10 };

function write(path: string, content: string, mode = 0o644): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content, { mode });
}

/** Write a synthetic cloud repository of realistic shape into `root`. */
export function generateRepository(root: string, shape: SyntheticShape = realisticShape): void {
  write(join(root, 'homecloud.json'), '{ "stdlib": true }\n');
  write(join(root, 'shared/fragment.m4'), '# a fragment shared by some templates, for ENV_MACHINE\nlog_level m5_or([ENV_LOG_LEVEL], [info])\n');
  const inventory: Record<string, { host: string }> = {};
  for (let l = 0; l < shape.layers; l++) {
    const layer = join(root, 'layers', `layer${l}`);
    write(join(layer, 'usr/local/doc/examples', `layer${l}.env`), `ENV_L${l}_PORT=${8000 + l}\nENV_L${l}_NAME=layer${l}\n`);
    for (let f = 0; f < shape.filesPerLayer; f++) {
      const dir = join(layer, 'usr/local/opt', `app${l}`, `part${f % 10}`);
      if (f % shape.templateEvery === 0) {
        // As in real repositories, about 2% of the templates run a command (a fact's hash through a pipe) and 2% include a shared fragment.
        const template = (l * shape.filesPerLayer + f) / shape.templateEvery;
        const extra =
          template % 50 === 0
            ? `id m5_esyscmd([printf %s ']ENV_L${l}_NAME[' | sha256sum | cut -c1-16])`
            : template % 50 === 25
              ? 'm4_include([shared/fragment.m4])'
              : '';
        write(
          join(dir, `config${f}.m4.conf`),
          `# config ${f} of layer ${l} for ENV_MACHINE\nlisten m5_or([ENV_L${l}_PORT], 80)\nname m5_assert([ENV_L${l}_NAME])\nworkers m5_clamp(1, m5_or([ENV_WORKERS], 4), 64)\n${extra}`,
        );
      } else if (f % 50 === 7) {
        write(join(dir, `script${f}.sh`), `#!/bin/bash\necho layer ${l} script ${f}\n`, 0o755);
      } else {
        write(join(dir, `file${f}.txt`), `layer ${l} file ${f}\n${'x'.repeat(200 + ((l * 31 + f) % 800))}\n`);
      }
    }
    // A kept symlink (an enabled unit) and a `!` link reusing a file under another name.
    write(join(layer, 'usr/local/lib/systemd/system', `app${l}.service`), `[Service]\nExecStart=/usr/local/opt/app${l}/part1/script1.sh\n`);
    const wants = join(layer, 'usr/local/lib/systemd/system/multi-user.target.wants');
    mkdirSync(wants, { recursive: true });
    symlinkSync(`../app${l}.service`, join(wants, `app${l}.service`));
    symlinkSync('part1/file1.txt', join(layer, 'usr/local/opt', `app${l}`, '!copy-of-file1.txt'));
  }
  for (let m = 0; m < shape.machines; m++) {
    const name = `m${m}`;
    inventory[name] = { host: `10.0.0.${m + 1}` };
    const selected = shape.sharedLayer
      ? ['+ layer0', ...Array.from({ length: shape.layersPerMachine - 1 }, (_, i) => `+ layer${1 + ((m * 3 + i) % (shape.layers - 1))}`)]
      : Array.from({ length: shape.layersPerMachine }, (_, i) => `+ layer${(m * 3 + i) % shape.layers}`);
    write(join(root, 'machines', name, 'usr/local/opt/initd/layers/10-layers.txt'), selected.join('\n') + '\n');
    write(join(root, 'machines', name, 'usr/local/etc/machine.txt'), `this is ${name}\n`);
    write(join(root, 'facts', `${name}.json`), JSON.stringify({ ENV_WORKERS: 2 + m, ENV_ROLE: m % 2 ? 'worker' : 'edge' }, null, 1) + '\n');
  }
  write(join(root, 'inventory.json'), JSON.stringify(inventory, null, 1) + '\n');
}
