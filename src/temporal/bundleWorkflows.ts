/** Bundles the workflow code once at build time, so workers start without webpack. */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bundleWorkflowCode, DefaultLogger } from '@temporalio/worker';

export async function writeWorkflowBundle(outFile: string): Promise<void> {
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('../workflows'),
    logger: new DefaultLogger('WARN'),
  });
  await writeFile(outFile, code);
}

if (require.main === module) {
  const out = process.argv[2] ?? join(__dirname, '..', 'workflow-bundle.js');
  writeWorkflowBundle(out).then(
    () => console.log(`workflow bundle written to ${out}`),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
