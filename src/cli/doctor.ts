/**
 * `hilo doctor [--json]`: every tfjs engine, whether it works on this machine, and if not,
 * why and what to do. Probes run in this process; no GPU device is created.
 */
import type { Argv, CommandModule } from 'yargs';

export const command: CommandModule = {
  command: 'doctor',
  describe: 'List every backend (tensorflow, webgpu, wasm, cpu): available or not, and how to fix it',
  builder: (y: Argv) =>
    y
      .option('json', { type: 'boolean', default: false, describe: 'print {backends: [...], auto} as JSON' })
      .example('$0 doctor', 'which engines work here and which one --backend auto picks'),
  handler: async (argv) => {
    const { probeBackends } = await import('../backend/probe.ts');
    const report = await probeBackends();
    if (argv.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return;
    }
    const lines: string[] = [];
    for (const b of report.backends) {
      const mark = !b.available ? 'no ' : b.autoSkips ? 'ok*' : 'ok ';
      lines.push(`${mark} ${b.backend}${b.package ? `  (${b.package})` : ''}`);
      if (b.detail) lines.push(`      ${b.detail}`);
      if (b.reason) lines.push(`      ${b.available ? 'note' : 'why'}: ${b.reason}`);
    }
    lines.push('', `--backend auto picks: ${report.auto}`);
    process.stdout.write(`${lines.join('\n')}\n`);
  },
};

export default command;
